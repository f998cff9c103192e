"""Optimizer steps and schedules against hand-computed values."""

import math

import numpy as np
import pytest
from numpy.testing import assert_allclose

from nnexp.engine.optimizers import OPTIMIZERS, SCHEDULES, make_optimizer, make_schedule

G1 = np.array([0.5, -2.0, 0.0])
G2 = np.array([1.0, 1.0, -4.0])
P0 = np.array([1.0, 1.0, 1.0])


def run(name, grads, lr, **hyper):
    p = P0.copy()
    opt = make_optimizer(name, [p], **hyper)
    for g in grads:
        opt.step([g.copy()], lr)
    return p


def test_sgd():
    assert_allclose(run("sgd", [G1, G2], 0.1), P0 - 0.1 * G1 - 0.1 * G2)


def test_momentum_two_steps():
    v1 = -0.1 * G1
    v2 = 0.9 * v1 - 0.1 * G2
    assert_allclose(run("momentum", [G1], 0.1), P0 + v1)
    assert_allclose(run("momentum", [G1, G2], 0.1), P0 + v1 + v2)


@pytest.mark.parametrize("name", ["momentum", "nesterov"])
def test_momentum_zero_is_sgd(name):
    assert_allclose(run(name, [G1, G2], 0.1, momentum=0.0), run("sgd", [G1, G2], 0.1))


def test_nesterov_two_steps():
    mu, lr = 0.9, 0.1
    v1 = -lr * G1
    p1 = P0 + mu * v1 - lr * G1
    v2 = mu * v1 - lr * G2
    p2 = p1 + mu * v2 - lr * G2
    assert_allclose(run("nesterov", [G1], lr), p1)
    assert_allclose(run("nesterov", [G1, G2], lr), p2)


def test_adagrad():
    lr, eps = 0.1, 1e-8
    s1 = G1**2
    p1 = P0 - lr * G1 / (np.sqrt(s1) + eps)
    s2 = s1 + G2**2
    p2 = p1 - lr * G2 / (np.sqrt(s2) + eps)
    assert_allclose(run("adagrad", [G1, G2], lr), p2)


def test_rmsprop():
    lr, rho, eps = 0.01, 0.9, 1e-8
    e1 = (1 - rho) * G1**2
    p1 = P0 - lr * G1 / (np.sqrt(e1) + eps)
    e2 = rho * e1 + (1 - rho) * G2**2
    p2 = p1 - lr * G2 / (np.sqrt(e2) + eps)
    assert_allclose(run("rmsprop", [G1, G2], lr), p2)


def test_adadelta():
    rho, eps = 0.95, 1e-6
    e = d = np.zeros(3)
    p = P0.copy()
    for g in (G1, G2):
        e = rho * e + (1 - rho) * g**2
        dx = -np.sqrt(d + eps) / np.sqrt(e + eps) * g
        d = rho * d + (1 - rho) * dx**2
        p = p + dx
    assert_allclose(run("adadelta", [G1, G2], 1.0), p)


def test_adam_first_step_moves_each_coordinate_by_lr():
    p = run("adam", [G1], 0.01)
    assert_allclose(p, P0 - 0.01 * np.sign(G1), atol=1e-9)


def test_adam_two_steps():
    lr, b1, b2, eps = 0.01, 0.9, 0.999, 1e-8
    m = v = np.zeros(3)
    p = P0.copy()
    for t, g in enumerate((G1, G2), start=1):
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g**2
        p = p - lr * (m / (1 - b1**t)) / (np.sqrt(v / (1 - b2**t)) + eps)
    assert_allclose(run("adam", [G1, G2], lr), p, rtol=1e-12)


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_fused_buffer_and_separate_arrays_agree(name):
    """Network params are views of one buffer; the fused fast path must equal the per-array one."""
    rng = np.random.default_rng(0)
    shapes = [(3, 4), (4,), (4, 2)]
    flat = rng.normal(size=sum(math.prod(s) for s in shapes))
    gflat = np.zeros_like(flat)
    views, gviews, off = [], [], 0
    for s in shapes:
        k = math.prod(s)
        views.append(flat[off:off + k].reshape(s))
        gviews.append(gflat[off:off + k].reshape(s))
        off += k
    separate = [v.copy() for v in views]
    fused_opt = make_optimizer(name, views)
    sep_opt = make_optimizer(name, separate)
    assert fused_opt._fused and not sep_opt._fused
    for _ in range(3):
        gflat[:] = rng.normal(size=gflat.size)
        fused_opt.step(gviews, 0.05)
        sep_opt.step([g.copy() for g in gviews], 0.05)
    for v, s in zip(views, separate):
        assert_allclose(v, s, rtol=1e-12)


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_float32_state_stays_float32(name):
    p = np.ones(5, dtype=np.float32)
    opt = make_optimizer(name, [p])
    opt.step([np.full(5, 0.5, dtype=np.float32)], 0.1)
    assert p.dtype == np.float32 and np.all(p != 1.0)


def test_unknown_optimizer_and_hyper():
    with pytest.raises(ValueError, match="unknown optimizer"):
        make_optimizer("lbfgs", [P0.copy()])
    with pytest.raises(ValueError, match="bad hyper"):
        make_optimizer("sgd", [P0.copy()], momentum=0.9)


def test_schedules():
    const = make_schedule("constant", 0.1, 30)
    step = make_schedule("step", 0.1, 30)
    step3 = make_schedule("step", 0.1, 30, every=3, factor=0.1)
    expo = make_schedule("exponential", 0.1, 30)
    cos = make_schedule("cosine", 0.1, 30)
    cos_min = make_schedule("cosine", 0.1, 10, min_lr=0.01)
    assert [const(e) for e in (0, 29)] == [0.1, 0.1]
    assert [step(e) for e in (0, 9, 10, 19, 20)] == pytest.approx([0.1, 0.1, 0.05, 0.05, 0.025])
    assert [step3(e) for e in (0, 2, 3, 6)] == pytest.approx([0.1, 0.1, 0.01, 0.001])
    assert expo(0) == 0.1 and expo(2) == pytest.approx(0.1 * 0.95**2)
    assert cos(0) == pytest.approx(0.1) and cos(15) == pytest.approx(0.05) and cos(30) == pytest.approx(0.0)
    assert cos_min(5) == pytest.approx(0.055) and cos_min(10) == pytest.approx(0.01)
    assert set(SCHEDULES) == {"constant", "step", "exponential", "cosine"}
    with pytest.raises(ValueError):
        make_schedule("linear", 0.1, 10)
