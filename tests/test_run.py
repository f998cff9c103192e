"""`nnexp run` end to end: learning figures, result files, determinism, predict, bad data."""

import json
import math
import os
import shutil
import subprocess

import numpy as np
import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from nnexp.api import predict, run_experiment
from nnexp.cli import app

runner = CliRunner()


def run_cli(*args):
    result = runner.invoke(app, [str(a) for a in args])
    assert "Traceback" not in result.output, result.output
    return result


def test_digits_reaches_96_percent():
    """The quickstart's network. Digits' test split has 360 rows, so one split's accuracy moves by
    about a point from seed to seed (0.958-0.981 over seeds 0-5): the test averages three seeds."""
    spec = {"data": {"dataset": "digits", "normalize": "zscore"},
            "model": {"hidden": [100], "activation": "relu", "init": "he"},
            "optimizer": {"name": "adam", "lr": 0.001}, "train": {"epochs": 30, "batch_size": 32}}
    results = [run_experiment({**spec, "seed": seed}, results_dir=None) for seed in range(3)]
    assert all(r.status == "ok" for r in results)
    assert np.mean([r.metrics["test_accuracy"] for r in results]) >= 0.96


@pytest.mark.parametrize("dataset, hidden", [("digits", [8]), ("breast_cancer", [2])])
def test_reported_classification_metrics_equal_scikit_learns(dataset, hidden):
    """The figures in metrics.json, re-derived from the model's own test predictions by scikit-learn."""
    from sklearn.metrics import accuracy_score, average_precision_score, balanced_accuracy_score, f1_score, roc_auc_score
    from sklearn.preprocessing import label_binarize

    result = run_experiment({"data": {"dataset": dataset}, "model": {"hidden": hidden},
                             "optimizer": {"name": "sgd", "lr": 0.01}, "train": {"epochs": 2}}, results_dir=None)
    data = result.prepared
    output = result.network.predict(data.X_test)
    pred = output.argmax(axis=1) if output.ndim == 2 else (output > 0.5).astype(int)
    assert result.metrics["test_accuracy"] == pytest.approx(accuracy_score(data.y_test, pred), abs=1e-12)
    assert result.metrics["test_f1"] == pytest.approx(f1_score(data.y_test, pred, average="macro", zero_division=0), abs=1e-12)
    assert result.metrics["test_balanced_accuracy"] == pytest.approx(balanced_accuracy_score(data.y_test, pred), abs=1e-12)
    auc = roc_auc_score(data.y_test, output, **({"multi_class": "ovr"} if output.ndim == 2 else {}))
    assert result.metrics["test_auc"] == pytest.approx(auc, abs=1e-12)
    ap = (average_precision_score(data.y_test == 1, output) if output.ndim == 1 else
          average_precision_score(label_binarize(data.y_test, classes=range(output.shape[1])), output, average="macro"))
    assert result.metrics["test_ap"] == pytest.approx(ap, abs=1e-12)
    assert result.metrics["test_accuracy"] < 1.0  # an undertrained net: the predictions carry real mistakes


def test_an_undefined_auc_is_null_in_metrics_json_and_empty_in_history(tmp_path, monkeypatch):
    """Splits always hold every class, but an AUC that is NaN (one class in y) must not break the files:
    null in metrics.json (valid JSON), an empty history cell, and early stopping on it just never improves."""
    import math

    import nnexp.train
    from nnexp.metrics import classification_metrics

    def no_auc(*args, **kwargs):
        return {**classification_metrics(*args, **kwargs), "auc": math.nan, "ap": math.nan}
    monkeypatch.setattr(nnexp.train, "classification_metrics", no_auc)
    spec = {"name": "nan-auc", "data": {"dataset": "iris"}, "model": {"hidden": [4]},
            "train": {"epochs": 4, "early_stopping": {"monitor": "val_auc", "patience": 2}}}
    result = run_experiment(spec, results_dir=tmp_path)
    assert result.status == "ok" and result.metrics["epochs_run"] == 2

    def refuse(constant):
        raise ValueError(f"{constant} in metrics.json")
    saved = json.loads((tmp_path / "nan-auc" / "metrics.json").read_text(), parse_constant=refuse)
    assert saved["val_auc"] is None and saved["test_auc"] is None and 0 <= saved["val_balanced_accuracy"] <= 1
    assert saved["val_ap"] is None and saved["test_ap"] is None
    history = pd.read_csv(tmp_path / "nan-auc" / "history.csv")
    assert history["val_auc"].isna().all() and history["val_ap"].isna().all() and history["val_balanced_accuracy"].notna().all()


def test_iris_reaches_93_percent():
    """Iris's test split has 30 rows, so one split is noisy: average over five seeds (splits)."""
    accuracies = [
        run_experiment({"seed": seed, "data": {"dataset": "iris"}, "model": {"hidden": [16], "activation": "tanh", "init": "xavier"},
                        "optimizer": {"name": "adam", "lr": 0.01}, "train": {"epochs": 50, "batch_size": 16}},
                       results_dir=None).metrics["test_accuracy"]
        for seed in range(5)
    ]
    assert np.mean(accuracies) >= 0.93


def test_diabetes_beats_the_mean_predictor():
    result = run_experiment({"data": {"dataset": "diabetes"}, "model": {"hidden": [32], "activation": "relu"},
                             "optimizer": {"name": "adam", "lr": 0.003}, "train": {"epochs": 60, "batch_size": 32, "l2": 0.001,
                                                                                   "early_stopping": {"patience": 10}}},
                            results_dir=None)
    assert result.prepared.task == "regression"
    assert result.metrics["test_r2"] > 0.3  # a mean predictor has r2 <= 0 on held-out rows
    y_test = result.prepared.preprocessor.inverse_target(result.prepared.y_test)
    assert result.metrics["test_rmse"] < np.std(y_test)


@pytest.mark.parametrize("dataset, hidden", [("xor", [8]), ("spirals", [64, 64])])
def test_small_nets_learn_xor_and_spirals(dataset, hidden):
    result = run_experiment({"data": {"dataset": dataset, "n_samples": 600}, "model": {"hidden": hidden, "activation": "tanh", "init": "xavier"},
                             "optimizer": {"name": "adam", "lr": 0.01}, "train": {"epochs": 150, "batch_size": 32}},
                            results_dir=None)
    assert result.metrics["test_accuracy"] >= 0.95


def test_result_files_and_determinism(tmp_path):
    spec = {"name": "det", "data": {"dataset": "wine"}, "model": {"hidden": [8], "dropout": 0.1}, "train": {"epochs": 5}}
    first = run_experiment(spec, results_dir=tmp_path / "a")
    second = run_experiment(spec, results_dir=tmp_path / "b")
    folder = tmp_path / "a" / "det"
    assert sorted(p.name for p in folder.iterdir()) == ["classes.csv", "history.csv", "learning_curves.png", "metrics.json",
                                                        "model.npz", "predictions.csv", "spec.yaml"]
    timing = {"seconds", "seconds_per_epoch"}
    a, b = (json.loads((tmp_path / d / "det" / "metrics.json").read_text()) for d in "ab")
    assert {k: v for k, v in a.items() if k not in timing} == {k: v for k, v in b.items() if k not in timing}
    assert first.metrics["val_loss"] == second.metrics["val_loss"]
    history = pd.read_csv(folder / "history.csv")
    assert list(history["epoch"]) == [1, 2, 3, 4, 5]
    assert {"train_loss", "val_loss", "val_accuracy", "val_f1", "val_balanced_accuracy", "val_auc", "val_ap", "lr", "grad_norm_1",
            "grad_norm_2", "dead_1"} <= set(history)
    resolved = yaml.safe_load((folder / "spec.yaml").read_text())
    assert resolved["optimizer"]["beta1"] == 0.9 and resolved["model"]["dropout"] == 0.1


def test_saturation_is_recorded_for_logistic_layers():
    result = run_experiment({"data": {"dataset": "iris"}, "model": {"hidden": [8, 8], "activation": "logistic"},
                             "train": {"epochs": 2}}, results_dir=None)
    row = result.history[-1]
    assert 0.0 <= row["saturated_1"] <= 1.0 and 0.0 <= row["saturated_2"] <= 1.0 and "dead_1" not in row


def test_different_seed_different_numbers():
    spec = {"data": {"dataset": "iris"}, "train": {"epochs": 3}}
    assert run_experiment(spec, results_dir=None).metrics["val_loss"] != run_experiment({**spec, "seed": 1}, results_dir=None).metrics["val_loss"]


def test_early_stopping_restores_best_weights():
    result = run_experiment({"data": {"dataset": "digits"}, "model": {"hidden": [64]}, "optimizer": {"name": "sgd", "lr": 0.5},
                             "train": {"epochs": 200, "early_stopping": {"patience": 3, "monitor": "val_loss"}}}, results_dir=None)
    history = pd.DataFrame(result.history)
    best = int(history["val_loss"].idxmin())
    assert result.metrics["best_epoch"] == history["epoch"][best]
    assert result.metrics["epochs_run"] == result.metrics["best_epoch"] + 3
    assert result.metrics["val_loss"] == pytest.approx(history["val_loss"][best], rel=1e-6)


