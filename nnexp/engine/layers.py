"""Layers of a feed-forward network: dense, batch norm, activation, dropout.

Every layer has ``forward(x, training)`` and ``backward(grad)``.  Parameters
and gradients are arrays handed to the layer by ``bind`` (the network makes
them views of one flat buffer, so an optimizer step is a few vector ops).
Work buffers are allocated per batch size and reused (see ``Workspace``);
``backward`` returns the gradient with respect to the layer input, or ``None``
when nothing below needs it (the first layer).
"""

from __future__ import annotations

import numpy as np

from .activations import Activation


class Workspace:
    """Buffers keyed by batch size, so a run reuses the same few arrays.

    A training epoch needs two sizes (full and last short batch) and inference
    one more (its chunk size); the oldest size is dropped beyond ``keep``.
    """

    def __init__(self, keep: int = 4) -> None:
        self.keep = keep
        self._bufs: dict[int, tuple[np.ndarray, ...]] = {}

    def get(self, n: int, shapes: list[tuple[int, ...]], dtype) -> tuple[np.ndarray, ...]:
        bufs = self._bufs.get(n)
        if bufs is None:
            if len(self._bufs) >= self.keep:
                del self._bufs[next(iter(self._bufs))]
            # shape () stands for a vector of n ones (GEMV column sums)
            bufs = tuple(np.empty((n, *s), dtype=dtype) if s else np.ones(n, dtype=dtype)
                         for s in shapes)
            self._bufs[n] = bufs
        return bufs


class Layer:
    """Base class: no parameters, identity."""

    name = ""

    def param_shapes(self) -> list[tuple[str, tuple[int, ...], bool]]:
        """(name, shape, regularised) of each parameter, in order."""
        return []

    def bind(self, params: list[np.ndarray], grads: list[np.ndarray]) -> None:
        self.params, self.grads = params, grads

    def reset(self, rng: np.random.Generator) -> None:
        """Give parameters their initial values."""

    def forward(self, x: np.ndarray, training: bool) -> np.ndarray:
        return x

    def backward(self, grad: np.ndarray) -> np.ndarray | None:
        return grad


class Dense(Layer):
    """z = x W + b, W of shape (fan_in, fan_out); the weight-gradient GEMM writes into dW."""

    def __init__(self, name: str, fan_in: int, fan_out: int, *, bias: bool, need_input_grad: bool,
                 init, dtype) -> None:
        self.name, self.fan_in, self.fan_out = name, fan_in, fan_out
        self.bias, self.need_input_grad = bias, need_input_grad
        self.init, self.dtype = init, dtype  # init(rng, fan_in, fan_out) -> array
        self.ws = Workspace()
        self._x = None

    def param_shapes(self):
        shapes = [("W", (self.fan_in, self.fan_out), True)]
        if self.bias:
            shapes.append(("b", (self.fan_out,), False))
        return shapes

    def bind(self, params, grads):
        super().bind(params, grads)
        self.W, self.dW = params[0], grads[0]
        self.b, self.db = (params[1], grads[1]) if self.bias else (None, None)

    def reset(self, rng):
        self.W[...] = self.init(rng, self.fan_in, self.fan_out)
        if self.bias:
            self.b.fill(0.0)

    def forward(self, x, training):
        n = x.shape[0]
        out = self.ws.get(n, [(self.fan_out,), (self.fan_in if self.need_input_grad else 0,), ()],
                          self.dtype)[0]
        np.matmul(x, self.W, out=out)
        if self.bias:
            out += self.b
        self._x = x
        return out

    def backward(self, grad):
        _, dx, ones = self.ws.get(grad.shape[0], [], self.dtype)
        np.matmul(self._x.T, grad, out=self.dW)
        if self.bias:
            np.matmul(ones, grad, out=self.db)  # column sums; GEMV beats np.sum(axis=0)
        if not self.need_input_grad:
            return None
        return np.matmul(grad, self.W.T, out=dx)


