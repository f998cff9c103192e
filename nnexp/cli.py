"""The `nnexp` command: thin typer commands that call the library and map errors to exit codes.

Bad input (an NnexpError) prints one line per problem on stderr and exits 2,
without a traceback; any other exception is a bug and keeps its traceback.
Heavy libraries are imported inside the commands that need them, so that
`nnexp --help` and search workers start quickly.
"""

from __future__ import annotations

import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Optional

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
SetOpt = Annotated[
    Optional[list[str]],
    typer.Option("--set", metavar="PATH=VALUE", help="Override a spec field, e.g. --set train.epochs=5 (repeatable; YAML value)."),
]
ResultsOpt = Annotated[Path, typer.Option("--results-dir", help="Where result folders are written.")]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars or tables; errors still go to stderr.")]


@contextmanager
def user_errors():
    """Turn the user's mistakes into one line per problem and exit code 2."""
    try:
        yield
    except NnexpError as exc:
        for line in exc.problems:
            sys.stderr.write(f"error: {line}\n")
        raise typer.Exit(exc.exit_code) from None


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
def validate(spec: SpecArg, set_: SetOpt = None):
    """Check a spec and print it with every default filled in (and a search's plan size)."""
    from nnexp import spec as specs

    with user_errors():
        overrides = specs.parse_overrides(set_)
        loaded = specs.load_any(spec, overrides)
        if isinstance(loaded, specs.ExperimentSpec):
            typer.echo(specs.dump_yaml(loaded), nl=False)
            return
        from nnexp.search.space import plan_search

        plan = plan_search(loaded)
        search = loaded.spec.model_dump(mode="json", exclude={"experiment"})
        search["base"] = loaded.spec.base
        typer.echo(specs.dump_yaml(search), nl=False)
        typer.echo("# base experiment, resolved:")
        typer.echo(specs.dump_yaml({"experiment": loaded.base_spec.model_dump(mode="json")}), nl=False)
        typer.echo(f"# plan: {describe_plan(plan, loaded.spec)}")


def describe_plan(plan, search) -> str:
    """`grid: 3 x 2 = 6 configurations x 3 repeats = 18 trials`, or the random equivalent."""
    n_configs = len(plan.configs)
    if plan.strategy == "grid":
        from nnexp.search.space import grid_values

        sizes = [str(len(grid_values(k, search.space[k], ""))) for k in sorted(search.space)]
        shape = f"{' x '.join(sizes)} = " if len(sizes) > 1 else ""
        head = f"grid: {shape}{n_configs} configurations"
    else:
        of = f" (of a {plan.grid_size}-point grid, without replacement)" if plan.grid_size else ""
        head = f"random: {n_configs} configurations{of}"
    return f"{head} x {search.repeats} repeats = {len(plan.trials)} trials"


def main():
    """Console entry point."""
    app()


if __name__ == "__main__":
    main()
