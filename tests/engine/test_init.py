"""Initialiser statistics: the sample variance of a large layer matches the formula."""

import math

import numpy as np
import pytest

from nnexp.engine.init import INITIALIZERS, init_weights
from nnexp.engine.network import Network

FAN_IN, FAN_OUT = 400, 600

EXPECTED_VAR = {
    "gaussian": 0.01**2,
    "uniform": 0.05**2 / 3,
    "xavier": (6 / (FAN_IN + FAN_OUT)) / 3,
    "xavier_normal": 2 / (FAN_IN + FAN_OUT),
    "he": 2 / FAN_IN,
    "he_uniform": 2 / FAN_IN,
    "lecun": 1 / FAN_IN,
}


@pytest.mark.parametrize("name", sorted(INITIALIZERS))
def test_variance_matches_the_formula(name):
    W = init_weights(name, {}, np.random.default_rng(0), FAN_IN, FAN_OUT)
    assert W.shape == (FAN_IN, FAN_OUT)
    if name == "zeros":
        assert not W.any()
        return
    assert abs(W.mean()) < 3 * math.sqrt(EXPECTED_VAR[name] / W.size) + 1e-12
    assert W.var() == pytest.approx(EXPECTED_VAR[name], rel=0.05)


def test_registry_is_covered():
    assert set(EXPECTED_VAR) | {"zeros"} == set(INITIALIZERS)


@pytest.mark.parametrize("name", ["xavier", "xavier_normal"])
def test_xavier_gain_is_4_for_logistic_layers(name):
    rng = np.random.default_rng(0)
    v_logistic = init_weights(name, {"gain": None}, rng, FAN_IN, FAN_OUT, activation="logistic").var()
    v_tanh = init_weights(name, {}, rng, FAN_IN, FAN_OUT, activation="tanh").var()
    v_explicit = init_weights(name, {"gain": 2.0}, rng, FAN_IN, FAN_OUT, activation="logistic").var()
    v_hard = init_weights(name, {}, rng, FAN_IN, FAN_OUT, activation="hard_logistic").var()
    assert v_logistic / v_tanh == pytest.approx(16.0, rel=0.05)
    assert v_hard / v_tanh == pytest.approx(16.0, rel=0.05)  # slope 1/4 at 0, like logistic
    assert v_explicit / v_tanh == pytest.approx(4.0, rel=0.05)


def test_xavier_uniform_bound():
    W = init_weights("xavier", {}, np.random.default_rng(0), FAN_IN, FAN_OUT, activation="logistic")
    r = 4 * math.sqrt(6 / (FAN_IN + FAN_OUT))
    assert np.abs(W).max() <= r
    assert np.abs(W).max() > 0.99 * r


def test_parameters_are_used():
    rng = np.random.default_rng(0)
    assert init_weights("gaussian", {"std": 0.1}, rng, FAN_IN, FAN_OUT).std() == pytest.approx(0.1, rel=0.05)
    assert np.abs(init_weights("uniform", {"limit": 0.3}, rng, 50, 50)).max() <= 0.3


def test_the_logistic_gain_is_for_hidden_layers_not_a_binary_output():
    """A binary head's output function is logistic; its weights had gain 4, 4x a softmax head's."""
    for output, n_out in (("logistic", 1), ("softmax", 3), ("linear", 1)):
        net = Network(30, [50], n_out, [("logistic", {})], ("xavier", {"gain": None}), output,
                      rng=np.random.default_rng(0))
        W1, Wo = (net.params[net.param_names.index(n)] for n in ("layer1.W", "output.W"))
        assert np.abs(W1).max() == pytest.approx(4 * np.sqrt(6 / 80), rel=0.05)
        assert np.abs(Wo).max() == pytest.approx(np.sqrt(6 / (50 + n_out)), rel=0.1)


def test_network_layers_use_their_own_fans_and_zero_biases():
    net = Network(300, [500], 2, [("logistic", {})], ("xavier", {"gain": None}), "softmax",
                  rng=np.random.default_rng(0))
    W1 = net.params[net.param_names.index("layer1.W")]
    assert W1.var() == pytest.approx(16 * 2 / 800, rel=0.05)
    for name, p in zip(net.param_names, net.params):
        if name.endswith(".b"):
            assert not p.any()


def test_unknown_initializer():
    with pytest.raises(ValueError, match="unknown initializer"):
        init_weights("glorot", {}, np.random.default_rng(0), 2, 2)
    with pytest.raises(ValueError, match="bad parameters"):
        init_weights("he", {"gain": 2}, np.random.default_rng(0), 2, 2)


def test_maxout_pieces_are_scaled_for_their_own_fan_out():
    net = Network(300, [200], 2, [("maxout", {"pieces": 3})], ("xavier", {}), "softmax",
                  rng=np.random.default_rng(0))
    W1 = net.params[0]
    assert W1.shape == (300, 600)
    for piece in range(3):  # columns j*3 + piece
        assert W1[:, piece::3].var() == pytest.approx(2 / 500, rel=0.05)
