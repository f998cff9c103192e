"""Terminal output of the CLI (rich): progress bars and result tables. Library code never prints."""

from __future__ import annotations

import math
import os
import sys

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

PIPED_WIDTH = 200


def new_console() -> Console:
    """A rich console; on a pipe or a file (no terminal, no COLUMNS) 200 characters wide, not
    rich's 80, so that tables keep their values whole (`0.00121`, not `0.00…`)."""
    console = Console()
    if not console.is_terminal and "COLUMNS" not in os.environ:
        console = Console(width=PIPED_WIDTH)
    return console


console = new_console()


def _fmt(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


class EpochProgress:
    """A progress bar over epochs with the latest losses; silent when disabled or not a terminal."""

    def __init__(self, spec, enabled: bool = True):
        self.enabled = enabled and sys.stdout.isatty()
        self.total = spec.train.epochs * max(spec.data.cv_folds, 1)
        self.done = 0
        self.progress = Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[info]}"),
            TimeElapsedColumn(), TimeRemainingColumn(), console=console, transient=True, disable=not self.enabled,
        )
        self.task = self.progress.add_task(spec.name or "training", total=self.total, info="")

    def __enter__(self):
        self.progress.__enter__()
        return self

    def __exit__(self, *exc):
        return self.progress.__exit__(*exc)

    def update(self, row: dict) -> None:
        info = "  ".join(f"{k} {_fmt(row[k])}" for k in ("train_loss", "val_loss", "val_accuracy", "val_rmse") if k in row)
        fold = f"fold {row['fold']}  " if "fold" in row else ""
        self.progress.update(self.task, advance=1, info=fold + info)


def _task_words(result) -> str:
    """`classification, 10 classes` or `regression`: which one data.task auto chose shows here."""
    prepared = result.prepared
    if prepared is None:
        return ""
    names = prepared.class_names
    return f"classification, {len(names)} classes" if prepared.task == "classification" and names else prepared.task


def print_run_summary(result) -> None:
    """Train / validation / test metrics and where the files went."""
    metrics = result.metrics
    from nnexp.spec import METRIC_NAMES

    names = [m for m in METRIC_NAMES if any(f"{s}_{m}" in metrics for s in ("train", "val", "test"))]
    table = Table("split", *names, title=f"{result.spec.name}: {result.status}")
    for split in ("train", "val", "test"):
        if any(f"{split}_{m}" in metrics for m in names):
            cells = []
            for m in names:
                value = _fmt(metrics.get(f"{split}_{m}"))
                if f"{split}_{m}_std" in metrics:
                    value += f" ± {_fmt(metrics[f'{split}_{m}_std'])}"
                cells.append(value)
            table.add_row(split, *cells)
    console.print(table)
    from nnexp.report import fmt_epochs  # here, not at import: the report's modules are no start-up cost of a run

    epochs = f"{fmt_epochs(metrics['epochs_run'])} epoch{'' if metrics['epochs_run'] == 1 else 's'}"
    epochs += " per fold (mean)" if metrics.get("cv_folds") else ""
    best = metrics.get("best_epoch")
    if best and best != metrics["epochs_run"]:
        restored = result.spec.train.early_stopping is not None
        epochs += (f" (best weights from epoch {fmt_epochs(best)})" if restored else
                   f" (val_loss lowest at epoch {fmt_epochs(best)}; the last epoch's weights are kept)")
    task = _task_words(result)  # which task data.task auto chose, said where it cannot be missed
    console.print(f"{task + ': ' if task else ''}{epochs} in {metrics['seconds']:.2f} s "
                  f"({1000 * metrics['seconds_per_epoch']:.1f} ms/epoch)")
    classes = result.class_report()  # the rows of predictions.csv, as the threshold's figures
    if "threshold" in metrics and classes is not None:  # two classes: where the likelier class is not the best
        t, positive = metrics["threshold"], result.prepared.class_names[1]  # rule for a rare one
        shown = f"{t:.6g}" if 0 < float(f"{t:.6g}") < 1 else repr(t)  # 0.9999997 is not `--threshold 1`
        at = [f"{split} {_fmt(metrics[f'{split}_balanced_accuracy_at_threshold'])} (the likelier class: "
              f"{_fmt(classes.loc[classes['split'] == split, 'recall'].mean())})" for split in ("val", "test")
              if f"{split}_balanced_accuracy_at_threshold" in metrics]
        console.print(f"threshold: {_class(positive)} when P({_class(positive)}) >= {shown} has the best validation "
                      f"balanced accuracy: {', '.join(at)}; `nnexp predict --threshold {shown}`"
                      + (f" ({ROWS_UNDER_CV})" if metrics.get("cv_folds") else ""), markup=False, highlight=False)
    weakest = _weakest_class(classes, bool(metrics.get("cv_folds")))
    if weakest:
        console.print(weakest, markup=False, highlight=False)
    for name, path in getattr(result, "files", {}).items():
        console.print(f"  {name:<20} {path}")


