"""The fit loop: epochs, schedule, early stopping, divergence, history and final metrics.

One seed drives everything: the data split (in nnexp.data), the initial weights,
the dropout masks and the shuffling order (here, from SeedSequence children),
so the same spec and seed give bit-identical numbers wherever they run.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from nnexp.build import build_network, build_optimizer
from nnexp.engine import Network
from nnexp.metrics import (RANKING, balanced_accuracy, best_threshold, class_probabilities, classification_metrics,
                           confusion_matrix, metric_names, per_class_scores, regression_metrics)
from nnexp.spec import ExperimentSpec, metric_mode

PROBE_ROWS = 256  # training rows used each epoch to measure saturation and dead units

# A training loss this many times its first epoch's (or 1, if that was lower) has exploded:
# SGD at batch 1 on digits grew ~1000-fold an epoch (103, 2.4e4, 9.2e6, ...) for a dozen
# epochs before float32 overflowed, and its metrics were those of a broken network.
DIVERGENCE_GROWTH = 1e4
SMALL_GEMM = 1_000_000  # multiply-adds per batch GEMM below which extra BLAS threads cost more than they give


def probe_rows(n: int) -> np.ndarray:
    """PROBE_ROWS training rows spread evenly over all of them: a file sorted by class keeps its
    order in the split, and its first rows held one class (units that fire for the others read dead)."""
    return np.unique(np.linspace(0, n - 1, min(n, PROBE_ROWS)).round().astype(np.int64))


@dataclass
class SplitOutputs:
    """A trained network's predictions for one split's rows, in the data's own labels or units."""

    split: str
    fold: int | None
    rows: np.ndarray  # positions in the data set (0: its first row)
    target: np.ndarray
    prediction: np.ndarray
    proba: np.ndarray | None = None  # (rows, classes)


def split_outputs(net: Network, data, split: str) -> SplitOutputs | None:
    """The network's predictions for a split's rows (None: the data has no such split)."""
    X, y, rows = getattr(data, f"X_{split}"), getattr(data, f"y_{split}"), getattr(data, f"{split}_rows")
    if X is None or rows is None:
        return None
    output = net.predict(X)
    if data.task == "classification":
        proba = np.asarray(class_probabilities(output))
        decode = data.preprocessor.decode_labels
        return SplitOutputs(split, data.fold, rows, decode(y), decode(proba.argmax(axis=1)), proba)
    inverse = data.preprocessor.inverse_target
    target = (data.raw_targets or {}).get(split)  # not through the scaling and back (151 read 151.00000000413)
    return SplitOutputs(split, data.fold, rows, np.ravel(inverse(y) if target is None else target),
                        np.ravel(inverse(output)))


def pooled(outputs: list[SplitOutputs], split: str) -> SplitOutputs | None:
    """One split's outputs as one block (under cross-validation the folds' validation rows
    together, out of fold); None when there are none."""
    parts = [part for part in outputs if part.split == split]
    if not parts:
        return None
    joined = {column: np.concatenate([getattr(part, column) for part in parts])
              for column in ("rows", "target", "prediction")}
    proba = np.concatenate([part.proba for part in parts]) if parts[0].proba is not None else None
    return SplitOutputs(split, parts[0].fold if len(parts) == 1 else None, **joined, proba=proba)


