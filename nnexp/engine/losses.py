"""Output functions fused with their loss.

For each (output, loss) pair below, the gradient of the mean loss with respect
to the output layer's net input z is ``(y_hat - y) / n``:

* softmax + categorical cross-entropy (y = class indices, shape (n,));
* logistic + binary cross-entropy (y = 0/1, shape (n,) or (n, n_out));
* identity + squared error, with loss = mean over rows of 0.5 * ||y_hat - y||^2
  (the 1/2 factor makes the delta exactly y_hat - y; y shape (n,) or (n, n_out)).

With class weights (the two classification heads), the training objective is the
mean over rows of w[class of the row] x the row's loss, as Keras's class_weight,
and each row's delta is scaled by its weight; evaluation keeps the plain mean loss.

The losses are computed from z with log-sum-exp / logaddexp, so they stay
finite even when a probability rounds to 0 or 1.
"""

from __future__ import annotations

import numpy as np


class OutputLoss:
    """Output function + loss; works in place on the logits buffer."""

    name = ""
    class_weights: np.ndarray | None = None  # (classes,): the training objective's weight of each class

    def set_class_weights(self, weights) -> None:
        raise ValueError(f"class weights need a classification output, not {self.name!r}")

    def row_weights(self, y: np.ndarray) -> np.ndarray:
        """Each row's class weight (float64), from targets as prepare_targets lays them out."""
        raise NotImplementedError

    def row_losses(self, z: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Each row's loss (float64); overwrites z with the output activations y_hat."""
        raise NotImplementedError

    def training_loss(self, z: np.ndarray, y: np.ndarray) -> float:
        """The training objective's data term (overwrites z with y_hat): the mean loss, or with
        class weights the mean of each row's weight x its loss."""
        if self.class_weights is None:
            return self.forward_loss(z, y)
        return float(np.dot(self.row_weights(y), self.row_losses(z, y))) / z.shape[0]

    def _weighted_loss_and_delta(self, z: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
        loss = self.training_loss(z, y)  # leaves y_hat in z
        delta = self.delta(z, y)
        delta *= self.row_weights(y).astype(delta.dtype)[:, None]
        return loss, delta

    def prepare_targets(self, y: np.ndarray, n_out: int, dtype) -> np.ndarray:
        """y in the layout the loss uses (no copy when already right)."""
        raise NotImplementedError

    def forward_loss(self, z: np.ndarray, y: np.ndarray) -> float:
        """Mean loss over rows; overwrites z with the output activations y_hat."""
        raise NotImplementedError

    def output(self, z: np.ndarray) -> np.ndarray:
        """y_hat from z, in place (inference)."""
        raise NotImplementedError

    def delta(self, y_hat: np.ndarray, y: np.ndarray) -> np.ndarray:
        """dL/dz = (y_hat - y) / n, in place in y_hat."""
        raise NotImplementedError

    def loss_and_delta(self, z: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
        """Training path: mean loss and dL/dz (may overwrite z)."""
        if self.class_weights is not None:
            return self._weighted_loss_and_delta(z, y)
        loss = self.forward_loss(z, y)
        return loss, self.delta(z, y)

    def to_user(self, y_hat: np.ndarray) -> np.ndarray:
        """Shape returned by Network.forward: (n,) for single-output heads."""
        return y_hat[:, 0] if y_hat.shape[1] == 1 else y_hat


class SoftmaxCrossEntropy(OutputLoss):
    name = "softmax"

    def __init__(self) -> None:
        self._aux: dict[tuple, tuple] = {}

    def _buffers(self, z):
        key = z.shape
        aux = self._aux.get(key)
        if aux is None:
            if len(self._aux) >= 4:
                self._aux.clear()
            n, k = key
            aux = self._aux[key] = (np.arange(0, n * k, k), np.empty(n, dtype=np.intp),
                                    np.ones(k, dtype=z.dtype), np.empty_like(z))
        return aux

    def prepare_targets(self, y, n_out, dtype):
        y = np.asarray(y)
        if y.ndim != 1:
            raise ValueError(f"softmax output needs y as class indices of shape (n,), got {y.shape}")
        if not np.issubdtype(y.dtype, np.integer):
            yi = y.astype(np.intp)
            if not np.array_equal(yi, y):
                raise ValueError("softmax output needs integer class indices in y")
            return yi
        return y

    def to_user(self, y_hat):
        return y_hat

    def set_class_weights(self, weights) -> None:
        self.class_weights = _checked_weights(weights)

    def row_weights(self, y):
        return self.class_weights.take(y)

    def row_losses(self, z, y):
        z -= z.max(axis=1, keepdims=True)
        picked = z[np.arange(z.shape[0]), y].astype(np.float64)
        np.exp(z, out=z)
        s = z.sum(axis=1, keepdims=True)
        losses = np.log(s[:, 0], dtype=np.float64) - picked  # log-sum-exp - z_y
        z /= s
        return losses

    def forward_loss(self, z, y):
        n = z.shape[0]
        z -= z.max(axis=1, keepdims=True)
        picked = z[np.arange(n), y]
        np.exp(z, out=z)
        s = z.sum(axis=1, keepdims=True)
        loss = float(np.log(s).sum() - picked.sum()) / n  # log-sum-exp - z_y
        z /= s
        return loss

    def loss_and_delta(self, z, y):
        """Training fast path: one shift (the batch max) for all rows, row sums by GEMV,
        flat take/put for the target entries (tiny arrays: the op count is the cost).

        Exact unless a whole row underflows (its max ~70 below the batch max);
        then the per-row log-sum-exp path is used.
        """
        if self.class_weights is not None:
            return self._weighted_loss_and_delta(z, y)
        n = z.shape[0]
        row_starts, flat, ones, e = self._buffers(z)
        np.add(row_starts, y, out=flat)  # flat index of each target entry
        ef = e.reshape(-1)
        np.subtract(z, np.maximum.reduce(z, axis=None), out=e)
        picked = ef.take(flat)
        np.exp(e, out=e)
        s = np.matmul(e, ones)
        if not np.minimum.reduce(s) > 1e-30:
            loss = self.forward_loss(z, y)
            return loss, self.delta(z, y)
        loss = float(np.add.reduce(np.subtract(np.log(s), picked))) / n
        s *= n
        e /= s[:, None]  # p / n
        target = ef.take(flat)
        target -= 1.0 / n
        ef.put(flat, target)
        return loss, e

    def output(self, z):
        z -= z.max(axis=1, keepdims=True)
        np.exp(z, out=z)
        z /= z.sum(axis=1, keepdims=True)
        return z

    def delta(self, y_hat, y):
        n = y_hat.shape[0]
        y_hat[np.arange(n), y] -= 1.0
        y_hat *= 1.0 / n
        return y_hat


class LogisticCrossEntropy(OutputLoss):
    name = "logistic"

    def prepare_targets(self, y, n_out, dtype):
        return np.asarray(y, dtype=dtype).reshape(-1, n_out)

    def set_class_weights(self, weights) -> None:
        weights = _checked_weights(weights)
        if len(weights) != 2:
            raise ValueError(f"a logistic output has 2 classes (0 and 1): got {len(weights)} class weights")
        self.class_weights = weights

    def row_weights(self, y):
        if y.shape[1] != 1:
            raise ValueError("class weights need a single logistic output (one 0/1 target per row)")
        return self.class_weights.take(y[:, 0].astype(np.intp))

    def row_losses(self, z, y):
        losses = (np.logaddexp(0.0, z, dtype=np.float64) - y * z.astype(np.float64)).sum(axis=1)
        self._training_output(z)
        return losses

    def forward_loss(self, z, y):
        # -[y log s(z) + (1 - y) log(1 - s(z))] = log(1 + e^z) - y z
        n = z.shape[0]
        loss = float(np.logaddexp(0.0, z).sum() - np.vdot(y, z)) / n
        self._training_output(z)
        return loss

    @staticmethod
    def _training_output(z):
        """logistic(z) = (1 + tanh(z / 2)) / 2 for backprop's delta s - y: no overflow, one ufunc,
        exact to ~1e-16 absolute, which is all the delta needs."""
        z *= 0.5
        np.tanh(z, out=z)
        z += 1.0
        z *= 0.5
        return z

    def output(self, z):
        """P(y=1) = exp(-log(1 + e^-z)): no overflow either, and a small probability keeps its
        relative precision (the tanh form rounds it to 0 below z = -37 in float64, -17 in float32,
        and tied rows so AUC, AP and the threshold could no longer rank)."""
        np.negative(z, out=z)
        np.logaddexp(0.0, z, out=z)
        np.negative(z, out=z)
        np.exp(z, out=z)
        return z

    def delta(self, y_hat, y):
        y_hat -= y
        y_hat *= 1.0 / y_hat.shape[0]
        return y_hat


class LinearSquaredError(OutputLoss):
    name = "linear"

    def prepare_targets(self, y, n_out, dtype):
        return np.asarray(y, dtype=dtype).reshape(-1, n_out)

    def forward_loss(self, z, y):
        d = z - y
        return 0.5 * float(np.vdot(d, d)) / z.shape[0]

    def output(self, z):
        return z

    def delta(self, y_hat, y):
        y_hat -= y
        y_hat *= 1.0 / y_hat.shape[0]
        return y_hat


def _checked_weights(weights) -> np.ndarray:
    weights = np.array(weights, dtype=np.float64).reshape(-1)
    if not (np.isfinite(weights).all() and (weights > 0).all()):
        raise ValueError(f"class weights must be positive and finite, got {weights.tolist()}")
    return weights


OUTPUTS: dict[str, type[OutputLoss]] = {
    "softmax": SoftmaxCrossEntropy,
    "logistic": LogisticCrossEntropy,
    "linear": LinearSquaredError,
}


def make_output(name: str) -> OutputLoss:
    if name not in OUTPUTS:
        raise ValueError(f"unknown output {name!r}; choose one of {sorted(OUTPUTS)}")
    return OUTPUTS[name]()
