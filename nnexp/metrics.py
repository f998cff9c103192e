"""Task metrics computed from network outputs.

Per-epoch history needs them every epoch of every trial, so they are plain
NumPy (scikit-learn's versions cost about a millisecond each in input checks);
tests compare every one with scikit-learn's.
"""

from __future__ import annotations

import math

import numpy as np

from nnexp.spec import TASK_METRICS

CLASSIFICATION = TASK_METRICS["classification"]
REGRESSION = TASK_METRICS["regression"]


def metric_names(task: str) -> tuple[str, ...]:
    return CLASSIFICATION if task == "classification" else REGRESSION


def class_probabilities(output: np.ndarray) -> np.ndarray:
    """(n, K) probabilities from a softmax output or a single logistic unit's P(y=1)."""
    if output.ndim == 1:
        return np.column_stack([1.0 - output, output])
    return output


def log_loss(proba: np.ndarray, y: np.ndarray) -> float:
    """Mean cross-entropy of (n, K) probabilities against class indices.

    Probabilities are floored at the smallest positive float, not at machine epsilon as in
    scikit-learn: a confidently wrong prediction (p = 1e-10 is common in float32) costs its
    full -log p instead of at most -log(eps) = 15.9. Below the smallest float (-log p above
    87 in float32) only the logits know the loss: training's metrics take it from them."""
    tiny = np.finfo(proba.dtype).tiny if np.issubdtype(proba.dtype, np.floating) else 1e-300
    picked = proba[np.arange(len(y)), y]
    return float(-np.mean(np.log(np.maximum(picked, tiny), dtype=np.float64)))


