"""The `nnexp search` and `nnexp report` commands: parse options, run, draw progress, print a leaderboard.

Thin on purpose: planning is nnexp.search.space, running nnexp.search.runner,
tables nnexp.report. Exit codes: 0 done, 1 no trial finished ok or results cannot be
written (disk full, read-only folder), 2 bad input (including a data file that cannot
be prepared), 130 interrupted (Ctrl-C; finished trials and the tables are kept), 143
the same after SIGTERM.
"""

from __future__ import annotations

import math
import sys
import threading
import time
from pathlib import Path
from typing import Annotated, Optional

import typer

SpecArg = Annotated[Path, typer.Argument(help="A search spec file (YAML).", show_default=False)]
SetOpt = Annotated[
    Optional[list[str]],
    typer.Option("--set", metavar="PATH=VALUE",
                 help="Override a field, e.g. --set train.epochs=5 or --set repeats=2 (repeatable; YAML value)."),
]
ResultsOpt = Annotated[Path, typer.Option("--results-dir", help="Results go to <results-dir>/<search name>/.")]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar or tables; errors still go to stderr.")]
LEADERBOARD_ROWS = 10
FAILURE_REASONS = 3  # distinct errors of failed trials shown after the leaderboard
TRIAL_WARNINGS = 5  # distinct warnings of trials shown
LOG_SECONDS = 30.0  # progress on a pipe or in a log file: a line at most this often


def register(app: typer.Typer) -> None:
    """Add `search` and `report` to the nnexp app."""
    app.command(name="search")(search)
    app.command(name="report")(report)


def search(
    spec: SpecArg,
    random_: Annotated[bool, typer.Option(
        "--random", help="Random search (sample --trials configurations).")] = False,
    trials: Annotated[Optional[int], typer.Option(
        "--trials", min=1, max=1_000_000, help="Random search: configurations to sample.")] = None,
    n_jobs: Annotated[Optional[int], typer.Option(
        "--n-jobs", help="Worker processes (-1 = all cores, -2 all but one, 1 = in this process). Default: the spec's n_jobs.")] = None,
    resume: Annotated[bool, typer.Option(
        "--resume/--fresh",
        help="Resume from trials.jsonl, or start over (the old log is kept aside, as a .old file).")] = True,
    retry_failed: Annotated[bool, typer.Option(
        "--retry-failed", help="Re-run failed and diverged trials.")] = False,
    backend: Annotated[str, typer.Option(
        "--backend", metavar="loky|dask", help="joblib backend that runs the trials.")] = "loky",
    scheduler: Annotated[Optional[str], typer.Option(
        "--scheduler", metavar="ADDRESS",
        help="dask.distributed scheduler address (with --backend dask; without it a local cluster).")] = None,
    results_dir: ResultsOpt = Path("results"),
    quiet: QuietOpt = False,
    set_: SetOpt = None,
):
    """Run a grid or random search over all cores, then print a leaderboard and write the tables."""
    from nnexp.cli import sigterm_as_interrupt, user_errors, warnings_as_lines
    from nnexp.errors import NnexpError

    done: dict[str, Path] = {}  # "trials", then "tables": the folder, once each is written

    def stopped(how: str) -> str:
        if "tables" in done:
            return f"{how}; the trials and tables are written in {done['tables']}"
        if "trials" in done:
            return (f"{how} while writing the tables: the trials are kept in {done['trials']}; `nnexp report "
                    f"{done['trials']}` writes the tables and plots")
        return f"{how} before the first trial of this run; nothing new was run"

    with user_errors(), warnings_as_lines(), sigterm_as_interrupt(stopped) as signals:
        from nnexp.search.runner import BACKENDS, check_n_jobs, quiet_cluster_logs, release_workers, run_search
        from nnexp.search.preflight import check_data
        from nnexp.search.space import plan_search
        from nnexp.spec import load_search, parse_overrides

        if backend not in BACKENDS:
            raise NnexpError(f"--backend: unknown backend '{backend}' (one of {', '.join(BACKENDS)})")
        if backend == "dask":
            _require_dask()
            quiet_cluster_logs()  # for good: the client's event loop can still log after the search
        if scheduler and backend != "dask":
            raise NnexpError("--scheduler: only used with --backend dask")
        if n_jobs is not None:
            check_n_jobs(n_jobs)
        loaded = load_search(spec, parse_overrides(set_))
        plan = plan_search(loaded, "random" if random_ else loaded.spec.strategy, trials)
        check_data(plan, loaded)
        folder = Path(results_dir) / loaded.spec.name

        from nnexp.cli import describe_plan

        console = _console()
        if not quiet:
            console.print(f"[bold]{loaded.spec.name}[/]: {describe_plan(plan, loaded.spec)} -> {folder}")
        with SearchProgress(console, loaded.spec.metric, enabled=not quiet) as bar:
            outcome = run_search(loaded, plan, folder, n_jobs=n_jobs, backend=backend, scheduler=scheduler,
                                 fresh=not resume, retry_failed=retry_failed, progress=bar.update)
        done["trials"] = folder
        release_workers()
        trial_warnings = list(dict.fromkeys(w for r in outcome.records for w in r.get("warnings") or []))
        for note in dict.fromkeys(outcome.notes + trial_warnings[:TRIAL_WARNINGS]):
            sys.stderr.write(f"warning: {note}\n")
        if len(trial_warnings) > TRIAL_WARNINGS:  # one per seed when each seed's split drops other columns
            sys.stderr.write(f"warning: ... and {len(trial_warnings) - TRIAL_WARNINGS} more different warnings of "
                             f"trials (each trial's are in {folder}/trials.jsonl)\n")

        from nnexp.report import report as build_report

        result = build_report(folder)
        extra = len(result.trials) - len(outcome.records)
        if extra > 0:  # the report reads the whole log: say why its counts exceed the plan's
            sys.stderr.write(f"note: {folder}/trials.jsonl also holds {extra} trial(s) outside this plan (an "
                             "earlier run with more repeats or trials); the tables include them\n")
        if not quiet:
            print_leaderboard(console, result, outcome)
        done["tables"] = folder
        if outcome.interrupted:
            again = "the same command again" if resume else "it again without --fresh"  # --fresh would move them aside
            sys.stderr.write(f"{signals.stopped_by}: {outcome.ran} trials finished this run are kept in {folder}; "
                             f"run {again} to resume\n")
            raise typer.Exit(signals.exit_code)
        if outcome.all_failed:
            first = next((r.get("error") for r in outcome.records if r.get("error")), None)
            sys.stderr.write(f"error: {folder}: no trial finished ok ({outcome.count('failed')} failed, "
                             f"{outcome.count('diverged')} diverged)" + (f"; first error: {first}" if first else "") + "\n")
            raise typer.Exit(1)


