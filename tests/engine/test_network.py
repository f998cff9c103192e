"""Behaviour of the network: learning, symmetry, batch norm, dropout, reproducibility, dtypes, memory."""

import math
import tracemalloc

import numpy as np
import pytest
from numpy.testing import assert_allclose

from nnexp.engine import network as network_module
from nnexp.engine.activations import make_activation
from nnexp.engine.layers import Dropout
from nnexp.engine.network import EpochStats, Network
from nnexp.engine.optimizers import make_optimizer


def make(n_in=4, hidden=(8,), n_out=3, act="tanh", init=("gaussian", {"std": 0.3}), output="softmax",
         seed=0, **kw):
    return Network(n_in, list(hidden), n_out, [(act, {})] * len(hidden), init, output,
                   rng=np.random.default_rng(seed), **kw)


def blobs(n=200, n_in=4, k=3, seed=0, dtype=np.float32):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n)
    centers = rng.normal(scale=3.0, size=(k, n_in))
    X = (centers[y] + rng.normal(size=(n, n_in))).astype(dtype)
    return X, y


def fit(net, X, y, epochs, name="adam", lr=0.01, batch_size=16, seed=0, **kw):
    opt = make_optimizer(name, net.params)
    rng = np.random.default_rng(seed)
    return [net.train_epoch(X, y, batch_size=batch_size, optimizer=opt, lr=lr, rng=rng, **kw)
            for _ in range(epochs)]


def test_learns_xor():
    X = np.array([[0, 0], [0, 1], [1, 0], [1, 1]] * 8, dtype=np.float64)
    y = np.array([0, 1, 1, 0] * 8)
    net = make(n_in=2, hidden=[4], n_out=2, act="tanh", init=("xavier", {}), dtype=np.float64)
    fit(net, X, y, 300, lr=0.05, batch_size=8)
    assert (net.predict(X).argmax(axis=1) == y).mean() == 1.0
    assert net.evaluate(X, y) < 0.05


def test_zero_init_keeps_hidden_units_identical():
    X, y = blobs()
    net = make(hidden=[6], act="logistic", init=("zeros", {}), dtype=np.float64)
    fit(net, X, y, 5, name="sgd", lr=0.5)
    W1 = net.params[net.param_names.index("layer1.W")]
    b1 = net.params[net.param_names.index("layer1.b")]
    assert np.abs(W1).max() > 1e-6  # it did learn something ...
    assert_allclose(W1, W1[:, :1].repeat(6, axis=1), rtol=0, atol=1e-12)  # ... but units are clones
    assert_allclose(b1, b1[0], rtol=0, atol=1e-12)


def test_batch_norm_inference_uses_running_statistics():
    X, y = blobs(n=256)
    X = X * 3.0 + 5.0
    net = make(hidden=[5], act="relu", batch_norm=True, dtype=np.float64, init=("he", {}))
    fit(net, X, y, 3, batch_size=32)
    s = net.get_state()
    assert "layer1.b" not in s  # BN's beta replaces the dense bias
    rm, rv = s["layer1.running_mean"], s["layer1.running_var"]
    assert not np.allclose(rm, 0.0) and not np.allclose(rv, 1.0)

    def head(a):
        z = a @ s["output.W"] + s["output.b"]
        e = np.exp(z - z.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)

    z = X @ s["layer1.W"]
    by_running = head(np.maximum((z - rm) / np.sqrt(rv + 1e-5) * s["layer1.gamma"] + s["layer1.beta"], 0))
    by_batch = head(np.maximum((z - z.mean(0)) / np.sqrt(z.var(0) + 1e-5) * s["layer1.gamma"]
                               + s["layer1.beta"], 0))
    inference = net.forward(X)
    assert_allclose(inference, by_running, rtol=1e-10, atol=1e-12)
    assert np.abs(inference - by_batch).max() > 1e-3
    assert_allclose(net.forward(X, training=True), by_batch, rtol=1e-10, atol=1e-12)


