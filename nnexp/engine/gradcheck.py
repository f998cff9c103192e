"""Gradient checking by central differences (eq. 5.59), for float64 networks."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


ROUNDING = 1e-15  # relative rounding error of one objective evaluation (a few ulps of a sum over rows)
STEPS = (1e-6, 1e-5, 1e-4, 1e-3)  # central-difference steps, tried in turn while rounding blurs the check
RESOLVED = 1e-7  # rounding noise at most this fraction of an array's gradient: no larger step is needed
NOISE_MARGIN = 3.0  # a difference within this many times the rounding noise is noise, not an error
SMALLER = 1e-7  # tried when the first step disagrees: a kink it crossed (tiny weights under batch norm) a tenth is not


@dataclass(frozen=True)
class StepCheck:
    """Backprop against the differences at one step: `error` = ||g - g_num|| / (||g|| + ||g_num||);
    `noise` = the error the differences alone can make there: their rounding noise, plus at a
    larger step their truncation error (a curve, a ReLU kink crossed), bounded by how far they
    moved from the previous step's."""

    step: float
    error: float
    noise: float
    kinked: int = 0  # entries left out: the step moved an activation's input across a kink, or a weight across 0 under L1

    @property
    def lowest(self) -> float:
        """The least the true discrepancy can be, by this step."""
        return self.error - NOISE_MARGIN * self.noise

    @property
    def highest(self) -> float:
        """The most the true discrepancy can be, by this step."""
        return self.error + NOISE_MARGIN * self.noise


@dataclass(frozen=True)
class ArrayCheck:
    """One parameter array's check at each step tried, on `entries` of its entries; `rms` =
    backprop's gradient, root mean square over them (how small a vanishing gradient is)."""

    steps: tuple[StepCheck, ...]
    entries: int
    rms: float = 0.0

    def disagreements(self, tolerance: float) -> list[StepCheck]:
        """Steps that disagree beyond the tolerance and beyond their own noise, where no smaller
        step saw a smaller discrepancy for sure: a wrong gradient disagrees at every step, while
        a larger step's difference can also cross a kink (ReLU, maxout), which no bound of its
        noise foresees, and disagree alone."""
        return [s for k, s in enumerate(self.steps)
                if s.lowest > tolerance and all(smaller.highest >= s.lowest for smaller in self.steps[:k])]

    def verdict(self, tolerance: float) -> str:
        """'failed' on a disagreement (above); else 'ok' when some step agrees within the
        tolerance; else 'noise': agreement only within the noise (a gradient too small to check
        that closely, or one that is zero)."""
        if not self.steps:  # every entry sat on a kink at every step: nothing was compared
            return "noise"
        if self.disagreements(tolerance):
            return "failed"
        return "ok" if min(s.error for s in self.steps) <= tolerance else "noise"

    def shown(self, tolerance: float) -> StepCheck:
        """The step behind the verdict: the clearest disagreement, the closest agreement, or
        the least noisy reading."""
        if not self.steps:
            return StepCheck(math.nan, math.nan, math.inf)
        verdict = self.verdict(tolerance)
        if verdict == "failed":
            return max(self.disagreements(tolerance), key=lambda s: s.lowest)
        if verdict == "ok":
            return min(self.steps, key=lambda s: s.error)
        return min(self.steps, key=lambda s: max(s.error, NOISE_MARGIN * s.noise))