def report(
    folder: Annotated[Path, typer.Argument(help="A search results folder (with trials.jsonl).", show_default=False)],
    quiet: QuietOpt = False,
    results_dir: Annotated[Path, typer.Option(
        "--results-dir", help="Where the search wrote its folder: FOLDER may then be the search's name.")] = Path("results"),
    metric: Annotated[Optional[str], typer.Option(
        "--metric", help="Rank by this metric instead of the search's (val_loss, val_auc, val_ap, val_balanced_accuracy, train_loss, ...); "
                         "no trial is trained again.", show_default=False)] = None,
    mode: Annotated[Optional[str], typer.Option(
        "--mode", help="max or min, with --metric (default: follows the metric).", show_default=False)] = None,
):
    """Rebuild the tables, plots and best.yaml of a finished or interrupted search from its trials.jsonl."""
    from nnexp.cli import user_errors, warnings_as_lines
    from nnexp.errors import NnexpError

    with user_errors(), warnings_as_lines():
        if not (folder / "trials.jsonl").exists() and (results_dir / folder / "trials.jsonl").exists():
            folder = results_dir / folder  # the search's name, under where it wrote (a local folder of that name aside)
        elif not folder.exists():
            from nnexp.spec import did_you_mean

            searches = [p.parent.name for p in results_dir.glob("*/trials.jsonl")] if results_dir.is_dir() else []
            elsewhere = f", nor {results_dir / folder}" if not folder.is_absolute() else ""
            raise NnexpError(f"{folder}: no such folder{elsewhere}{did_you_mean(str(folder), searches)}")
        from nnexp.report import report as build_report

        result = build_report(folder, metric=metric, mode=mode)
        for note in result.notes:
            sys.stderr.write(f"warning: {note}\n")
        if result.missing:
            sys.stderr.write(f"note: {result.planned - result.missing} of the {result.planned} planned trials have run: the search "
                             "was stopped (or still runs); run the same `nnexp search` command to finish it\n")
        if not quiet:
            print_leaderboard(_console(), result, None)