def test_batch_norm_running_average_update():
    net = make(hidden=[3], act="identity", batch_norm=True, dtype=np.float64)
    X, y = blobs(n=50)
    bn = net.batch_norms[0]
    z = X.astype(np.float64) @ net.params[0]
    net.loss_and_grad(X, y)
    assert_allclose(bn.running_mean, 0.1 * z.mean(0))
    assert_allclose(bn.running_var, 0.9 + 0.1 * z.var(0, ddof=1))


def test_dropout_is_off_at_inference_and_scales_kept_units():
    X, _ = blobs()
    net = make(hidden=[50], act="relu", dropout_input=0.2, dropout_hidden=0.5, dtype=np.float64)
    plain = make(hidden=[50], act="relu", dtype=np.float64)
    plain.set_state(net.get_state())
    assert_allclose(net.predict(X), plain.predict(X))
    assert_allclose(net.forward(X), net.forward(X))
    assert not np.allclose(net.forward(X, training=True), net.forward(X, training=True))

    layer = Dropout("d", 0.25, 1000, np.random.default_rng(0), dtype=np.float64)
    x = np.ones((20, 1000))
    out = layer.forward(x, training=True)
    assert set(np.unique(out)) == {0.0, 1.0 / 0.75}
    assert (out > 0).mean() == pytest.approx(0.75, abs=0.01)
    assert_allclose(layer.backward(np.ones_like(x)), out)  # same mask and scale on the way back
    assert layer.forward(x, training=False) is x


def test_same_seed_gives_bit_identical_weights():
    X, y = blobs()

    def trained(seed):
        net = make(hidden=[10, 7], act="relu", dropout_hidden=0.3, dropout_input=0.1,
                   batch_norm=True, seed=seed)
        fit(net, X, y, 3, seed=seed, batch_size=24)
        return net.get_state()

    a, b, c = trained(1), trained(1), trained(2)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert not all(np.array_equal(a[k], c[k]) for k in a)


@pytest.mark.parametrize("output,n_out", [("softmax", 3), ("logistic", 1), ("linear", 1), ("linear", 2)])
def test_float32_stays_float32(output, n_out):
    X, y = blobs()
    if output == "logistic":
        y = (y > 0).astype(np.int64)
    elif output == "linear":
        y = X[:, :n_out].sum(axis=1) if n_out == 1 else X[:, :n_out] * 2.0
    net = make(hidden=[6, 5], act="gelu", output=output, n_out=n_out, batch_norm=True,
               dropout_hidden=0.2)
    opt = make_optimizer("adam", net.params)
    stats = net.train_epoch(X, y, batch_size=32, optimizer=opt, lr=0.01, rng=np.random.default_rng(0))
    assert stats.finite
    assert all(p.dtype == np.float32 for p in net.params + net.grads)
    assert all(s.dtype == np.float32 for s in opt.m + opt.v)
    assert all(v.dtype == np.float32 for v in net.get_state().values())
    out = net.predict(X)
    assert out.dtype == np.float32 and net.forward(X, training=True).dtype == np.float32
    assert out.shape == ((len(X), n_out) if n_out > 1 or output == "softmax" else (len(X),))
    assert isinstance(net.evaluate(X, y), float)


def test_float64_end_to_end():
    X, y = blobs(dtype=np.float64)
    net = make(dtype=np.float64)
    fit(net, X, y, 1)
    assert net.predict(X).dtype == np.float64
    assert all(p.dtype == np.float64 for p in net.params)


def test_output_shapes_and_conventions():
    X, _ = blobs(n=30)
    soft = make()
    p = soft.predict(X)
    assert p.shape == (30, 3)
    assert_allclose(p.sum(axis=1), 1.0, rtol=1e-5)
    logi = make(output="logistic", n_out=1)
    q = logi.predict(X)
    assert q.shape == (30,) and np.all((q >= 0) & (q <= 1))
    lin = make(output="linear", n_out=1)
    assert lin.predict(X).shape == (30,)