def gradient_check(net, X: np.ndarray, y: np.ndarray, l1: float = 0.0, l2: float = 0.0,
                   entries: int | None = None, seed: int = 0, steps: tuple[float, ...] = STEPS) -> dict[str, ArrayCheck]:
    """Compare backprop's gradient with central differences, per parameter array.

    Each entry costs two evaluations of the objective: with `entries`, an array larger than
    that is checked on that many of its entries drawn at random (`seed`), as large networks
    are checked in practice (a 64 x 3000 layer took half a minute whole).

    The differences carry about ROUNDING x |J| / step of rounding noise per entry. For an
    array whose gradient is small against that noise (the first layers of a saturated,
    vanishing-gradient network), larger steps are tried, and all of them judged together
    (see ArrayCheck.verdict): rounding noise shrinks as the step grows and truncation error
    grows (bounded by how far the differences moved from the smaller step's), while a wrong
    gradient disagrees at every step. What no step resolves (a gradient that is truly
    zero, as the beta of a batch-normalised layer feeding another batch norm) is reported
    with its noise, so that a verdict can say it is within it rather than call it wrong.
    An entry whose step carries an activation's input across a kink (the network's
    kink_pattern changes) or, under L1, its weight across 0 is left out at that step: its
    difference straddles two slopes that no backprop matches.

    g_num[i] = (J(theta + h e_i) - J(theta - h e_i)) / (2 h), with J the training-mode
    objective of ``net.loss_and_grad``. The dropout generator is reset to the same state
    before every evaluation, so all evaluations use one dropout mask; parameters,
    batch-norm running statistics and the dropout generator are restored afterwards.
    Float32 networks give errors ~1e-3 at best: check float64 ones.
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
        scale = ROUNDING * max(1.0, abs(objective()))
        at_theta = net.kink_pattern()
        checks = {}
        pick = np.random.default_rng(seed)
        for name, p, g, penalised in zip(net.param_names, net.params, analytic, net.regularised):
            flat = p.reshape(-1)  # a view: params are contiguous
            checked = np.arange(flat.size)
            if entries is not None and entries < flat.size:
                checked = np.sort(pick.choice(flat.size, size=entries, replace=False))
            g = g.reshape(-1)[checked].astype(np.float64)

            def at(step: float, previous=None):
                """(StepCheck or None when every entry straddled a kink, its differences, their kinks,
                whether rounding is negligible there)."""
                numeric, kinked = _differences(flat, checked, step, objective, net.kink_pattern, at_theta,
                                               l1 > 0 and penalised)
                keep = ~kinked if previous is None else ~(kinked | previous[1])
                if not keep.any():
                    return None, numeric, kinked, False
                size = np.linalg.norm(g[keep]) + np.linalg.norm(numeric[keep])
                if size == 0:  # both exactly zero: they agree
                    return StepCheck(step, 0.0, 0.0, int(kinked.sum())), numeric, kinked, True
                rounding = scale / step * np.sqrt(keep.sum())
                moved = np.linalg.norm(numeric[keep] - previous[0][keep]) if previous is not None else 0.0
                error = float(np.linalg.norm(g[keep] - numeric[keep]) / size)
                check = StepCheck(step, error, float((rounding + moved) / size), int(kinked.sum()))
                return check, numeric, kinked, rounding / size <= RESOLVED

            tried, previous = [], None
            for step in steps:
                check, numeric, kinked, resolved = at(step, previous)
                if check is not None:
                    tried.append(check)
                if resolved:
                    break
                previous = (numeric, kinked)
            if tried and tried[0].lowest > RESOLVED:  # the smallest step disagrees for sure: a tenth of it
                check = at(SMALLER)[0]
                if check is not None:
                    tried.insert(0, check)
            checks[name] = ArrayCheck(tuple(tried), checked.size, float(np.sqrt(np.mean(g * g))))
        return checks
    finally:
        net.set_state(state)
        net.dropout_rng.bit_generator.state = rng_state


def _differences(flat: np.ndarray, checked: np.ndarray, step: float, objective, pattern, at_theta: bytes,
                 l1_kink: bool) -> tuple[np.ndarray, np.ndarray]:
    """The central differences of the `checked` entries, and which of them straddled a kink: an
    activation's input moved to another piece (`pattern` differs from `at_theta`), or, under L1,
    the weight itself crossed 0."""
    numeric = np.empty(checked.size, dtype=np.float64)
    kinked = np.zeros(checked.size, dtype=bool)
    for k, i in enumerate(checked):
        orig = flat[i]
        flat[i] = orig + step
        j_plus = objective()
        moved = pattern() != at_theta
        flat[i] = orig - step
        j_minus = objective()
        moved = moved or pattern() != at_theta
        flat[i] = orig
        numeric[k] = (j_plus - j_minus) / (2.0 * step)
        kinked[k] = moved or (l1_kink and abs(orig) < step)
    return numeric, kinked
