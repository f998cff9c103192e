"""First-order optimizers and learning-rate schedules.

An optimizer owns a list of parameter arrays and updates them in place:
``opt.step(grads, lr)``.  Its state is allocated once with ``zeros_like`` and
updated in place.  Classes go from simple to complex; SGD is momentum 0.

When the parameters are consecutive views of one contiguous buffer (as
``Network.params`` are), the optimizer works on that buffer directly: a step is
then a handful of vector operations whatever the number of layers.
"""

from __future__ import annotations

import math

import numpy as np


def _flat_base(arrays: list[np.ndarray]) -> np.ndarray | None:
    """The 1-D buffer the arrays tile in order, or None if they do not."""
    if not arrays:
        return None
    base = arrays[0].base
    if base is None or base.ndim != 1 or not base.flags.c_contiguous:
        return None
    offset = base.__array_interface__["data"][0]
    for a in arrays:
        if a.base is not base or not a.flags.c_contiguous or a.dtype != base.dtype:
            return None
        if a.__array_interface__["data"][0] != offset:
            return None
        offset += a.nbytes
    if offset != base.__array_interface__["data"][0] + base.nbytes:
        return None
    return base


class Optimizer:
    """Base: holds params (possibly fused into one buffer) and scratch space."""

    def __init__(self, params: list[np.ndarray]) -> None:
        self.params = list(params)
        flat = _flat_base(self.params)
        self._fused = flat is not None
        self._targets = [flat] if self._fused else self.params
        self._grads_key: tuple | None = None
        self._grads_src: list | None = None
        self._grads: list[np.ndarray] = []
        self._states: list[np.ndarray] = []
        self.t = 0

    def _state(self) -> list[np.ndarray]:
        arrays = [np.zeros_like(p) for p in self._targets]
        self._states += arrays
        return arrays

    def state_finite(self) -> bool:
        """Whether every running average (and scratch array) is finite: Adam's mean of squared
        gradients overflows float32 at gradients of 1.8e19, and its steps are 0 from then on."""
        return all(np.isfinite(a).all() for a in self._states)

    def _match(self, grads: list[np.ndarray]) -> list[np.ndarray]:
        """grads laid out like the update targets (one fused buffer when params are fused)."""
        if len(grads) != len(self.params):
            raise ValueError(f"expected {len(self.params)} gradient arrays, got {len(grads)}")
        if not self._fused:
            return grads
        key = (id(grads), id(grads[0]), id(grads[-1]))  # Network.grads: one stable list
        if key != self._grads_key:
            flat = _flat_base(list(grads))
            self._fused_copy = flat is None
            self._grads = [flat if flat is not None else np.empty_like(self._targets[0])]
            self._grads_key, self._grads_src = key, grads  # keep them alive: ids stay unique
        if self._fused_copy:  # rare: params fused but grads are separate arrays
            np.concatenate([g.ravel() for g in grads], out=self._grads[0])
        return self._grads

    def step(self, grads: list[np.ndarray], lr: float) -> None:
        self.t += 1
        for i, (p, g) in enumerate(zip(self._targets, self._match(grads))):
            self._update(i, p, g, lr)

    def _update(self, i: int, p: np.ndarray, g: np.ndarray, lr: float) -> None:
        raise NotImplementedError


class Momentum(Optimizer):
    """Classical momentum: v <- mu v - lr g; p <- p + v.  mu = 0 is plain SGD."""

    def __init__(self, params, momentum: float = 0.9) -> None:
        super().__init__(params)
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"momentum must be in [0, 1), got {momentum}")
        self.momentum = float(momentum)
        self.velocity = self._state() if self.momentum else []
        self._tmp = self._state()

    def _update(self, i, p, g, lr):
        tmp = self._tmp[i]
        np.multiply(g, lr, out=tmp)
        if not self.momentum:
            p -= tmp
            return
        v = self.velocity[i]
        v *= self.momentum
        v -= tmp
        p += v