def test_evaluate_matches_hand_computation_in_chunks(monkeypatch):
    X, y = blobs(n=300, dtype=np.float64)
    net = make(dtype=np.float64)
    full = net.evaluate(X, y)
    monkeypatch.setattr(network_module, "INFERENCE_CHUNK", 7)
    p = net.predict(X)
    assert full == pytest.approx(-np.log(p[np.arange(300), y]).mean(), rel=1e-12)
    assert net.evaluate(X, y) == pytest.approx(full, rel=1e-12)


@pytest.mark.parametrize("output, n_out", [("softmax", 3), ("logistic", 1)])
def test_predict_and_loss_charges_confident_mistakes_in_full_where_probabilities_round_to_zero(output, n_out):
    """float32 probabilities of 0 floor -log p at 87.3; the logits give the loss training minimises."""
    X, y = blobs(n=60, dtype=np.float32)
    y = y % 2 if n_out == 1 else y
    net = make(output=output, n_out=n_out, init=("gaussian", {"std": 60.0}), act="relu", seed=3)
    out, loss = net.predict_and_loss(X, y)
    np.testing.assert_array_equal(out, net.predict(X))
    z = np.asarray(X, np.float64)  # the logits again, in float64
    for layer in net.layers:
        z = layer.forward(z.astype(np.float32), False).astype(np.float64)
    if output == "softmax":
        reference = np.mean(np.log(np.exp(z - z.max(1, keepdims=True)).sum(1)) + z.max(1) - z[np.arange(60), y])
    else:
        reference = np.mean(np.logaddexp(0.0, z[:, 0]) - y * z[:, 0])
    assert reference > 200 and loss == pytest.approx(reference, rel=1e-5)
    assert net.evaluate(X, y) == loss


@pytest.mark.parametrize("output, n_out", [("softmax", 3), ("logistic", 1)])
def test_a_confident_networks_loss_is_not_rounded_to_float32s_resolution(output, n_out):
    """Logits 20|x| apart: each row's loss is ~2e-9, below what float32 resolves next to 1; the
    mean loss is that, not 0 or a multiple of 1.2e-7 / n."""
    X = np.array([[1.0], [-1.5], [2.0], [-1.0], [1.2]], dtype=np.float32)
    net = make(n_in=1, hidden=[1], n_out=n_out, act="identity", output=output)
    state = net.get_state()
    state["layer1.W"], state["layer1.b"] = np.ones_like(state["layer1.W"]), np.zeros_like(state["layer1.b"])
    state["output.W"] = np.array([[20.0, -20.0, 0.0]] if n_out == 3 else [[20.0]], dtype=np.float32)
    state["output.b"] = np.zeros_like(state["output.b"])
    net.set_state(state)
    x = X[:, 0].astype(np.float64)
    if output == "softmax":
        y = (x < 0).astype(int)
        z = np.column_stack([20 * x, -20 * x, 0 * x])
        reference = np.mean(np.log(np.exp(z - z.max(1, keepdims=True)).sum(1)) + z.max(1) - z[np.arange(5), y])
    else:
        y = (x > 0).astype(int)
        reference = np.mean(np.logaddexp(0.0, 20 * x) - y * 20 * x)
    _, loss = net.predict_and_loss(X, y)
    assert 0 < reference < 1e-8 and loss == pytest.approx(reference, rel=1e-9)


def test_epoch_loss_is_the_batch_weighted_mean_objective():
    X, y = blobs(n=100, dtype=np.float64)
    net = make(dtype=np.float64)
    opt = make_optimizer("sgd", net.params)
    stats = net.train_epoch(X, y, batch_size=32, optimizer=opt, lr=0.0, rng=np.random.default_rng(0),
                            l2=0.1)
    assert isinstance(stats, EpochStats)
    assert stats.loss == pytest.approx(net.objective(X, y, l2=0.1), rel=1e-12)
    assert len(stats.grad_norms) == 2 and all(g > 0 for g in stats.grad_norms)


