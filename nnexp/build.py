"""Builders: the only place where spec objects become engine objects.

The engine takes plain arguments; these functions read an ExperimentSpec's
sections and pass their values on, so engine tests never need a spec.
"""

from __future__ import annotations

import numpy as np

from nnexp.engine import Network, make_optimizer, make_schedule
from nnexp.spec import ModelSpec, TrainSpec


def output_kind(task: str, n_outputs: int) -> tuple[str, int]:
    """Output function and width: softmax for > 2 classes, one logistic unit for 2, linear for regression."""
    if task == "regression":
        return "linear", n_outputs
    return ("logistic", 1) if n_outputs == 2 else ("softmax", n_outputs)


def build_network(model: ModelSpec, n_in: int, task: str, n_outputs: int, rng: np.random.Generator,
                  dtype: str = "float32", class_weights=None) -> Network:
    """The network a model spec describes, for `n_in` inputs and the task's output (its training
    loss weighted per class by `class_weights`, if given)."""
    output, n_out = output_kind(task, n_outputs)
    drop_in, drop_hidden = model.dropout_rates()
    return Network(
        n_in, list(model.hidden), n_out,
        activations=[(a.name, a.params()) for a in model.layer_activations()],
        init=(model.init.name, model.init.params()),
        output=output,
        dropout_input=drop_in, dropout_hidden=drop_hidden,
        batch_norm=model.batch_norm, rng=rng, dtype=np.dtype(dtype), class_weights=class_weights,
    )


def build_optimizer(optimizer, network: Network, train: TrainSpec):
    """The optimizer over the network's parameters, and its learning-rate schedule."""
    hyper = {k: v for k, v in optimizer.params().items() if k not in ("lr", "schedule")}
    schedule = optimizer.schedule
    return (
        make_optimizer(optimizer.name, network.params, **hyper),
        make_schedule(schedule.name, optimizer.lr, train.epochs, **schedule.params()),
    )