class SGD(Momentum):
    """Plain stochastic gradient descent: p <- p - lr g."""

    def __init__(self, params) -> None:
        super().__init__(params, momentum=0.0)


class Nesterov(Momentum):
    """Nesterov momentum, look-ahead form: v <- mu v - lr g; p <- p + mu v - lr g."""

    def _update(self, i, p, g, lr):
        if not self.momentum:  # mu = 0: the formula is plain SGD, and no velocity is kept
            return super()._update(i, p, g, lr)
        tmp, v = self._tmp[i], self.velocity[i]
        np.multiply(g, lr, out=tmp)
        v *= self.momentum
        v -= tmp
        p -= tmp
        np.multiply(v, self.momentum, out=tmp)
        p += tmp


class AdaGrad(Optimizer):
    """G <- G + g^2; p <- p - lr g / (sqrt(G) + eps)."""

    def __init__(self, params, eps: float = 1e-8) -> None:
        super().__init__(params)
        self.eps = float(eps)
        self.sum_sq = self._state()
        self._tmp = self._state()

    def _update(self, i, p, g, lr):
        s, tmp = self.sum_sq[i], self._tmp[i]
        np.multiply(g, g, out=tmp)
        s += tmp
        _rescaled_step(p, g, s, tmp, lr, self.eps)


def _rescaled_step(p, g, squares, tmp, lr, eps) -> None:
    """p -= lr g / (sqrt(squares) + eps), in place through `tmp` (AdaGrad and RMSProp differ only in `squares`)."""
    np.sqrt(squares, out=tmp)
    tmp += eps
    np.divide(g, tmp, out=tmp)
    tmp *= lr
    p -= tmp


class RMSProp(Optimizer):
    """E <- rho E + (1 - rho) g^2; p <- p - lr g / (sqrt(E) + eps)."""

    def __init__(self, params, rho: float = 0.9, eps: float = 1e-8) -> None:
        super().__init__(params)
        self.rho, self.eps = float(rho), float(eps)
        self.mean_sq = self._state()
        self._tmp = self._state()

    def _update(self, i, p, g, lr):
        e, tmp = self.mean_sq[i], self._tmp[i]
        np.multiply(g, g, out=tmp)
        tmp *= 1.0 - self.rho
        e *= self.rho
        e += tmp
        _rescaled_step(p, g, e, tmp, lr, self.eps)


class AdaDelta(Optimizer):
    """Zeiler (2012): dx = -sqrt(D + eps) / sqrt(E + eps) g; lr scales dx (use lr = 1)."""

    def __init__(self, params, rho: float = 0.95, eps: float = 1e-6) -> None:
        super().__init__(params)
        self.rho, self.eps = float(rho), float(eps)
        self.mean_sq = self._state()  # E[g^2]
        self.mean_dx = self._state()  # D = E[dx^2]
        self._tmp = self._state()
        self._dx = self._state()

    def _update(self, i, p, g, lr):
        e, d, tmp, dx = self.mean_sq[i], self.mean_dx[i], self._tmp[i], self._dx[i]
        rho, eps = self.rho, self.eps
        np.multiply(g, g, out=tmp)
        tmp *= 1.0 - rho
        e *= rho
        e += tmp
        np.add(d, eps, out=dx)
        np.add(e, eps, out=tmp)
        dx /= tmp
        np.sqrt(dx, out=dx)
        dx *= g  # dx = -(this)
        np.multiply(dx, dx, out=tmp)
        tmp *= 1.0 - rho
        d *= rho
        d += tmp
        dx *= lr
        p -= dx