def test_divergence_is_reported_and_stops_the_epoch():
    X, y = blobs(n=200)
    net = make(output="linear", n_out=1, act="relu")
    with np.errstate(all="ignore"):
        stats = fit(net, X, y.astype(np.float32) * 1e3, 1, name="sgd", lr=1e6)[0]
    assert stats.finite is False
    assert not math.isfinite(stats.loss)


def test_penalty_only_on_weight_matrices():
    net = make(hidden=[4, 4], act="prelu", batch_norm=True)
    reg = dict(zip(net.param_names, net.regularised))
    assert reg == {"layer1.W": True, "layer1.gamma": False, "layer1.beta": False, "layer1.slope": False,
                   "layer2.W": True, "layer2.gamma": False, "layer2.beta": False, "layer2.slope": False,
                   "output.W": True, "output.b": False}
    assert [p.shape for p in net.params] == [g.shape for g in net.grads]


def test_get_state_set_state_round_trip():
    X, y = blobs()
    net = make(hidden=[5], batch_norm=True)
    saved = net.get_state()
    params_before = [p for p in net.params]
    fit(net, X, y, 2)
    assert not np.array_equal(saved["layer1.W"], net.params[0])
    net.set_state(saved)
    assert all(a is b for a, b in zip(params_before, net.params))
    assert all(np.array_equal(saved[k], v) for k, v in net.get_state().items())
    with pytest.raises(ValueError, match="missing"):
        net.set_state({"layer1.W": saved["layer1.W"]})


def test_unit_stats():
    X, _ = blobs(n=100)
    net = Network(4, [6, 5, 3], 3, [("relu", {}), ("logistic", {}), ("gelu", {})],
                  ("gaussian", {"std": 0.01}), "softmax", rng=np.random.default_rng(0))
    net.params[net.param_names.index("layer1.b")][:3] = -1e3  # three units can never fire
    net.params[net.param_names.index("layer2.b")][...] = 50.0  # logistic units pinned at 1
    stats = net.unit_stats(X)
    assert stats[0] == {"saturated": None, "dead": 0.5}
    assert stats[1]["dead"] is None and stats[1]["saturated"] > 0.9
    assert stats[2] == {"saturated": None, "dead": None}


def test_maxout_shapes_and_learning():
    X, y = blobs()
    net = make(hidden=[6], act="maxout", init=("he", {}))
    assert net.params[0].shape == (4, 12)
    losses = [s.loss for s in fit(net, X, y, 10)]
    assert losses[-1] < losses[0]


def test_train_epoch_does_not_grow_memory_with_epochs():
    X, y = blobs(n=5000, n_in=40)
    net = make(n_in=40, hidden=[64, 32], act="relu", batch_norm=True, dropout_hidden=0.2)
    opt = make_optimizer("adam", net.params)
    rng = np.random.default_rng(0)

    def epochs(k):
        tracemalloc.reset_peak()
        start = tracemalloc.get_traced_memory()[0]
        for _ in range(k):
            net.train_epoch(X, y, batch_size=64, optimizer=opt, lr=0.01, rng=rng)
        current, peak = tracemalloc.get_traced_memory()
        return current - start, peak - start

    net.train_epoch(X, y, batch_size=64, optimizer=opt, lr=0.01, rng=rng)  # epoch 1 allocates buffers
    tracemalloc.start()
    try:
        _, peak2 = epochs(2)
        grow8, peak8 = epochs(8)
    finally:
        tracemalloc.stop()
    assert peak8 <= peak2 * 1.2 + 16_384  # no growth with the number of epochs
    assert grow8 < 16_384  # nothing retained between epochs
    assert peak8 < X.nbytes / 4  # the data set is never copied (only its index is shuffled)