def test_cross_validation_gives_k_folds():
    result = run_experiment({"data": {"dataset": "iris", "cv_folds": 3}, "train": {"epochs": 3}}, results_dir=None)
    assert len(result.folds) == 3
    fold_acc = [f["val_accuracy"] for f in result.folds]
    assert result.metrics["val_accuracy"] == pytest.approx(np.mean(fold_acc))
    assert result.metrics["val_accuracy_std"] == pytest.approx(np.std(fold_acc))  # ddof 0: GridSearchCV's std_test_score
    assert result.metrics["val_accuracy_std"] != pytest.approx(np.std(fold_acc, ddof=1))
    assert sorted({row["fold"] for row in result.history}) == [0, 1, 2]


def test_diverging_run_exits_1_and_still_writes_files(tmp_path, write_spec):
    path = write_spec({"name": "boom", "data": {"dataset": "iris"}, "optimizer": {"name": "sgd", "lr": 1e6},
                       "model": {"activation": "identity"}, "train": {"epochs": 20}})
    assert run_cli("run", path, "--results-dir", tmp_path / "out", "--quiet", "--set", "optimizer.lr=0.01").exit_code == 0
    assert (tmp_path / "out" / "boom" / "model.npz").exists()
    result = run_cli("run", path, "--results-dir", tmp_path / "out", "--quiet")
    assert result.exit_code == 1 and "diverged" in result.stderr
    metrics = json.loads((tmp_path / "out" / "boom" / "metrics.json").read_text())
    assert metrics["status"] == "diverged" and metrics["diverged_epoch"] >= 1
    # the good run's model (and its predictions) would otherwise sit beside the diverged run's spec and metrics
    assert not (tmp_path / "out" / "boom" / "model.npz").exists()
    assert not (tmp_path / "out" / "boom" / "predictions.csv").exists()
    rows = tmp_path / "rows.csv"
    rows.write_text("a,b,c,d\n1,2,3,4\n")
    predicted = run_cli("predict", tmp_path / "out" / "boom", rows)  # it said only "model.npz: file not found"
    assert predicted.exit_code == 2 and predicted.stderr == (
        f"error: {tmp_path / 'out' / 'boom' / 'model.npz'}: file not found: the run in {tmp_path / 'out' / 'boom'} "
        f"diverged at epoch {metrics['diverged_epoch']} ({metrics['diverged_because']}), so it saved no model (try a "
        "smaller optimizer.lr, and run it again)\n")
    assert metrics["diverged_because"] in ("non-finite loss", "the loss grew past 10,000 times its first epoch's")


def test_a_loss_that_explodes_while_still_finite_is_diverged(tmp_path, write_spec):
    """SGD at batch 1, lr 0.1 on digits: the loss grows ~1000-fold an epoch (103, 2.4e4, 9.2e6) long
    before float32 overflows; past 10,000 times its first epoch's it is diverged, not `ok`."""
    from nnexp.train import DIVERGENCE_GROWTH

    spec = {"data": {"dataset": "digits"}, "model": {"hidden": [100], "activation": "relu"},
            "optimizer": {"name": "sgd", "lr": 0.1}, "train": {"epochs": 6, "batch_size": 1}}
    result = run_experiment(spec, results_dir=None)
    losses = [row["train_loss"] for row in result.history]
    assert result.status == "diverged" and result.metrics["diverged_epoch"] == len(losses) < 6
    assert losses[-1] > DIVERGENCE_GROWTH * losses[0] and all(np.isfinite(losses))
    assert max(losses[:-1]) <= DIVERGENCE_GROWTH * losses[0]
    steady = run_experiment({**spec, "train": {"epochs": 6, "batch_size": 32}}, results_dir=None)
    assert steady.status == "ok"
    cli = run_cli("run", write_spec({**spec, "name": "boom"}), "--results-dir", tmp_path, "--quiet")
    assert cli.exit_code == 1 and cli.stderr.endswith(
        "training diverged (the loss grew past 10,000 times its first epoch's) at epoch 3; try a smaller "
        "optimizer.lr\n"), cli.stderr


def string_label_table(tmp_path):
    rng = np.random.default_rng(0)
    n = 240
    colour = rng.choice(["red", "green", "blue"], size=n)
    x1 = rng.normal(size=n)
    label = np.where((colour == "red") ^ (x1 > 0), "yes", "no")
    frame = pd.DataFrame({"x1": x1, "colour": colour, "noise": rng.normal(size=n), "answer": label})
    frame.to_csv(tmp_path / "table.csv", index=False)
    return frame


def test_csv_with_string_labels_trains_and_predicts_by_name(tmp_path, write_spec):
    frame = string_label_table(tmp_path)
    path = write_spec({"name": "tab", "data": {"dataset": "table.csv", "target": "answer"},
                       "model": {"hidden": [16], "activation": "tanh"}, "optimizer": {"name": "adam", "lr": 0.02},
                       "train": {"epochs": 80, "batch_size": 16}})
    assert run_cli("run", path, "--results-dir", tmp_path / "out", "--quiet").exit_code == 0
    model = tmp_path / "out" / "tab" / "model.npz"
    result = run_cli("predict", model, tmp_path / "table.csv", "--output", tmp_path / "pred.csv", "--proba")
    assert result.exit_code == 0, result.output
    pred = pd.read_csv(tmp_path / "pred.csv")
    assert set(pred["prediction"]) <= {"yes", "no"} and len(pred) == len(frame)
    assert {"proba_no", "proba_yes"} <= set(pred)
    assert np.allclose(pred["proba_no"] + pred["proba_yes"], 1.0, atol=1e-5)
    assert (pred["prediction"] == frame["answer"]).mean() > 0.9
    frame.drop(columns="answer").head(5).to_csv(tmp_path / "new.csv", index=False)
    result = run_cli("predict", model, tmp_path / "new.csv")
    assert result.exit_code == 0 and result.stdout.splitlines()[0] == "prediction"
    # the suffix of --output picks the format; any other suffix is refused before predicting
    assert run_cli("predict", model, tmp_path / "new.csv", "-o", tmp_path / "pred.parquet").exit_code == 0
    assert pd.read_parquet(tmp_path / "pred.parquet")["prediction"].tolist() == result.stdout.splitlines()[1:]
    refused = run_cli("predict", model, tmp_path / "new.csv", "-o", tmp_path / "pred.xlsx")
    assert refused.exit_code == 2 and not (tmp_path / "pred.xlsx").exists()
    assert f"error: --output: {tmp_path / 'pred.xlsx'}: write .csv or .parquet" in refused.stderr
    before = (tmp_path / "new.csv").read_text()  # written over its own data, it held the predictions alone
    over_input = run_cli("predict", model, tmp_path / "new.csv", "-o", tmp_path / "." / "new.csv")
    assert over_input.exit_code == 2 and "is the data file" in over_input.stderr
    assert (tmp_path / "new.csv").read_text() == before
    # a threshold on P(yes), the second class as --proba lists them
    low = run_cli("predict", model, tmp_path / "table.csv", "--threshold", "0.01")
    assert low.exit_code == 0 and set(low.stdout.splitlines()[1:]) <= {"yes", "no"}
    assert low.stdout.splitlines()[1:].count("yes") >= (pred["prediction"] == "yes").sum()
    bad = run_cli("predict", model, tmp_path / "new.csv", "--threshold", "0")
    assert bad.exit_code == 2 and bad.stderr.strip().splitlines() == [
        "error: --threshold: must be a probability above 0 and at most 1, got 0.0"]
    certain = run_cli("predict", model, tmp_path / "new.csv", "--threshold", "1")  # what a saturated network's may be
    assert certain.exit_code == 0


def test_changing_test_rows_does_not_change_the_scaler(tmp_path, write_spec):
    frame = string_label_table(tmp_path)
    spec = {"name": "leak", "data": {"dataset": "table.csv", "target": "answer"}, "train": {"epochs": 1}}
    a = run_experiment({**spec, "data": {**spec["data"], "dataset": str(tmp_path / "table.csv")}}, results_dir=tmp_path / "a")
    test_rows = a.prepared.X_test.shape[0]
    assert test_rows > 0
    # change only the rows that went to the test split: the fitted preprocessing must not move
    from nnexp.data.split import split_indices

    _, _, test_idx = split_indices(a.prepared.preprocessor.encode_labels(frame["answer"]), task="classification",
                                   class_names=["no", "yes"], val_fraction=0.2, test_fraction=0.2, seed=0, source="t")
    changed = frame.copy()
    changed.loc[test_idx, "x1"] = changed.loc[test_idx, "x1"] * 100 + 50
    changed.to_csv(tmp_path / "table.csv", index=False)
    b = run_experiment({**spec, "data": {**spec["data"], "dataset": str(tmp_path / "table.csv")}}, results_dir=tmp_path / "b")
    pa, pb = a.prepared.preprocessor.to_arrays(), b.prepared.preprocessor.to_arrays()
    assert pa.keys() == pb.keys()
    for key in pa:
        assert np.array_equal(pa[key], pb[key], equal_nan=pa[key].dtype.kind == "f"), key