@dataclass
class RunResult:
    """What one experiment produced; nnexp.results writes it to files.

    `status` "ok" or "diverged"; `metrics` the final figures (metrics.json: losses, scores,
    gradient and saturation diagnostics; fold means and `*_std` under cross-validation);
    `history` one row per epoch; `network` the trained network (`network.predict(X)` on
    preprocessed rows); `prepared` its data and preprocessing; `folds` each fold's metrics;
    `predictions()` and `class_report()` the rows behind the scores. After
    nnexp.run_experiment, `files` maps each written file's name to its path.
    """

    spec: ExperimentSpec
    status: str  # "ok" | "diverged"
    metrics: dict[str, Any]
    history: list[dict[str, Any]] = field(repr=False)  # one row per epoch: a notebook shows the rest
    network: Network | None = field(repr=False, default=None)
    prepared: Any = field(repr=False, default=None)  # PreparedData of the saved model (fold 1 under CV)
    folds: list[dict[str, Any]] | None = field(repr=False, default=None)  # per-fold metrics under cross-validation
    outputs: list[SplitOutputs] | None = field(repr=False, default=None)  # kept by train_experiment(predictions=True)

    @property
    def task(self) -> str:
        return self.prepared.task

    def predictions(self):
        """Every validation and test row's target and prediction (and class probabilities) as a
        DataFrame, `row` its position in the data set: to choose a threshold, draw a PR curve or read
        the errors. Under cross-validation each fold's validation rows come from that fold's network
        (out of fold) and the test rows from the first fold's, the saved model. None: not kept, or
        the run diverged."""
        if not self.outputs:
            return None
        import pandas as pd

        folded = any(part.fold is not None for part in self.outputs)
        frames = []
        for part in self.outputs:
            columns = {"split": part.split, **({"fold": part.fold} if folded else {}), "row": part.rows,
                       "target": part.target, "prediction": part.prediction}
            if part.proba is not None:
                columns.update({f"proba_{name}": part.proba[:, k] for k, name in enumerate(self.prepared.class_names)})
            frames.append(pd.DataFrame(columns))
        return pd.concat(frames, ignore_index=True)

    def class_report(self):
        """Per split and true class: `support`, `precision`, `recall`, `f1` and the class's row of
        the confusion matrix (`predicted_<class>`: how many of its rows went to each class), from the
        rows predictions() holds (so under cross-validation the validation rows of every fold, out
        of fold). What macro F1 and balanced accuracy average away: which class is missed, and what
        it is taken for. None: regression, not kept, or the run diverged."""
        if not self.outputs or self.task != "classification":
            return None
        import pandas as pd

        names, encode = list(self.prepared.class_names), self.prepared.preprocessor.encode_labels
        frames = []
        for split in ("val", "test"):
            rows = pooled(self.outputs, split)
            if rows is None:
                continue
            confusion = confusion_matrix(encode(rows.target), encode(rows.prediction), len(names))
            frame = pd.DataFrame({"split": split, "class": names, **per_class_scores(confusion)})
            frame[[f"predicted_{name}" for name in names]] = confusion
            frames.append(frame)
        return pd.concat(frames, ignore_index=True)


def load_data(spec: ExperimentSpec):
    """The prepared data of a spec: one split, or a list of folds when cv_folds >= 2."""
    from nnexp.data import prepare, prepare_folds

    if spec.data.cv_folds >= 2:
        return prepare_folds(spec.data, spec.seed, dtype=spec.train.dtype)
    return prepare(spec.data, spec.seed, dtype=spec.train.dtype)


def first_split(prepared):
    """The one split of load_data's result, or the first fold of a cross-validation."""
    return prepared[0] if isinstance(prepared, list) else prepared


def train_experiment(spec: ExperimentSpec, prepared=None, progress: Callable[[dict], None] | None = None,
                     predictions: bool = False, watch: tuple[str, ...] | None = None) -> RunResult:
    """Train the network a spec describes; exceptions propagate (bad data, bugs). `predictions`:
    keep the validation and test rows' predictions (RunResult.predictions; a search needs none).
    `watch`: the metrics the caller reads per epoch, besides the spec's monitors (None: every one;
    a search watches its ranking metric, for its learning curves): the history leaves auc and ap
    out unless watched, as they cost a tenth of a small network's epoch."""
    if prepared is None:
        prepared = load_data(spec)
    first = first_split(prepared)
    check_spec_fits(spec, first)
    ranking = watch is None or ranking_watched(spec, watch)
    with _blas_threads(spec, first.X_train.shape[1]):
        if isinstance(prepared, list):
            return _cross_validate(spec, prepared, progress, predictions, ranking)
        with np.errstate(all="ignore"):  # divergence is detected and reported, not warned about
            status, metrics, history, net = fit(spec, prepared, np.random.SeedSequence(spec.seed), progress, ranking)
            outputs = [split_outputs(net, prepared, split) for split in ("val", "test")] if predictions else []
    outputs = _kept(outputs, status, predictions, metrics, prepared.class_names)
    return RunResult(spec, status, metrics, history, net, prepared, outputs=outputs)


