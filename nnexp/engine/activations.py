"""Hidden-layer activation functions and their derivatives.

Each activation is a small class so that parameters (``slope``, ``alpha``,
``pieces``) and learned state (PReLU's slope) live with the function.  The hot
path works in place on preallocated buffers:

* ``forward(z, out)`` writes f(z) into ``out`` (``out`` may be ``z`` when
  ``in_place`` is True: the derivative is then computed from the output alone,
  so the pre-activation buffer can be reused);
* ``backward(z, a, grad, work)`` multiplies ``grad`` by f'(z) in place and
  returns it (``z`` is ``None`` for in-place activations; ``work`` is a scratch
  buffer shaped like ``a``).

``ACTIVATIONS`` maps the names of the spec schema to these classes.
"""

from __future__ import annotations

import math

import numpy as np

_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
_GELU_C = 0.044715


class Activation:
    """Base class: an element-wise function with no parameters."""

    name = ""
    in_place = True  # backward needs only the output a, so forward may overwrite z
    pieces = 1  # inputs per output unit (maxout > 1)
    saturates = False  # unit_stats reports a saturated fraction
    can_die = False  # unit_stats reports the fraction of units never positive: dead, as such a unit gets no
    # gradient (ReLU); a leaky one that is never positive still learns

    def __init__(self) -> None:
        self.params: list[np.ndarray] = []
        self.grads: list[np.ndarray] = []
        self._zeros: dict[tuple, np.ndarray] = {}

    def _zeros_like(self, a: np.ndarray) -> np.ndarray:
        """A cached read-only array of zeros: ufuncs with an array operand are several
        times faster than with a broadcast scalar (np.maximum(z, 0) takes a slow path)."""
        key = (a.shape, a.dtype)
        zeros = self._zeros.get(key)
        if zeros is None:
            if len(self._zeros) >= 4:
                self._zeros.clear()
            zeros = self._zeros[key] = np.zeros(a.shape, dtype=a.dtype)
            zeros.flags.writeable = False
        return zeros

    def param_shapes(self, units: int) -> list[tuple[str, tuple[int, ...]]]:
        """Learned parameters of this activation for a layer of ``units`` units."""
        return []

    def bind(self, params: list[np.ndarray], grads: list[np.ndarray]) -> None:
        self.params, self.grads = params, grads

    def reset(self) -> None:
        """Give learned parameters their initial value."""

    def forward(self, z: np.ndarray, out: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def backward(self, z, a: np.ndarray, grad: np.ndarray, work: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def saturated(self, a: np.ndarray) -> np.ndarray:
        """Boolean mask of activations near an asymptote (only if ``saturates``)."""
        raise NotImplementedError

    def regions(self, z, a: np.ndarray) -> np.ndarray | None:
        """Which piece of a piecewise function each input fell on (None for a smooth one): a
        gradient check whose step moves an input across a kink compares backprop with a
        difference quotient that straddles two slopes, and must leave that entry out."""
        return None

    # Convenience for tests and plots, not used on the hot path.
    def __call__(self, z) -> np.ndarray:
        """f(z) for a 1-D or 2-D array (rows = samples), float64."""
        z = np.array(z, dtype=np.float64, ndmin=2)
        self._own_params(z.shape[1] // self.pieces)
        out = np.empty((z.shape[0], z.shape[1] // self.pieces))
        return self.forward(z.copy(), out)

    def derivative(self, z) -> np.ndarray:
        """f'(z) element-wise (not meaningful for maxout)."""
        z = np.array(z, dtype=np.float64, ndmin=2)
        self._own_params(z.shape[1])
        a = self.forward(z.copy(), np.empty_like(z))
        return self.backward(z, a, np.ones_like(z), np.empty_like(z))

    def _own_params(self, units: int) -> None:
        shapes = self.param_shapes(units)
        if not shapes or (self.params and self.params[0].shape == shapes[0][1]):
            return
        self.bind([np.zeros(s) for _, s in shapes], [np.zeros(s) for _, s in shapes])
        self.reset()


class Identity(Activation):
    """f(z) = z."""

    name = "identity"

    def forward(self, z, out):
        if out is not z:
            np.copyto(out, z)
        return out

    def backward(self, z, a, grad, work):
        return grad


class Logistic(Activation):
    """f(z) = 1 / (1 + e^-z), computed as (1 + tanh(z/2)) / 2: no overflow, absolute error ~1e-16."""

    name = "logistic"
    saturates = True

    def forward(self, z, out):
        np.multiply(z, 0.5, out=out)
        np.tanh(out, out=out)
        out += 1.0
        out *= 0.5
        return out

    def backward(self, z, a, grad, work):
        np.subtract(1.0, a, out=work)  # f' = a (1 - a)
        work *= a
        grad *= work
        return grad

    def saturated(self, a):
        return (a < 0.05) | (a > 0.95)


class Tanh(Activation):
    """f(z) = tanh z."""

    name = "tanh"
    saturates = True

    def forward(self, z, out):
        return np.tanh(z, out=out)

    def backward(self, z, a, grad, work):
        np.multiply(a, a, out=work)  # f' = 1 - a^2
        np.subtract(1.0, work, out=work)
        grad *= work
        return grad

    def saturated(self, a):
        return np.abs(a) > 0.95


class HardLogistic(Activation):
    """f(z) = max(min(0.25 z + 0.5, 1), 0): piecewise-linear logistic."""

    name = "hard_logistic"
    saturates = True

    def forward(self, z, out):
        np.multiply(z, 0.25, out=out)
        out += 0.5
        return np.clip(out, 0.0, 1.0, out=out)

    def backward(self, z, a, grad, work):
        # f' = 0.25 strictly inside (0, 1), 0 on the clipped parts (and at the kinks).
        np.greater(a, 0.0, out=work)
        work *= 0.25
        work *= a < 1.0
        grad *= work
        return grad

    def saturated(self, a):
        return (a <= 0.0) | (a >= 1.0)

    def regions(self, z, a):
        return (a >= 1.0).view(np.int8) - (a <= 0.0).view(np.int8)


class HardTanh(Activation):
    """f(z) = max(min(z, 1), -1)."""

    name = "hard_tanh"
    saturates = True

    def forward(self, z, out):
        return np.clip(z, -1.0, 1.0, out=out)

    def backward(self, z, a, grad, work):
        np.abs(a, out=work)
        np.less(work, 1.0, out=work)
        grad *= work
        return grad

    def saturated(self, a):
        return np.abs(a) >= 1.0

    def regions(self, z, a):
        return (a >= 1.0).view(np.int8) - (a <= -1.0).view(np.int8)


class ReLU(Activation):
    """f(z) = max(z, 0); f'(0) taken as 0."""

    name = "relu"
    can_die = True

    def forward(self, z, out):
        return np.maximum(z, self._zeros_like(z), out=out)

    def backward(self, z, a, grad, work):
        np.greater(a, self._zeros_like(a), out=work)
        grad *= work
        return grad

    def regions(self, z, a):
        return a > 0


class LeakyReLU(Activation):
    """f(z) = z for z > 0, slope * z otherwise (slope > 0)."""

    name = "leaky_relu"

    def __init__(self, slope: float = 0.01) -> None:
        super().__init__()
        if not slope > 0:
            raise ValueError(f"leaky_relu slope must be > 0, got {slope}")
        self.slope = float(slope)

    def forward(self, z, out):
        if self.slope <= 1.0:
            return np.maximum(z, self.slope * z, out=out)
        return np.minimum(z, self.slope * z, out=out)

    def backward(self, z, a, grad, work):
        # f' = 1 where a > 0, slope elsewhere: slope + (1 - slope) [a > 0]
        np.greater(a, 0.0, out=work)
        work *= 1.0 - self.slope
        work += self.slope
        grad *= work
        return grad

    def regions(self, z, a):
        return a > 0


class PReLU(Activation):
    """Leaky ReLU with a learned slope per unit (never regularised)."""

    name = "prelu"
    in_place = False

    def __init__(self, init: float = 0.25) -> None:
        super().__init__()
        self.init = float(init)

    def param_shapes(self, units):
        return [("slope", (units,))]

    def reset(self):
        self.params[0].fill(self.init)

    def forward(self, z, out):
        slope = self.params[0]
        np.minimum(z, self._zeros_like(z), out=out)
        out *= slope - 1.0  # z + (slope - 1) * min(z, 0)
        out += z
        return out

    def backward(self, z, a, grad, work):
        slope, dslope = self.params[0], self.grads[0]
        np.minimum(z, self._zeros_like(z), out=work)  # d a / d slope = min(z, 0)
        work *= grad
        np.sum(work, axis=0, out=dslope)
        np.less_equal(z, 0.0, out=work)  # f' = 1 + (slope - 1) [z <= 0]
        work *= slope - 1.0
        work += 1.0
        grad *= work
        return grad

    def regions(self, z, a):
        return z > 0  # (a learned slope may turn negative: the output's sign would not tell)


class Softplus(Activation):
    """f(z) = log(1 + e^z), via logaddexp; f' = logistic(z) = 1 - e^-a."""

    name = "softplus"

    def forward(self, z, out):
        return np.logaddexp(0.0, z, out=out)

    def backward(self, z, a, grad, work):
        np.negative(a, out=work)
        np.expm1(work, out=work)
        np.negative(work, out=work)
        grad *= work
        return grad


class ELU(Activation):
    """f(z) = z for z > 0, alpha (e^z - 1) otherwise; f' = a + alpha there."""

    name = "elu"

    def __init__(self, alpha: float = 1.0) -> None:
        super().__init__()
        if not alpha > 0:
            raise ValueError(f"elu alpha must be > 0, got {alpha}")
        self.alpha = float(alpha)

    def forward(self, z, out):
        zeros = self._zeros_like(z)
        neg = np.minimum(z, zeros)  # safe when out is z
        np.expm1(neg, out=neg)
        neg *= self.alpha
        np.maximum(z, zeros, out=out)
        out += neg
        return out

    def backward(self, z, a, grad, work):
        np.add(a, self.alpha, out=work)  # alpha e^z for z <= 0
        np.copyto(work, 1.0, where=a > 0)
        grad *= work
        return grad

    def regions(self, z, a):
        return a > 0  # a kink in the slope unless alpha is 1


class GELU(Activation):
    """Tanh approximation: 0.5 z (1 + tanh(sqrt(2/pi) (z + 0.044715 z^3)))."""

    name = "gelu"
    in_place = False

    def forward(self, z, out):
        np.multiply(z, z, out=out)
        out *= _GELU_C
        out += 1.0
        out *= z
        out *= _SQRT_2_OVER_PI
        np.tanh(out, out=out)
        out += 1.0
        out *= z
        out *= 0.5
        return out

    def backward(self, z, a, grad, work):
        # f' = 0.5 (1 + t) + 0.5 z (1 - t^2) sqrt(2/pi) (1 + 3c z^2), t = tanh(u)
        t = np.multiply(z, z)
        np.multiply(t, _GELU_C, out=work)
        work += 1.0
        work *= z
        work *= _SQRT_2_OVER_PI
        np.tanh(work, out=work)  # work = t
        t *= 3.0 * _GELU_C
        t += 1.0
        t *= _SQRT_2_OVER_PI
        t *= z
        t *= 0.5
        s = np.multiply(work, work)
        np.subtract(1.0, s, out=s)
        t *= s
        work += 1.0
        work *= 0.5
        work += t
        grad *= work
        return grad


class Swish(Activation):
    """f(z) = z logistic(z); f' = s + a (1 - s)."""

    name = "swish"
    in_place = False

    def forward(self, z, out):
        Logistic.forward(self, z, out)
        out *= z
        return out

    def backward(self, z, a, grad, work):
        Logistic.forward(self, z, work)  # s
        s1 = np.subtract(1.0, work)
        s1 *= a
        work += s1
        grad *= work
        return grad


class Maxout(Activation):
    """Max over ``pieces`` affine maps per unit; the gradient goes to the arg-max piece.

    The dense layer below has ``units * pieces`` outputs laid out unit-major:
    column ``j * pieces + i`` is piece ``i`` of unit ``j``.
    """

    name = "maxout"
    in_place = False

    def __init__(self, pieces: int = 2) -> None:
        super().__init__()
        if int(pieces) != pieces or pieces < 1:
            raise ValueError(f"maxout pieces must be an integer >= 1, got {pieces}")
        self.pieces = int(pieces)
        self._argmax = None

    def forward(self, z, out):
        z3 = z.reshape(z.shape[0], -1, self.pieces)
        self._argmax = z3.argmax(axis=2)[..., None]
        np.copyto(out, np.take_along_axis(z3, self._argmax, axis=2)[..., 0])
        return out

    def backward(self, z, a, grad, work):
        # work is shaped like z here (the layer allocates it with the input's shape).
        work.fill(0.0)
        w3 = work.reshape(work.shape[0], -1, self.pieces)
        np.put_along_axis(w3, self._argmax, grad[..., None], axis=2)
        return work

    def regions(self, z, a):
        return self._argmax


ACTIVATIONS: dict[str, type[Activation]] = {
    "logistic": Logistic,
    "tanh": Tanh,
    "hard_logistic": HardLogistic,
    "hard_tanh": HardTanh,
    "relu": ReLU,
    "leaky_relu": LeakyReLU,
    "prelu": PReLU,
    "softplus": Softplus,
    "maxout": Maxout,
    "elu": ELU,
    "gelu": GELU,
    "swish": Swish,
    "identity": Identity,
}


def make_activation(name: str, params: dict | None = None) -> Activation:
    """Build a registered activation; unknown names or parameters raise ValueError."""
    if name not in ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r}; choose one of {sorted(ACTIVATIONS)}")
    try:
        return ACTIVATIONS[name](**(params or {}))
    except TypeError as exc:
        raise ValueError(f"bad parameters for activation {name!r}: {params}") from exc
