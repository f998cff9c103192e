"""The engine against PyTorch: the same network, initial weights, batch order and dropout masks,
trained in float64 by torch.optim, must end with the same weights and losses (to ~1e-12).

Skipped without PyTorch (it is not a test dependency: `pip install torch==2.13.0`, the CPU
build on this machine's disk, runs it). The conventions PyTorch does not share are set to
match here and listed in README.md ("Compared with PyTorch and scikit-learn").
"""

import numpy as np
import pytest

import nnexp
from nnexp.build import build_network, output_kind
from nnexp.engine import make_schedule

torch = pytest.importorskip("torch")
F = torch.nn.functional

ACTIVATIONS = {"relu": F.relu, "tanh": torch.tanh, "logistic": torch.sigmoid, "elu": F.elu, "softplus": F.softplus,
               "gelu": lambda z: F.gelu(z, approximate="tanh"), "swish": F.silu, "hard_tanh": F.hardtanh,
               "leaky_relu": lambda z: F.leaky_relu(z, 0.01)}


def torch_optimizer(spec, weights, others):
    """torch.optim's counterpart of the spec's optimizer (L2 is in the loss, as nnexp has it)."""
    name, lr, hp = spec.optimizer.name, spec.optimizer.lr, spec.optimizer.params()
    groups = [{"params": weights}, {"params": others}]
    if name in ("sgd", "momentum", "nesterov"):
        momentum = hp.get("momentum", 0.0) if name != "sgd" else 0.0
        return torch.optim.SGD(groups, lr=lr, momentum=momentum, nesterov=name == "nesterov")
    if name == "adam":
        return torch.optim.Adam(groups, lr=lr, betas=(hp["beta1"], hp["beta2"]), eps=hp["eps"])
    if name == "rmsprop":
        return torch.optim.RMSprop(groups, lr=lr, alpha=hp["rho"], eps=hp["eps"])
    if name == "adagrad":
        return torch.optim.Adagrad(groups, lr=lr, eps=hp["eps"])
    return torch.optim.Adadelta(groups, lr=lr, rho=hp["rho"], eps=hp["eps"])


def replay_in_torch(result):
    """Train the run's network again in PyTorch from nnexp's initial state; (torch's layers, epoch losses)."""
    spec, data = result.spec, result.prepared
    init_seed, shuffle_seed = np.random.SeedSequence(spec.seed).spawn(2)
    start = build_network(spec.model, data.X_train.shape[1], data.task, data.n_outputs,
                          np.random.default_rng(init_seed), "float64")
    state, masks = start.get_state(), start.dropout_rng  # the masks' stream, not yet drawn from
    p_input, p_hidden = spec.model.dropout_rates()
    activation = ACTIVATIONS[spec.model.layer_activations()[0].name]
    kind, n_out = output_kind(data.task, data.n_outputs)

    def tensor(array):
        return torch.from_numpy(np.ascontiguousarray(array, dtype=np.float64))

    layers, norms = [], []
    for i, _ in enumerate(spec.model.hidden, start=1):
        layers.append([tensor(state[f"layer{i}.W"]).requires_grad_(),
                       None if spec.model.batch_norm else tensor(state[f"layer{i}.b"]).requires_grad_()])
        if spec.model.batch_norm:
            norms.append(torch.nn.BatchNorm1d(state[f"layer{i}.W"].shape[1], eps=1e-5, momentum=0.1).double())
    output = [tensor(state["output.W"]).requires_grad_(), tensor(state["output.b"]).requires_grad_()]
    weights = [W for W, _ in layers] + [output[0]]
    others = [b for _, b in layers if b is not None] + [output[1]] + [p for n in norms for p in n.parameters()]

    def dropout(x, p):
        if not p:
            return x
        keep = torch.from_numpy((masks.random(size=tuple(x.shape)) < 1 - p) / (1 - p))
        return x * keep

    def forward(x, training):
        for norm in norms:
            norm.train(training)
        x = dropout(x, p_input) if training else x
        for i, (W, b) in enumerate(layers):
            z = x @ W + (b if b is not None else 0)
            z = norms[i](z) if norms else z
            x = activation(z)
            x = dropout(x, p_hidden) if training else x
        return x @ output[0] + output[1]

    y = torch.from_numpy(data.y_train)
    if kind == "softmax":
        loss_of = lambda z, t: F.cross_entropy(z, t)  # noqa: E731
    elif kind == "logistic":
        loss_of = lambda z, t: F.binary_cross_entropy_with_logits(z[:, 0], t.double())  # noqa: E731
    else:
        loss_of = lambda z, t: 0.5 * F.mse_loss(z[:, 0], t.double())  # noqa: E731
    optimizer = torch_optimizer(spec, weights, others)
    schedule = make_schedule(spec.optimizer.schedule.name, spec.optimizer.lr, spec.train.epochs,
                             **spec.optimizer.schedule.params())
    shuffle, X = np.random.default_rng(shuffle_seed), tensor(data.X_train)
    n, batch, losses = len(X), min(spec.train.batch_size, len(X)), []
    for epoch in range(spec.train.epochs):
        for group in optimizer.param_groups:
            group["lr"] = schedule(epoch)
        order, total = shuffle.permutation(n), 0.0
        for s in range(0, n, batch):
            rows = torch.from_numpy(order[s:s + batch])
            optimizer.zero_grad()
            objective = loss_of(forward(X[rows], True), y[rows])
            objective = objective + 0.5 * spec.train.l2 * sum((W ** 2).sum() for W in weights)
            objective = objective + spec.train.l1 * sum(W.abs().sum() for W in weights)
            objective.backward()
            optimizer.step()
            total += float(objective.detach()) * len(rows)
        losses.append(total / n)
    return weights, losses