def macro_f1(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> float:
    """Macro-averaged F1 over the classes present in y_true or y_pred (as scikit-learn does)."""
    true_count = np.bincount(y_true, minlength=n_classes)
    pred_count = np.bincount(y_pred, minlength=n_classes)
    hits = np.bincount(y_true[y_true == y_pred], minlength=n_classes)
    present = (true_count + pred_count) > 0
    denominator = (true_count + pred_count)[present]
    return float(np.mean(2.0 * hits[present] / denominator))


def balanced_accuracy(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> float:
    """Mean recall over the classes present in y_true, as scikit-learn's balanced_accuracy_score
    (a predicted class absent from y_true has no recall and is left out, where scikit-learn
    also warns); NaN for an empty y_true."""
    true_count = np.bincount(y_true, minlength=n_classes)
    hits = np.bincount(y_true[y_true == y_pred], minlength=n_classes)
    present = true_count > 0
    return float(np.mean(hits[present] / true_count[present])) if present.any() else math.nan


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> np.ndarray:
    """(K, K) counts of class indices: row the true class, column the predicted one."""
    pairs = np.asarray(y_true, dtype=np.int64) * n_classes + np.asarray(y_pred, dtype=np.int64)
    return np.bincount(pairs, minlength=n_classes * n_classes).reshape(n_classes, n_classes)


def per_class_scores(confusion: np.ndarray) -> dict[str, np.ndarray]:
    """Each class's support, precision, recall and F1 from a confusion matrix, as scikit-learn's
    precision_recall_fscore_support(zero_division=np.nan): NaN where a figure is undefined
    (precision of a class never predicted, recall of a class with no rows, F1 of neither), not
    scikit-learn's default 0, which reads as a measured failure. The mean of the defined F1s is
    macro_f1, of the defined recalls balanced_accuracy."""
    hits = np.diag(confusion).astype(np.float64)
    support, predicted = confusion.sum(axis=1), confusion.sum(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        return {"support": support,
                "precision": np.where(predicted > 0, hits / predicted, np.nan),
                "recall": np.where(support > 0, hits / support, np.nan),
                "f1": np.where(support + predicted > 0, 2.0 * hits / (support + predicted), np.nan)}


def ranking_metrics(scores: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """(ROC AUC, average precision) of the scores, from one shared sort; see roc_auc and
    average_precision for what each is.

    One sort of all columns (a copy laid out class by class, so each sorts contiguously), then per
    class a binary search of its positives' sorted scores: below / at-or-below counts are exact
    integers. An argsort to rank every entry cost twice as long (29 ms against 13 ms for 60,000 x 10).
    """
    binary = scores.ndim == 1
    columns = np.ascontiguousarray(scores.reshape(len(scores), -1).T)  # (K, n)
    ordered = np.sort(columns, axis=1)
    n = len(y)
    areas, precisions = [], []
    for c, (column, sorted_column) in enumerate(zip(columns, ordered)):
        positive = np.sort(column[y == (1 if binary else c)])  # sorted keys: searchsorted walks forward
        n_pos = len(positive)
        if n_pos == 0:
            continue
        below = np.searchsorted(sorted_column, positive, side="left")  # rows scored lower, itself not included
        # AP: at each positive's score as the threshold, precision = positives at or above / rows at or above
        # (all tied rows on the same side of it); the mean over the positives weighs each threshold by its recall step
        positives_below = np.searchsorted(positive, positive, side="left")
        precisions.append(float(np.mean((n_pos - positives_below) / (n - below))))
        if n_pos == n:
            continue
        at_or_below = np.searchsorted(sorted_column, positive, side="right")
        # sum of the positives' average ranks (1-based) = (below + at_or_below + 1) / 2; U = that - n_pos(n_pos+1)/2
        twice_u = int(below.sum()) + int(at_or_below.sum()) - n_pos * n_pos
        areas.append(twice_u / (2.0 * n_pos * (n - n_pos)))
    return (float(np.mean(areas)) if areas else math.nan,
            float(np.mean(precisions)) if precisions else math.nan)


def roc_auc(scores: np.ndarray, y: np.ndarray) -> float:
    """Area under the ROC curve as the Mann-Whitney U statistic: the share of (positive, negative)
    pairs the scores order correctly, a tie counting a half (average ranks).

    `scores`: (n,) P(y=1) of a binary task, as scikit-learn's roc_auc_score(y, scores); or (n, K)
    class probabilities, each column scored one-vs-rest against `y`'s class indices and
    macro-averaged, as roc_auc_score(y, scores, multi_class="ovr", average="macro"). Where
    scikit-learn raises, this is defined instead: a class with no positive or no negative row in
    `y` has no AUC and is left out of the average (a class missing from a small validation split
    or fold), and with no class left (`y` holds a single class) the AUC is NaN, which the result
    files write as null (JSON) or an empty cell (CSV).
    """
    return ranking_metrics(scores, y)[0]


def average_precision(scores: np.ndarray, y: np.ndarray) -> float:
    """Average precision, the area under the precision-recall curve as a step function:
    sum over thresholds of (recall step) x precision, each distinct score one threshold (tied rows
    pass it together), as scikit-learn's average_precision_score; the mean over the positive rows
    of the precision at their own score.

    `scores`: (n,) P(y=1) of a binary task, as average_precision_score(y == 1, scores); or (n, K)
    class probabilities, each column scored one-vs-rest against `y`'s class indices and
    macro-averaged, as average_precision_score(label_binarize(y, classes=range(K)), scores,
    average="macro"). A class with no positive row in `y` has no recall and is left out of the
    average (scikit-learn warns and counts it as 0, which would pull the mean down for a class
    missing from a small validation split or fold), as roc_auc leaves it out; with no class left
    (a binary `y` without a 1) it is NaN, null in JSON, an empty cell in CSV. A class whose rows are
    all positive scores 1, as in scikit-learn. Unlike the AUC it does not reward ranking the many
    negatives below each other: on rare positives it shows what a ranking costs in false alarms.
    """
    return ranking_metrics(scores, y)[1]


def best_threshold(scores: np.ndarray, positive: np.ndarray) -> float | None:
    """The threshold on P(positive) whose rule `score >= threshold` has the best balanced accuracy
    on these rows: Youden's J = TPR - FPR at its highest (balanced accuracy is (1 + J) / 2; among
    equal ones, the highest), placed halfway to the next lower score, so that the rule does not
    hang on a row scored exactly at it (a score printed with fewer digits). None without both
    classes, or when no threshold does better than calling every row one class (J = 0: all rows
    scored alike, as by a network that did not learn; its `score >= 1.0` is no threshold for predict)."""
    scores, positive = np.asarray(scores, dtype=np.float64), np.asarray(positive, dtype=bool)
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    if not n_pos or not n_neg:
        return None
    order = np.argsort(-scores, kind="stable")
    ranked, hits = scores[order], positive[order]
    last = np.r_[ranked[1:] != ranked[:-1], True]  # the last row of each run of equal scores: a threshold
    tpr = np.cumsum(hits)[last] / n_pos
    fpr = np.cumsum(~hits)[last] / n_neg
    distinct, best = ranked[last], int(np.argmax(tpr - fpr))
    if tpr[best] - fpr[best] <= 0:
        return None
    if best + 1 == len(distinct):
        return float(distinct[best])
    upper, lower = float(distinct[best]), float(distinct[best + 1])
    halfway = (upper + lower) / 2
    return halfway if lower < halfway else upper  # two neighbouring floats have no number between them


RANKING = ("auc", "ap")  # computed from a sort of every class's scores: costlier than the rest together


def classification_metrics(output: np.ndarray, y: np.ndarray, n_classes: int, loss: float | None = None,
                           ranking: bool = True) -> dict[str, float]:
    """`loss`: the cross-entropy from the logits, when known (training's; exact where p rounds to 0).
    `ranking`: with auc and ap (on 450 digits validation rows they cost 0.3 ms against 0.05 ms for
    the others, a tenth of a small network's epoch: training's history leaves them out unless
    something watches them)."""
    proba = class_probabilities(output)
    pred = proba.argmax(axis=1)
    metrics = {
        "loss": log_loss(proba, y) if loss is None else loss,
        "accuracy": float(np.mean(pred == y)),
        "f1": macro_f1(y, pred, n_classes),
        "balanced_accuracy": balanced_accuracy(y, pred, n_classes),
    }
    if ranking:  # a single logistic unit, or two softmax columns, is scored by P(y=1) alone, as roc_auc_score(y, p1)
        scores = output if output.ndim == 1 else proba[:, 1] if proba.shape[1] == 2 else proba
        metrics["auc"], metrics["ap"] = ranking_metrics(scores, y)
    return metrics


def regression_metrics(pred_scaled: np.ndarray, y_scaled: np.ndarray, inverse) -> dict[str, float]:
    """Loss on the standardised target (what training minimises); errors in the target's own units."""
    diff = np.asarray(pred_scaled, dtype=np.float64).reshape(len(y_scaled), -1) - np.asarray(y_scaled, np.float64).reshape(len(y_scaled), -1)
    pred = np.asarray(inverse(pred_scaled), dtype=np.float64).ravel()
    true = np.asarray(inverse(y_scaled), dtype=np.float64).ravel()
    err = pred - true
    total = float(np.sum((true - true.mean()) ** 2))
    return {
        "loss": float(0.5 * np.mean(np.sum(diff * diff, axis=1))),
        "rmse": float(np.sqrt(np.mean(err * err))),
        "mae": float(np.mean(np.abs(err))),
        # a constant true target has no variance to explain: scikit-learn's convention, 1 if exact else 0
        "r2": float(1.0 - np.sum(err * err) / total) if total > 0 else float(not np.any(err)),
    }