def _require_dask() -> None:
    from nnexp.errors import NnexpError

    try:
        import distributed  # noqa: F401
    except ImportError:
        raise NnexpError("--backend dask: not available: dask.distributed is not installed "
                         "(pip install 'nnexp[dask]'), use --backend loky") from None


def _console():
    from nnexp.console import new_console

    return new_console()


class SearchProgress:
    """Progress fed by the runner's hook: done, failed, diverged, running, best so far, ETA. On a
    terminal a rich bar; on a pipe or a log file (nohup, a batch job, `| tee`) a plain line after
    the first trial, every LOG_SECONDS (also while a long trial runs) and at the end, so that a
    long search shows it lives."""

    def __init__(self, console, metric: str, enabled: bool = True):
        self.console, self.metric, self.enabled = console, metric, enabled
        self.bar = None
        self.counts = None  # the runner's counts (updated in place), once it has reported
        self.logged_at: float | None = None  # lines mode: when the last line was written, and at which count
        self.logged_done = 0
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.ticker: threading.Thread | None = None

    def __enter__(self) -> "SearchProgress":
        if self.enabled and self.console.is_terminal:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

            # a short bar and the counts that are not zero: at 80 columns "300/300" was cut to "30…"
            self.bar = Progress(TextColumn("[bold]trials"), BarColumn(bar_width=20), MofNCompleteColumn(),
                                TextColumn("{task.fields[status]}"), console=self.console, transient=False)
            self.bar.__enter__()
            self.task = self.bar.add_task("search", total=None, status="")
        elif self.enabled:
            self.ticker = threading.Thread(target=self._tick, name="nnexp-progress-lines", daemon=True)
            self.ticker.start()
        return self

    def status(self, counts, eta: bool = True) -> str:
        best = "–" if counts.best is None else f"{counts.best:.4g}"
        left = counts.eta
        eta_text = "–" if left is None else (f"{left:.0f}s" if left < 120 else f"{left / 60:.1f}min")
        lost = "".join(f"  {name} {n}" for name, n in (("failed", counts.failed), ("diverged", counts.diverged)) if n)
        return f"running {counts.running}{lost}  best {self.metric} {best}" + (f"  ETA {eta_text}" if eta else "")

    def update(self, record, counts) -> None:
        self.counts = counts
        if self.bar is not None:
            self.bar.update(self.task, total=counts.total, completed=counts.skipped + counts.done,
                            status=self.status(counts))
        elif self.enabled and record is not None and self.logged_at is None:
            self._line(counts)  # the first trial: the rest come with the clock

    def _tick(self) -> None:
        """A line LOG_SECONDS after the last one (a trial's line moves the clock)."""
        started = time.monotonic()
        while not self.stop.wait(max(0.0, (self.logged_at or started) + LOG_SECONDS - time.monotonic())):
            due = (self.logged_at or started) + LOG_SECONDS <= time.monotonic()
            if due and self.counts is not None:
                self._line(self.counts)
            elif due:
                started = time.monotonic()  # the runner has not reported yet: nothing to say

    def _line(self, counts, eta: bool = True) -> None:
        with self.lock:
            self.logged_at, self.logged_done = time.monotonic(), counts.done
            self.console.print(f"{time.strftime('%H:%M:%S')} trials {counts.skipped + counts.done}/{counts.total}  "
                               f"{self.status(counts, eta)}", markup=False, highlight=False)

    def __exit__(self, *exc) -> None:
        self.stop.set()
        if self.ticker is not None:
            self.ticker.join(timeout=1.0)  # no clock line after the last one
        if self.bar is not None:
            self.bar.__exit__(*exc)
        elif self.enabled and self.counts is not None and self.counts.done != self.logged_done:
            self._line(self.counts, eta=False)  # where it ended (no ETA: a Ctrl-C ends it early too)