def _kept(outputs: list, status: str, predictions: bool, metrics: dict, classes) -> list[SplitOutputs] | None:
    """The outputs a result keeps (none unless asked for, none of a diverged run), their threshold
    metrics added to `metrics`."""
    kept = [o for o in outputs if o is not None] if predictions and status == "ok" else None
    metrics.update(threshold_metrics(kept or [], classes))
    return kept


def threshold_metrics(outputs: list[SplitOutputs], classes: list[str] | None) -> dict[str, float]:
    """Two classes: the threshold on P(second class) with the best balanced accuracy on the
    validation rows (Youden's J; out of fold under cross-validation), and the balanced accuracy
    it gives there and on the test rows, which did not choose it: what `nnexp predict
    --threshold` needs when one class is rare and the likelier class is nearly always the common one."""
    if not classes or len(classes) != 2:
        return {}

    val = pooled(outputs, "val")
    threshold = best_threshold(val.proba[:, 1], val.target == classes[1]) if val is not None else None
    if threshold is None:
        return {}
    found = {"threshold": threshold}
    for split in ("val", "test"):
        rows = pooled(outputs, split)
        if rows is not None:
            found[f"{split}_balanced_accuracy_at_threshold"] = balanced_accuracy(
                (rows.target == classes[1]).astype(np.int64), (rows.proba[:, 1] >= threshold).astype(np.int64), 2)
    return found


def ranking_watched(spec: ExperimentSpec, watch: tuple[str, ...]) -> bool:
    """Whether something reads auc or ap per epoch: `watch`, early stopping or a target."""
    names = [*watch, *(config.monitor for _, config in spec.monitors())]
    return any(name.split("_", 1)[-1] in RANKING for name in names)


def check_spec_fits(spec: ExperimentSpec, data) -> None:
    """Monitored metrics must be ones the data's task computes, and class weights and the positive
    class must name its classes: a data file's 'auto' task and its classes are known only now (the
    spec checked what it could: built-in data sets, an explicit data.task)."""
    from nnexp.errors import SpecError
    from nnexp.spec import class_weight_problem, monitor_problems, positive_class_problem

    problems = [*monitor_problems(spec, data.task), class_weight_problem(spec, data.task, data.class_names, data.source),
                positive_class_problem(spec, data.task, data.class_names, data.source)]
    if any(problems):
        raise SpecError([problem for problem in problems if problem])


def class_weights(spec: ExperimentSpec, data) -> np.ndarray | None:
    """The training objective's weight of each class (None: all equal). 'balanced' weighs a class
    by n / (K x its rows) over this split's training rows (scikit-learn's 'balanced'), so the
    weights average 1 over the rows; a mapping's unnamed classes weigh 1 (as Keras's class_weight)."""
    setting = spec.train.class_weight
    if setting is None:
        return None
    classes = [str(c) for c in data.class_names]
    if setting == "balanced":
        counts = np.bincount(data.y_train, minlength=len(classes))
        return len(data.y_train) / (len(classes) * np.maximum(counts, 1))
    return np.array([setting.get(name, 1.0) for name in classes])


def _blas_threads(spec: ExperimentSpec, n_in: int):
    """One BLAS thread for small networks: waking a second thread for each tiny GEMM is slower.

    Measured on digits (64 -> 100 -> 10, batch 32): 7 ms/epoch on one thread, 26 ms on
    two while the other core was busy. Larger layers keep the caller's thread count.
    """
    from contextlib import nullcontext

    widths = [n_in, *spec.model.hidden]
    largest = max((a * b for a, b in zip(widths, widths[1:])), default=n_in)
    if spec.train.batch_size * largest >= SMALL_GEMM:
        return nullcontext()
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=1, user_api="blas")


