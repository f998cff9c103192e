"""The `nnexp` command: thin typer commands that call the library and map errors to exit codes.

Bad input (an NnexpError) prints one line per problem on stderr and exits 2,
without a traceback; any other exception is a bug and keeps its traceback.
Heavy libraries are imported inside the commands that need them, so that
`nnexp --help` and search workers start quickly.
"""

from __future__ import annotations

import gc
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Callable, Optional

import typer

from nnexp import __version__
from nnexp.errors import NnexpError

app = typer.Typer(
    name="nnexp",
    help="Train feed-forward networks from YAML specs and compare design choices with grid and random searches.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

SpecArg = Annotated[Path, typer.Argument(help="A YAML spec file (experiment or search).", show_default=False)]
ExperimentArg = Annotated[Path, typer.Argument(help="An experiment spec file (YAML).", show_default=False)]
SetOpt = Annotated[
    Optional[list[str]],
    typer.Option("--set", metavar="PATH=VALUE", help="Override a spec field, e.g. --set train.epochs=5 (repeatable; YAML value)."),
]
ResultsOpt = Annotated[Path, typer.Option("--results-dir", help="Where result folders are written.")]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars or tables; errors still go to stderr.")]


def on_one_line(text: str) -> str:
    """A line break inside a name or a value (a CSV header can hold one) shown as \\n, not taken."""
    return text.replace("\r", "\\r").replace("\n", "\\n")


@contextmanager
def user_errors():
    """Turn the user's mistakes into one line per problem and exit code 2; running out of memory
    (a data set or a network too large for this machine) is one line and exit 1, not a traceback."""
    try:
        yield
    except NnexpError as exc:
        for line in exc.problems:
            sys.stderr.write(f"error: {on_one_line(line)}\n")
        raise typer.Exit(exc.exit_code) from None
    except MemoryError as exc:
        detail = f" ({on_one_line(str(exc))})" if str(exc) else ""
        sys.stderr.write(f"error: out of memory{detail}; use a smaller data set or network, or a machine with more "
                         "memory\n")
        raise typer.Exit(1) from None


class StopSignals:
    """Which signal stopped a command: Ctrl-C (SIGINT, exit 130) or SIGTERM (exit 143)."""

    def __init__(self) -> None:
        self.terminated = False

    @property
    def stopped_by(self) -> str:
        return "terminated (SIGTERM)" if self.terminated else "interrupted"

    @property
    def exit_code(self) -> int:
        return 143 if self.terminated else 130


@contextmanager
def sigterm_as_interrupt(stopped: Callable[[str], str]):
    """SIGTERM (`timeout`, a batch scheduler's time limit, `docker stop`) stops a command as Ctrl-C
    does, so what finished is kept (a search writes its tables). By default it ended the process
    at once, with no word (and loky's tracker warning of leaked semaphores). An interrupt that
    reaches here is one line, `stopped(how)`, and exit 130 or 143."""
    import signal
    import threading

    signals = StopSignals()
    if threading.current_thread() is not threading.main_thread():
        yield signals  # only the main thread may set handlers (and a Ctrl-C is the main thread's)
        return

    def stop(signum, frame):
        signals.terminated = True
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield signals
    except KeyboardInterrupt:
        sys.stderr.write(stopped(signals.stopped_by) + "\n")
        _forget_unhandled_interrupt()
        raise typer.Exit(signals.exit_code) from None
    finally:
        signal.signal(signal.SIGTERM, previous)


def _forget_unhandled_interrupt() -> None:
    """CPython remembers a KeyboardInterrupt that left code run by exec() (a dataclass being made
    while a module imports, when the stop came during start-up) and, under `python -m nnexp`,
    ends the process by SIGINT at exit whatever code the command chose: once the stop has been
    handled, forget it (CPython <= 3.11 exports the flag; elsewhere this does nothing)."""
    try:
        import ctypes

        ctypes.c_int.in_dll(ctypes.pythonapi, "_Py_UnhandledKeyboardInterrupt").value = 0
    except (ImportError, AttributeError, ValueError, OSError):
        pass


@contextmanager
def spec_named(path: Path, set_: list[str] | None = None):
    """A spec error found only once the data is loaded names the spec file, as one found earlier
    does, or the `--set` override that gave the field; so does a problem with a built-in data
    set's settings."""
    from nnexp.data.datasets import spec_named_problems
    from nnexp.errors import DataError, SpecError
    from nnexp.spec import given_by_override, parse_overrides

    overrides = parse_overrides(set_)
    try:
        yield
    except SpecError as exc:
        raise SpecError([f"--set {problem}" if given_by_override(problem.partition(": ")[0], overrides)
                         else f"{path}: {problem}" for problem in exc.problems]) from None
    except DataError as exc:
        raise DataError(spec_named_problems(exc.problems, str(path))) from None


def _version(value: bool):
    if value:
        typer.echo(f"nnexp {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[Optional[bool], typer.Option("--version", callback=_version, is_eager=True, help="Show the version and exit.")] = None,
):
    """nnexp: config-driven experiments and searches for multilayer perceptrons."""


@app.command()
def validate(spec: SpecArg, set_: SetOpt = None,
             quiet: Annotated[bool, typer.Option(
                 "--quiet", "-q", help="Print only warnings and errors; the exit code says.")] = False,
             random_: Annotated[bool, typer.Option(
                 "--random", help="A search spec: check the random search `nnexp search --random` would run.")] = False,
             trials: Annotated[Optional[int], typer.Option(
                 "--trials", min=1, max=1_000_000, help="A random search: configurations to sample.")] = None):
    """Check a spec and its data file, then print it with every default filled in (and a search's plan).

    The data file is read as run and search would read it."""
    from nnexp import spec as specs

    with user_errors(), warnings_as_lines():
        overrides = specs.parse_overrides(set_)
        loaded = specs.load_any(spec, overrides)
        if isinstance(loaded, specs.ExperimentSpec) and (random_ or trials is not None):
            raise NnexpError(f"{'--random' if random_ else '--trials'}: only for a search spec; {spec} is an experiment spec")
        if isinstance(loaded, specs.ExperimentSpec):
            from nnexp.train import check_spec_fits, first_split, load_data

            with spec_named(spec, set_):  # a missing file, settings its data cannot take, a monitor its task lacks
                check_spec_fits(loaded, first_split(load_data(loaded)))
            text = specs.dump_yaml(loaded)
        else:
            from nnexp.search.space import plan_search
            from nnexp.search.preflight import check_data

            plan = plan_search(loaded, "random" if random_ else loaded.spec.strategy, trials)
            check_data(plan, loaded)
            # the output is itself a valid search spec: the base inline, as `experiment:`
            search = loaded.spec.model_dump(mode="json", exclude={"experiment", "base"})
            search.update(strategy=plan.strategy, trials=trials or search["trials"])  # as --random and --trials made it
            origin = f" (from base: {loaded.spec.base})" if loaded.spec.base is not None else ""
            text = (specs.dump_yaml(search) + f"# base experiment, resolved{origin}:\n"
                    + specs.dump_yaml({"experiment": loaded.base_spec.model_dump(mode="json")})
                    + f"# plan: {describe_plan(plan, loaded.spec)}\n")
        if not quiet:
            typer.echo(text, nl=False)


@app.command()
def run(spec: ExperimentArg, set_: SetOpt = None, results_dir: ResultsOpt = Path("results"), quiet: QuietOpt = False):
    """Train one network from an experiment spec and write its result files."""
    from nnexp import spec as specs

    folder: dict[str, Path] = {}  # "writing", then "written": the run's folder

    def stopped(how: str) -> str:
        if "written" in folder:
            return f"{how} after this run's files were written in {folder['written']}"
        if "writing" in folder:
            return (f"{how} while writing {folder['writing']}: none of this run's files were kept (an earlier run's "
                    "are as they were)")
        return f"{how}; nothing was written"

    with user_errors(), warnings_as_lines(), sigterm_as_interrupt(stopped):
        experiment = specs.load_experiment(spec, specs.parse_overrides(set_))
        from nnexp.api import run_experiment, run_folder, write_results
        from nnexp.console import EpochProgress, print_run_summary

        with EpochProgress(experiment, enabled=not quiet) as bar, spec_named(spec, set_):
            result = run_experiment(experiment, results_dir=None, progress=bar.update)
        folder["writing"] = run_folder(result.spec, results_dir)
        write_results(result, results_dir, on_written=lambda: folder.update(written=folder["writing"]))
        if not quiet:
            print_run_summary(result)
        if result.metrics.get("still_improving"):
            sys.stderr.write(f"note: {_still_falling(result)}: training has not converged; more train.epochs "
                             "(or a larger optimizer.lr) may do better\n")
        if result.status != "ok":
            cause, advice = _divergence(result)
            sys.stderr.write(f"error: {spec}: training diverged ({cause}) at epoch "
                             f"{result.metrics.get('diverged_epoch')}; {advice}\n")
            raise typer.Exit(1)


def _still_falling(result) -> str:
    """`val_loss was still falling at the last epoch (-4.1% over the last 5 epochs)` (the first
    fold's numbers under cross-validation)."""
    from nnexp.train import IMPROVING, late_fall

    rows = [row for row in result.history if row.get("fold", 0) == result.history[0].get("fold", 0)]
    fall = late_fall(rows)
    if fall is None or fall[1] >= -IMPROVING:  # another fold's
        return "the loss was still falling at the last epoch in a fold"
    key, change, window = fall
    return f"{key} was still falling at the last epoch ({change:+.1%} over the last {window} epochs)"


def _divergence(result) -> tuple[str, str]:
    """Why the run diverged (train.divergence's phrase), and what to try."""
    from nnexp.train import divergence_advice

    cause = result.metrics.get("diverged_because") or "non-finite loss"
    return cause, divergence_advice(cause)


@app.command()
def predict(
    model: Annotated[Path, typer.Argument(help="A model.npz written by `nnexp run` (or its folder).", show_default=False)],
    data: Annotated[Path, typer.Argument(help="A .csv, .parquet or .npz file with the training columns.", show_default=False)],
    output: Annotated[Optional[Path], typer.Option(
        "--output", "-o", help="Write predictions to this file: .csv, or .parquet (default: CSV on stdout).")] = None,
    proba: Annotated[bool, typer.Option("--proba", help="Add one probability column per class.")] = False,
    threshold: Annotated[Optional[float], typer.Option(
        "--threshold", help="Two-class models: predict the second class (as --proba lists them) when its probability "
                            "reaches this (0 < T <= 1), instead of the likelier class.", show_default=False)] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No warnings; only the predictions and errors.")] = False,
):
    """Predict with a saved model, applying its saved preprocessing."""
    with user_errors(), warnings_as_lines(show=not quiet):
        from nnexp.api import predict_table

        suffix = output.suffix.lower() if output is not None else ".csv"
        if suffix not in (".csv", ".parquet"):
            raise NnexpError(f"--output: {output}: write .csv or .parquet (the suffix says which), got '{suffix}'")
        if output is not None and output.exists() and data.exists() and output.samefile(data):
            raise NnexpError(f"--output: {output} is the data file; write the predictions to another file")
        frame = predict_table(model, data, proba=proba, threshold=threshold)
        if output is None:
            typer.echo(frame.to_csv(index=False), nl=False)
        else:
            from nnexp.results import atomic_write

            atomic_write(output, frame.to_csv(index=False) if suffix == ".csv" else frame.to_parquet(index=False))


@app.command()
def datasets(quiet: Annotated[bool, typer.Option("--quiet", "-q", help="The names alone, one per line.")] = False):
    """List the built-in data sets with rows, features and classes."""
    from rich.table import Table

    from nnexp.console import new_console
    from nnexp.data import list_datasets

    if quiet:
        typer.echo("".join(f"{row['name']}\n" for row in list_datasets()), nl=False)
        return
    table = Table("name", "kind", "task", "rows", "features", "classes", title="built-in data sets")
    for row in list_datasets():
        table.add_row(row["name"], row["kind"], row["task"], str(row["rows"]), str(row["features"]),
                      "-" if row["classes"] is None else str(row["classes"]))
    new_console().print(table)


@app.command()
def gradcheck(
    spec: ExperimentArg,
    set_: SetOpt = None,
    rows: Annotated[int, typer.Option("--rows", min=2, help="Training rows in the checked batch.")] = 8,
    tolerance: Annotated[float, typer.Option("--tolerance", help="Largest accepted relative error (> 0).")] = 1e-5,
    entries: Annotated[int, typer.Option("--entries", min=0, help="Entries checked per parameter array, drawn at "
                                                               "random from larger ones (0 = every entry).")] = 1000,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No table; a failure is one error line.")] = False,
):
    """Compare backprop with central differences (eq. 5.59) for the spec's network, in float64."""
    from nnexp import spec as specs

    with user_errors(), warnings_as_lines():
        if not tolerance > 0:  # NaN included
            raise NnexpError(f"--tolerance: must be a positive relative error, got {tolerance}")
        experiment = specs.load_experiment(spec, specs.parse_overrides(set_))
        from nnexp.api import gradcheck as check_gradients
        from nnexp.console import print_gradcheck

        with spec_named(spec, set_):
            report = check_gradients(experiment, rows=rows, entries=entries, tolerance=tolerance)
        if not quiet:
            print_gradcheck(report)
        elif not report.passed:  # the worst array is then a failed one
            sys.stderr.write(f"error: {spec}: gradient check failed: relative error {report.errors[report.worst]:.2e} "
                             f"in {report.worst} (tolerance {tolerance:.0e})\n")
        if not report.passed:
            raise typer.Exit(1)


@contextmanager
def warnings_as_lines(show: bool = True):
    """Show warnings (dropped constant features, unseen categories) as one `warning:` line each,
    each text once (the validation and test splits can raise the same one); none when not `show`."""
    import warnings

    shown: set[str] = set()

    def show_line(message, category, filename, lineno, file=None, line=None):
        if show and str(message) not in shown:
            shown.add(str(message))
            sys.stderr.write(f"warning: {on_one_line(str(message))}\n")

    with warnings.catch_warnings():
        warnings.simplefilter("default")
        warnings.simplefilter("ignore", ResourceWarning)  # Python's own (an import cut off by Ctrl-C), not the user's
        warnings.showwarning = show_line
        yield


def describe_plan(plan, search) -> str:
    """`grid: 3 x 2 = 6 configurations x 3 repeats = 18 trials`, or the random equivalent."""
    n_configs = len(plan.configs)
    if plan.strategy == "grid":
        from nnexp.search.space import grid_values

        sizes = [str(len(grid_values(k, search.space[k], ""))) for k in sorted(search.space)]
        shape = f"{' x '.join(sizes)} = " if len(sizes) > 1 else ""
        head = f"grid: {shape}{_count(n_configs, 'configuration')}"
    else:
        of = f" (of a {plan.grid_size}-point grid, without replacement)" if plan.grid_size else ""
        head = f"random: {_count(n_configs, 'configuration')}{of}"
    return f"{head} x {_count(search.repeats, 'repeat')} = {_count(len(plan.trials), 'trial')}"


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _register_search_commands():
    from nnexp.search_cli import register

    register(app)


_register_search_commands()


def main():
    """Console entry point."""
    from nnexp.collector import collect_less_often

    collect_less_often()
    try:
        sys.exit(_run_app())
    except KeyboardInterrupt:  # a Ctrl-C outside any command's own handling (as the process ends)
        sys.exit(130)
    finally:
        # Whatever is still alive at exit needs no cycle collection (files are closed, results
        # written): freezing it skips a final sweep over pandas and matplotlib's objects that
        # costs about 0.5 s of every command's wall time.
        gc.freeze()


def _run_app() -> int:
    """The app, with bad arguments reported as one `error:` line, as a bad spec is (typer draws a box)."""
    try:
        code = app(standalone_mode=False, prog_name="nnexp")
    except typer.Abort:
        sys.stderr.write("error: aborted\n")
        return 1
    except Exception as exc:
        # click's usage errors (typer vendors its own copy of click, so they are known by their shape)
        if not (hasattr(exc, "format_message") and isinstance(getattr(exc, "exit_code", None), int)):
            raise
        context = getattr(exc, "ctx", None)
        where = f" (see '{context.command_path} -h')" if context is not None else ""
        message = " ".join(exc.format_message().split())
        if message:  # none after `nnexp` alone, which has printed the help
            sys.stderr.write(f"error: {message}{where}\n")
        return exc.exit_code
    return code if isinstance(code, int) else 0


if __name__ == "__main__":
    main()
