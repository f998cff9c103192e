"""The public Python API: load a spec, run an experiment, predict with a saved model."""

from __future__ import annotations

import copy
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from nnexp.spec import (ExperimentSpec, apply_override, blaming_overrides, did_you_mean, experiment_paths, is_search_spec,
                         load_experiment, validate_experiment, warn_ignored)
from nnexp.errors import OVERRIDE, DataError, NnexpError, SpecError, describe, said_as
from nnexp.data.pipeline import forget_tables
from nnexp.train import RunResult, train_experiment


MAPPING = "<dict>"  # how messages name a spec given as a mapping, where a file would be named by its path


def load_spec(spec: str | os.PathLike | dict | ExperimentSpec, overrides: dict[str, Any] | None = None) -> ExperimentSpec:
    """An ExperimentSpec from a path, a mapping or a spec, with dotted-path overrides applied
    (a mapping of paths to values, or (path, value) pairs)."""
    pairs = _override_pairs(overrides)
    _check_spec_argument(spec, "a path, a mapping or an ExperimentSpec")
    known = experiment_paths()
    for path, _ in pairs:  # named as overrides here, not as the CLI's --set
        if path not in known:
            raise SpecError(f"overrides: {path}: unknown field{did_you_mean(path, known)}")
    warned: list[str] = []
    if isinstance(spec, ExperimentSpec):  # validated again (it may have been edited), warned about where it was made
        warned = spec.ignored_fields()
        spec = spec.model_dump(mode="json")
    with _named_as_the_api():
        if isinstance(spec, dict):
            if is_search_spec(spec):
                raise SpecError(f"{MAPPING}: this is a search spec (it has space/base/experiment); use nnexp.run_search")
            tree = copy.deepcopy(spec)  # the caller's mapping stays as it was
            for path, value in pairs:
                apply_override(tree, path, value)
            with blaming_overrides(MAPPING, pairs):
                resolved = validate_experiment(tree, MAPPING)
            warn_ignored(MAPPING, [line for line in resolved.ignored_fields() if line not in warned], pairs)
            return resolved
        return load_experiment(spec, pairs)


@contextmanager
def _named_as_the_api():
    """Messages name an override as what it is here, a keyword argument, not the CLI's `--set`,
    and a choice as the argument that makes it (`fresh=True`), not as an option (errors.said_as)."""
    token = OVERRIDE.set("override")
    try:
        yield
    finally:
        OVERRIDE.reset(token)


def _check_folder_argument(value, name: str, optional: bool = False) -> None:
    if not (isinstance(value, (str, os.PathLike)) or (optional and value is None)):
        expected = "a folder path" + (" or None" if optional else "")
        raise NnexpError(f"{name}: expected {expected}, got {describe(value)}")


def _check_flag(value, name: str) -> None:
    """True or False only: any non-empty string is truthy, and fresh='no' would start a search over."""
    if not isinstance(value, bool):
        raise NnexpError(f"{name}: expected True or False, got {describe(value)}")


def _check_progress(progress) -> None:
    if progress is not None and not callable(progress):
        raise NnexpError(f"progress: expected a function called after each epoch or trial, or None, "
                         f"got {describe(progress)}")


def _check_spec_argument(spec, expected: str, kinds: tuple[type, ...] = (str, os.PathLike, dict, ExperimentSpec)) -> None:
    """A spec argument of the wrong type is the caller's mistake, said in one line (not a TypeError deep inside)."""
    if not isinstance(spec, kinds):
        raise SpecError(f"spec: expected {expected}, got {describe(spec)}")


def _override_pairs(overrides) -> list[tuple[str, Any]]:
    if overrides is None:
        return []
    if isinstance(overrides, dict):
        return list(overrides.items())
    try:
        return [(str(path), value) for path, value in overrides]
    except (TypeError, ValueError):
        raise SpecError(f"overrides: expected a mapping of field paths to values, got {overrides!r:.60}") from None