def _cross_validate(spec, folds, progress, predictions: bool = False, ranking: bool = True) -> RunResult:
    """k folds, each its own network; metrics are fold means with `_std` columns. Predictions:
    each fold's validation rows by its own network (out of fold), the test rows by the first's."""
    runs, history, outputs = [], [], []
    for data in folds:
        fold = data.fold if data.fold is not None else len(runs)
        reporter = (lambda row, f=fold: progress({**row, "fold": f})) if progress else None
        with np.errstate(all="ignore"):
            status, metrics, rows, net = fit(spec, data, np.random.SeedSequence([spec.seed, fold]), reporter, ranking)
            if predictions and status == "ok":
                outputs.append(split_outputs(net, data, "val"))
        runs.append((status, metrics, net))
        history += [{"fold": fold, **row} for row in rows]
    fold_metrics = [m for _, m, _ in runs]
    status = "diverged" if any(s == "diverged" for s, _, _ in runs) else "ok"
    merged: dict[str, Any] = {}
    for key in fold_metrics[0]:
        values = [m.get(key) for m in fold_metrics]
        numbers = [v for v in values if isinstance(v, (int, float)) and v is not None and math.isfinite(v)]
        if key in ("diverged_epoch", "diverged_because"):
            merged[key] = next((v for v in values if v is not None), None)
        elif key == "still_improving":  # in any fold
            merged[key] = None if None in values else any(values)
        elif len(numbers) == len(values) and numbers:
            merged[key] = float(np.mean(numbers))
            if key.split("_", 1)[0] in ("train", "val", "test") and key != "seconds_per_epoch":
                # over the k folds themselves (divided by k), as GridSearchCV's std_test_score and
                # cross_val_score(...).std(): a spread of these folds, not an estimate from a sample
                merged[f"{key}_std"] = float(np.std(numbers))
        else:
            merged[key] = None
    merged["seconds"] = float(sum(m["seconds"] for m in fold_metrics))
    merged["cv_folds"] = len(folds)
    merged["status"] = status
    if predictions and status == "ok":
        with np.errstate(all="ignore"):
            outputs.append(split_outputs(runs[0][2], folds[0], "test"))
    outputs = _kept(outputs, status, predictions, merged, folds[0].class_names)
    return RunResult(spec, status, merged, history, runs[0][2], folds[0], folds=fold_metrics, outputs=outputs)


def fit(spec: ExperimentSpec, data, seeds: np.random.SeedSequence, progress=None, ranking: bool = True):
    """Train one network on one split; returns (status, metrics, history, network). `ranking`: each
    epoch's validation metrics include auc and ap (the final metrics always do)."""
    started = time.perf_counter()
    init_seed, shuffle_seed = seeds.spawn(2)
    net = build_network(spec.model, data.X_train.shape[1], data.task, data.n_outputs,
                        np.random.default_rng(init_seed), spec.train.dtype, class_weights(spec, data))
    optimizer, schedule = build_optimizer(spec.optimizer, net, spec.train)
    shuffle = np.random.default_rng(shuffle_seed)
    train = spec.train
    probe = data.X_train[probe_rows(len(data.X_train))]
    stopper = EarlyStopping(train.early_stopping) if train.early_stopping else None
    target = TargetWatch(train.target) if train.target else None
    history: list[dict[str, Any]] = []
    status, diverged_epoch, diverged_because = "ok", None, None

    loop_started = time.perf_counter()
    for epoch in range(1, train.epochs + 1):
        lr = schedule(epoch - 1)
        stats = net.train_epoch(data.X_train, data.y_train, batch_size=train.batch_size, optimizer=optimizer,
                                lr=lr, rng=shuffle, l1=train.l1, l2=train.l2)
        row: dict[str, Any] = {"epoch": epoch, "train_loss": stats.loss}
        if stats.finite and data.X_val is not None:
            row.update({f"val_{k}": v for k, v in evaluate(net, data, data.X_val, data.y_val, ranking).items()})
        first_loss = history[0]["train_loss"] if history else stats.loss
        cause = divergence(stats, row.get("val_loss"), first_loss, spec.train.dtype)
        if cause:
            status, diverged_epoch, diverged_because = "diverged", epoch, cause
            history.append({**row, "lr": lr})
            break
        row["lr"] = lr
        row.update({f"grad_norm_{i}": g for i, g in enumerate(stats.grad_norms, start=1)})
        for i, unit in enumerate(net.unit_stats(probe), start=1):
            row.update({f"{kind}_{i}": v for kind, v in unit.items() if v is not None})
        history.append(row)
        if progress:
            progress(row)
        if target:
            target.update(row)
        if stopper and stopper.update(row, net):
            break
        if train.time_limit is not None and time.perf_counter() - loop_started >= train.time_limit:
            break
    loop_seconds = time.perf_counter() - loop_started

    epochs_run = len(history)
    kept_epoch = epochs_run  # whose weights the metrics and the model are
    if stopper and stopper.best_state is not None:
        net.set_state(stopper.best_state)
        kept_epoch = stopper.best_epoch
    metrics: dict[str, Any] = {}
    for split in ("train", "val", "test"):
        X, y = getattr(data, f"X_{split}"), getattr(data, f"y_{split}")
        if X is None:
            continue
        values = evaluate(net, data, X, y) if status == "ok" else dict.fromkeys(metric_names(data.task))
        metrics.update({f"{split}_{k}": v for k, v in values.items()})
    metrics.update(layer_summary(history, kept_epoch, net.weight_sizes) if status == "ok" else {})
    if status == "ok":
        metrics["weights_near_zero"] = net.share_of_weights_below(NEAR_ZERO)
        metrics["copied_units"] = net.share_of_copied_units()
    if target:
        metrics["epochs_to_target"] = target.epoch
    metrics.update({
        "still_improving": still_improving(history) if status == "ok" and not stopper else None,
        "epochs_run": epochs_run,
        "best_epoch": (kept_epoch if stopper else lowest_epoch(history, "val_loss")) if status == "ok" else None,
        "diverged_epoch": diverged_epoch,
        "diverged_because": diverged_because,
        "seconds": time.perf_counter() - started,
        "seconds_per_epoch": loop_seconds / max(epochs_run, 1),
        "status": status,
    })
    return status, metrics, history, net


