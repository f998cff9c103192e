"""Backprop is proved by central differences (float64) for every layer, activation and loss."""

import numpy as np
import pytest

from nnexp.engine.activations import ACTIVATIONS
from nnexp.engine.gradcheck import gradient_check
from nnexp.engine.network import Network

TOL = 1e-6
N, N_IN = 16, 5


def _data(output: str, n_out: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(N, N_IN))
    if output == "softmax":
        y = rng.integers(0, n_out, N)
    elif output == "logistic":
        y = rng.integers(0, 2, N)
    else:
        y = rng.normal(size=N) if n_out == 1 else rng.normal(size=(N, n_out))
    return X, y


def _net(activations, output="softmax", n_out=3, hidden=None, std=0.5, **kw):
    hidden = hidden or [4] * len(activations)
    return Network(N_IN, hidden, n_out, activations, ("gaussian", {"std": std}), output,
                   rng=np.random.default_rng(1), dtype=np.float64, **kw)


def _assert_ok(checks):
    assert checks, "no parameters checked"
    assert all(check.verdict(TOL) == "ok" for check in checks.values()), checks


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_every_activation(name):
    net = _net([(name, {}), ("tanh", {})])
    X, y = _data("softmax", 3)
    _assert_ok(gradient_check(net, X, y))


@pytest.mark.parametrize("output,n_out", [("softmax", 3), ("logistic", 1), ("linear", 1),
                                          ("linear", 2)])
def test_every_output_and_loss(output, n_out):
    net = _net([("tanh", {}), ("relu", {})], output=output, n_out=n_out)
    X, y = _data(output, n_out)
    _assert_ok(gradient_check(net, X, y))


@pytest.mark.parametrize("output,n_out", [("softmax", 3), ("logistic", 1), ("linear", 1)])
def test_no_hidden_layer(output, n_out):
    net = _net([], output=output, n_out=n_out, hidden=[])
    X, y = _data(output, n_out)
    _assert_ok(gradient_check(net, X, y))


@pytest.mark.parametrize("name", ["relu", "logistic", "maxout", "prelu"])
def test_batch_norm(name):
    net = _net([(name, {}), ("tanh", {})], batch_norm=True)
    X, y = _data("softmax", 3)
    errors = gradient_check(net, X, y)
    assert "layer1.gamma" in errors and "layer1.beta" in errors
    _assert_ok(errors)


@pytest.mark.parametrize("pieces", [2, 3])
def test_maxout_pieces(pieces):
    net = _net([("maxout", {"pieces": pieces}), ("maxout", {"pieces": pieces})])
    assert net.params[0].shape == (N_IN, 4 * pieces)
    X, y = _data("softmax", 3)
    _assert_ok(gradient_check(net, X, y))


def test_prelu_slope_is_learned_and_checked():
    net = _net([("prelu", {"init": 0.1}), ("prelu", {})])
    X, y = _data("softmax", 3)
    errors = gradient_check(net, X, y)
    assert "layer1.slope" in errors and "layer2.slope" in errors
    _assert_ok(errors)
    net.loss_and_grad(X, y)
    assert np.abs(net.grads[net.param_names.index("layer1.slope")]).max() > 0


@pytest.mark.parametrize("l1,l2", [(0.0, 0.3), (0.05, 0.0), (0.05, 0.3)])
def test_penalties(l1, l2):
    # weights with std 0.5 are far from the kink of |w| at 0
    net = _net([("tanh", {}), ("softplus", {})])
    X, y = _data("softmax", 3)
    _assert_ok(gradient_check(net, X, y, l1=l1, l2=l2))


def test_dropout_under_a_fixed_mask():
    net = _net([("relu", {}), ("tanh", {})], hidden=[8, 6], dropout_input=0.2, dropout_hidden=0.5)
    X, y = _data("softmax", 3)
    _assert_ok(gradient_check(net, X, y, l2=0.1))


def test_everything_together():
    net = _net([("maxout", {"pieces": 2}), ("prelu", {}), ("gelu", {})], output="logistic",
               n_out=1, batch_norm=True, dropout_hidden=0.25)
    X, y = _data("logistic", 1)
    _assert_ok(gradient_check(net, X, y, l1=0.01, l2=0.1))


@pytest.mark.parametrize("output,n_out,weights", [("softmax", 3, [0.5, 4.0, 1.0]), ("logistic", 1, [3.0, 0.25])])
def test_class_weights(output, n_out, weights):
    net = _net([("tanh", {}), ("relu", {})], output=output, n_out=n_out, class_weights=weights, batch_norm=True)
    X, y = _data(output, n_out)
    _assert_ok(gradient_check(net, X, y, l2=0.1))


def test_per_layer_mixed_activations():
    acts = [("logistic", {}), ("elu", {"alpha": 2.0}), ("leaky_relu", {"slope": 0.2}),
            ("swish", {})]
    net = _net(acts)
    X, y = _data("softmax", 3)
    _assert_ok(gradient_check(net, X, y))