def _keyword_overrides(overrides: dict[str, Any], arguments: tuple[str, ...], is_field) -> list[tuple[str, Any]]:
    """Keyword overrides (`__` for `.`) as (path, value) pairs; a keyword that is neither a spec
    field nor an argument is named with the closest of both (`n_job` -> `n_jobs`)."""
    pairs = []
    for key, value in overrides.items():
        path = key.replace("__", ".")
        if not is_field(path):
            known = [*arguments, *(p.replace(".", "__") for p in experiment_paths())]
            raise SpecError(f"{key}: neither an argument nor a spec field (`__` stands for `.`){did_you_mean(key, known)}")
        pairs.append((path, value))
    return pairs


def run_experiment(spec: str | os.PathLike | dict | ExperimentSpec, *, results_dir: str | os.PathLike | None = "results",
                   progress=None, **overrides) -> RunResult:
    """Train one network and (unless results_dir is None) write its result files.

    Overrides use `__` for the dots of a field path: `train__epochs=5` sets
    `train.epochs`. The result's `files` attribute lists what was written.
    """
    _check_folder_argument(results_dir, "results_dir", optional=True)
    _check_progress(progress)
    resolved = load_spec(spec, _keyword_overrides(overrides, ("results_dir", "progress"), experiment_paths().__contains__))
    try:
        result = train_experiment(resolved, progress=progress, predictions=True)
    finally:
        forget_tables()  # a notebook's process keeps no data file's table once the run is over
    result.files = {}
    if results_dir is not None:
        write_results(result, results_dir)
    return result


def write_results(result: RunResult, results_dir: str | os.PathLike, on_written=None) -> dict[str, Path]:
    """Write a trained run's files to <results_dir>/<its name>/, as run_experiment does: all of
    them, replacing an earlier run's, or (a failed write, a Ctrl-C) none."""
    from nnexp.results import write_run

    result.files = write_run(result, run_folder(result.spec, results_dir), on_written=on_written)
    return result.files


def run_folder(spec: ExperimentSpec, results_dir: str | os.PathLike) -> Path:
    return Path(results_dir) / (spec.name or "experiment")


def predict(model: str | os.PathLike, data, proba: bool = False, threshold: float | None = None):
    """Predictions for the rows of a table file or a pandas DataFrame: class names (or numbers),
    optionally with class probabilities. `threshold` (two-class models): predict the second class
    (as `proba` lists them) when its probability reaches it, instead of the likelier class; a rare
    class's recall for its precision, as chosen on validation rows."""
    with _named_as_the_api():
        return predict_table(model, data, proba, threshold)