def divergence(stats, val_loss: float | None, first_loss: float, dtype: str) -> str | None:
    """Why an epoch's training broke down, in a phrase (None: it did not)."""
    if not stats.finite:
        return "non-finite loss"
    if val_loss is not None and not math.isfinite(val_loss):
        return "non-finite validation loss"
    if stats.optimizer_overflow:  # the loss still finite: Adam's steps became 0 on inputs of 1e30, say
        return f"the optimizer's running averages of the gradients overflowed {dtype}: no step can follow them"
    if exploded(stats.loss, first_loss):
        return f"the loss grew past {DIVERGENCE_GROWTH:,.0f} times its first epoch's"
    return None


def divergence_advice(cause: str | None) -> str:
    """What to try after a divergence of this cause (divergence's phrase)."""
    if cause and "overflowed" in cause:
        return ("normalise the inputs (data.normalize)" + (", use train.dtype: float64," if "float32" in cause else "")
                + " or try a smaller optimizer.lr")
    return "try a smaller optimizer.lr"


def exploded(loss: float, first_loss: float) -> bool:
    """A finite training loss past DIVERGENCE_GROWTH times its first epoch's (or 1, if lower)."""
    return math.isfinite(loss) and loss > DIVERGENCE_GROWTH * max(first_loss, 1.0)


def evaluate(net: Network, data, X: np.ndarray, y: np.ndarray, ranking: bool = True) -> dict[str, float]:
    """Loss and task metrics of one split in inference mode (one forward pass); `ranking`: with auc and ap."""
    if data.task == "classification":
        output, loss = net.predict_and_loss(X, y)
        return classification_metrics(output, y, data.n_outputs, loss, ranking)
    output = net.predict(X)
    return regression_metrics(output, y, data.preprocessor.inverse_target)


NEAR_ZERO = 1e-3  # |w| below this counts as a weight L1 has driven to zero (its subgradient steps never reach 0 exactly)
IMPROVING = 0.01  # still falling by more than this fraction over the last tenth of the run: not converged