def test_bad_arguments():
    with pytest.raises(ValueError, match="one activation per hidden layer"):
        Network(3, [4, 4], 2, [("relu", {})], ("he", {}), "softmax", rng=np.random.default_rng(0))
    with pytest.raises(ValueError, match="unknown output"):
        make(output="softmaxx")
    with pytest.raises(ValueError, match="shape"):
        make().predict(np.zeros((3, 5)))
    with pytest.raises(ValueError, match="dropout"):
        make(dropout_hidden=1.0)


def test_activation_registry_objects_are_fresh_per_layer():
    a, b = make_activation("prelu"), make_activation("prelu")
    assert a is not b


@pytest.mark.parametrize("batch_size", [1, 7, 10_000])
def test_any_batch_size_including_single_rows_and_full_batch(batch_size):
    X, y = blobs(n=60, dtype=np.float64)
    net = make(hidden=[5], act="relu", batch_norm=True, dtype=np.float64)
    stats = fit(net, X, y, 2, name="sgd", lr=0.05, batch_size=batch_size)
    assert all(s.finite for s in stats)
    assert stats[-1].loss < stats[0].loss or batch_size == 1


def test_logistic_and_linear_outputs_learn():
    X, y = blobs(n=300, dtype=np.float64)
    yb = (y == 1).astype(np.int64)
    clf = make(output="logistic", n_out=1, dtype=np.float64)
    fit(clf, X, yb, 30)
    assert ((clf.predict(X) > 0.5) == yb).mean() > 0.95
    target = X @ np.array([1.0, -2.0, 0.5, 0.0])
    reg = make(output="linear", n_out=1, act="tanh", dtype=np.float64)
    first = reg.evaluate(X, target)
    fit(reg, X, target, 30)
    assert reg.evaluate(X, target) < 0.05 * first


def test_batch_norm_leaves_out_a_last_batch_of_one_row():
    """Its batch variance is 0: it would train beta alone and pull the running variance to 0."""
    X, y = blobs(n=33, dtype=np.float64)
    net = make(hidden=[3], act="identity", batch_norm=True, dtype=np.float64)
    opt = make_optimizer("sgd", net.params)
    updates = []
    original = net._loss_and_grad
    net._loss_and_grad = lambda xv, yv, *a: updates.append(len(xv)) or original(xv, yv, *a)
    stats = net.train_epoch(X, y, batch_size=16, optimizer=opt, lr=0.0, rng=np.random.default_rng(0))
    assert updates == [16, 16] and np.isfinite(stats.loss)
    assert (net.batch_norms[0].running_var > 0.5).all()
    plain = make(hidden=[3], act="identity", dtype=np.float64)  # without batch norm every row counts
    seen = []
    original_plain = plain._loss_and_grad
    plain._loss_and_grad = lambda xv, yv, *a: seen.append(len(xv)) or original_plain(xv, yv, *a)
    plain.train_epoch(X, y, batch_size=16, optimizer=make_optimizer("sgd", plain.params), lr=0.0,
                      rng=np.random.default_rng(0))
    assert seen == [16, 16, 1]


def test_class_weights_change_training_not_evaluation():
    """Weights of 2 for every class double the objective and every gradient of a twin network;
    the evaluation loss (val_loss, test_loss) is the plain cross-entropy either way."""
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(30, 4)), rng.integers(0, 3, 30)

    def twin(**kw):
        return Network(4, [6], 3, [("tanh", {})], ("xavier", {}), "softmax", rng=np.random.default_rng(5),
                       dtype=np.float64, **kw)

    plain, doubled = twin(), twin(class_weights=[2.0, 2.0, 2.0])
    assert doubled.loss_and_grad(X, y) == pytest.approx(2 * plain.loss_and_grad(X, y), rel=1e-12)
    for a, b in zip(plain.grads, doubled.grads):
        assert_allclose(b, 2 * a, rtol=1e-12)
    assert doubled.evaluate(X, y) == plain.evaluate(X, y)
    with pytest.raises(ValueError, match="one class weight per class"):
        twin(class_weights=[1.0, 2.0])