ROWS_UNDER_CV = "validation rows out of fold, test rows by the first fold's network, as in predictions.csv"


def _class(name) -> str:
    """A class name in a line of text: quoted when it could run into the words around it."""
    text = str(name)
    return text if text and all(c.isalnum() or c in "_-." for c in text) else repr(text)


def _weakest_class(report, cross_validated: bool = False) -> str | None:
    """The class the test rows (else the validation rows) recall least, and what it is taken for:
    the one line of classes.csv a reader needs first. None when every class is recalled fully."""
    if report is None:
        return None
    split = "test" if (report["split"] == "test").any() else "val"
    rows = report[(report["split"] == split) & (report["support"] > 0)]
    if not len(rows) or rows["recall"].min() >= 1:
        return None
    worst = rows.loc[rows["recall"].idxmin()]
    name, support = worst["class"], int(worst["support"])
    hits = int(worst[f"predicted_{name}"])
    taken = sorted(((int(worst[f"predicted_{other}"]), other) for other in report["class"].unique()
                    if other != name and worst[f"predicted_{other}"] > 0), key=lambda pair: -pair[0])
    shown = "; ".join(f"{count}{' taken' if i == 0 else ''} for {_class(other)}"
                      for i, (count, other) in enumerate(taken[:3]))
    more = f"; {sum(count for count, _ in taken[3:])} for others" if len(taken) > 3 else ""
    where = "test rows" if split == "test" else "validation rows"
    if cross_validated:
        where += " (the first fold's network)" if split == "test" else " (out of fold)"
    return (f"weakest class on the {where}: {_class(name)}, recall {_fmt(worst['recall'])} ({hits} of {support}: "
            f"{shown}{more}); every class: classes.csv")


def print_gradcheck(report) -> None:
    """One row per parameter array: shape, relative error, the error rounding alone gives, verdict."""
    table = Table("parameter", "shape", "entries checked", "gradient (rms)", "step", "relative error", "noise", "ok",
                  title=f"gradient check on {report.rows} rows (float64)")
    tolerance, verdicts = report.tolerance, report.verdicts
    shown = {"ok": "[green]yes[/]", "failed": "[red]NO[/]", "noise": "[yellow]within noise[/]"}
    for name, error in report.errors.items():
        size = math.prod(report.shapes[name])
        checked = "all" if report.checked[name] == size else f"{report.checked[name]} at random"
        if report.kinked[name]:
            checked += f" ({report.kinked[name]} on a kink)"
        table.add_row(name, "x".join(map(str, report.shapes[name])), checked, f"{report.rms[name]:.1e}",
                      f"{report.steps[name]:.0e}", f"{error:.2e}", f"{report.noise[name]:.1e}", shown[verdicts[name]])
    console.print(table)
    worst, noisy = report.worst, report.within_noise
    largest = (f"max relative error {report.errors[worst]:.2e}{' (of the arrays not within noise)' if noisy else ''}"
               if worst else "every array within noise")
    console.print(f"{largest} (tolerance {tolerance:.0e}): {'passed' if report.passed else 'FAILED'}")
    if noisy:
        console.print(f"within noise: {', '.join(noisy)}: backprop and the differences agree only within the noise "
                      "of the differences, which exceeds the tolerance: gradients too small to check that closely "
                      "(see their rms), or zero")