def test_a_wrong_gradient_is_detected():
    net = _net([("tanh", {})])
    X, y = _data("softmax", 3)
    dense = net.layers[0]
    original = type(dense).backward

    def broken_backward(grad):
        out = original(dense, grad)
        dense.dW[0, 0] *= 1.1  # a 10% error in one entry
        return out

    dense.backward = broken_backward
    checks = gradient_check(net, X, y)
    assert checks["layer1.W"].shown(1e-5).error > 1e-4 and checks["layer1.W"].verdict(1e-5) == "failed"
    assert checks["output.W"].verdict(TOL) == "ok"


def test_gradient_check_restores_the_network():
    net = _net([("relu", {})], batch_norm=True, dropout_hidden=0.5)
    X, y = _data("softmax", 3)
    before = net.get_state()
    rng_state = net.dropout_rng.bit_generator.state
    gradient_check(net, X, y)
    after = net.get_state()
    assert all(np.array_equal(before[k], after[k]) for k in before)
    assert net.dropout_rng.bit_generator.state == rng_state


def test_softmax_fast_path_matches_the_per_row_path():
    from nnexp.engine.losses import SoftmaxCrossEntropy

    rng = np.random.default_rng(0)
    y = rng.integers(0, 4, 6)
    for shift in (0.0, 50.0, 500.0):  # 500: rows underflow against the batch max -> fallback
        z = rng.normal(size=(6, 4)) * 3
        z[0] += shift
        head = SoftmaxCrossEntropy()
        fast_loss, fast_delta = head.loss_and_delta(z.copy(), y)
        ref = z.copy()
        ref_loss = head.forward_loss(ref, y)
        ref_delta = head.delta(ref, y)
        assert fast_loss == pytest.approx(ref_loss, rel=1e-12)
        np.testing.assert_allclose(fast_delta, ref_delta, rtol=1e-10, atol=1e-15)


@pytest.mark.parametrize("spec", [
    # a batch-normalised layer's beta feeding another batch norm: its gradient is truly zero
    {"data": {"dataset": "iris"}, "model": {"hidden": [5, 4], "batch_norm": True, "activation": "identity"}},
    {"data": {"dataset": "iris"}, "model": {"hidden": [5, 4], "batch_norm": True, "activation": "hard_logistic"}},
    # rows whose inputs are all 0 (input dropout, dead ReLUs) put zero biases on the ReLU kink
    {"data": {"dataset": "iris"}, "model": {"hidden": [5, 4], "dropout": {"input": 0.2, "hidden": 0.5}}},
    {"seed": 1, "data": {"dataset": "iris"}, "model": {"hidden": [5, 4, 3], "dropout": {"input": 0.2, "hidden": 0.5}}},
    {"data": {"dataset": "friedman1"}, "model": {"hidden": [5, 4]}},
    # small weights: tiny gradients whose differences are mostly rounding noise
    {"data": {"dataset": "iris"}, "model": {"hidden": [5, 4], "activation": "prelu", "init": "gaussian"}},
])
def test_correct_gradients_are_not_failed_by_rounding_or_kinks(spec):
    """Each of these read FAILED (errors 1.0, 0.17-0.38, 8e-5) on a backprop that is right."""
    import nnexp

    report = nnexp.gradcheck(spec, tolerance=1e-7)
    verdicts = report.verdicts
    assert "failed" not in verdicts.values(), report.errors
    assert all(report.errors[name] < 1e-7 for name, v in verdicts.items() if v == "ok")
    # a beta feeding another batch norm through a linear stretch has a gradient of exactly 0: agreeing within noise is all it can do
    zero = {name for name, v in verdicts.items() if v == "noise"}
    assert zero == ({"layer1.beta"} if spec["model"].get("batch_norm") else set()), verdicts


def test_a_wrong_zero_gradient_is_still_detected():
    """A zero gradient is within noise; one that should be 0 but is not still fails."""
    net = _net([("identity", {}), ("identity", {})], batch_norm=True)
    X, y = _data("softmax", 3)
    assert gradient_check(net, X, y)["layer1.beta"].verdict(TOL) == "noise"
    original = net.loss_and_grad

    def wrong(*args, **kwargs):
        out = original(*args, **kwargs)
        net.grads[net.param_names.index("layer1.beta")] += 1e-3  # its true gradient is 0
        return out

    net.loss_and_grad = wrong
    assert gradient_check(net, X, y)["layer1.beta"].verdict(TOL) == "failed"