def print_leaderboard(console, result, outcome) -> None:
    """The top configurations with mean ± std of the metric and tied-best marks, then where the files are."""
    from rich.table import Table

    from nnexp.report import (NO_TRIALS, _fmt, attributed, fmt_param, interaction_share, lost_reasons, param_column,
                              pm, short_names)

    s, m = result.summary, result.metric
    table = Table(title=f"{result.folder.name}: top configurations by {m} ({result.mode})", title_justify="left")
    names = short_names(result.params)
    top = s.head(LEADERBOARD_ROWS)
    values = {p: [fmt_param(v) for v in top[param_column(p)]] for p in result.params}
    # a column per parameter while they fit beside the figures (about 60 characters), else one column
    # of name=value that wraps: seven parameters at 80 columns were cut to `ra…`, `d…`
    wide = sum(max([len(names[p]), *map(len, values[p])]) + 3 for p in result.params)
    together = len(result.params) > 1 and wide + 60 > console.width
    columns = ["configuration"] if together else list(names.values())
    for column in ["rank", *columns, m, "ci95", "ok/n", "tied best"]:
        figure = column in ("rank", m, "ci95", "ok/n")  # never cut
        table.add_column(column, justify="right" if column in ("rank", m, "ci95", "ok/n") else "left",
                         no_wrap=figure, overflow="fold")
    for i, (_, row) in enumerate(top.iterrows()):
        ci = row.get(f"ci95_{m}", math.nan)
        shown = [values[p][i] for p in result.params]
        table.add_row(
            "–" if row["rank"] is None or str(row["rank"]) == "<NA>" else str(row["rank"]),
            *([", ".join(f"{names[p]}={v}" for p, v in zip(result.params, shown))] if together else shown),
            pm(row.get(f"mean_{m}", math.nan), row.get(f"std_{m}", math.nan)),
            "–" if isinstance(ci, float) and math.isnan(ci) else f"± {_fmt(ci)}",
            f"{int(row['n_ok'])}/{int(row['n_trials'])}",
            "[green]yes[/]" if row["tied_best"] == "yes" else str(row["tied_best"]),
        )
    console.print(table if len(s) else f"{result.folder.name}: {NO_TRIALS}")  # no header over nothing
    if len(s) > LEADERBOARD_ROWS:
        console.print(f"... and {len(s) - LEADERBOARD_ROWS} more configurations in summary.md")
    shares = result.importance
    if attributed(shares):
        def percent(share: float) -> str:
            return f"{share:.0%}" if share >= 0.01 else f"{share:.1%}"

        named = [f"{r['parameter']} {percent(r['eta2'])}" for _, r in shares.iloc[:-1].iterrows()
                 if not math.isnan(r["eta2"])]
        interactions = interaction_share(result)
        if interactions is not None:
            named.append(f"interactions {percent(interactions)}")
        noise = shares["eta2"].iloc[-1]
        console.print(f"what matters (share of the variance of {m}): {', '.join(named)}"
                      + (f"; seed noise {percent(noise)}" if not math.isnan(noise) else "") + " (effects.md)",
                      markup=False, highlight=False)
    if outcome is not None:
        console.print(f"ran {outcome.ran} trials, resumed {outcome.skipped} from an earlier run "
                      f"({outcome.count('ok')} ok, {outcome.count('failed')} failed, {outcome.count('diverged')} diverged) "
                      f"in {outcome.seconds:.1f} s")
    for what, reasons in zip(("failed", "diverged"), lost_reasons(result.trials)):
        for text, count in list(reasons.items())[:FAILURE_REASONS]:  # a count alone leaves the user to dig in the log
            console.print(f"{what}: {count} x {text}", markup=False, highlight=False)
        if len(reasons) > FAILURE_REASONS:
            console.print(f"... and {len(reasons) - FAILURE_REASONS} more reasons in summary.md")
    names = ", ".join(p.name for p in result.files)
    console.print(f"results: {result.folder}/  ({names}, trials.jsonl)")
    if result.best_spec is not None:
        console.print(f"best configuration: `nnexp run {result.best_spec}` trains it again (the seed of its "
                      "first ok repeat) and keeps the model", markup=False, highlight=False)