def test_missing_values_exit_2_naming_the_column(tmp_path, write_spec):
    frame = string_label_table(tmp_path)
    frame.loc[[3, 7, 9], "noise"] = np.nan
    frame.to_csv(tmp_path / "table.csv", index=False)
    path = write_spec({"data": {"dataset": "table.csv", "target": "answer"}, "train": {"epochs": 1}})
    result = run_cli("run", path, "--results-dir", tmp_path / "out", "--quiet")
    assert result.exit_code == 2
    assert "noise" in result.stderr and "3" in result.stderr and len(result.stderr.strip().splitlines()) == 1
    imputed = run_cli("run", path, "--results-dir", tmp_path / "out", "--quiet", "--set", "data.impute=median")
    assert imputed.exit_code == 0, imputed.output


def test_a_monitored_metric_the_task_lacks_exits_2_naming_spec_and_field(tmp_path, write_spec):
    """A file's task is known only once it is read: the check runs then, before any epoch."""
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"a": rng.normal(size=60), "b": rng.normal(size=60)})
    frame["y"] = 2.5 * frame["a"] + rng.normal(0, 0.1, 60)
    frame.to_csv(tmp_path / "reg.csv", index=False)
    path = write_spec({"data": {"dataset": "reg.csv", "target": "y"},
                       "train": {"epochs": 2, "early_stopping": {"monitor": "val_accuracy"},
                                 "target": {"monitor": "val_f1", "value": 0.5}}})
    result = run_cli("run", path, "--results-dir", tmp_path / "out", "--quiet")
    assert result.exit_code == 2
    computed = "one of train_loss, val_loss, val_rmse, val_mae, val_r2"
    assert result.stderr.strip().splitlines() == [
        f"error: {path}: train.early_stopping.monitor: 'val_accuracy' is not computed for a regression task ({computed})",
        f"error: {path}: train.target.monitor: 'val_f1' is not computed for a regression task ({computed})"]
    assert not (tmp_path / "out").exists()


def test_gradcheck_command_passes_and_detects_a_wrong_gradient(write_spec, monkeypatch):
    path = write_spec({"data": {"dataset": "iris"}, "model": {"hidden": [5, 4], "activation": "tanh", "batch_norm": True},
                       "train": {"l2": 0.01}})
    result = run_cli("gradcheck", path)
    assert result.exit_code == 0, result.output
    assert "layer1.W" in result.stdout and "passed" in result.stdout
    sampled = run_cli("gradcheck", path, "--entries", "3")
    assert sampled.exit_code == 0 and "3 at random" in sampled.stdout and "all" in sampled.stdout  # output.b: 3 entries
    from nnexp.engine import layers

    original = layers.Dense.backward

    def wrong(self, grad):
        out = original(self, grad)
        self.dW *= 1.01  # a 1% error in every weight gradient
        return out

    monkeypatch.setattr(layers.Dense, "backward", wrong)
    result = run_cli("gradcheck", path)
    assert result.exit_code == 1 and "FAILED" in result.stdout
    for bad in ("-1", "0", "nan"):
        refused = run_cli("gradcheck", path, "--tolerance", bad)
        assert refused.exit_code == 2 and refused.stderr.startswith("error: --tolerance: must be a positive")


def test_datasets_command_lists_builtins():
    result = run_cli("datasets")
    assert result.exit_code == 0
    for name in ("iris", "digits", "diabetes", "spirals"):
        assert name in result.stdout


