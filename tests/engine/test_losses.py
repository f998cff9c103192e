"""Output functions and losses: stable forms, fused deltas, target layouts."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.testing import assert_allclose

from nnexp.engine.losses import OUTPUTS, make_output


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 9), k=st.integers(2, 6), scale=st.floats(0.01, 300.0), seed=st.integers(0, 10**6))
def test_softmax_fast_path_equals_the_reference(n, k, scale, seed):
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, k)) * scale
    y = rng.integers(0, k, n)
    head = make_output("softmax")
    loss, delta = head.loss_and_delta(z.copy(), y)
    ref_z = z - z.max(axis=1, keepdims=True)
    lse = np.log(np.exp(ref_z).sum(axis=1))
    ref_loss = float(np.mean(lse - ref_z[np.arange(n), y]))
    p = np.exp(ref_z - lse[:, None])
    onehot = np.eye(k)[y]
    assert loss == pytest.approx(ref_loss, rel=1e-9, abs=1e-12)
    assert_allclose(delta, (p - onehot) / n, rtol=1e-9, atol=1e-15)


def test_logistic_loss_is_stable_for_large_logits():
    head = make_output("logistic")
    z = np.array([[800.0], [-800.0], [0.0]])
    y = np.array([[0.0], [1.0], [1.0]])
    loss = head.forward_loss(z.copy(), y)
    assert loss == pytest.approx((800.0 + 800.0 + np.log(2.0)) / 3)
    _, delta = head.loss_and_delta(z.copy(), y)
    assert_allclose(delta.ravel(), [1 / 3, -1 / 3, -0.5 / 3])


@pytest.mark.parametrize("dtype, lowest", [(np.float64, -700.0), (np.float32, -85.0)])
def test_a_logistic_outputs_small_probabilities_to_their_own_precision(dtype, lowest):
    """(1 + tanh(z/2)) / 2 rounded P(y=1) to exactly 0 below z = -37 (float64) or -17 (float32):
    37 of an overconfident network's 114 validation rows tied at 0, and AUC, AP and the threshold
    could no longer rank them. The probabilities a network outputs keep their relative precision."""
    head = make_output("logistic")
    z = np.linspace(lowest, 40.0, 2001).reshape(-1, 1)
    reference = 1.0 / (1.0 + np.exp(-z))  # float64, textbook
    got = head.output(z.astype(dtype))
    assert got.dtype == dtype and (got > 0).all() and (np.diff(got.ravel()) >= 0).all()
    assert_allclose(got, reference, rtol=1e-13 if dtype == np.float64 else 2e-6)


def test_mse_has_the_half_factor():
    head = make_output("linear")
    z = np.array([[1.0, 2.0], [3.0, 5.0]])
    y = np.array([[0.0, 0.0], [3.0, 3.0]])
    assert head.forward_loss(z.copy(), y) == pytest.approx(0.5 * (1 + 4 + 0 + 4) / 2)
    _, delta = head.loss_and_delta(z.copy(), y)
    assert_allclose(delta, (z - y) / 2)


def test_target_layouts():
    assert make_output("softmax").prepare_targets(np.array([0.0, 2.0]), 3, np.float32).dtype.kind == "i"
    with pytest.raises(ValueError):
        make_output("softmax").prepare_targets(np.array([0.5, 1.0]), 3, np.float32)
    assert make_output("logistic").prepare_targets([0, 1, 1], 1, np.float32).shape == (3, 1)
    assert make_output("linear").prepare_targets(np.zeros((4, 2)), 2, np.float64).shape == (4, 2)
    assert set(OUTPUTS) == {"softmax", "logistic", "linear"}
    with pytest.raises(ValueError, match="unknown output"):
        make_output("tanh")


@pytest.mark.parametrize("output, k", [("softmax", 4), ("logistic", 2)])
def test_class_weights_scale_each_rows_loss_and_delta(output, k):
    """Keras's class_weight: the objective is the mean over rows of w[class] x the row's loss, and each
    row's delta is scaled by its weight; evaluation (forward_loss) stays the plain mean."""
    rng = np.random.default_rng(3)
    n = 9
    z = rng.normal(size=(n, k if output == "softmax" else 1)) * 3
    y = rng.integers(0, k, n)
    weights = np.array([0.5, 4.0, 1.0, 2.5][:k])
    plain, weighted = make_output(output), make_output(output)
    weighted.set_class_weights(weights)
    targets = plain.prepare_targets(y, z.shape[1], np.float64)
    rows = plain.row_losses(z.copy(), targets)
    loss, delta = weighted.loss_and_delta(z.copy(), targets)
    assert loss == pytest.approx(np.mean(weights[y] * rows), rel=1e-12)
    assert weighted.training_loss(z.copy(), targets) == pytest.approx(loss, rel=1e-12)
    _, plain_delta = plain.loss_and_delta(z.copy(), targets)
    assert_allclose(delta, plain_delta * weights[y][:, None], rtol=1e-12)
    assert weighted.forward_loss(z.copy(), targets) == pytest.approx(np.mean(rows), rel=1e-12)
    probabilities = plain.output(z.copy())
    if output == "logistic":
        probabilities = np.column_stack([1 - probabilities[:, 0], probabilities[:, 0]])
    assert_allclose(rows, -np.log(probabilities[np.arange(n), y]), rtol=1e-9)


def test_class_weights_are_refused_where_they_mean_nothing():
    with pytest.raises(ValueError, match="classification output"):
        make_output("linear").set_class_weights([1.0, 2.0])
    with pytest.raises(ValueError, match="positive and finite"):
        make_output("softmax").set_class_weights([1.0, 0.0])
    with pytest.raises(ValueError, match="2 classes"):
        make_output("logistic").set_class_weights([1.0, 2.0, 3.0])
