"""A fully connected feed-forward network with hand-written backprop.

Layer stack: [input dropout] -> per hidden layer: dense -> [batch norm] ->
activation -> [dropout] -> output dense -> output function fused with its loss
(see losses.py).  All parameters are views of one flat buffer, and so are their
gradients; optimizers detect this and update the whole network at once.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import partial

import numpy as np

from .activations import make_activation
from .init import init_weights
from .layers import ActivationLayer, BatchNorm, Dense, Dropout, Layer
from .losses import make_output

INFERENCE_CHUNK = 4096  # rows per inference pass: bounds evaluate/predict memory


@dataclass
class EpochStats:
    """What one pass over the training set reports."""

    loss: float  # mean objective over batches, weighted by batch size
    grad_norms: list[float] = field(default_factory=list)  # per weight layer: mean ||dJ/dW||_F
    finite: bool = True  # False once a loss or parameter became inf/nan (the epoch stopped)
    optimizer_overflow: bool = False  # the parameters finite, but the optimizer's state is not (no step can follow)


def _spawn(rng: np.random.Generator) -> np.random.Generator:
    try:
        return rng.spawn(1)[0]
    except (TypeError, ValueError, AttributeError):  # generator not built from a SeedSequence
        return np.random.default_rng(rng.integers(2**63))


class Network:
    """Feed-forward network; see the module docstring for the layer stack.

    y conventions: softmax -> int class indices (n,); logistic -> 0/1 (n,)
    (or (n, n_out)); linear -> floats (n,) or (n, n_out).
    """

    def __init__(self, n_in: int, hidden: list[int], n_out: int,
                 activations: list[tuple[str, dict]], init: tuple[str, dict], output: str, *,
                 dropout_input: float = 0.0, dropout_hidden: float = 0.0,
                 batch_norm: bool = False, rng: np.random.Generator, dtype=np.float32,
                 class_weights=None) -> None:
        hidden = [int(h) for h in hidden]
        if len(activations) != len(hidden):
            raise ValueError(f"need one activation per hidden layer: {len(hidden)} layers, "
                             f"{len(activations)} activations")
        if min(hidden + [n_in, n_out]) < 1:
            raise ValueError(f"layer sizes must be >= 1: n_in={n_in}, hidden={hidden}, n_out={n_out}")
        for name, p in (("dropout_input", dropout_input), ("dropout_hidden", dropout_hidden)):
            if not 0.0 <= p < 1.0:
                raise ValueError(f"{name} must be in [0, 1), got {p}")
        if np.dtype(dtype) not in (np.float32, np.float64):
            raise ValueError(f"dtype must be float32 or float64, got {dtype}")
        self.n_in, self.hidden, self.n_out = n_in, hidden, n_out
        self.dtype = dtype = np.dtype(dtype)
        self.head = make_output(output)
        if class_weights is not None:  # the training objective weights each row by its class's weight
            if output == "softmax" and len(class_weights) != n_out:
                raise ValueError(f"need one class weight per class: {n_out} classes, {len(class_weights)} weights")
            self.head.set_class_weights(class_weights)
        self.output = output
        self.dropout_rng = _spawn(rng)
        init_name, init_params = init
        init_params = dict(init_params or {})

        def init_for(activation: str, pieces: int = 1):
            return partial(_init, init_name, init_params, activation, dtype, pieces)

        layers: list[Layer] = []
        if dropout_input > 0:
            layers.append(Dropout("input.dropout", dropout_input, n_in, self.dropout_rng,
                                  dtype=dtype, need_input_grad=False))
        self.activation_layers: list[ActivationLayer] = []
        self.batch_norms: list[BatchNorm] = []
        fan_in = n_in
        for i, (units, (act_name, act_params)) in enumerate(zip(hidden, activations), start=1):
            act = make_activation(act_name, act_params)
            name = f"layer{i}"
            layers.append(Dense(name, fan_in, units * act.pieces, bias=not batch_norm,
                                need_input_grad=i > 1, init=init_for(act_name, act.pieces), dtype=dtype))
            if batch_norm:
                bn = BatchNorm(name, units * act.pieces, dtype=dtype)
                layers.append(bn)
                self.batch_norms.append(bn)
            al = ActivationLayer(name, act, units, dtype=dtype)
            layers.append(al)
            self.activation_layers.append(al)
            if dropout_hidden > 0:
                layers.append(Dropout(name + ".dropout", dropout_hidden, units, self.dropout_rng,
                                      dtype=dtype))
            fan_in = units
        # the output function is the loss's link, not a hidden activation: no logistic gain for a
        # binary head (its weights were 4x a softmax head's, unlike what the docs and other tools do)
        layers.append(Dense("output", fan_in, n_out, bias=True, need_input_grad=bool(hidden),
                            init=init_for(""), dtype=dtype))
        self.layers = layers
        self._reversed_layers = layers[::-1]
        self._allocate()
        for layer in layers:
            layer.reset(rng)

    def _allocate(self) -> None:
        """Make every parameter (and gradient) a view of one flat buffer."""
        specs = [(layer, name, shape, reg) for layer in self.layers
                 for name, shape, reg in layer.param_shapes()]
        sizes = [math.prod(shape) for _, _, shape, _ in specs]
        self._flat_params = np.zeros(sum(sizes), dtype=self.dtype)
        self._flat_grads = np.zeros(sum(sizes), dtype=self.dtype)
        self.params, self.grads, self.param_names, self.regularised = [], [], [], []
        per_layer: dict[int, tuple[list, list]] = {}
        offset = 0
        for (layer, name, shape, reg), size in zip(specs, sizes):
            p = self._flat_params[offset:offset + size].reshape(shape)
            g = self._flat_grads[offset:offset + size].reshape(shape)
            offset += size
            self.params.append(p)
            self.grads.append(g)
            self.param_names.append(f"{layer.name}.{name}")
            self.regularised.append(reg)
            ps, gs = per_layer.setdefault(id(layer), ([], []))
            ps.append(p)
            gs.append(g)
        for layer in self.layers:
            if id(layer) in per_layer:
                layer.bind(*per_layer[id(layer)])
        self._weights = [(p, g) for p, g, reg in zip(self.params, self.grads, self.regularised)
                         if reg]
        self._scratch = np.empty(max(p.size for p, _ in self._weights), dtype=self.dtype)

    # ----------------------------------------------------------------- core passes
    def _as_input(self, X: np.ndarray) -> np.ndarray:
        X = np.asarray(X, dtype=self.dtype)  # no copy when already in the network dtype
        if X.ndim != 2 or X.shape[1] != self.n_in:
            raise ValueError(f"X must have shape (n, {self.n_in}), got {X.shape}")
        return X

    def _forward(self, x: np.ndarray, training: bool) -> np.ndarray:
        """Logits of the output layer (a work buffer, overwritten by the next pass)."""
        for layer in self.layers:
            x = layer.forward(x, training)
        return x

    def _penalty(self, l1: float, l2: float, grads: bool) -> float:
        """(l2/2)||W||^2 + l1 ||W||_1 over weight matrices; adds its gradient to dW if asked."""
        total = 0.0
        for W, dW in self._weights:
            w = W.ravel()
            s = self._scratch[:w.size]
            if l2:
                total += 0.5 * l2 * float(np.dot(w, w))
                if grads:
                    np.multiply(w, l2, out=s)
                    dW += s.reshape(dW.shape)
            if l1:
                total += l1 * float(np.abs(w, out=s).sum())
                if grads:
                    np.sign(w, out=s)
                    s *= l1
                    dW += s.reshape(dW.shape)
        return total

    def _loss_and_grad(self, x: np.ndarray, y: np.ndarray, l1: float, l2: float) -> float:
        loss, g = self.head.loss_and_delta(self._forward(x, True), y)
        for layer in self._reversed_layers:
            g = layer.backward(g)
            if g is None:
                break
        if l1 or l2:
            loss += self._penalty(l1, l2, grads=True)
        return loss

    # ----------------------------------------------------------------- public API
    def loss_and_grad(self, X: np.ndarray, y: np.ndarray, l1: float = 0.0, l2: float = 0.0) -> float:
        """Training-mode objective = mean loss + penalty; fills ``self.grads`` in place."""
        X = self._as_input(X)
        return self._loss_and_grad(X, self.head.prepare_targets(y, self.n_out, self.dtype), l1, l2)

    def objective(self, X: np.ndarray, y: np.ndarray, l1: float = 0.0, l2: float = 0.0,
                  training: bool = True) -> float:
        """The objective of loss_and_grad without the backward pass (for gradient checks)."""
        X = self._as_input(X)
        y = self.head.prepare_targets(y, self.n_out, self.dtype)
        loss = self.head.training_loss(self._forward(X, training), y)
        return loss + (self._penalty(l1, l2, grads=False) if (l1 or l2) else 0.0)

    def forward(self, X: np.ndarray, training: bool = False) -> np.ndarray:
        """Output activations: probabilities (n, K) for softmax, P(y=1) (n,) for logistic, predictions for linear."""
        if not training:
            return self.predict(X)
        X = self._as_input(X)
        return self.head.to_user(self.head.output(self._forward(X, True)).copy())

    def predict(self, X: np.ndarray) -> np.ndarray:
        """forward(X, training=False), in chunks of INFERENCE_CHUNK rows."""
        X = self._as_input(X)
        out = np.empty((X.shape[0], self.n_out), dtype=self.dtype)
        for s in range(0, X.shape[0], INFERENCE_CHUNK):
            out[s:s + INFERENCE_CHUNK] = self.head.output(
                self._forward(X[s:s + INFERENCE_CHUNK], False))
        return self.head.to_user(out)

    def evaluate(self, X: np.ndarray, y: np.ndarray) -> float:
        """Mean data loss (no penalty) in inference mode, in chunks."""
        return self.predict_and_loss(X, y)[1]

    def predict_and_loss(self, X: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, float]:
        """predict(X) and the mean data loss from the same pass, computed from the logits as
        training computes it: a confident mistake costs its full log-sum-exp - z_y, which
        probabilities rounded to 0 could no longer tell. The loss is taken in float64: in
        float32 a row's loss below ~6e-8 rounds to 0, and a well-fitted network's mean loss
        to a multiple of 1.2e-7 / n."""
        X = self._as_input(X)
        y = self.head.prepare_targets(y, self.n_out, np.float64)
        out = np.empty((X.shape[0], self.n_out), dtype=self.dtype)
        total = 0.0
        for s in range(0, X.shape[0], INFERENCE_CHUNK):
            z = self._forward(X[s:s + INFERENCE_CHUNK], False)
            total += self.head.forward_loss(z.astype(np.float64), y[s:s + INFERENCE_CHUNK]) * z.shape[0]
            out[s:s + INFERENCE_CHUNK] = self.head.output(z)
        return self.head.to_user(out), total / X.shape[0]

    def train_epoch(self, X: np.ndarray, y: np.ndarray, *, batch_size: int, optimizer, lr: float,
                    rng: np.random.Generator, l1: float = 0.0, l2: float = 0.0) -> EpochStats:
        """One pass of mini-batch training in the order of a shuffled index.

        Pass X in the network dtype to avoid a one-off conversion copy. With batch norm, a
        last batch of a single row is left out (as drop_last would): its batch variance is 0,
        so it would train on nothing but beta and pull the running variance towards 0.
        """
        X = self._as_input(X)
        y = self.head.prepare_targets(y, self.n_out, self.dtype)
        n = X.shape[0]
        bs = max(1, min(int(batch_size), n))
        xb, yb = self._batch_buffers(bs, X, y)
        order = rng.permutation(n)
        grad_flats = [dW.reshape(-1) for _, dW in self._weights]  # views, for the norms
        norms = [0.0] * len(grad_flats)
        take_x, take_y, dot, sqrt, isfinite, inf = X.take, y.take, np.dot, math.sqrt, math.isfinite, math.inf
        step, loss_and_grad, grads = optimizer.step, self._loss_and_grad, self.grads
        total, batches, finite, loss, used = 0.0, 0, True, 0.0, 0
        for start in range(0, n, bs):
            rows = order[start:start + bs]
            m = rows.shape[0]
            if m == 1 and self.batch_norms and start:
                break
            xv, yv = (xb, yb) if m == bs else (xb[:m], yb[:m])
            take_x(rows, 0, xv, "clip")  # the methods: np.take's wrapper costs a microsecond a call
            take_y(rows, 0, yv, "clip")
            loss = loss_and_grad(xv, yv, l1, l2)
            if not isfinite(loss):
                finite = False
                break
            total += loss * m
            used += m
            batches += 1
            for j, d in enumerate(grad_flats):
                squares = float(dot(d, d))
                if squares == inf:  # the sum of squares overflowed the dtype, perhaps not the gradient
                    squares = float(dot(d.astype(np.float64), d.astype(np.float64)))
                norms[j] += sqrt(squares)
            step(grads, lr)
        mean_loss = loss if not finite else total / used  # the non-finite loss when stopped
        if finite and not np.isfinite(self._flat_params).all():
            finite, mean_loss = False, float("nan")
        return EpochStats(loss=mean_loss, grad_norms=[v / max(batches, 1) for v in norms],
                          finite=finite, optimizer_overflow=finite and not optimizer.state_finite())

    def _batch_buffers(self, bs: int, X: np.ndarray, y: np.ndarray):
        key = (bs, y.dtype, y.shape[1:])
        if getattr(self, "_batch_key", None) != key:
            self._batch_key = key
            self._batch = (np.empty((bs, self.n_in), dtype=self.dtype),
                           np.empty((bs, *y.shape[1:]), dtype=y.dtype))
        return self._batch

    def kink_pattern(self) -> bytes:
        """Which piece of each piecewise activation every unit and row fell on in the last forward
        pass: two passes with the same pattern saw no kink between them."""
        parts = [layer.regions() for layer in self.activation_layers]
        return b"".join(np.ascontiguousarray(r).tobytes() for r in parts if r is not None)

    def share_of_copied_units(self) -> float:
        """The share of hidden units (maxout pieces) whose incoming weights and bias equal another
        unit's of their layer exactly: a zero (symmetric) initialisation keeps every unit a copy
        of the others, so a layer computes one feature however wide it is."""
        copies = units = 0
        for layer in self.layers:
            if isinstance(layer, Dense) and layer.name != "output":
                columns = (layer.W if layer.b is None else np.vstack([layer.W, layer.b])).T
                units += columns.shape[0]
                copies += columns.shape[0] - np.unique(columns, axis=0).shape[0]
        return copies / units if units else 0.0

    def share_of_weights_below(self, size: float) -> float:
        """The share of weight-matrix entries (biases and batch-norm parameters aside) with |w| < size."""
        small = sum(int(np.count_nonzero(np.abs(W) < size)) for W, _ in self._weights)
        return small / max(1, sum(self.weight_sizes))

    @property
    def weight_sizes(self) -> list[int]:
        """Entries of each weight matrix, input side first (the grad_norm_i layers)."""
        return [W.size for W, _ in self._weights]

    def unit_stats(self, X: np.ndarray) -> list[dict]:
        """Per hidden layer (inference mode): saturated fraction and dead-unit fraction, or None."""
        X = self._as_input(X)
        sat = [0 for _ in self.activation_layers]
        alive = [np.zeros(al.units, dtype=bool) for al in self.activation_layers]
        for s in range(0, X.shape[0], INFERENCE_CHUNK):
            self._forward(X[s:s + INFERENCE_CHUNK], False)
            for i, al in enumerate(self.activation_layers):
                if al.act.saturates:
                    sat[i] += int(np.count_nonzero(al.act.saturated(al.out)))
                if al.act.can_die:
                    alive[i] |= (al.out > 0).any(axis=0)
        stats = []
        for i, al in enumerate(self.activation_layers):
            stats.append({
                "saturated": sat[i] / (X.shape[0] * al.units) if al.act.saturates else None,
                "dead": float(1.0 - alive[i].mean()) if al.act.can_die else None,
            })
        return stats

    def get_state(self) -> dict[str, np.ndarray]:
        """Copies of every parameter and the batch-norm running statistics."""
        state = {name: p.copy() for name, p in zip(self.param_names, self.params)}
        for bn in self.batch_norms:
            state[f"{bn.name}.running_mean"] = bn.running_mean.copy()
            state[f"{bn.name}.running_var"] = bn.running_var.copy()
        return state

    def set_state(self, state: dict[str, np.ndarray]) -> None:
        """Restore get_state() output in place (arrays keep their identity)."""
        targets = dict(zip(self.param_names, self.params))
        for bn in self.batch_norms:
            targets[f"{bn.name}.running_mean"] = bn.running_mean
            targets[f"{bn.name}.running_var"] = bn.running_var
        missing = sorted(set(targets) - set(state))
        unknown = sorted(set(state) - set(targets))
        if missing or unknown:
            raise ValueError(f"state does not match the network: missing {missing}, unknown {unknown}")
        for name, target in targets.items():
            value = np.asarray(state[name])
            if value.shape != target.shape:
                raise ValueError(f"{name}: shape {value.shape} != {target.shape}")
            np.copyto(target, value, casting="same_kind")


def _init(name, params, activation, dtype, pieces, rng, fan_in, fan_out):
    """Weights of a dense layer; a maxout layer gets ``pieces`` independent (fan_in, units)
    matrices, interleaved unit-major, each scaled for its own fan-out."""
    if pieces == 1:
        return init_weights(name, params, rng, fan_in, fan_out, activation=activation, dtype=dtype)
    units = fan_out // pieces
    mats = [init_weights(name, params, rng, fan_in, units, activation=activation, dtype=dtype)
            for _ in range(pieces)]
    return np.stack(mats, axis=2).reshape(fan_in, fan_out)