def spec_of(dataset, optimizer, activation="tanh", **train_or_model):
    model = {k: train_or_model.pop(k) for k in ("hidden", "dropout", "batch_norm", "init") if k in train_or_model}
    return {"data": {"dataset": dataset}, "model": {"hidden": [16], "activation": activation, **model},
            "optimizer": optimizer, "train": {"epochs": 3, "batch_size": 16, "dtype": "float64", **train_or_model}}


@pytest.mark.parametrize("spec", [
    spec_of("iris", {"name": "sgd", "lr": 0.1}),
    spec_of("iris", {"name": "momentum", "lr": 0.05}, "relu", init="he", l2=1e-3),
    spec_of("wine", {"name": "nesterov", "lr": 0.05}, "logistic"),
    spec_of("wine", {"name": "adam", "lr": 0.01}, "relu", l2=1e-3, dropout={"input": 0.1, "hidden": 0.3}),
    spec_of("breast_cancer", {"name": "rmsprop", "lr": 0.001}),
    spec_of("breast_cancer", {"name": "adagrad", "lr": 0.05}, "relu"),
    spec_of("diabetes", {"name": "adadelta"}, "relu"),
    spec_of("diabetes", {"name": "adam", "lr": 0.01, "schedule": {"name": "cosine"}}, "gelu", l1=1e-3),
    spec_of("iris", {"name": "adam", "lr": 0.01}, "elu", hidden=[12, 8]),
    spec_of("wine", {"name": "momentum", "lr": 0.05}, "swish", hidden=[16, 8], batch_norm=True),
], ids=lambda spec: f"{spec['data']['dataset']}-{spec['optimizer']['name']}-{spec['model']['activation']}")
def test_training_matches_pytorch_step_for_step(spec):
    result = nnexp.run_experiment(spec, results_dir=None)
    weights, losses = replay_in_torch(result)
    state = result.network.get_state()
    names = [f"layer{i}.W" for i in range(1, len(spec["model"]["hidden"]) + 1)] + ["output.W"]
    for name, W in zip(names, weights):
        np.testing.assert_allclose(W.detach().numpy(), state[name], rtol=0, atol=1e-12, err_msg=name)
    np.testing.assert_allclose(losses, [row["train_loss"] for row in result.history], rtol=1e-12)
