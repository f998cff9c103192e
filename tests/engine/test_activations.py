"""Known values of every activation and its derivative."""

import math

import numpy as np
import pytest
from numpy.testing import assert_allclose

from nnexp.engine.activations import ACTIVATIONS, make_activation


def sig(x):
    return 1.0 / (1.0 + math.exp(-x))


# name, params, x, f(x), f'(x)
CASES = [
    ("logistic", {}, 0.0, 0.5, 0.25),
    ("logistic", {}, 2.0, sig(2.0), sig(2.0) * (1 - sig(2.0))),
    ("tanh", {}, 0.0, 0.0, 1.0),
    ("tanh", {}, 1.0, math.tanh(1.0), 1 - math.tanh(1.0) ** 2),
    ("hard_logistic", {}, 2.0, 1.0, 0.0),
    ("hard_logistic", {}, 0.0, 0.5, 0.25),
    ("hard_logistic", {}, -3.0, 0.0, 0.0),
    ("hard_tanh", {}, 0.5, 0.5, 1.0),
    ("hard_tanh", {}, -4.0, -1.0, 0.0),
    ("relu", {}, -1.0, 0.0, 0.0),
    ("relu", {}, 3.0, 3.0, 1.0),
    ("leaky_relu", {}, -2.0, -0.02, 0.01),
    ("leaky_relu", {"slope": 0.2}, -2.0, -0.4, 0.2),
    ("leaky_relu", {}, 2.0, 2.0, 1.0),
    ("prelu", {}, -2.0, -0.5, 0.25),
    ("prelu", {"init": 0.1}, 3.0, 3.0, 1.0),
    ("softplus", {}, 0.0, math.log(2.0), 0.5),
    ("softplus", {}, 1.5, math.log1p(math.exp(1.5)), sig(1.5)),
    ("elu", {}, -1.0, math.exp(-1.0) - 1, math.exp(-1.0)),
    ("elu", {"alpha": 2.0}, -1.0, 2 * (math.exp(-1.0) - 1), 2 * math.exp(-1.0)),
    ("elu", {}, 2.0, 2.0, 1.0),
    ("gelu", {}, 0.0, 0.0, 0.5),
    ("swish", {}, 0.0, 0.0, 0.5),
    ("swish", {}, 2.0, 2 * sig(2.0), sig(2.0) + 2 * sig(2.0) * (1 - sig(2.0))),
    ("identity", {}, -7.0, -7.0, 1.0),
]


@pytest.mark.parametrize("name,params,x,fx,dfx", CASES)
def test_known_values(name, params, x, fx, dfx):
    act = make_activation(name, params)
    assert act(np.array([x]))[0, 0] == pytest.approx(fx, rel=1e-12, abs=1e-15)
    assert act.derivative(np.array([x]))[0, 0] == pytest.approx(dfx, rel=1e-12, abs=1e-15)


def test_every_activation_has_known_values():
    assert {c[0] for c in CASES} | {"maxout"} == set(ACTIVATIONS)


def test_gelu_is_the_tanh_approximation():
    x = np.linspace(-4, 4, 9)
    c = math.sqrt(2 / math.pi)
    expected = 0.5 * x * (1 + np.tanh(c * (x + 0.044715 * x**3)))
    assert_allclose(make_activation("gelu")(x)[0], expected, rtol=1e-12, atol=1e-15)


def test_softplus_derivative_is_logistic_and_stable():
    x = np.array([-800.0, -30.0, -1.0, 0.0, 1.0, 30.0, 800.0])
    sp, lg = make_activation("softplus"), make_activation("logistic")
    assert np.all(np.isfinite(sp(x)))
    assert_allclose(sp.derivative(x), lg(x), rtol=1e-9, atol=1e-15)  # tanh form: absolute accuracy
    assert sp(np.array([800.0]))[0, 0] == 800.0


def test_logistic_does_not_overflow():
    with np.errstate(all="raise"):
        out = make_activation("logistic")(np.array([-1000.0, 1000.0]))
    assert_allclose(out[0], [0.0, 1.0])


@pytest.mark.parametrize("name", sorted(set(ACTIVATIONS) - {"maxout"}))
def test_derivative_matches_central_difference(name):
    act = make_activation(name)
    x = np.array([-2.7, -0.9, -0.3, 0.4, 1.1, 2.6])  # away from the kinks
    h = 1e-6
    numeric = (act(x + h) - act(x - h)) / (2 * h)
    assert_allclose(act.derivative(x), numeric, rtol=1e-6, atol=1e-9)


def test_maxout_takes_the_max_of_each_group_and_routes_the_gradient():
    act = make_activation("maxout", {"pieces": 3})
    z = np.array([[1.0, 5.0, 2.0, -1.0, -3.0, -2.0]])  # unit 0: pieces 1,5,2; unit 1: -1,-3,-2
    a = act(z)
    assert_allclose(a, [[5.0, -1.0]])
    grad = np.array([[10.0, 20.0]])
    dz = act.backward(z, a, grad, np.empty_like(z))
    assert_allclose(dz, [[0.0, 10.0, 0.0, 20.0, 0.0, 0.0]])


def test_forward_in_place_is_safe():
    x = np.random.default_rng(0).normal(size=(4, 6))
    for name in ACTIVATIONS:
        act = make_activation(name)
        if not act.in_place:
            continue
        expected = act(x)
        z = x.copy()
        act.forward(z, z)
        assert_allclose(z, expected, err_msg=name)


@pytest.mark.parametrize("name,params", [("nope", {}), ("relu", {"slope": 1}),
                                         ("leaky_relu", {"slope": -1}), ("maxout", {"pieces": 0})])
def test_bad_names_and_parameters(name, params):
    with pytest.raises(ValueError):
        make_activation(name, params)