class Adam(Optimizer):
    """Kingma & Ba (2015) with bias correction; the first step moves each coordinate by ~lr."""

    def __init__(self, params, beta1: float = 0.9, beta2: float = 0.999, eps: float = 1e-8) -> None:
        super().__init__(params)
        self.beta1, self.beta2, self.eps = float(beta1), float(beta2), float(eps)
        self.m = self._state()
        self.v = self._state()
        self._tmp = self._state()

    def _update(self, i, p, g, lr):
        m, v, tmp = self.m[i], self.v[i], self._tmp[i]
        b1, b2, t = self.beta1, self.beta2, self.t
        m *= b1
        np.multiply(g, 1.0 - b1, out=tmp)
        m += tmp
        v *= b2
        np.multiply(g, g, out=tmp)
        tmp *= 1.0 - b2
        v += tmp
        # p -= lr * m_hat / (sqrt(v_hat) + eps), m_hat = m / (1 - b1^t), v_hat = v / (1 - b2^t)
        np.sqrt(v, out=tmp)
        tmp *= 1.0 / math.sqrt(1.0 - b2**t)
        tmp += self.eps
        np.divide(m, tmp, out=tmp)
        tmp *= lr / (1.0 - b1**t)
        p -= tmp


OPTIMIZERS: dict[str, type[Optimizer]] = {
    "sgd": SGD,
    "momentum": Momentum,
    "nesterov": Nesterov,
    "adagrad": AdaGrad,
    "rmsprop": RMSProp,
    "adadelta": AdaDelta,
    "adam": Adam,
}


def make_optimizer(name: str, params: list[np.ndarray], **hyper) -> Optimizer:
    """Build a registered optimizer over ``params`` (updated in place by ``step``)."""
    if name not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {name!r}; choose one of {sorted(OPTIMIZERS)}")
    try:
        return OPTIMIZERS[name](params, **hyper)
    except TypeError as exc:
        raise ValueError(f"bad hyper-parameters for optimizer {name!r}: {hyper}") from exc


# Learning-rate schedules: sched(epoch) -> lr, epoch counted from 0.

class Schedule:
    def __init__(self, base_lr: float, epochs: int) -> None:
        self.base_lr, self.epochs = float(base_lr), int(epochs)

    def __call__(self, epoch: int) -> float:
        raise NotImplementedError


class Constant(Schedule):
    """lr = base_lr."""

    def __call__(self, epoch):
        return self.base_lr


class Step(Schedule):
    """lr = base_lr * factor ** (epoch // every)."""

    def __init__(self, base_lr, epochs, every: int = 10, factor: float = 0.5) -> None:
        super().__init__(base_lr, epochs)
        if every < 1:
            raise ValueError(f"step schedule 'every' must be >= 1, got {every}")
        self.every, self.factor = int(every), float(factor)

    def __call__(self, epoch):
        return self.base_lr * self.factor ** (epoch // self.every)


class Exponential(Schedule):
    """lr = base_lr * gamma ** epoch."""

    def __init__(self, base_lr, epochs, gamma: float = 0.95) -> None:
        super().__init__(base_lr, epochs)
        self.gamma = float(gamma)

    def __call__(self, epoch):
        return self.base_lr * self.gamma**epoch


class Cosine(Schedule):
    """lr = min_lr + (base_lr - min_lr) (1 + cos(pi epoch / epochs)) / 2: base at 0, min_lr at ``epochs``."""

    def __init__(self, base_lr, epochs, min_lr: float = 0.0) -> None:
        super().__init__(base_lr, epochs)
        self.min_lr = float(min_lr)

    def __call__(self, epoch):
        frac = min(epoch, self.epochs) / max(self.epochs, 1)
        return self.min_lr + 0.5 * (self.base_lr - self.min_lr) * (1.0 + math.cos(math.pi * frac))


SCHEDULES: dict[str, type[Schedule]] = {
    "constant": Constant,
    "step": Step,
    "exponential": Exponential,
    "cosine": Cosine,
}


def make_schedule(name: str, base_lr: float, epochs: int, **params) -> Schedule:
    """Build a registered schedule: ``sched(epoch)`` gives the learning rate of that epoch."""
    if name not in SCHEDULES:
        raise ValueError(f"unknown schedule {name!r}; choose one of {sorted(SCHEDULES)}")
    try:
        return SCHEDULES[name](base_lr, epochs, **params)
    except TypeError as exc:
        raise ValueError(f"bad parameters for schedule {name!r}: {params}") from exc
