"""nnexp's fast per-epoch metrics agree with scikit-learn's."""

import numpy as np
import pytest
from sklearn import metrics as sk

from nnexp.metrics import classification_metrics, regression_metrics


@pytest.mark.parametrize("n_classes", [2, 3, 7])
def test_classification_metrics_match_sklearn(n_classes):
    rng = np.random.default_rng(n_classes)
    y = rng.integers(n_classes, size=200)
    logits = rng.normal(size=(200, n_classes)) + 2 * np.eye(n_classes)[y]
    proba = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    output = proba[:, 1] / proba[:, :2].sum(axis=1) if n_classes == 2 else proba
    if n_classes == 2:
        proba = np.column_stack([1 - output, output])
    got = classification_metrics(output, y, n_classes)
    pred = proba.argmax(axis=1)
    assert got["accuracy"] == pytest.approx(sk.accuracy_score(y, pred))
    assert got["f1"] == pytest.approx(sk.f1_score(y, pred, average="macro"))
    assert got["loss"] == pytest.approx(sk.log_loss(y, proba, labels=list(range(n_classes))), rel=1e-9)


def test_f1_with_a_class_never_predicted():
    y = np.array([0, 0, 1, 1, 2, 2])
    pred_proba = np.eye(3)[[0, 0, 1, 1, 1, 1]]
    got = classification_metrics(pred_proba, y, 3)
    assert got["f1"] == pytest.approx(sk.f1_score(y, [0, 0, 1, 1, 1, 1], average="macro", zero_division=0))


def test_regression_metrics_in_target_units():
    rng = np.random.default_rng(0)
    y_scaled = rng.normal(size=50)
    pred_scaled = y_scaled + rng.normal(scale=0.3, size=50)
    inverse = lambda v: np.asarray(v) * 10.0 + 100.0  # noqa: E731
    got = regression_metrics(pred_scaled, y_scaled, inverse)
    true, pred = inverse(y_scaled), inverse(pred_scaled)
    assert got["rmse"] == pytest.approx(np.sqrt(sk.mean_squared_error(true, pred)))
    assert got["mae"] == pytest.approx(sk.mean_absolute_error(true, pred))
    assert got["r2"] == pytest.approx(sk.r2_score(true, pred))
    assert got["loss"] == pytest.approx(0.5 * np.mean((pred_scaled - y_scaled) ** 2))


def test_r2_of_a_constant_target_follows_sklearn():
    same = lambda v: np.asarray(v)  # noqa: E731
    y = np.full(5, 2.0)
    for pred in (y, y + np.arange(5)):
        assert regression_metrics(pred, y, same)["r2"] == sk.r2_score(y, pred)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_log_loss_charges_a_confident_mistake_in_full(dtype):
    """Unlike scikit-learn (clipped at eps), a probability far below eps costs its own -log p."""
    p_wrong = np.finfo(dtype).eps / 1e3
    proba = np.array([[1 - p_wrong, p_wrong], [0.5, 0.5]], dtype=dtype)
    got = classification_metrics(proba, np.array([1, 0]), 2)["loss"]
    expected = (-np.log(np.float64(dtype(p_wrong))) + np.log(2.0)) / 2
    assert got == pytest.approx(expected, rel=1e-6)
    assert got > sk.log_loss([1, 0], proba, labels=[0, 1]) + 1.0