def test_a_sample_of_a_large_arrays_entries_is_checked_and_still_catches_a_wrong_gradient():
    """A network of millions of weights is checked on `entries` of them per array, drawn at random."""
    net = _net([("tanh", {})], hidden=[40])
    X, y = _data("softmax", 3)
    calls = []
    real = net.objective
    net.objective = lambda *a: calls.append(1) or real(*a)
    sampled = gradient_check(net, X, y, entries=30)
    assert len(calls) == 1 + 2 * (30 + 30 + 30 + 3)  # layer1.W 5x40, layer1.b 40, output.W 40x3: 30 each; output.b 3
    _assert_ok(sampled)
    whole = gradient_check(net, X, y)
    assert sampled.keys() == whole.keys() and sampled["output.b"] == whole["output.b"]  # all 3 entries either way
    backward = net.loss_and_grad

    def wrong(*args):
        out = backward(*args)
        net.grads[0][...] *= 1.01  # a 1% error in every entry of layer1.W's gradient
        return out

    net.loss_and_grad = wrong
    assert gradient_check(net, X, y, entries=30)["layer1.W"].verdict(1e-3) == "failed"


@pytest.mark.parametrize("spec", [
    # the initialisation experiment's relu + gaussian 0.01: a step of 1e-3 crosses kinks, and was kept
    {"data": {"dataset": "digits"}, "model": {"hidden": [64] * 6, "init": {"name": "gaussian", "std": 0.01}}},
    # smooth, but curved at 1e-5 already: the step where it agreed (1e-6) was passed over
    {"data": {"dataset": "breast_cancer"},
     "model": {"hidden": [16, 16], "activation": "tanh", "batch_norm": True, "init": {"name": "gaussian", "std": 1e-4}}},
    # weights of 1e-4 under batch norm: even a step of 1e-6 crosses a kink; a tenth of it does not
    {"seed": 1, "data": {"dataset": "diabetes"},
     "model": {"hidden": [16, 16], "batch_norm": True, "init": {"name": "gaussian", "std": 1e-4}}},
    # ... nor does a tenth always: at 64 rows some unit sits on its kink at any step (left out, and counted)
    {"data": {"dataset": "digits"}, "gradcheck_rows": 64,
     "model": {"hidden": [32, 16], "batch_norm": True, "init": {"name": "gaussian", "std": 1e-4}}},
    {"data": {"dataset": "digits"}, "gradcheck_rows": 64, "model": {
        "hidden": [32, 16], "activation": {"name": "maxout", "pieces": 3}, "init": {"name": "gaussian", "std": 1e-4},
        "batch_norm": True, "dropout": 0.2}},
    {"seed": 1, "data": {"dataset": "breast_cancer"}, "gradcheck_rows": 32,
     "model": {"hidden": [32, 16], "activation": "prelu", "init": {"name": "gaussian", "std": 1e-4}, "dropout": 0.2}},
    # L1's kink: a weight within a step of 0 (its difference straddles -l1 and +l1)
    {"seed": 1, "data": {"dataset": "diabetes"}, "train": {"l1": 0.01},
     "model": {"hidden": [32, 16], "activation": "tanh", "init": {"name": "gaussian", "std": 1e-4}}},
])
def test_larger_steps_never_fail_a_right_gradient(spec):
    """Steps past the smallest are for gradients that rounding blurs; their truncation error
    (a curve, a kink crossed) must not read as a wrong backprop."""
    import nnexp

    spec = dict(spec)
    rows = spec.pop("gradcheck_rows", 8)
    report = nnexp.gradcheck(spec, rows=rows, entries=200)
    assert report.passed, {n: (v, report.errors[n], report.steps[n]) for n, v in report.verdicts.items() if v != "ok"}
    if rows == 64:
        assert any(report.kinked.values())  # the entries left out are said


@pytest.mark.parametrize("activation, hidden", [("hard_logistic", [8, 8, 8]), ("logistic", [8, 8, 8, 8])])
def test_a_wrong_small_gradient_of_a_saturated_network_fails(activation, hidden, monkeypatch):
    """First-layer gradients of 1e-7..1e-9 (vanishing through saturated units): a floor on the
    denominator scored a 50% error in them 3e-6 and 1e-8, a pass. Larger steps resolve them."""
    import nnexp
    from nnexp.engine import layers

    spec = {"data": {"dataset": "diabetes"},
            "model": {"hidden": hidden, "activation": activation, "init": {"name": "gaussian", "std": 0.01}}}
    right = nnexp.gradcheck(spec)
    assert right.passed and right.steps["layer1.W"] > 1e-6  # rounding blurs the smallest step
    original = layers.Dense.backward

    def wrong(self, grad):
        out = original(self, grad)
        if self.name == "layer1":
            self.dW *= 1.5
        return out

    monkeypatch.setattr(layers.Dense, "backward", wrong)
    report = nnexp.gradcheck(spec)
    assert report.verdicts["layer1.W"] == "failed" and report.errors["layer1.W"] == pytest.approx(0.2, rel=0.01)
    assert not report.passed and nnexp.gradcheck(spec, tolerance=0.3).passed
