"""Weight initialisers: ``f(rng, fan_in, fan_out, *, activation, **params) -> (fan_in, fan_out)``.

Biases are not initialised here: they always start at 0.  ``activation`` is the
name of a hidden layer's activation ("" for the output layer); only
``xavier``/``xavier_normal`` look at it, for the default gain.
"""

from __future__ import annotations

import math

import numpy as np


def _check_positive(name: str, **values: float) -> None:
    for key, value in values.items():
        if not value > 0:
            raise ValueError(f"{name} {key} must be > 0, got {value}")


def xavier_gain(activation: str, gain: float | None) -> float:
    """Glorot & Bengio (2010): gain 4 for logistic layers, 1 otherwise, unless given.

    hard_logistic counts as logistic: its slope at 0 is also 1/4, which the gain offsets.
    """
    if gain is not None:
        return float(gain)
    return 4.0 if activation in ("logistic", "sigmoid", "hard_logistic") else 1.0


def zeros(rng, fan_in, fan_out, *, activation="", dtype=np.float64):
    """All zeros: shows the symmetry problem (units of a layer stay identical)."""
    return np.zeros((fan_in, fan_out), dtype=dtype)


def gaussian(rng, fan_in, fan_out, *, activation="", dtype=np.float64, std=0.01):
    """N(0, std^2), independent of the layer size."""
    _check_positive("gaussian", std=std)
    return rng.normal(0.0, std, size=(fan_in, fan_out)).astype(dtype, copy=False)


def uniform(rng, fan_in, fan_out, *, activation="", dtype=np.float64, limit=0.05):
    """U(-limit, limit), independent of the layer size."""
    _check_positive("uniform", limit=limit)
    return rng.uniform(-limit, limit, size=(fan_in, fan_out)).astype(dtype, copy=False)


def xavier(rng, fan_in, fan_out, *, activation="", dtype=np.float64, gain=None):
    """Glorot uniform: U(-r, r), r = gain sqrt(6 / (fan_in + fan_out))."""
    r = xavier_gain(activation, gain) * math.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-r, r, size=(fan_in, fan_out)).astype(dtype, copy=False)


def xavier_normal(rng, fan_in, fan_out, *, activation="", dtype=np.float64, gain=None):
    """Glorot normal: N(0, s^2), s = gain sqrt(2 / (fan_in + fan_out))."""
    s = xavier_gain(activation, gain) * math.sqrt(2.0 / (fan_in + fan_out))
    return rng.normal(0.0, s, size=(fan_in, fan_out)).astype(dtype, copy=False)


def he(rng, fan_in, fan_out, *, activation="", dtype=np.float64):
    """He et al. (2015) normal: variance 2 / fan_in (for ReLU layers)."""
    s = math.sqrt(2.0 / fan_in)
    return rng.normal(0.0, s, size=(fan_in, fan_out)).astype(dtype, copy=False)


def he_uniform(rng, fan_in, fan_out, *, activation="", dtype=np.float64):
    """He uniform: U(-r, r), r = sqrt(6 / fan_in), i.e. variance 2 / fan_in."""
    r = math.sqrt(6.0 / fan_in)
    return rng.uniform(-r, r, size=(fan_in, fan_out)).astype(dtype, copy=False)


def lecun(rng, fan_in, fan_out, *, activation="", dtype=np.float64):
    """LeCun normal: variance 1 / fan_in."""
    s = math.sqrt(1.0 / fan_in)
    return rng.normal(0.0, s, size=(fan_in, fan_out)).astype(dtype, copy=False)


INITIALIZERS = {
    "zeros": zeros,
    "gaussian": gaussian,
    "uniform": uniform,
    "xavier": xavier,
    "xavier_normal": xavier_normal,
    "he": he,
    "he_uniform": he_uniform,
    "lecun": lecun,
}


def init_weights(name: str, params: dict | None, rng: np.random.Generator, fan_in: int,
                 fan_out: int, *, activation: str = "", dtype=np.float64) -> np.ndarray:
    """Draw a (fan_in, fan_out) weight matrix with a registered initialiser."""
    if name not in INITIALIZERS:
        raise ValueError(f"unknown initializer {name!r}; choose one of {sorted(INITIALIZERS)}")
    try:
        return INITIALIZERS[name](rng, fan_in, fan_out, activation=activation, dtype=dtype,
                                  **(params or {}))
    except TypeError as exc:
        raise ValueError(f"bad parameters for initializer {name!r}: {params}") from exc