def predict_table(model, data, proba: bool = False, threshold: float | None = None):
    """predict, its messages naming the caller's choices as the caller made them (`nnexp predict`'s
    options, or the API's arguments)."""
    import numpy as np
    import pandas as pd

    from nnexp.data import load_features
    from nnexp.metrics import class_probabilities
    from nnexp.results import load_model

    if not isinstance(model, (str, os.PathLike)):
        raise NnexpError(f"model: expected the path of a model.npz (or its folder), got {describe(model)}")
    if not isinstance(data, (str, os.PathLike, pd.DataFrame)):
        raise NnexpError(f"data: expected a table file's path or a pandas DataFrame, got {describe(data)}")
    _check_flag(proba, "proba")
    if threshold is not None and (isinstance(threshold, bool) or not isinstance(threshold, (int, float))
                                  or not 0 < threshold <= 1):
        raise NnexpError(f"{said_as('--threshold', 'threshold')}: must be a probability above 0 and at most 1, "
                         f"got {threshold!r}")
    saved = load_model(model)
    if proba and saved.task == "regression":
        raise NnexpError(f"{said_as('--proba', 'proba')}: {model} is a regression model; class probabilities need a "
                         "classification one")
    if threshold is not None and (saved.task == "regression" or len(saved.class_names) != 2):
        what = "a regression model" if saved.task == "regression" else f"a model of {len(saved.class_names)} classes"
        raise NnexpError(f"{said_as('--threshold', 'threshold')}: only for a two-class model; {model} is {what}")
    try:
        X = load_features(data if isinstance(data, pd.DataFrame) else str(data), saved.preprocessor)
    except DataError as exc:  # the loader speaks of training's spec fields; here there is only the file
        raise DataError([_rows_problem(problem) for problem in exc.problems]) from None
    output = saved.predict_output(X.astype(saved.network.dtype, copy=False))
    index = data.index if isinstance(data, pd.DataFrame) else None  # df["pred"] = predict(m, df)["prediction"] lines up
    if saved.task == "regression":
        return pd.DataFrame({"prediction": np.asarray(saved.preprocessor.inverse_target(output)).ravel()}, index=index)
    probabilities = class_probabilities(output)
    chosen = probabilities.argmax(axis=1) if threshold is None else (probabilities[:, 1] >= threshold).astype(np.int64)
    labels = saved.preprocessor.decode_labels(chosen)
    if all(_is_integer_text(name) for name in saved.class_names):  # a numeric target's classes stay numbers
        labels = labels.astype(np.int64)
    frame = pd.DataFrame({"prediction": labels}, index=index)
    if proba:
        for k, name in enumerate(saved.class_names):
            frame[f"proba_{name}"] = probabilities[:, k]
    return frame


def _is_integer_text(name) -> bool:
    """'3' or '-12', as a whole-number label prints, and small enough for int64; not '007', '-0' or '²'."""
    import re

    return isinstance(name, str) and re.fullmatch(r"0|-?[1-9][0-9]{0,17}", name) is not None


def _rows_problem(problem: str) -> str:
    """A data problem as predict's caller can act on it: no `data.dataset:` field (the file is the
    argument), and missing values explained by how the model was trained."""
    problem = problem.replace(": data.dataset: ", ": ", 1)
    head, impute, advice = problem.partition(": data.impute: ")
    if impute:
        advice = advice.split("; set data.impute", 1)[0]
        return (f"{head}: {advice}; the model was trained without data.impute, so every value is needed "
                "(clean the rows, or retrain with data.impute: mean or median)")
    return problem


class GradcheckReport:
    """Per parameter array of a spec's network: the relative error of backprop against central
    differences (`errors`), the error the differences alone can make there (`noise`), the
    difference step behind the verdict (`steps`), the gradient's size (`rms`, root mean square),
    the array's shape and how many of its entries were checked; `verdicts` and `passed` judge
    them at `tolerance`."""

    def __init__(self, checks: dict, shapes: dict[str, tuple], rows: int, tolerance: float = 1e-5):
        self.checks, self.shapes, self.rows, self.tolerance = checks, shapes, rows, tolerance
        self.checked = {name: c.entries for name, c in checks.items()}
        shown = {name: c.shown(tolerance) for name, c in checks.items()}  # the step behind each verdict
        self.errors = {name: s.error for name, s in shown.items()}
        self.noise = {name: s.noise for name, s in shown.items()}
        self.steps = {name: s.step for name, s in shown.items()}
        self.kinked = {name: s.kinked for name, s in shown.items()}  # entries left out there: their step crossed a kink
        self.rms = {name: c.rms for name, c in checks.items()}

    @property
    def verdicts(self) -> dict[str, str]:
        """'ok', 'failed', or 'noise': above the tolerance but within rounding noise (a gradient too
        small to check that closely, or truly zero); only 'failed' fails the check."""
        return {name: c.verdict(self.tolerance) for name, c in self.checks.items()}

    @property
    def passed(self) -> bool:
        return "failed" not in self.verdicts.values()

    @property
    def within_noise(self) -> list[str]:
        return [name for name, v in self.verdicts.items() if v == "noise"]

    @property
    def worst(self) -> str | None:
        """The array with the largest error of those not within noise (a failed one, if any)."""
        judged = [name for name in self.errors if name not in self.within_noise]
        return max(judged, key=self.errors.get) if judged else None

    def __repr__(self) -> str:
        worst, noise = self.worst, self.within_noise
        largest = f"largest error {self.errors[worst]:.1e} in {worst}" if worst else "every array within noise"
        within = f", {len(noise)} within noise" if noise and worst else ""
        return (f"<GradcheckReport on {self.rows} rows: {len(self.checks)} arrays, {'passed' if self.passed else 'FAILED'} "
                f"at {self.tolerance:.0e} ({largest}{within})>")


