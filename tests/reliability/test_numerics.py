"""Numerically hostile runs end `ok` or `diverged` cleanly, without floods of RuntimeWarnings."""

import math
import warnings

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from nnexp.api import run_experiment
from nnexp.cli import app


def quiet_run(spec):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = run_experiment(spec, results_dir=None)
    runtime = [w for w in caught if issubclass(w.category, RuntimeWarning)]
    assert not runtime, [str(w.message) for w in runtime]
    return result


@pytest.mark.parametrize("activation", ["relu", "identity", "logistic", "tanh", "softplus", "elu", "gelu", "swish"])
def test_exploding_learning_rate_diverges_cleanly(activation):
    result = quiet_run({"data": {"dataset": "iris"}, "model": {"hidden": [16, 16], "activation": activation},
                        "optimizer": {"name": "sgd", "lr": 1e6}, "train": {"epochs": 30}})
    if result.status == "diverged":
        assert result.metrics["diverged_epoch"] >= 1 and result.metrics["val_loss"] is None
    else:  # saturating units can keep a huge step finite: then every number must be finite
        assert all(math.isfinite(v) for k, v in result.metrics.items() if k.startswith(("train_", "val_", "test_")))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_huge_inputs_without_normalisation(tmp_path, dtype):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 3)) * np.array([1e30, 1.0, 1e-30])
    y = (X[:, 1] > 0).astype(int)
    path = tmp_path / "huge.npz"
    np.savez(path, X=X, y=y)
    result = quiet_run({"data": {"dataset": str(path), "normalize": "none"}, "model": {"activation": "logistic"},
                        "train": {"epochs": 3, "dtype": dtype}})
    assert result.status in ("ok", "diverged")
    if result.status == "ok":
        assert math.isfinite(result.metrics["val_loss"])


def test_zero_and_constant_features_are_dropped_and_training_works(tmp_path):
    rng = np.random.default_rng(1)
    frame = pd.DataFrame({"zero": np.zeros(150), "const": np.full(150, 7.5), "x": rng.normal(size=150)})
    frame["y"] = (frame["x"] > 0).astype(int)
    frame.to_csv(tmp_path / "t.csv", index=False)
    with pytest.warns(UserWarning, match="zero.*const|const.*zero"):
        result = run_experiment({"data": {"dataset": str(tmp_path / "t.csv")}, "train": {"epochs": 20},
                                 "optimizer": {"name": "adam", "lr": 0.05}}, results_dir=None)
    assert result.prepared.X_train.shape[1] == 1
    assert result.metrics["test_accuracy"] > 0.9


def test_only_constant_features_with_minmax_is_a_clear_error(tmp_path):
    frame = pd.DataFrame({"a": np.ones(60), "y": np.arange(60) % 2})
    frame.to_csv(tmp_path / "c.csv", index=False)
    path = tmp_path / "spec.yaml"
    path.write_text(f"data: {{dataset: {tmp_path / 'c.csv'}, normalize: minmax}}\ntrain: {{epochs: 1}}\n")
    result = CliRunner().invoke(app, ["run", str(path), "--results-dir", str(tmp_path / "out"), "--quiet"])
    assert "Traceback" not in result.output
    assert result.exit_code == 2
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "c.csv" in errors[0] and "constant" in errors[0]


def test_extreme_logits_keep_the_loss_finite():
    """Large but finite weights push the softmax to 0/1; the log-sum-exp form keeps the loss finite."""
    result = quiet_run({"data": {"dataset": "digits", "normalize": "none"},
                        "model": {"hidden": [32], "activation": "identity", "init": {"name": "gaussian", "std": 5.0}},
                        "optimizer": {"name": "sgd", "lr": 1e-4}, "train": {"epochs": 2}})
    assert result.status == "ok" and math.isfinite(result.metrics["val_loss"]) and result.metrics["val_loss"] > 1


def test_cli_divergence_prints_no_runtime_warnings(tmp_path):
    path = tmp_path / "spec.yaml"
    path.write_text("data: {dataset: wine}\noptimizer: {name: sgd, lr: 1.0e+8}\ntrain: {epochs: 10}\n")
    result = CliRunner().invoke(app, ["run", str(path), "--results-dir", str(tmp_path / "out"), "--quiet"])
    assert result.exit_code == 1
    assert "RuntimeWarning" not in result.output and "overflow" not in result.output
    assert len(result.stderr.strip().splitlines()) == 1
