"""Gradient checking by central differences (eq. 5.59), for float64 networks."""

from __future__ import annotations

import numpy as np


ROUNDING = 1e-15  # relative rounding error of one objective evaluation (a few ulps of a sum over rows)
CLEAN = 1e-7  # the relative error that rounding noise alone scores at most: a clean pass


def gradient_check(net, X: np.ndarray, y: np.ndarray, l1: float = 0.0, l2: float = 0.0,
                   eps: float = 1e-6, entries: int | None = None, seed: int = 0) -> dict[str, float]:
    """Relative error ||g - g_num|| / max(||g|| + ||g_num||, floor) per parameter array.

    Each entry costs two evaluations of the objective: with `entries`, an array larger than
    that is checked on that many of its entries drawn at random (`seed`), as large networks
    are checked in practice (a 64 x 3000 layer took half a minute whole).

    The floor keeps rounding noise from reading as an error: the differences carry about
    ROUNDING x |J| / eps of noise per element, and the floor is that noise / CLEAN. A gradient
    that is truly zero (the beta of a batch-normalised layer feeding another batch norm) comes
    out of backprop as 1e-17 and of the differences as 1e-11: without a floor their relative
    error reads 1.0; a wrong gradient still scores far above any tolerance.

    g_num[i] = (J(theta + eps e_i) - J(theta - eps e_i)) / (2 eps), with J the
    training-mode objective of ``net.loss_and_grad``.  The dropout generator is
    reset to the same state before every evaluation, so all evaluations use one
    dropout mask; parameters, batch-norm running statistics and the dropout
    generator are restored afterwards.  Float32 networks give errors ~1e-3 at
    best: check float64 ones.
    """
    state = net.get_state()
    rng_state = net.dropout_rng.bit_generator.state

    def objective() -> float:
        net.dropout_rng.bit_generator.state = rng_state
        return net.objective(X, y, l1, l2)

    try:
        net.dropout_rng.bit_generator.state = rng_state
        net.loss_and_grad(X, y, l1, l2)
        analytic = [g.copy() for g in net.grads]
        scale = ROUNDING * max(1.0, abs(objective())) / eps
        errors = {}
        pick = np.random.default_rng(seed)
        for name, p, g in zip(net.param_names, net.params, analytic):
            flat = p.reshape(-1)  # a view: params are contiguous
            checked = np.arange(flat.size)
            if checked_entries(flat.size, entries) < flat.size:
                checked = np.sort(pick.choice(flat.size, size=entries, replace=False))
            numeric = np.empty(checked.size, dtype=np.float64)
            for k, i in enumerate(checked):
                orig = flat[i]
                flat[i] = orig + eps
                j_plus = objective()
                flat[i] = orig - eps
                j_minus = objective()
                flat[i] = orig
                numeric[k] = (j_plus - j_minus) / (2.0 * eps)
            g = g.reshape(-1)[checked].astype(np.float64)
            floor = scale * np.sqrt(checked.size) / CLEAN
            errors[name] = float(np.linalg.norm(g - numeric) / max(np.linalg.norm(g) + np.linalg.norm(numeric), floor))
        return errors
    finally:
        net.set_state(state)
        net.dropout_rng.bit_generator.state = rng_state


def checked_entries(size: int, entries: int | None) -> int:
    """How many of an array's `size` entries `gradient_check` checks."""
    return size if entries is None else min(size, entries)