def late_fall(history: list[dict]) -> tuple[str, float, int] | None:
    """(loss, relative change, epochs) over the last tenth of the run (at least 3 epochs): the
    validation loss, else the training loss; None under 6 epochs or with a missing value."""
    key = "val_loss" if all(row.get("val_loss") is not None for row in history) else "train_loss"
    values = [row.get(key) for row in history]
    if len(values) < 6 or any(v is None or not math.isfinite(v) for v in values):
        return None
    window = max(3, len(values) // 10)
    earlier, last = values[-1 - window], values[-1]
    if last > min(values) or earlier <= 0:  # not at its lowest at the end: no longer falling
        return key, 0.0, window
    return key, (last - earlier) / earlier, window


def still_improving(history: list[dict]) -> bool | None:
    """Whether that loss was still falling when training ended: lowest at the last epoch and
    more than 1% below its value a tenth of the run before, as scikit-learn's
    ConvergenceWarning says. None under 6 epochs."""
    fall = late_fall(history)
    return None if fall is None else fall[1] < -IMPROVING


def lowest_epoch(history: list[dict], key: str) -> int | None:
    """The epoch where `key` was lowest (the first, on a tie); None where it was not recorded."""
    values = [(row[key], row["epoch"]) for row in history if row.get(key) is not None and math.isfinite(row[key])]
    return min(values)[1] if values else None


def layer_summary(history: list[dict], kept_epoch: int | None = None,
                  sizes: list[int] | None = None) -> dict[str, float | None]:
    """Vanishing gradients and unit health in a few numbers for comparison tables.

    grad_norm_first / grad_norm_last: mean over epochs of the first hidden layer's
    and the output layer's weight-gradient norm. grad_ratio: the first hidden layer's
    weight gradient against the last hidden layer's, per entry (norm / sqrt(`sizes`)):
    below 1 it shrinks on its way back through the hidden layers. The output layer is left
    out, and the size divided out: against the output layer the ratio moved with the width
    (0.5 for a 256-wide ReLU net, 2 at width 8) and read a batch-normalised network, whose
    hidden gradients grow towards the input, as vanishing. None below two hidden layers.
    saturated / dead: mean over the layers where they apply, at `kept_epoch` (the
    weights kept, which early stopping restores), else the last epoch.
    """
    grads = sorted((k for k in history[0] if k.startswith("grad_norm_")), key=lambda k: int(k.rsplit("_", 1)[1]))
    summary: dict[str, float | None] = {}
    if len(grads) >= 2:
        means = [float(np.mean([row[g] for row in history])) for g in grads]
        summary.update(grad_norm_first=means[0], grad_norm_last=means[-1], grad_ratio=None)
        if len(grads) >= 3 and sizes is not None and len(sizes) == len(grads):
            first, last_hidden = means[0] / math.sqrt(sizes[0]), means[-2] / math.sqrt(sizes[-2])
            summary["grad_ratio"] = first / last_hidden if last_hidden > 0 else None
    final = history[kept_epoch - 1] if kept_epoch else history[-1]
    for kind in ("saturated", "dead"):
        values = [v for k, v in final.items() if k.startswith(f"{kind}_")]
        summary[kind] = float(np.mean(values)) if values else None
    return summary


class TargetWatch:
    """Remembers the first epoch at which a metric reached a target level."""

    def __init__(self, config):
        self.monitor, self.value = config.monitor, config.value
        self.lower = metric_mode(config.monitor) == "min"
        self.epoch: int | None = None

    def update(self, row: dict) -> None:
        value = row.get(self.monitor)
        if self.epoch is None and value is not None:
            if (value <= self.value) if self.lower else (value >= self.value):
                self.epoch = row["epoch"]


class EarlyStopping:
    """Stop after `patience` epochs without improvement; remember the best weights."""

    def __init__(self, config):
        self.monitor, self.patience, self.min_delta = config.monitor, config.patience, config.min_delta
        self.sign = 1.0 if metric_mode(config.monitor) == "min" else -1.0
        self.best = math.inf
        self.best_epoch = 0
        self.best_state = None
        self.wait = 0

    def update(self, row: dict, net: Network) -> bool:
        """Record an epoch; True when training should stop."""
        value = row.get(self.monitor)
        if value is None:
            raise KeyError(f"early stopping monitors '{self.monitor}', which this run does not compute")
        score = self.sign * value
        if score < self.best - self.min_delta:
            self.best, self.best_epoch, self.best_state, self.wait = score, row["epoch"], net.get_state(), 0
            return False
        self.wait += 1
        return self.wait >= self.patience
