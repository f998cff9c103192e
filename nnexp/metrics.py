"""Task metrics computed from network outputs.

Per-epoch history needs them every epoch of every trial, so they are plain
NumPy (scikit-learn's versions cost about a millisecond each in input checks);
tests compare every one with scikit-learn's.
"""

from __future__ import annotations

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


def classification_metrics(output: np.ndarray, y: np.ndarray, n_classes: int, loss: float | None = None) -> dict[str, float]:
    """`loss`: the cross-entropy from the logits, when known (training's; exact where p rounds to 0)."""
    proba = class_probabilities(output)
    pred = proba.argmax(axis=1)
    return {
        "loss": log_loss(proba, y) if loss is None else loss,
        "accuracy": float(np.mean(pred == y)),
        "f1": macro_f1(y, pred, n_classes),
    }


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