def gradcheck(spec: str | os.PathLike | dict | ExperimentSpec, rows: int = 8, entries: int = 1000,
              tolerance: float = 1e-5) -> GradcheckReport:
    """Backprop vs central differences for the spec's network on a few training rows, in float64,
    on at most `entries` entries of each parameter array drawn at random (0: every entry);
    the report's `passed` and `verdicts` judge the errors at `tolerance`."""
    import numpy as np

    from nnexp.build import build_network
    from nnexp.data import prepare
    from nnexp.engine import gradient_check
    from nnexp.train import check_spec_fits, class_weights

    if isinstance(rows, bool) or not isinstance(rows, int) or rows < 2:
        raise NnexpError(f"rows: must be a whole number of at least 2 training rows, got {rows!r}")
    if isinstance(tolerance, bool) or not isinstance(tolerance, (int, float)) or not tolerance > 0:
        raise NnexpError(f"tolerance: must be a positive relative error, got {tolerance!r}")
    if isinstance(entries, bool) or not isinstance(entries, int) or entries < 0:
        raise NnexpError(f"entries: must be a whole number of entries per array (0: all of them), got {entries!r}")
    resolved = load_spec(spec)
    try:
        data = prepare(resolved.data.model_copy(update={"cv_folds": 0}), resolved.seed, dtype="float64")
    finally:
        forget_tables()
    check_spec_fits(resolved, data)
    chosen = np.arange(min(rows, len(data.y_train)))
    weights = class_weights(resolved, data)
    if weights is not None:  # a row of every class first: rows that all weigh alike could not tell the weights;
        classes, firsts = np.unique(data.y_train, return_index=True)  # the heaviest class's, then the lightest's
        order = list(np.argsort(-weights[classes], kind="stable"))  # (two rows already weigh differently), the rest
        order.insert(1, order.pop())
        chosen = np.sort(list(dict.fromkeys([*firsts[order].tolist(), *range(len(data.y_train))]))[:rows])
    X, y = data.X_train[chosen], data.y_train[chosen]
    rng = np.random.default_rng(resolved.seed)
    net = build_network(resolved.model, X.shape[1], data.task, data.n_outputs, rng, "float64",
                        weights)  # the objective training minimises
    # Biases start at 0, which puts a ReLU-like unit exactly on its kink for every row whose
    # inputs are all 0 (input dropout, a layer of dead units): there the central difference
    # averages two slopes and no backprop can match it. Any point is a valid place to check.
    for name, p in zip(net.param_names, net.params):
        if name.endswith((".b", ".beta")):
            p += rng.normal(0.0, 0.1, p.shape)
    checks = gradient_check(net, X, y, l1=resolved.train.l1, l2=resolved.train.l2, entries=entries or None,
                            seed=resolved.seed)
    return GradcheckReport(checks, {n: p.shape for n, p in zip(net.param_names, net.params)}, len(X), float(tolerance))


class SearchResult:
    """A finished (or interrupted) search: what ran (`outcome`) and its tables (`report`)."""

    def __init__(self, outcome, report):
        self.outcome, self.report = outcome, report

    @property
    def summary(self):
        """One row per configuration, ranked (a pandas DataFrame)."""
        return self.report.summary

    @property
    def folder(self) -> Path:
        return self.report.folder

    @property
    def best_spec(self) -> Path | None:
        """best.yaml: the rank-1 configuration with its first ok repeat's seed; `run_experiment` on it
        trains that trial again and keeps its model (None when no configuration ranks)."""
        return self.report.best_spec

    def __repr__(self) -> str:
        return (f"<SearchResult {self.folder}: {len(self.summary)} configurations, {self.outcome.ran} trial(s) run now, "
                f"{self.outcome.skipped} resumed>")