class BatchNorm(Layer):
    """Ioffe & Szegedy (2015), algorithm 5.2, on the net inputs of a hidden layer.

    Training uses the mini-batch mean and (biased) variance; inference uses
    running averages r <- momentum r + (1 - momentum) batch_stat, with the
    unbiased batch variance n/(n-1) s^2 in the running variance.
    """

    def __init__(self, name: str, units: int, *, dtype, momentum: float = 0.9, eps: float = 1e-5):
        self.name, self.units, self.dtype = name, units, dtype
        self.momentum, self.eps = momentum, eps
        self.running_mean = np.zeros(units, dtype=dtype)
        self.running_var = np.ones(units, dtype=dtype)
        self.ws = Workspace()

    def param_shapes(self):
        return [("gamma", (self.units,), False), ("beta", (self.units,), False)]

    def bind(self, params, grads):
        super().bind(params, grads)
        self.gamma, self.beta = params
        self.dgamma, self.dbeta = grads

    def reset(self, rng):
        self.gamma.fill(1.0)
        self.beta.fill(0.0)
        self.running_mean.fill(0.0)
        self.running_var.fill(1.0)

    def forward(self, x, training):
        if not training:
            scale = self.gamma / np.sqrt(self.running_var + self.eps)
            x *= scale  # x is the dense layer's own output buffer
            x += self.beta - self.running_mean * scale
            return x
        n = x.shape[0]
        xhat, work = self.ws.get(n, [(self.units,), (self.units,)], self.dtype)
        mean = x.mean(axis=0)
        np.subtract(x, mean, out=xhat)
        np.multiply(xhat, xhat, out=work)
        var = work.mean(axis=0)
        self.inv_std = inv_std = 1.0 / np.sqrt(var + self.eps)
        xhat *= inv_std
        np.multiply(xhat, self.gamma, out=x)
        x += self.beta
        m = self.momentum
        self.running_mean *= m
        self.running_mean += (1.0 - m) * mean
        self.running_var *= m
        self.running_var += (1.0 - m) * (var * (n / (n - 1)) if n > 1 else var)
        self._xhat, self._work = xhat, work
        return x

    def backward(self, grad):
        # dz = gamma / sigma * (g - mean(g) - xhat * mean(g * xhat))
        n, xhat, work = grad.shape[0], self._xhat, self._work
        np.sum(grad, axis=0, out=self.dbeta)
        np.multiply(grad, xhat, out=work)
        np.sum(work, axis=0, out=self.dgamma)
        np.multiply(xhat, self.dgamma * (1.0 / n), out=work)
        work += self.dbeta * (1.0 / n)
        grad -= work
        grad *= self.gamma * self.inv_std
        return grad


class ActivationLayer(Layer):
    """Applies an activation; in place on its input when the derivative needs only the output."""

    def __init__(self, name: str, activation: Activation, units: int, *, dtype) -> None:
        self.name, self.act, self.units, self.dtype = name, activation, units, dtype
        self.ws = Workspace()
        self.out = None

    def param_shapes(self):
        return [(pname, shape, False) for pname, shape in self.act.param_shapes(self.units)]

    def bind(self, params, grads):
        super().bind(params, grads)
        self.act.bind(params, grads)

    def reset(self, rng):
        self.act.reset()

    def forward(self, x, training):
        n = x.shape[0]
        act = self.act
        out, work = self.ws.get(n, [(0 if act.in_place else self.units,), (x.shape[1],)], self.dtype)
        if act.in_place:
            out = x
        act.forward(x, out)
        self._z, self._work, self.out = x, work, out
        return out

    def backward(self, grad):
        act = self.act
        return act.backward(None if act.in_place else self._z, self.out, grad, self._work)

    def regions(self) -> np.ndarray | None:
        """The activation's pieces in the last forward pass (None when it is smooth)."""
        return self.act.regions(None if self.act.in_place else self._z, self.out)


class Dropout(Layer):
    """Inverted dropout: keep each unit with probability 1 - p and scale it by 1/(1 - p)."""

    def __init__(self, name: str, p: float, units: int, rng: np.random.Generator, *, dtype,
                 need_input_grad: bool = True) -> None:
        if not 0.0 <= p < 1.0:
            raise ValueError(f"dropout rate must be in [0, 1), got {p}")
        self.name, self.p, self.units, self.rng, self.dtype = name, p, units, rng, dtype
        self.need_input_grad = need_input_grad
        self.ws = Workspace()

    def forward(self, x, training):
        if not training or self.p == 0.0:
            self._mask = None
            return x
        mask, out = self.ws.get(x.shape[0], [(self.units,), (self.units,)], self.dtype)
        keep = 1.0 - self.p
        self.rng.random(out=mask, dtype=self.dtype)
        np.less(mask, keep, out=mask)
        mask *= 1.0 / keep
        np.multiply(x, mask, out=out)
        self._mask = mask
        return out

    def backward(self, grad):
        if not self.need_input_grad:
            return None
        if self._mask is not None:
            grad *= self._mask
        return grad