def test_installed_command_runs_quietly(tmp_path, write_spec):
    exe = shutil.which("nnexp")
    assert exe, "the nnexp console script is installed"
    path = write_spec({"name": "sub", "data": {"dataset": "iris"}, "train": {"epochs": 2}})
    proc = subprocess.run([exe, "run", str(path), "--results-dir", str(tmp_path), "--quiet"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == ""
    assert json.loads((tmp_path / "sub" / "metrics.json").read_text())["status"] == "ok"


def test_epochs_to_target_is_the_first_epoch_reaching_it():
    result = run_experiment({"data": {"dataset": "iris"}, "optimizer": {"name": "adam", "lr": 0.01},
                             "train": {"epochs": 40, "target": {"monitor": "val_accuracy", "value": 0.85}}}, results_dir=None)
    reached = [row["epoch"] for row in result.history if row["val_accuracy"] >= 0.85]
    assert result.metrics["epochs_to_target"] == (reached[0] if reached else None)
    assert reached and reached[0] > 1, "iris reaches 85% validation accuracy within 40 epochs, not at once"


def test_time_limit_stops_training():
    result = run_experiment({"data": {"dataset": "digits"}, "train": {"epochs": 100000, "time_limit": 0.2}}, results_dir=None)
    assert 1 <= result.metrics["epochs_run"] < 100000


def test_layer_summary_matches_history():
    result = run_experiment({"data": {"dataset": "digits"}, "model": {"hidden": [16, 16], "activation": "relu"},
                             "train": {"epochs": 4}}, results_dir=None)
    history = pd.DataFrame(result.history)
    assert result.metrics["grad_norm_first"] == pytest.approx(history["grad_norm_1"].mean())
    assert result.metrics["grad_norm_last"] == pytest.approx(history["grad_norm_3"].mean())
    features = result.prepared.X_train.shape[1]  # per entry: layer1.W is features x 16, layer2.W 16 x 16
    assert result.metrics["grad_ratio"] == pytest.approx(
        (history["grad_norm_1"].mean() / np.sqrt(features * 16)) / (history["grad_norm_2"].mean() / np.sqrt(16 * 16)))
    assert result.metrics["dead"] == pytest.approx((history["dead_1"].iloc[-1] + history["dead_2"].iloc[-1]) / 2)
    assert result.metrics["saturated"] is None


def test_grad_ratio_compares_hidden_layers_per_entry():
    """Against the output layer it moved with the width (a wide ReLU net read as vanishing) and read a
    batch-normalised logistic net, whose hidden gradients grow towards the input, as vanishing."""
    def ratio(**model):
        spec = {"data": {"dataset": "digits"}, "model": model, "optimizer": {"name": "sgd", "lr": 0.03},
                "train": {"epochs": 3, "batch_size": 32}}
        return run_experiment(spec, results_dir=None).metrics["grad_ratio"]

    assert ratio(hidden=[16]) is None  # one hidden layer: nothing to vanish through
    narrow, wide = ratio(hidden=[8, 8], init="he"), ratio(hidden=[256, 256], init="he")
    assert 0.5 < narrow / wide < 2  # no vanishing at either width (against the output layer: 1.96 and 0.51)
    deep = {"hidden": [64] * 6, "activation": "logistic", "init": "xavier"}
    assert ratio(**deep) < 0.5 < 1 < ratio(**deep, batch_norm=True)


def test_unit_diagnostics_describe_the_kept_weights_on_rows_of_every_class(tmp_path):
    """The probe was the first 256 training rows (of a file sorted by class: one class, and 69% of
    ReLU units that fired for the other read dead); under early stopping the summary described the
    last epoch's weights, not the restored best ones."""
    from nnexp.train import PROBE_ROWS, probe_rows

    rows = probe_rows(1000)
    assert len(rows) == PROBE_ROWS and rows[0] == 0 and rows[-1] == 999 and (np.diff(rows) > 0).all()
    assert probe_rows(10).tolist() == list(range(10))
    rng = np.random.default_rng(0)
    x = np.r_[-3 + 0.3 * rng.normal(size=300), 3 + 0.3 * rng.normal(size=300)]
    pd.DataFrame({"c": x, "y": [0] * 300 + [1] * 300}).to_csv(tmp_path / "sorted.csv", index=False)
    spec = {"seed": 0, "data": {"dataset": str(tmp_path / "sorted.csv"), "val_fraction": 0.0, "test_fraction": 0.0},
            "model": {"hidden": [16], "activation": "relu", "init": "he"}, "optimizer": {"name": "sgd", "lr": 0.01},
            "train": {"epochs": 2, "batch_size": 32, "dtype": "float64"}}
    result = run_experiment(spec, results_dir=None)
    hidden = np.maximum(result.prepared.X_train @ result.network.params[0] + result.network.params[1], 0)
    assert result.metrics["dead"] == pytest.approx(float(np.mean(~(hidden > 0).any(axis=0))))  # all rows agree
    stopped = run_experiment({"seed": 3, "data": {"dataset": "iris", "val_fraction": 0.3, "test_fraction": 0.0},
                              "model": {"hidden": [32, 32], "activation": "tanh", "init": {"name": "gaussian", "std": 1.0}},
                              "optimizer": {"name": "sgd", "lr": 0.3},
                              "train": {"epochs": 80, "batch_size": 8, "early_stopping": {"patience": 3}}}, results_dir=None)
    assert stopped.metrics["best_epoch"] < stopped.metrics["epochs_run"]
    best = stopped.history[stopped.metrics["best_epoch"] - 1]
    assert stopped.metrics["saturated"] == pytest.approx((best["saturated_1"] + best["saturated_2"]) / 2)
    leaky = run_experiment({"data": {"dataset": "iris"}, "model": {"activation": "leaky_relu"}, "train": {"epochs": 1}},
                           results_dir=None)
    assert leaky.metrics["dead"] is None and "dead_1" not in leaky.history[0]  # never positive, yet it learns


def test_predict_names_the_data_argument_not_a_spec_field(tmp_path):
    run_experiment({"name": "m", "data": {"dataset": "iris"}, "train": {"epochs": 1}}, results_dir=tmp_path)
    result = run_cli("predict", tmp_path / "m" / "model.npz", tmp_path / "missing.csv")
    assert result.exit_code == 2
    assert result.stderr.strip() == f"error: {tmp_path / 'missing.csv'}: file not found"


def test_predict_speaks_of_the_rows_not_of_training_spec_fields(tmp_path):
    """`data.dataset:` and `set data.impute` are training's words; at predict time the file is the argument."""
    run_experiment({"name": "m", "data": {"dataset": "iris"}, "train": {"epochs": 1}}, results_dir=tmp_path)
    model = tmp_path / "m" / "model.npz"
    columns = ["sepal length (cm)", "sepal width (cm)", "petal length (cm)", "petal width (cm)"]
    rows = tmp_path / "rows.csv"
    rows.write_text(",".join(columns) + "\n5.1,3.5,,0.2\n4.9,3.0,1.4,inf\n")
    result = run_cli("predict", model, rows)
    assert result.exit_code == 2 and "data.dataset" not in result.stderr and "set data.impute" not in result.stderr
    assert f"error: {rows}: 1 row(s) have missing values" in result.stderr
    assert "the model was trained without data.impute, so every value is needed" in result.stderr
    missing = run_cli("predict", tmp_path / "m" / "nothere.npz", rows)
    assert missing.exit_code == 2 and missing.stderr.strip() == f"error: {tmp_path / 'm' / 'nothere.npz'}: file not found"


def test_predict_with_a_table_for_a_model_says_what_a_model_is(tmp_path):
    """NumPy's own reason for refusing a CSV suggests loading it unsafely: not advice to pass on."""
    table = tmp_path / "rows.csv"
    table.write_text("a,b\n1,2\n")
    result = run_cli("predict", table, table)
    assert result.exit_code == 2
    assert result.stderr.strip() == (f"error: {table}: not an nnexp model file, or a damaged one "
                                     "(expected the model.npz that `nnexp run` writes, or its folder)")


def test_a_damaged_model_file_is_one_error_line(tmp_path):
    run_experiment({"name": "m", "data": {"dataset": "iris"}, "train": {"epochs": 1}}, results_dir=tmp_path)
    model = tmp_path / "m" / "model.npz"
    rows = tmp_path / "rows.csv"
    rows.write_text("sepal length (cm),sepal width (cm),petal length (cm),petal width (cm)\n5.1,3.5,1.4,0.2\n")
    arrays = dict(np.load(model))
    damaged = {"cut.npz": model.read_bytes()[:2000], "empty.npz": b""}
    meta = json.loads(str(arrays["meta"]))
    for name, edit in {"meta.npz": {"meta": np.array("{bad")}, "weight.npz": {"net.layer1.W": None},
                       "prep.npz": {"prep.columns": None}, "keep.npz": {"prep.keep": arrays["prep.keep"][:2]},
                       "names.npz": {"meta": np.array(json.dumps({**meta, "class_names": [1, 2, 3]}))},
                       "other.npz": {"meta": np.array(json.dumps({**meta, "class_names": ["x", "y", "z"]}))},
                       "none.npz": {"meta": np.array(json.dumps({**meta, "class_names": []}))},
                       "task.npz": {"meta": np.array(json.dumps({**meta, "task": "regression"}))},  # 3 outputs a row
                       "tasks.npz": {"meta": np.array(json.dumps({**meta, "task": "regression"})),
                                     "prep.task": np.array("regression")},
                       "weird.npz": {"prep.task": np.array("weird")}}.items():
        edited = {k: v for k, v in {**arrays, **edit}.items() if v is not None}
        np.savez(tmp_path / name, **edited)
    for name, content in damaged.items():
        (tmp_path / name).write_bytes(content)
    for name in ("cut.npz", "empty.npz", "meta.npz", "weight.npz", "prep.npz", "keep.npz", "names.npz", "other.npz",
                 "none.npz", "task.npz", "tasks.npz", "weird.npz"):
        result = run_cli("predict", tmp_path / name, rows)
        assert result.exit_code == 2, name
        assert result.stderr.startswith(f"error: {tmp_path / name}: ") and result.stderr.count("\n") == 1, result.stderr
        assert "damaged" in result.stderr, result.stderr


def test_probabilities_of_a_regression_model_are_an_error(tmp_path):
    run_experiment({"name": "r", "data": {"dataset": "diabetes"}, "train": {"epochs": 1}}, results_dir=tmp_path)
    rows = tmp_path / "rows.csv"
    rows.write_text("age,sex,bmi,bp,s1,s2,s3,s4,s5,s6\n" + ",".join(["0.01"] * 10) + "\n")
    model = tmp_path / "r" / "model.npz"
    assert run_cli("predict", model, rows).exit_code == 0
    result = run_cli("predict", model, rows, "--proba")
    assert result.exit_code == 2
    assert result.stderr.strip() == (f"error: --proba: {model} is a regression model; "
                                     "class probabilities need a classification one")


def test_run_summary_counts_epochs_in_words(capsys):
    """'1 epoch', and under cross-validation the mean over folds says so (not '2.0 epochs')."""
    from nnexp.console import print_run_summary

    one = run_experiment({"name": "one", "data": {"dataset": "iris"}, "train": {"epochs": 1}}, results_dir=None)
    folds = run_experiment({"name": "cv", "data": {"dataset": "iris", "cv_folds": 3}, "train": {"epochs": 2}},
                           results_dir=None)
    print_run_summary(one)
    print_run_summary(folds)
    out = capsys.readouterr().out
    assert ": 1 epoch in " in out and ": 2 epochs per fold (mean) in " in out and "2.0" not in out


@pytest.mark.skipif(not hasattr(os, "fchmod"), reason="POSIX file modes")
def test_result_files_get_the_permissions_the_umask_allows(tmp_path):
    """Written through a private temp file, they used to stay 0600: unreadable to a web server or CI step."""
    for umask, mode in ((0o022, 0o644), (0o077, 0o600)):
        old = os.umask(umask)
        try:
            result = run_experiment({"name": f"u{umask:o}", "data": {"dataset": "iris"}, "train": {"epochs": 1}},
                                    results_dir=tmp_path)
        finally:
            os.umask(old)
        modes = {name: path.stat().st_mode & 0o777 for name, path in result.files.items()}
        assert set(modes.values()) == {mode}, modes


def test_the_run_summary_names_the_task_it_trained(tmp_path, write_spec):
    """data.task auto decides between classes and a quantity: the summary says which it chose."""
    for dataset, words in (("iris", "classification, 3 classes: 1 epoch in "), ("diabetes", "regression: 1 epoch in ")):
        path = write_spec({"name": dataset, "data": {"dataset": dataset}, "train": {"epochs": 1}})
        result = run_cli("run", path, "--results-dir", tmp_path)
        assert result.exit_code == 0 and words in result.stdout, result.stdout


def test_a_run_stopped_while_writing_keeps_the_earlier_run_whole(tmp_path, write_spec, monkeypatch):
    """Stopped after spec.yaml was written, the folder held the new spec beside the earlier run's
    metrics and model, and the command said nothing."""
    import nnexp.results

    path = write_spec({"name": "r", "data": {"dataset": "iris"}, "model": {"hidden": [4]}, "train": {"epochs": 2}})
    assert run_cli("run", path, "--results-dir", tmp_path, "-q").exit_code == 0
    assert (tmp_path / "r" / "model.npz").exists() and (tmp_path / "r" / "learning_curves.png").exists()

    def stop(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(nnexp.results, "plot_learning_curves", stop)  # the last file a run writes
    before = {p.name: p.read_bytes() for p in (tmp_path / "r").iterdir()}
    result = run_cli("run", path, "--results-dir", tmp_path, "-q", "--set", "train.epochs=3")
    assert result.exit_code == 130
    assert result.stderr.splitlines()[-1] == (f"interrupted while writing {tmp_path / 'r'}: none of this run's files "
                                              "were kept (an earlier run's are as they were)")
    assert {p.name: p.read_bytes() for p in (tmp_path / "r").iterdir()} == before  # no new spec beside old metrics
    monkeypatch.setattr("nnexp.api.train_experiment", stop)  # during training: nothing is written
    result = run_cli("run", path, "--results-dir", tmp_path / "other", "-q")
    assert result.exit_code == 130 and result.stderr.splitlines()[-1] == "interrupted; nothing was written"
    assert not (tmp_path / "other").exists()


@pytest.mark.skipif(not os.path.exists("/proc/self/stat"), reason="reads a process's CPU time from /proc")
def test_sigterm_stops_a_run_as_ctrl_c_does(tmp_path, write_spec):
    """Under `python -m`, a stop during start-up (inside a dataclass's exec) also made CPython end
    the process by SIGINT at exit, whatever code the command chose."""
    import signal
    import sys
    import time

    path = write_spec({"name": "long", "data": {"dataset": "iris"}, "train": {"epochs": 10**6}})
    proc = subprocess.Popen([sys.executable, "-m", "nnexp", "run", str(path), "--results-dir", str(tmp_path), "-q"],
                            stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60

    def cpu_seconds() -> float:  # utime + stime
        fields = open(f"/proc/{proc.pid}/stat").read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    while cpu_seconds() < 2.0 and time.time() < deadline:  # start-up takes under 1 s of CPU: training by then
        time.sleep(0.1)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143 and err.splitlines()[-1] == "terminated (SIGTERM); nothing was written", err
    assert not (tmp_path / "long").exists()


def test_a_stop_during_the_swap_of_a_runs_files_is_ignored_and_a_folder_in_the_way_is_named(tmp_path, write_spec,
                                                                                          monkeypatch):
    """A Ctrl-C between moving an earlier file aside and putting the new one in lost the earlier
    file; a folder where a run file goes was moved aside and left behind, and the run said ok."""
    import signal

    path = write_spec({"name": "r", "data": {"dataset": "iris"}, "model": {"hidden": [4]}, "train": {"epochs": 2}})
    assert run_cli("run", path, "--results-dir", tmp_path, "-q").exit_code == 0
    real_rename = os.rename

    def rename_then_ctrl_c(src, dst):
        real_rename(src, dst)
        os.kill(os.getpid(), signal.SIGINT)  # lands right after the earlier file moved aside

    monkeypatch.setattr(os, "rename", rename_then_ctrl_c)
    result = run_cli("run", path, "--results-dir", tmp_path, "-q", "--set", "train.epochs=3")
    monkeypatch.setattr(os, "rename", real_rename)
    assert result.exit_code == 0, result.output  # the swap finished: every file is the new run's
    assert json.loads((tmp_path / "r" / "metrics.json").read_text())["epochs_run"] == 3
    assert sorted(p.name for p in (tmp_path / "r").iterdir()) == sorted(
        ["spec.yaml", "metrics.json", "history.csv", "predictions.csv", "classes.csv", "model.npz", "learning_curves.png"])
    (tmp_path / "r" / "metrics.json").unlink()
    (tmp_path / "r" / "metrics.json").mkdir()
    result = run_cli("run", path, "--results-dir", tmp_path, "-q")
    assert result.exit_code == 1
    assert result.stderr == f"error: {tmp_path / 'r' / 'metrics.json'}: is a folder, where this run writes a file\n"


def test_a_full_disk_while_the_plot_is_written_names_the_plot(tmp_path, write_spec, monkeypatch):
    import nnexp.results
    from nnexp.errors import StorageError

    real = nnexp.results.staged_write

    def full(path, data):
        if path.name == "learning_curves.png":
            raise StorageError(f"{path}: cannot write (No space left on device)")
        return real(path, data)

    monkeypatch.setattr(nnexp.results, "staged_write", full)
    path = write_spec({"name": "r", "data": {"dataset": "iris"}, "train": {"epochs": 1}})
    result = run_cli("run", path, "--results-dir", tmp_path, "-q")
    assert result.exit_code == 1
    assert result.stderr == f"error: {tmp_path / 'r' / 'learning_curves.png'}: cannot write (No space left on device)\n"
    assert not [p for p in (tmp_path / "r").iterdir()]  # none of the run's files, no temporary one


def test_a_diverged_run_that_cannot_remove_the_earlier_model_changes_nothing(tmp_path, write_spec, monkeypatch):
    """The stale model was removed after the swap: when that failed, the diverged spec and metrics
    sat beside the earlier run's model."""
    path = write_spec({"name": "r", "data": {"dataset": "iris"}, "model": {"hidden": [4]}, "train": {"epochs": 2}})
    assert run_cli("run", path, "--results-dir", tmp_path, "-q").exit_code == 0
    (tmp_path / "r" / ".spec.yaml.old-12345").write_text("left by a run killed while writing")
    (tmp_path / "r" / ".metrics.json.x1y2.tmp").write_text("{")
    before = {p.name: p.read_bytes() for p in (tmp_path / "r").iterdir() if not p.name.startswith(".")}
    real_rename = os.rename

    def model_stuck(src, dst):
        if os.fspath(src).endswith("model.npz"):
            raise OSError(1, "Operation not permitted")
        return real_rename(src, dst)

    monkeypatch.setattr(os, "rename", model_stuck)
    diverging = ["--set", "optimizer={name: sgd, lr: 1.0e+9}", "--set", "train.epochs=3"]
    result = run_cli("run", path, "--results-dir", tmp_path, "-q", *diverging)
    assert result.exit_code == 1
    assert result.stderr == f"error: {tmp_path / 'r' / 'model.npz'}: cannot write (Operation not permitted)\n"
    assert {p.name: p.read_bytes() for p in (tmp_path / "r").iterdir()} == before  # and the leftovers are gone


def test_a_stop_after_the_files_are_written_says_so(tmp_path, write_spec, monkeypatch):
    """It said 'nothing was written' (or that none of this run's files were kept) with every file in place."""
    import nnexp.console

    def stop(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(nnexp.console, "print_run_summary", stop)
    path = write_spec({"name": "r", "data": {"dataset": "iris"}, "train": {"epochs": 2}})
    result = run_cli("run", path, "--results-dir", tmp_path)
    assert result.exit_code == 130
    assert result.stderr.splitlines()[-1] == f"interrupted after this run's files were written in {tmp_path / 'r'}"
    assert json.loads((tmp_path / "r" / "metrics.json").read_text())["epochs_run"] == 2


def test_best_epoch_without_early_stopping_is_the_lowest_validation_loss():
    """It was the last epoch (the weights kept), which a reader takes for the best validation score."""
    spec = {"data": {"dataset": "digits", "train_size": 100}, "model": {"hidden": [64]},
            "optimizer": {"name": "sgd", "lr": 0.5}, "train": {"epochs": 40}}
    result = run_experiment(spec, results_dir=None)
    history = pd.DataFrame(result.history)
    lowest = int(history.loc[history["val_loss"].idxmin(), "epoch"])
    assert lowest < 40 and result.metrics["best_epoch"] == lowest  # it overfits: the minimum is not at the end
    assert result.metrics["val_loss"] == pytest.approx(history["val_loss"].iloc[-1], rel=1e-6)  # last weights kept
    unsplit = run_experiment({**spec, "data": {"dataset": "iris", "val_fraction": 0.0}, "train": {"epochs": 3}},
                             results_dir=None)
    assert unsplit.metrics["best_epoch"] is None


def test_a_run_that_had_not_converged_says_so(tmp_path, write_spec):
    """As scikit-learn's ConvergenceWarning: the default iris run ended with its loss still falling, silently."""
    from nnexp.train import still_improving

    def history(losses, key="val_loss"):
        return [{"epoch": i + 1, "train_loss": 1.0, key: v} for i, v in enumerate(losses)]

    assert still_improving(history([1.0, 0.9, 0.8, 0.7, 0.6, 0.5])) is True
    assert still_improving(history([1.0, 0.5, 0.4, 0.4, 0.4, 0.399])) is False  # 0.25% over the last 3: converged
    assert still_improving(history([1.0, 0.5, 0.3, 0.2, 0.25, 0.21])) is False  # not its lowest at the end
    assert still_improving(history([1.0, 0.9, 0.8, 0.7, 0.6])) is None  # too short to tell
    assert still_improving([{"epoch": i, "train_loss": 1.0 / i, "val_loss": None} for i in range(1, 8)]) is True
    path = write_spec({"data": {"dataset": "iris"}, "train": {"epochs": 20}})
    short = run_cli("run", path, "--results-dir", tmp_path / "out", "-q")
    assert short.exit_code == 0 and short.stderr.startswith("note: val_loss was still falling at the last epoch (-")
    assert json.loads((tmp_path / "out" / "spec" / "metrics.json").read_text())["still_improving"] is True
    done = run_cli("run", path, "--results-dir", tmp_path / "out", "-q", "--set", "train.epochs=300",
                   "--set", "optimizer.lr=0.01")
    assert done.exit_code == 0 and done.stderr == ""
    assert json.loads((tmp_path / "out" / "spec" / "metrics.json").read_text())["still_improving"] is False


def test_the_learning_curves_show_each_layers_gradient_on_a_log_scale():
    """The vanishing gradient was in history.csv only; a teacher wants it on the run's figure."""
    from nnexp.results import plot_learning_curves

    result = run_experiment({"data": {"dataset": "iris"}, "model": {"hidden": [4, 4], "activation": "logistic"},
                             "train": {"epochs": 3}}, results_dir=None)
    fig = plot_learning_curves(result.history, "classification")
    loss, metric, grads = fig.axes
    assert grads.get_yscale() == "log" and [t.get_text() for t in grads.get_legend().get_texts()] == [
        "layer 1", "layer 2", "output"]
    assert [list(line.get_ydata()) for line in grads.get_lines()] == [
        [row[f"grad_norm_{i}"] for row in result.history] for i in (1, 2, 3)]
    unsplit = run_experiment({"data": {"dataset": "iris", "val_fraction": 0.0}, "train": {"epochs": 2}}, results_dir=None)
    assert len(plot_learning_curves(unsplit.history, "classification").axes) == 2  # no validation metric to draw


def test_weights_near_zero_shows_what_l1_does():
    """L1's sparsity was visible only by opening model.npz."""
    spec = {"data": {"dataset": "digits"}, "model": {"hidden": [32]}, "optimizer": {"name": "sgd", "lr": 0.05},
            "train": {"epochs": 30}}
    plain = run_experiment(spec, results_dir=None)
    sparse = run_experiment({**spec, "train": {"epochs": 30, "l1": 0.01}}, results_dir=None)
    weights = [p for name, p in zip(sparse.network.param_names, sparse.network.params) if name.endswith(".W")]
    share = sum(int((np.abs(w) < 1e-3).sum()) for w in weights) / sum(w.size for w in weights)
    assert sparse.metrics["weights_near_zero"] == pytest.approx(share)
    assert plain.metrics["weights_near_zero"] < 0.05 < 0.5 < sparse.metrics["weights_near_zero"]


def test_copied_units_show_the_symmetry_of_a_zero_initialisation():
    """Zero weights keep every hidden unit a copy of the others; dropout's random masks break it."""
    def copied(**model):
        spec = {"data": {"dataset": "digits"}, "model": {"hidden": [16, 16], "activation": "logistic", **model},
                "train": {"epochs": 3}}
        return run_experiment(spec, results_dir=None).metrics["copied_units"]

    assert copied(init="zeros") == pytest.approx(30 / 32)  # one unit of each 16-unit layer is not a copy
    assert copied(init="zeros", dropout=0.2) == 0 and copied(init="he") == 0


def imbalanced_csv(path, n=900, seed=0):
    """Two informative features, 6% positives: an unweighted network under-predicts the rare class."""
    from sklearn.datasets import make_classification

    X, y = make_classification(n_samples=n, n_features=6, n_informative=3, weights=[0.94, 0.06], flip_y=0,
                               class_sep=0.8, random_state=seed)
    frame = pd.DataFrame(X, columns=[f"x{i}" for i in range(6)])
    frame["y"] = np.where(y == 1, "rare", "common")
    frame.to_csv(path, index=False)
    return path


def test_balanced_class_weights_are_scikit_learns_and_lift_the_rare_classs_recall(tmp_path):
    from sklearn.utils.class_weight import compute_class_weight

    from nnexp.api import load_spec
    from nnexp.data import prepare
    from nnexp.train import class_weights

    data = imbalanced_csv(tmp_path / "imb.csv")
    spec = {"data": {"dataset": str(data), "target": "y"}, "model": {"hidden": [16]},
            "optimizer": {"name": "adam", "lr": 0.01}, "train": {"epochs": 30, "batch_size": 32}}
    weighted = load_spec({**spec, "train": {**spec["train"], "class_weight": "balanced"}})
    prepared = prepare(weighted.data, weighted.seed)
    expected = compute_class_weight("balanced", classes=np.arange(2), y=prepared.y_train)
    np.testing.assert_allclose(class_weights(weighted, prepared), expected, rtol=1e-12)
    assert class_weights(load_spec({**spec, "train": {"class_weight": {"rare": 5}}}), prepared).tolist() == [1.0, 5.0]

    plain = run_experiment(spec, results_dir=None)
    balanced = run_experiment(weighted, results_dir=None)
    assert prepared.class_names == ["common", "rare"]  # one logistic unit: P(rare)
    X, y = prepared.X_val, prepared.y_val

    def rare_recall(result):
        return float(np.mean(result.network.forward(X)[y == 1] > 0.5))

    assert rare_recall(balanced) > rare_recall(plain) + 0.1
    assert balanced.metrics["val_balanced_accuracy"] > plain.metrics["val_balanced_accuracy"]
    # the evaluation loss is the plain cross-entropy of the predictions, weights or not
    p = balanced.network.forward(X)
    picked = np.where(y == 1, p, 1 - p).astype(np.float64)
    assert balanced.metrics["val_loss"] == pytest.approx(-np.mean(np.log(picked)), rel=1e-5)


@pytest.mark.parametrize("class_weight, dataset, message", [
    ({"rar": 5}, "imb.csv", "train.class_weight: no class 'rar' in <data>; did you mean 'rare'? (its classes: "),
    ({"rare": 0}, "imb.csv", "train.class_weight: the weight of class 'rare' must be a positive number, got 0"),
    ({"rar": 1, "rare": 2}, "imb.csv", "train.class_weight: no class 'rar' in <data>; did you mean 'rare'?"),
    ("heavy", "imb.csv", "train.class_weight: expected 'balanced' or a mapping {class: weight}, got \"heavy\""),
    ("balanced", "diabetes", "train.class_weight: only for classification, and this is a regression task"),
])
def test_class_weights_the_data_cannot_take_exit_2_naming_spec_and_field(tmp_path, write_spec, class_weight, dataset,
                                                                          message):
    imbalanced_csv(tmp_path / "imb.csv", n=200)
    path = write_spec({"data": {"dataset": dataset, **({"target": "y"} if dataset.endswith(".csv") else {})},
                       "train": {"epochs": 2, "class_weight": class_weight}})
    result = run_cli("run", path, "--results-dir", tmp_path / "out", "--quiet")
    assert result.exit_code == 2
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith(f"error: {path}: {message.replace('<data>', str(tmp_path / 'imb.csv'))}")
    assert not (tmp_path / "out").exists()


def test_predictions_csv_re_derives_the_metrics_row_by_row(tmp_path, write_spec):
    """Each validation and test row's target, prediction and probabilities: the file's own accuracy,
    AUC and AP are metrics.json's, and `row` points at the row of the data file it came from."""
    from sklearn.metrics import average_precision_score, roc_auc_score

    frame = string_label_table(tmp_path)
    path = write_spec({"name": "tab", "data": {"dataset": "table.csv", "target": "answer", "test_fraction": 0.25},
                       "model": {"hidden": [16], "activation": "tanh"}, "train": {"epochs": 20, "batch_size": 16}})
    assert run_cli("run", path, "--results-dir", tmp_path / "out", "--quiet").exit_code == 0
    folder = tmp_path / "out" / "tab"
    metrics = json.loads((folder / "metrics.json").read_text())
    predictions = pd.read_csv(folder / "predictions.csv")
    assert list(predictions.columns) == ["split", "row", "target", "prediction", "proba_no", "proba_yes"]
    assert (predictions["target"].to_numpy() == frame["answer"].to_numpy()[predictions["row"]]).all()
    for split in ("val", "test"):
        part = predictions[predictions["split"] == split]
        assert len(part) and (part["prediction"] == part["target"]).mean() == pytest.approx(metrics[f"{split}_accuracy"])
        assert roc_auc_score(part["target"] == "yes", part["proba_yes"]) == pytest.approx(metrics[f"{split}_auc"])
        assert average_precision_score(part["target"] == "yes", part["proba_yes"]) == pytest.approx(metrics[f"{split}_ap"])
    assert predictions["row"].is_unique and len(predictions) < len(frame)


def test_cross_validated_predictions_are_out_of_fold(tmp_path):
    from sklearn.datasets import load_wine

    result = run_experiment({"name": "cv", "data": {"dataset": "wine", "cv_folds": 3}, "train": {"epochs": 5}},
                            results_dir=tmp_path)
    predictions = pd.read_csv(tmp_path / "cv" / "predictions.csv")
    val, test = predictions[predictions["split"] == "val"], predictions[predictions["split"] == "test"]
    assert sorted(val["fold"].unique()) == [0, 1, 2] and test["fold"].unique().tolist() == [0]
    assert not set(val["row"]) & set(test["row"]) and len(val) + len(test) == len(load_wine().target)
    assert val["row"].is_unique
    for fold, part in val.groupby("fold"):  # each fold's rows by its own network: the fold's accuracy
        assert (part["prediction"] == part["target"]).mean() == pytest.approx(result.folds[fold]["val_accuracy"])
    rows = load_wine(as_frame=True).frame.drop(columns="target").iloc[test["row"]]
    saved = predict(tmp_path / "cv", rows, proba=True)  # the test rows come from the saved model, fold 0's
    proba = [c for c in predictions if c.startswith("proba_")]
    np.testing.assert_allclose(saved[proba].to_numpy(), test[proba].to_numpy(), rtol=1e-6)


def test_classes_csv_is_the_confusion_matrix_and_per_class_figures_of_the_predictions(tmp_path):
    """Re-derived from predictions.csv with scikit-learn: each split's confusion matrix (under
    cross-validation the validation rows of all folds, out of fold) and per-class precision,
    recall and F1; without cross-validation their means are metrics.json's macro F1 and balanced
    accuracy. `nnexp run` names the least recalled test class and what it is taken for."""
    from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

    spec = {"name": "wine", "data": {"dataset": "wine", "test_fraction": 0.3}, "model": {"hidden": [8]},
            "train": {"epochs": 3}}
    for cv in (0, 3):
        folder = tmp_path / f"cv{cv}"
        result = run_experiment({**spec, "data": {**spec["data"], "cv_folds": cv}}, results_dir=folder)
        classes = pd.read_csv(folder / "wine" / "classes.csv")
        predictions = pd.read_csv(folder / "wine" / "predictions.csv")
        names = ["class_0", "class_1", "class_2"]  # wine's own names
        assert classes["class"].tolist() == names * 2 and classes["split"].tolist() == ["val"] * 3 + ["test"] * 3
        for split in ("val", "test"):
            mine, part = classes[classes["split"] == split], predictions[predictions["split"] == split]
            np.testing.assert_array_equal(mine[[f"predicted_{c}" for c in names]].to_numpy(),
                                          confusion_matrix(part["target"], part["prediction"], labels=names))
            expected = precision_recall_fscore_support(part["target"], part["prediction"], labels=names,
                                                       zero_division=np.nan)
            for column, values in zip(("precision", "recall", "f1", "support"), expected):
                np.testing.assert_allclose(mine[column].to_numpy(), values, equal_nan=True)
            if not cv:
                assert mine["f1"].mean() == pytest.approx(result.metrics[f"{split}_f1"])
                assert mine["recall"].mean() == pytest.approx(result.metrics[f"{split}_balanced_accuracy"])
        assert classes.loc[classes["split"] == "val", "support"].sum() == (predictions["split"] == "val").sum()
    output = " ".join(run_cli("run", folder / "wine" / "spec.yaml", "--results-dir", tmp_path / "cli").stdout.split())
    test = classes[classes["split"] == "test"]
    worst = test.loc[test["recall"].idxmin()]
    name, support = worst["class"], int(worst["support"])
    assert worst["recall"] < 1  # 3 epochs: some wine is taken for another
    assert (f"weakest class on the test rows (the first fold's network): {name}, recall {worst['recall']:.4g} "
            f"({int(worst[f'predicted_{name}'])} of {support}: ") in output


def test_a_regression_run_has_no_classes_csv(tmp_path):
    run_experiment({"name": "reg", "data": {"dataset": "diabetes"}, "train": {"epochs": 2}}, results_dir=tmp_path)
    assert (tmp_path / "reg" / "predictions.csv").exists() and not (tmp_path / "reg" / "classes.csv").exists()


def test_positive_class_makes_a_class_the_one_auc_ap_and_the_threshold_score(tmp_path):
    """breast_cancer's classes sort as malignant, benign: by default P(benign) is scored. With
    positive_class: malignant the same rows are split off, and AP, the threshold and predict
    --threshold are about P(malignant)."""
    from sklearn.metrics import average_precision_score

    base = {"name": "bc", "data": {"dataset": "breast_cancer"}, "train": {"epochs": 5}}
    plain = run_experiment(base, results_dir=None)
    flipped = run_experiment({**base, "data": {**base["data"], "positive_class": "malignant"}},
                             results_dir=tmp_path)
    assert plain.prepared.class_names == ["malignant", "benign"]
    assert flipped.prepared.class_names == ["benign", "malignant"]
    before, after = plain.predictions(), pd.read_csv(tmp_path / "bc" / "predictions.csv")
    assert before[["split", "row", "target"]].equals(after[["split", "row", "target"]])
    val = after[after["split"] == "val"]
    assert flipped.metrics["val_ap"] == pytest.approx(average_precision_score(val["target"] == "malignant",
                                                                              val["proba_malignant"]))
    rows = load_breast_cancer_rows(after[after["split"] == "test"]["row"])
    t = flipped.metrics["threshold"]
    called = predict(tmp_path / "bc", rows, threshold=t)["prediction"].to_numpy()
    test = after[after["split"] == "test"]
    np.testing.assert_array_equal(called, np.where(test["proba_malignant"] >= t, "malignant", "benign"))


def load_breast_cancer_rows(rows):
    from sklearn.datasets import load_breast_cancer

    return load_breast_cancer(as_frame=True).frame.drop(columns="target").iloc[np.asarray(rows)]


@pytest.mark.parametrize("dataset, value, message", [
    ("iris", "setosa", "data.positive_class: only for a two-class classification task, and this is 3 classes"),
    ("breast_cancer", "malign", "data.positive_class: no class 'malign' in breast_cancer; did you mean 'malignant'? "
                                "(its classes: benign, malignant)"),  # sorted, whichever one a search's data put second
    ("breast_cancer", 0.5, "data.positive_class: no class '0.5' in breast_cancer (its classes: benign, malignant)"),
    ("diabetes", 1, "data.positive_class: only for a two-class classification task, and this is a regression task"),
    ("breast_cancer", [1], "data.positive_class: expected a class name, got [1]"),
])
def test_a_positive_class_the_data_cannot_take_exits_2_naming_spec_and_field(tmp_path, write_spec, dataset, value,
                                                                              message):
    """From run, gradcheck, and a search before its first trial, whether the value is the base's
    or one of the searched ones; a search names its own file (as for class weights and monitors)."""
    path = write_spec({"data": {"dataset": dataset, "positive_class": value}, "train": {"epochs": 2}})
    grid = path.with_name("grid.yaml")
    grid.write_text(yaml.safe_dump({"base": path.name, "space": {"optimizer.lr": [0.01, 0.1]}}))
    searched = path.with_name("searched.yaml")
    searched.write_text(yaml.safe_dump({"experiment": {"data": {"dataset": dataset}, "train": {"epochs": 2}},
                                        "space": {"data.positive_class": ["malignant" if dataset == "breast_cancer"
                                                                          else "x", value]}}))
    in_spec = dataset == "diabetes" or isinstance(value, list)  # refused by the base's own validation: it is named
    for args, named in ((("run", path), path), (("gradcheck", path), path), (("search", grid), path if in_spec else grid),
                        (("search", searched), searched), (("validate", searched), searched)):
        result = run_cli(*args, *(("--results-dir", tmp_path / "out", "--quiet") if args[0] != "gradcheck" and
                                  args[0] != "validate" else ()))
        assert result.exit_code == 2, (args, result.output)
        (line,) = [line for line in result.stderr.strip().splitlines() if line.startswith("error")]
        field, problem = message.split(": ", 1)  # a searched value's: space.data.positive_class: value ...: problem
        assert line.startswith(f"error: {named}: ") and field.split(".")[-1] in line and problem in line, (args, line)
    assert not (tmp_path / "out").exists()


def test_the_threshold_line_compares_figures_of_the_same_rows_under_cross_validation(tmp_path, write_spec):
    """The balanced accuracy at the threshold and at the likelier class, side by side, both of the rows
    of predictions.csv (validation rows out of fold, the test rows by the first fold's network), not
    one of them a mean over the folds' networks."""
    path = write_spec({"name": "bc", "data": {"dataset": "breast_cancer", "cv_folds": 3}, "train": {"epochs": 5}})
    output = " ".join(run_cli("run", path, "--results-dir", tmp_path).stdout.split())
    metrics = json.loads((tmp_path / "bc" / "metrics.json").read_text())
    classes = pd.read_csv(tmp_path / "bc" / "classes.csv")
    for split in ("val", "test"):
        likelier = classes.loc[classes["split"] == split, "recall"].mean()
        assert (f"{split} {metrics[f'{split}_balanced_accuracy_at_threshold']:.4g} "
                f"(the likelier class: {likelier:.4g})") in output
    assert f"{metrics['test_balanced_accuracy']:.4g})" not in output  # the mean over the folds' networks


def test_a_set_value_the_data_cannot_take_is_blamed_on_set_not_on_the_file(tmp_path, write_spec):
    """Problems found only against the data (a class name, a metric the task lacks) name the
    override that gave the value: the file does not hold it."""
    path = write_spec({"data": {"dataset": "breast_cancer"}, "train": {"epochs": 2}})
    grid = path.with_name("grid.yaml")
    grid.write_text(yaml.safe_dump({"base": path.name, "space": {"optimizer.lr": [0.01, 0.1]}}))
    for args, expected in (
            (("run", path, "--set", "data.positive_class=Malignant"),
             "error: --set data.positive_class: no class 'Malignant' in breast_cancer; did you mean 'malignant'?"),
            (("gradcheck", path, "--set", "train.class_weight={benign: 2, Benign: 3}"),
             "error: --set train.class_weight: no class 'Benign' in breast_cancer"),
            (("search", grid, "--set", "metric=val_rmse", "--results-dir", tmp_path / "out"),
             "error: --set metric: 'val_rmse' is not computed for a classification task"),
            (("search", grid, "--set", "data.positive_class=nope", "--results-dir", tmp_path / "out"),
             "error: --set data.positive_class: no class 'nope' in breast_cancer")):
        result = run_cli(*args, "--quiet")
        assert result.exit_code == 2 and result.stderr.strip().splitlines()[0].startswith(expected), result.stderr
    # a section given by --set merges with the file's: a field it does not hold is still the file's,
    # found against the data or by the spec's own checks
    path.write_text(yaml.safe_dump({"data": {"dataset": "breast_cancer", "positive_class": "malignant"}}))
    result = run_cli("run", path, "--set", "data={dataset: iris}", "--quiet")
    assert result.stderr.startswith(f"error: {path}: data.positive_class: only for a two-class classification task")
    path.write_text(yaml.safe_dump({"data": {"dataset": "breast_cancer", "val_fraction": -1}}))
    assert run_cli("run", path, "--set", "data={dataset: iris}").stderr.startswith(f"error: {path}: data.val_fraction:")
    assert run_cli("run", path, "--set", "data={dataset: iris, val_fraction: -2}").stderr.startswith(
        "error: --set data.val_fraction:")


def test_positive_class_takes_numbers_and_booleans_as_the_data_names_its_classes(tmp_path):
    """0.5 names the class '0.5' of a numeric column, true the class 'True' of a true/false one; so
    do class weights' keys."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(120, 2))
    for labels, value, named in (([0.5, 1.5], 0.5, "0.5"), ([True, False], True, "True"), ([0, 1], 0.0, "0")):
        frame = pd.DataFrame({"a": x[:, 0], "b": x[:, 1], "y": np.where(x[:, 0] > 0, labels[0], labels[1])})
        frame.to_csv(tmp_path / "d.csv", index=False)
        result = run_experiment({"data": {"dataset": str(tmp_path / "d.csv"), "target": "y", "task": "classification",
                                          "positive_class": value},
                                 "train": {"epochs": 2, "class_weight": {value: 3}}}, results_dir=None)
        assert result.prepared.class_names[1] == named
        assert result.spec.train.class_weight == {named: 3.0}


def test_regression_predictions_are_in_the_targets_units():
    result = run_experiment({"data": {"dataset": "diabetes"}, "train": {"epochs": 5}}, results_dir=None)
    frame = result.predictions()
    val = frame[frame["split"] == "val"]
    assert list(frame.columns) == ["split", "row", "target", "prediction"]
    assert np.sqrt(np.mean((val["prediction"] - val["target"]) ** 2)) == pytest.approx(result.metrics["val_rmse"])
    assert val["target"].abs().max() > 20  # disease progression units (25-346), not standardised
    from sklearn.datasets import load_diabetes

    assert (val["target"].to_numpy() == load_diabetes().target[val["row"]]).all()  # as the data gives them


def test_a_runs_history_has_auc_and_ap_each_epoch_and_an_early_stop_on_them_sees_them():
    """A single run keeps every metric per epoch; training for a search (watch=()) leaves auc and ap
    out of the history unless early stopping or a target reads them."""
    from nnexp.api import load_spec
    from nnexp.train import train_experiment

    spec = {"data": {"dataset": "wine"}, "train": {"epochs": 4}}
    assert {"val_auc", "val_ap"} <= set(run_experiment(spec, results_dir=None).history[0])
    quiet = train_experiment(load_spec(spec), watch=())
    assert "val_auc" not in quiet.history[0] and "val_balanced_accuracy" in quiet.history[0]
    assert {"val_auc", "val_ap", "test_auc", "test_ap"} <= set(quiet.metrics)
    stopped = train_experiment(load_spec({**spec, "train": {"epochs": 4, "early_stopping": {"monitor": "val_auc"}}}),
                               watch=())
    assert "val_auc" in stopped.history[0] and stopped.metrics["best_epoch"] >= 1


def test_gradcheck_of_class_weights_checks_rows_of_every_class(tmp_path, monkeypatch):
    """The first training rows of a 6%-positive set are often all of the common class (here the
    first 3): every row weighed alike, and a backprop that dropped the weights passed."""
    import nnexp
    from nnexp.engine.losses import OutputLoss

    data = imbalanced_csv(tmp_path / "imb.csv")
    spec = {"data": {"dataset": str(data), "target": "y"}, "model": {"hidden": [4]},
            "train": {"class_weight": {"rare": 7}}}
    assert nnexp.gradcheck(spec, rows=3).passed

    def unweighted_delta(self, z, y):  # the weighted objective, backprop's deltas without the weights
        loss = self.training_loss(z, y)  # leaves the probabilities in z
        return loss, self.delta(z, y)

    monkeypatch.setattr(OutputLoss, "_weighted_loss_and_delta", unweighted_delta)
    assert not nnexp.gradcheck(spec, rows=3).passed
    # fewer rows than classes: the heavier class first (iris's first rows: setosa and versicolor, both 1)
    iris = {"data": {"dataset": "iris"}, "model": {"hidden": [4]}, "train": {"class_weight": {"virginica": 5}}}
    assert not nnexp.gradcheck(iris, rows=2).passed
    # a class weighed down: the heaviest class's row, then the lightest's (two rows of weight 1 could not tell)
    lighter = {**iris, "train": {"class_weight": {"setosa": 0.5}}}
    assert not nnexp.gradcheck(lighter, rows=2).passed


def test_a_two_class_run_finds_the_threshold_a_rare_class_needs(tmp_path):
    """On 6% positives the likelier class is nearly always the common one: the validation rows' best
    threshold, its balanced accuracy there and on the test rows (which did not choose it) are in
    metrics.json, re-derived here from predictions.csv and from `nnexp predict --threshold`."""
    data = imbalanced_csv(tmp_path / "imb.csv")
    spec = {"name": "imb", "data": {"dataset": str(data), "target": "y"}, "model": {"hidden": [16]},
            "optimizer": {"name": "adam", "lr": 0.01}, "train": {"epochs": 30, "batch_size": 32}}
    result = run_experiment(spec, results_dir=tmp_path / "out")
    metrics, t = result.metrics, result.metrics["threshold"]
    assert metrics["val_balanced_accuracy_at_threshold"] >= metrics["val_balanced_accuracy"]
    assert metrics["test_balanced_accuracy_at_threshold"] > metrics["test_balanced_accuracy"]  # 0.66 against 0.59
    frame = pd.read_csv(tmp_path / "out" / "imb" / "predictions.csv")
    from sklearn.metrics import balanced_accuracy_score

    for split in ("val", "test"):
        part = frame[frame["split"] == split]
        assert balanced_accuracy_score(part["target"] == "rare", part["proba_rare"] >= t) == pytest.approx(
            metrics[f"{split}_balanced_accuracy_at_threshold"])
    rows = pd.read_csv(data).iloc[frame.loc[frame["split"] == "test", "row"]]
    chosen = predict(tmp_path / "out" / "imb", rows, threshold=t)["prediction"]
    assert balanced_accuracy_score(rows["y"], chosen) == pytest.approx(metrics["test_balanced_accuracy_at_threshold"])
    assert "threshold" not in run_experiment({"data": {"dataset": "iris"}, "train": {"epochs": 2}}, results_dir=None).metrics


def test_an_optimizer_state_that_overflows_is_diverged_though_the_loss_stays_finite(tmp_path, write_spec):
    """Inputs of +-1e30 with normalize: none: in float32 Adam's mean of squared gradients overflowed,
    its steps became 0, and the run, never trained, was `ok` with exit 0. Gradients as large whose
    squares fit (3e19 inputs) still train: only their norm's sum of squares overflowed float32."""
    import pandas as pd

    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"a": rng.normal(size=200), "huge": np.where(np.arange(200) % 2, 1e30, -1e30),
                          "y": rng.choice(["p", "q"], 200)})
    frame.to_csv(tmp_path / "huge.csv", index=False)
    spec = {"name": "huge", "data": {"dataset": str(tmp_path / "huge.csv"), "normalize": "none"},
            "model": {"hidden": [8]}, "train": {"epochs": 5}}
    result = run_experiment(spec, results_dir=None)
    assert result.status == "diverged" and result.metrics["diverged_epoch"] == 1
    assert math.isfinite(result.history[-1]["train_loss"])
    because = "the optimizer's running averages of the gradients overflowed float32: no step can follow them"
    assert result.metrics["diverged_because"] == because
    cli = run_cli("run", write_spec(spec), "--results-dir", tmp_path / "out", "--quiet")
    assert cli.exit_code == 1 and cli.stderr.endswith(
        f"training diverged ({because}) at epoch 1; normalise the inputs (data.normalize), use train.dtype: float64, "
        "or try a smaller optimizer.lr\n")
    predicted = run_cli("predict", tmp_path / "out" / "huge", tmp_path / "huge.csv")
    assert predicted.exit_code == 2 and f"diverged at epoch 1 ({because}), so it saved no model (normalise" in predicted.stderr
    folded = run_experiment({**spec, "data": {**spec["data"], "cv_folds": 2}}, results_dir=None)
    assert folded.status == "diverged" and folded.metrics["diverged_because"] == because
    assert run_experiment({**spec, "data": {**spec["data"], "normalize": "zscore"}}, results_dir=None).status == "ok"
    large = pd.DataFrame(rng.normal(size=(200, 50)) * 3e19).add_prefix("c").assign(y=rng.choice(["p", "q"], 200))
    large.to_csv(tmp_path / "large.csv", index=False)
    trained = run_experiment({**spec, "data": {"dataset": str(tmp_path / "large.csv"), "normalize": "none"},
                              "model": {"hidden": [64]}}, results_dir=None)
    losses = [row["train_loss"] for row in trained.history]
    assert trained.status == "ok" and losses[-1] < losses[0]
    assert all(math.isfinite(row["grad_norm_1"]) and row["grad_norm_1"] > 1e19 for row in trained.history)


def test_regression_metrics_in_float32_come_from_the_targets_not_their_float32_rounding(tmp_path):
    """One training target of 1e12 among values near -1000: standardised in float32, every validation
    target rounded to the same number, their variance was 0 and R^2 read 0 where scikit-learn,
    from predictions.csv, gives -1.4e18."""
    from sklearn.metrics import mean_absolute_error, r2_score

    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.normal(size=(300, 2)), columns=["a", "b"]).assign(y=-1000 + 50 * rng.normal(size=300))
    frame.loc[5, "y"] = 1e12
    frame.to_csv(tmp_path / "outlier.csv", index=False)
    result = run_experiment({"data": {"dataset": str(tmp_path / "outlier.csv"), "target": "y"}, "model": {"hidden": [8]},
                             "train": {"epochs": 3, "dtype": "float32"}}, results_dir=None)
    rows = result.predictions()
    for split in ("val", "test"):
        part = rows[rows["split"] == split]
        assert result.metrics[f"{split}_r2"] == pytest.approx(r2_score(part["target"], part["prediction"]), rel=1e-6)
        assert result.metrics[f"{split}_mae"] == pytest.approx(mean_absolute_error(part["target"], part["prediction"]),
                                                               rel=1e-6)
        assert result.metrics[f"{split}_r2"] < -1e15