def run_search(spec: str | os.PathLike, *, results_dir: str | os.PathLike = "results", strategy: str | None = None,
               trials: int | None = None, n_jobs: int | None = None, fresh: bool = False, retry_failed: bool = False,
               backend: str = "loky", scheduler: str | None = None, progress=None, **overrides) -> SearchResult:
    """Run (or resume) a search spec (a path, or a mapping as a search YAML file holds) and build its
    tables; overrides use `__` for dots, as in run_experiment."""
    from nnexp.report import report as build_report
    from nnexp.search.preflight import check_data
    from nnexp.search.runner import run_search as run_plan
    from nnexp.search.space import plan_search
    from nnexp.spec import load_search

    _check_spec_argument(spec, "a path or a mapping", (str, os.PathLike, dict))
    if results_dir is None:
        raise NnexpError("results_dir: a search needs a folder for its trials.jsonl and tables")
    _check_folder_argument(results_dir, "results_dir")
    _check_flag(fresh, "fresh")
    _check_flag(retry_failed, "retry_failed")
    _check_progress(progress)
    if scheduler is not None and not isinstance(scheduler, str):
        raise NnexpError(f"scheduler: expected a dask scheduler address or file, got {describe(scheduler)}")
    if scheduler is not None and backend != "dask":
        raise NnexpError("scheduler: only used with backend='dask'")
    if n_jobs is not None:
        from nnexp.search.runner import check_n_jobs

        check_n_jobs(n_jobs, "n_jobs")
    pairs = _keyword_overrides(overrides, SEARCH_ARGUMENTS, _is_search_field)
    with _named_as_the_api():
        if isinstance(spec, dict):  # named '<dict>' in messages, as an experiment mapping is; relative paths from here
            loaded = load_search(Path("search"), pairs, data=copy.deepcopy(spec), source=MAPPING)
        else:
            loaded = load_search(spec, pairs)
        plan = plan_search(loaded, strategy, trials)
        check_data(plan, loaded)
        folder = Path(results_dir) / loaded.spec.name
        outcome = run_plan(loaded, plan, folder, n_jobs=n_jobs, backend=backend, scheduler=scheduler, fresh=fresh,
                           retry_failed=retry_failed, progress=progress)
        result = SearchResult(outcome, build_report(folder))
    if outcome.interrupted:  # the trials that finished are kept and tabled; the caller's Ctrl-C still stops the caller
        raise KeyboardInterrupt(f"search interrupted: {outcome.ran} trial(s) finished this run are kept in {folder}; "
                                "run it again to resume")
    return result


SEARCH_ARGUMENTS = ("results_dir", "strategy", "trials", "n_jobs", "fresh", "retry_failed", "backend", "scheduler",
                    "progress")


def _is_search_field(path: str) -> bool:
    """A search field (`repeats`, `space.x`), an experiment field, or `experiment.<field>`."""
    from nnexp.spec import SEARCH_ONLY_KEYS

    known = experiment_paths()
    return path.split(".", 1)[0] in SEARCH_ONLY_KEYS or path in known or path.removeprefix("experiment.") in known


def rebuild_report(folder: str | os.PathLike, metric: str | None = None, mode: str | None = None):
    """Rebuild a search folder's tables and plots from its trials.jsonl, ranked by the search's
    metric, or by `metric` (and `mode`) when given."""
    from nnexp.report import report as build_report

    if not isinstance(folder, (str, os.PathLike)):
        raise NnexpError(f"folder: expected the path of a search results folder, got {describe(folder)}")
    with _named_as_the_api():
        return build_report(folder, metric=metric, mode=mode)
