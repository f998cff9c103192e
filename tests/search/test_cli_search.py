"""`nnexp search` and `nnexp report` end to end with real training on iris (tiny budgets)."""

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

import nnexp
import nnexp.errors
from nnexp.search.runner import run_search
from nnexp.search.space import plan_search
from nnexp.spec import load_search

from .app import app

runner = CliRunner()
APP = str(Path(__file__).with_name("app.py"))
SPACE = {"model.activation": ["relu", "tanh", "logistic"], "optimizer.lr": [0.01, 0.1]}


def trials(folder):
    return [json.loads(line) for line in (folder / "trials.jsonl").read_text().splitlines()]


def search(*args):
    return runner.invoke(app, ["search", *map(str, args)])


def test_grid_on_iris_with_two_jobs_matches_one_job(search_file, tmp_path):
    path = search_file(SPACE)
    result = search(path, "--results-dir", tmp_path / "res", "--n-jobs", 2)
    assert result.exit_code == 0, result.output
    folder = tmp_path / "res" / "grid"
    records = trials(folder)
    assert len(records) == 12 and all(r["status"] == "ok" for r in records)
    assert len({(r["config_id"], r["seed"]) for r in records}) == 12
    summary = pd.read_csv(folder / "summary.csv")
    assert len(summary) == 6 and summary["n_ok"].eq(2).all() and sorted(summary["rank"]) == sorted(summary["rank"])
    for name in ("summary.md", "effects.md", "search.yaml", "learning_curves.png", "effect_model.activation.png",
                 "best.yaml"):
        assert (folder / name).exists(), name
    assert "top configurations by val_accuracy" in result.stdout and str(folder) in result.stdout
    printed = " ".join(result.stdout.split())
    assert f"`nnexp run {folder / 'best.yaml'}` trains it again" in printed
    assert re.search(r"what matters \(share of the variance of val_accuracy\): \S+ [\d.]+%, \S+ [\d.]+%, "
                     r"interactions [\d.]+%; seed noise [\d.]+% \(effects\.md\)", printed)  # a full, balanced grid
    assert {r["threads"] for r in records} == {1} or os.cpu_count() > 2

    # the same plan in this process (n_jobs 1) gives bit-identical metrics
    loaded = load_search(path)
    serial = run_search(loaded, plan_search(loaded), tmp_path / "serial", n_jobs=1)
    metric_keys = [k for k in records[0] if k.startswith(("train_", "val_", "test_")) and k != "train_seconds"]
    by_key = {(r["config_id"], r["seed"]): r for r in records}
    for r in serial.records:
        other = by_key[(r["config_id"], r["seed"])]
        assert {k: r[k] for k in metric_keys} == {k: other[k] for k in metric_keys}
        assert r["history"] == other["history"]


def test_search_lets_its_workers_go_before_writing_the_report(search_file, tmp_path, monkeypatch):
    import nnexp.report
    import nnexp.search.runner

    events = []
    release, build = nnexp.search.runner.release_workers, nnexp.report.report
    monkeypatch.setattr(nnexp.search.runner, "release_workers", lambda: events.append("release") or release())
    monkeypatch.setattr(nnexp.report, "report", lambda folder: events.append("report") or build(folder))
    result = search(search_file({"optimizer.lr": [0.1, 0.01]}), "--results-dir", tmp_path, "--n-jobs", 2, "-q")
    assert result.exit_code == 0, result.output
    assert events == ["release", "report"]


def test_ctrl_c_while_the_tables_are_written_exits_130_and_says_how_to_write_them(search_file, tmp_path, monkeypatch):
    """Every trial is in the log by then: the message points at `nnexp report`, not at a resume."""
    import nnexp.report

    def interrupted(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr(nnexp.report, "report", interrupted)
    result = search(search_file({"optimizer.lr": [0.1, 0.01]}), "--results-dir", tmp_path, "--n-jobs", 1, "-q")
    folder = tmp_path / "grid"
    assert result.exit_code == 130 and len(trials(folder)) == 4
    assert result.stderr.splitlines()[-1] == (f"interrupted while writing the tables: the trials are kept in {folder}; "
                                              f"`nnexp report {folder}` writes the tables and plots")
    import nnexp.search.runner  # a stop while the workers are let go, after the trials: not "before the first trial"

    monkeypatch.setattr(nnexp.search.runner, "release_workers", interrupted)
    result = search(search_file({"optimizer.lr": [0.1, 0.01]}), "--results-dir", tmp_path, "--n-jobs", 1, "-q")
    assert result.exit_code == 130 and result.stderr.splitlines()[-1].startswith("interrupted while writing the tables")


def test_ctrl_c_after_fresh_says_to_resume_without_fresh(search_file, tmp_path, monkeypatch):
    """Running 'the same command' again would move the finished trials aside once more."""
    import nnexp.search.trial

    def interrupted(spec, prepared, metric=None):
        raise KeyboardInterrupt

    monkeypatch.setattr(nnexp.search.trial, "_default_train", interrupted)
    result = search(search_file({"optimizer.lr": [0.1]}), "--results-dir", tmp_path, "--n-jobs", 1, "-q", "--fresh")
    assert result.exit_code == 130
    assert result.stderr.splitlines()[-1].endswith("run it again without --fresh to resume")


def test_trials_beyond_a_million_are_refused_before_planning(search_file, tmp_path):
    result = search(search_file({"optimizer.lr": {"log_uniform": [1e-4, 1]}}), "--random", "--trials", 2_000_000,
                    "--results-dir", tmp_path)
    assert result.exit_code == 2 and not (tmp_path / "grid").exists()


def test_diverging_configuration_is_recorded_while_others_complete(search_file, tmp_path):
    path = search_file({"optimizer.lr": [0.1, 1e6]}, repeats=1)
    result = search(path, "--results-dir", tmp_path, "--n-jobs", 1, "--quiet")
    assert result.exit_code == 0, result.output
    status = {r["params"]["optimizer.lr"]: r for r in trials(tmp_path / "grid")}
    assert status[0.1]["status"] == "ok" and status[0.1]["val_accuracy"] > 0
    assert status[1e6]["status"] == "diverged" and status[1e6]["diverged_epoch"] >= 1
    assert status[1e6]["val_loss"] is None
    # why, in the record, summary.md and the leaderboard (a count alone left the user to dig in the log)
    because = status[1e6]["diverged_because"]
    assert because in ("non-finite loss", "the loss grew past 10,000 times its first epoch's")
    summary = (tmp_path / "grid" / "summary.md").read_text()
    assert f"## Why trials diverged\n\n- 1 x {because}\n" in summary
    assert summary.index("(learning_curves.png)") < summary.index("## Why trials diverged")  # under its table
    shown = search(path, "--results-dir", tmp_path, "--n-jobs", 1)  # resumed: nothing runs, the leaderboard shows
    assert f"diverged: 1 x {because}" in shown.stdout


def test_every_trial_failing_exits_1(search_file, tmp_path):
    path = search_file({"optimizer.lr": [1e6, 1e7]}, repeats=1)
    result = search(path, "--results-dir", tmp_path, "--n-jobs", 1, "--quiet")
    assert result.exit_code == 1 and "no trial finished ok" in result.stderr
    assert (tmp_path / "grid" / "summary.md").exists()
    assert set(pd.read_csv(tmp_path / "grid" / "summary.csv")["tied_best"]) == {"n/a (no ok repeat)"}


@pytest.mark.parametrize("args, message", [
    (["--trials", "3"], "--trials: only for random search"),
    (["--set", "space.model.activaton=[relu]"], "space.model.activaton: unknown field"),
    (["--backend", "spark"], "unknown backend 'spark'"),
    (["--scheduler", "tcp://x:8786"], "--scheduler: only used with --backend dask"),
    (["--n-jobs", "0"], "--n-jobs"),
    (["--set", "metric=val_rmse"], "metric: 'val_rmse' is not computed for a classification task"),
])
def test_bad_input_exits_2_with_one_line(search_file, tmp_path, args, message):
    result = search(search_file(SPACE), "--results-dir", tmp_path, *args)
    assert result.exit_code == 2, result.output
    assert message in result.stderr and "Traceback" not in result.output
    assert len(result.stderr.strip().splitlines()) == 1


def test_every_searched_data_file_must_exist_before_any_trial(search_file, tmp_path):
    path = search_file({"data.dataset": ["iris", "nope.csv", "nope2.csv"]})
    result = search(path, "--results-dir", tmp_path / "out", "--quiet")
    assert result.exit_code == 2 and result.stderr.strip().splitlines() == [
        f"error: {tmp_path / name}: data.dataset: file not found" for name in ("nope.csv", "nope2.csv")]
    assert not (tmp_path / "out").exists()


def test_a_metric_the_task_of_a_data_file_lacks_exits_2_before_any_trial(search_file, tmp_path):
    """A file's 'auto' task is known once it is read: the search reads it before any worker starts."""
    import numpy as np

    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"a": rng.normal(size=80), "b": rng.normal(size=80)})
    frame["y"] = 2 * frame["a"] + rng.normal(0, 0.1, 80)
    frame.to_csv(tmp_path / "reg.csv", index=False)
    experiment = {"data": {"dataset": str(tmp_path / "reg.csv"), "target": "y"},
                  "train": {"epochs": 2, "early_stopping": {"monitor": "val_f1"}}}
    path = search_file({"optimizer.lr": [0.01, 0.1]}, experiment=experiment)
    result = search(path, "--results-dir", tmp_path / "out", "--quiet")
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert result.stderr.strip().splitlines() == [
        f"error: {path}: metric: 'val_accuracy' is not computed for a regression task "
        "(one of val_loss, val_rmse, val_mae, val_r2)",
        f"error: {path}: train.early_stopping.monitor: 'val_f1' is not computed for a regression task "
        "(one of train_loss, val_loss, val_rmse, val_mae, val_r2)"]
    assert not (tmp_path / "out").exists()


def test_a_metric_one_searched_data_set_lacks_fails_its_trials_and_losses_that_do_not_compare_are_named(
        search_file, tmp_path):
    """A searched data file read as classification was `ok` with no val_rmse ("n/a (no val_rmse)");
    it fails, saying why. val_loss of a regression is in units of each training set's target spread:
    ranking data.train_size by it crowned the wrong size on heavy-tailed targets, so it says so."""
    import numpy as np

    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 2))
    pd.DataFrame(x, columns=["a", "b"]).assign(y=np.exp(3 + 2 * x[:, 0])).to_csv(tmp_path / "reg.csv", index=False)
    pd.DataFrame({"a": x[:, 0], "y": rng.integers(0, 3, 200)}).to_csv(tmp_path / "cls.csv", index=False)
    regression = {"data": {"dataset": str(tmp_path / "reg.csv"), "target": "y"}, "train": {"epochs": 2}}
    path = search_file({"data.dataset": [str(tmp_path / "reg.csv"), str(tmp_path / "cls.csv")]}, name="mixed",
                       experiment=regression, metric="val_rmse", repeats=1)
    done = search(path, "--results-dir", tmp_path / "out", "--quiet")
    records = {Path(r["params"]["data.dataset"]).name: r for r in trials(tmp_path / "out" / "mixed")}
    assert done.exit_code == 0 and records["reg.csv"]["status"] == "ok" and records["cls.csv"]["status"] == "failed"
    assert records["cls.csv"]["error"].startswith("SpecError: the search's metric: 'val_rmse' is not computed for a "
                                                  "classification task")
    sizes = search_file({"data.train_size": [50, 100]}, name="sizes", experiment=regression, metric="val_loss",
                        repeats=1)
    warned = search(sizes, "--results-dir", tmp_path / "out", "--quiet")
    assert warned.exit_code == 0 and (f"warning: {sizes}: metric: val_loss ranks regression configurations whose "
                                      "training rows differ (data.train_size)") in warned.stderr
    assert "ranks" not in search(sizes, "--results-dir", tmp_path / "out2", "--quiet", "--set", "metric=val_rmse").stderr
    iris = search_file({"data.train_size": [50, 100]}, name="iris", metric="val_loss", repeats=1)
    assert "ranks" not in search(iris, "--results-dir", tmp_path / "out", "--quiet").stderr  # cross-entropy compares
    tasks = search_file({"data.task": ["classification", "regression"]}, name="tasks", metric="val_loss", repeats=1,
                        experiment={"data": {"dataset": str(tmp_path / "cls.csv"), "target": "y"}, "train": {"epochs": 2}})
    assert "ranks configurations of different tasks (classification, regression)" in search(
        tasks, "--results-dir", tmp_path / "out", "--quiet").stderr
    # an 'auto' that reads the file as classification beside a regression, whichever comes first; two built-ins
    auto = search_file({"data.task": ["regression", "auto"]}, name="auto", metric="val_loss", repeats=1,
                       experiment={"data": {"dataset": str(tmp_path / "cls.csv"), "target": "y"}, "train": {"epochs": 2}})
    builtins = search_file({"data.dataset": ["diabetes", "iris"]}, name="builtins", metric="val_loss", repeats=1)
    for path in (auto, builtins):
        said = search(path, "--results-dir", tmp_path / "out", "--quiet").stderr
        assert "ranks configurations of different tasks (classification, regression)" in said and "val_rmse" not in said


def test_a_searched_class_weight_naming_no_class_of_the_data_exits_2_before_any_trial(search_file, tmp_path):
    experiment = {"data": {"dataset": "iris"}, "train": {"epochs": 2}}
    path = search_file({"train.class_weight": [None, "balanced", {"setosa": 2}, {"setossa": 2}]}, experiment=experiment)
    result = search(path, "--results-dir", tmp_path / "out", "--quiet")
    assert result.exit_code == 2 and result.stderr.strip().splitlines() == [  # the searched value, as the space has it
        f"error: {path}: space.train.class_weight: value {{'setossa': 2.0}}: no class 'setossa' in iris; did you mean "
        "'setosa'? (its classes: setosa, versicolor, virginica)"]
    assert not (tmp_path / "out").exists()
    regression = search_file({"train.class_weight": [None, "balanced"]}, name="reg", repeats=1,
                             experiment={"data": {"dataset": "diabetes"}, "train": {"epochs": 2}}, metric="val_loss")
    refused = search(regression, "--results-dir", tmp_path / "out", "--quiet")
    assert refused.exit_code == 2 and refused.stderr == (f"error: {regression}: space.train.class_weight: value "
                                                         "'balanced': only for classification, and this is a "
                                                         "regression task\n")


@pytest.mark.parametrize("files", [["text.csv", "numbers.csv"], ["numbers.csv", "text.csv"]])
def test_a_class_weight_that_fits_only_some_searched_data_files_fails_only_their_trials(search_file, tmp_path, files):
    """Which file was listed first decided whether the search ran or was refused; now the
    configurations whose data lacks the class fail, naming the file, whatever the order."""
    import numpy as np

    rng = np.random.default_rng(0)
    x = rng.normal(size=(80, 2))
    for name, labels in (("text.csv", ["ok", "fraud"]), ("numbers.csv", [0, 1])):
        pd.DataFrame({"a": x[:, 0], "b": x[:, 1], "y": np.where(x[:, 0] > 0.8, labels[1], labels[0])}).to_csv(
            tmp_path / name, index=False)
    experiment = {"data": {"dataset": str(tmp_path / files[0]), "target": "y"},
                  "train": {"epochs": 2, "class_weight": {"fraud": 3}}}
    path = search_file({"data.dataset": [str(tmp_path / f) for f in files]}, experiment=experiment, repeats=1)
    result = search(path, "--results-dir", tmp_path / "out", "--n-jobs", 1, "-q")
    assert result.exit_code == 0, result.output
    status = {Path(r["params"]["data.dataset"]).name: r for r in trials(tmp_path / "out" / "grid")}
    assert status["text.csv"]["status"] == "ok" and status["numbers.csv"]["status"] == "failed"
    assert status["numbers.csv"]["error"] == (f"SpecError: train.class_weight: no class 'fraud' in {tmp_path / 'numbers.csv'} "
                                              "(its classes: 0, 1)")


def test_missing_dask_exits_2(search_file, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)  # import fails as when not installed
    result = search(search_file(SPACE), "--results-dir", tmp_path, "--backend", "dask")
    assert result.exit_code == 2 and "--backend dask: not available" in result.stderr


def test_second_search_on_the_same_folder_is_refused(search_file, tmp_path):
    folder = tmp_path / "grid"
    folder.mkdir()
    (folder / ".lock").write_text(json.dumps({"pid": os.getppid(), "host": os.uname().nodename, "started": "now"}))
    result = search(search_file(SPACE), "--results-dir", tmp_path)
    assert result.exit_code == 2 and "another search is running" in result.stderr


def test_changed_search_is_refused_until_fresh(search_file, tmp_path):
    path = search_file({"optimizer.lr": [0.1]}, repeats=1)
    assert search(path, "--results-dir", tmp_path, "-q", "--n-jobs", 1).exit_code == 0
    changed = search(path, "--results-dir", tmp_path, "-q", "--n-jobs", 1, "--set", "train.epochs=4")
    assert changed.exit_code == 2 and "train.epochs: 3 -> 4" in changed.stderr
    fresh = search(path, "--results-dir", tmp_path, "-q", "--n-jobs", 1, "--set", "train.epochs=4", "--fresh")
    assert fresh.exit_code == 0 and trials(tmp_path / "grid")[0]["epochs_run"] == 4


def test_a_grid_with_new_values_runs_only_the_new_configurations(search_file, tmp_path):
    path = search_file({"optimizer.lr": [0.1]}, repeats=2)
    assert search(path, "--results-dir", tmp_path, "-q", "--n-jobs", 1).exit_code == 0
    first = trials(tmp_path / "grid")
    grown = search(path, "--results-dir", tmp_path, "-q", "--n-jobs", 1, "--set", "space.optimizer.lr=[0.1, 0.5]")
    assert grown.exit_code == 0 and "its trials are kept, and only the new configurations run" in grown.stderr
    now = trials(tmp_path / "grid")
    assert now[:2] == first and [r["params"]["optimizer.lr"] for r in now[2:]] == [0.5, 0.5]
    assert len(pd.read_csv(tmp_path / "grid" / "summary.csv")) == 2


def test_report_command(search_file, tmp_path, monkeypatch):
    path = search_file({"optimizer.lr": [0.1, 0.01]}, repeats=2)
    assert search(path, "--results-dir", tmp_path, "-q", "--n-jobs", 1).exit_code == 0
    (tmp_path / "grid" / "summary.md").unlink()
    result = runner.invoke(app, ["report", str(tmp_path / "grid")])
    assert result.exit_code == 0 and (tmp_path / "grid" / "summary.md").exists() and "lr" in result.stdout
    assert runner.invoke(app, ["report", str(tmp_path / "nothing")]).exit_code == 2
    (tmp_path / "grid" / "summary.md").unlink()  # by the search's name, under the results folder it was given
    named = runner.invoke(app, ["report", "grid", "--results-dir", str(tmp_path), "--quiet"])
    assert named.exit_code == 0 and named.stdout == "" and (tmp_path / "grid" / "summary.md").exists()
    (tmp_path / "cwd" / "results").mkdir(parents=True)  # by its name alone, under results/ (the search's default)
    (tmp_path / "grid").rename(tmp_path / "cwd" / "results" / "grid")
    monkeypatch.chdir(tmp_path / "cwd")
    assert runner.invoke(app, ["report", "grid", "--quiet"]).exit_code == 0
    (tmp_path / "cwd" / "grid").mkdir()  # an unrelated local folder of that name
    assert runner.invoke(app, ["report", "grid", "--quiet"]).exit_code == 0
    missing = runner.invoke(app, ["report", "gird"])
    assert missing.exit_code == 2
    assert missing.stderr == f"error: gird: no such folder, nor {Path('results') / 'gird'}; did you mean 'grid'?\n"


def start(path, results, n_jobs=1):
    return subprocess.Popen([sys.executable, APP, "search", str(path), "--results-dir", str(results), "--n-jobs",
                             str(n_jobs), "--quiet"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True)


def wait_for_lines(log: Path, n: int, proc, timeout=60.0):
    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None:
        if log.exists() and log.read_text().count("\n") >= n:
            return
        time.sleep(0.02)
    raise AssertionError(f"{log}: fewer than {n} lines (exit {proc.poll()})")


def test_interrupt_then_kill_then_resume(search_file, tmp_path, interrupt):
    """Ctrl-C keeps finished trials (exit 130); kill -9 loses only the running one; a re-run finishes the rest."""
    experiment = {"data": {"dataset": "iris"}, "model": {"hidden": [32]}, "optimizer": {"name": "sgd", "lr": 0.1},
                  "train": {"epochs": 600, "batch_size": 8}}  # about a second a trial: still running when interrupted
    path = search_file(SPACE, experiment=experiment)
    log = tmp_path / "grid" / "trials.jsonl"

    proc = start(path, tmp_path)
    wait_for_lines(log, 2, proc)
    interrupt(proc, log)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err.decode()
    after_interrupt = trials(tmp_path / "grid")
    assert 2 <= len(after_interrupt) < 12 and (tmp_path / "grid" / "summary.md").exists()

    proc = start(path, tmp_path)
    wait_for_lines(log, len(after_interrupt) + 2, proc)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    after_kill = trials(tmp_path / "grid")
    assert after_kill[: len(after_interrupt)] == after_interrupt and len(after_kill) < 12
    assert (tmp_path / "grid" / ".lock").exists()  # left behind by the killed run: stale, taken over below

    proc = start(path, tmp_path)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err.decode()
    final = trials(tmp_path / "grid")
    assert final[: len(after_kill)] == after_kill and len(final) == 12
    keys = [(r["config_id"], r["seed"]) for r in final]
    assert len(set(keys)) == 12  # every key exactly once: nothing finished was trained again
    assert yaml.safe_load((tmp_path / "grid" / "search.yaml").read_text())["search"]["name"] == "grid"


@pytest.mark.parametrize("n_jobs", [1, 2])
def test_ctrl_c_before_the_first_trial_finishes(search_file, tmp_path, interrupt, n_jobs):
    """Nothing finished is still a legitimate interrupted search: exit 130, empty tables, `nnexp report` reads it."""
    experiment = {"data": {"dataset": "iris"}, "model": {"hidden": [32]}, "optimizer": {"name": "sgd", "lr": 0.1},
                  "train": {"epochs": 100000, "batch_size": 8}}  # minutes a trial: none finishes in this test
    path = search_file(SPACE, experiment=experiment)
    folder = tmp_path / "grid"

    proc = start(path, tmp_path, n_jobs)
    try:
        wait_for_lines(folder / "trials.jsonl", 0, proc, timeout=30)  # the log exists once trials are about to start
        time.sleep(0.5)
        interrupt(proc, folder / "trials.jsonl")
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:  # a failure here must not leave a search of minutes running, nor its workers
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
    assert proc.returncode == 130, err.decode()
    assert err.decode().splitlines()[-1] == (f"interrupted: 0 trials finished this run are kept in {folder}; "
                                             "run the same command again to resume")
    assert "error:" not in err.decode() and "Traceback" not in err.decode()
    assert (folder / "trials.jsonl").read_bytes() == b"" and not (folder / ".lock").exists()
    assert "(no trials finished yet)" in (folder / "summary.md").read_text() and not list(folder.glob("*.png"))

    again = runner.invoke(app, ["report", str(folder)])
    assert again.exit_code == 0, again.output
    assert "grid: no trials finished yet" in again.stdout and "top configurations" not in again.stdout


def test_fewer_repeats_on_resume_says_the_tables_hold_more_trials(search_file, tmp_path):
    path = search_file({"optimizer.lr": [0.01, 0.1]}, repeats=3)
    assert search(path, "--results-dir", tmp_path, "-q").exit_code == 0
    again = search(path, "--results-dir", tmp_path, "-q", "--set", "repeats=2")
    assert again.exit_code == 0, again.output
    assert again.stderr.strip() == (f"note: {tmp_path / 'grid'}/trials.jsonl also holds 2 trial(s) outside this plan "
                                    "(an earlier run with more repeats or trials); the tables include them")
    assert set(pd.read_csv(tmp_path / "grid" / "summary.csv")["n_trials"]) == {3}


def test_report_ranks_by_another_metric_on_request_and_warns_when_it_must_guess(search_file, tmp_path):
    """--metric re-ranks without training; without search.yaml the metric is a guess, said so;
    a search run again with another metric resumes (nothing to train) and ranks by it."""
    path = search_file({"optimizer.lr": [0.01, 1.0]}, repeats=2)
    assert search(path, "--results-dir", tmp_path, "--quiet").exit_code == 0
    folder = tmp_path / "grid"
    by_loss = runner.invoke(app, ["report", str(folder), "--quiet", "--metric", "val_loss"])
    assert by_loss.exit_code == 0, by_loss.output
    summary = pd.read_csv(folder / "summary.csv")
    assert list(summary["mean_val_loss"]) == sorted(summary["mean_val_loss"])
    assert "ranked by val_loss (min)" in (folder / "summary.md").read_text()
    assert yaml.safe_load((folder / "search.yaml").read_text())["search"]["metric"] == "val_accuracy"
    for args, message in ((["--metric", "val_los"], "error: --metric: unknown metric 'val_los'; did you mean 'val_loss'?"),
                          (["--metric", "VAL_LOSS"], "error: --metric: unknown metric 'VAL_LOSS'; did you mean 'val_loss'? "
                                                     "(one of train_loss, train_accuracy, train_f1, train_balanced_accuracy, "
                                                     "train_auc, train_ap, train_rmse, train_mae, train_r2, val_loss, "
                                                     "val_accuracy, val_f1, val_balanced_accuracy, val_auc, val_ap, val_rmse, "
                                                     "val_mae, val_r2)\n"),
                          (["--metric", "test_accuracy"], "error: --metric: never select on test data"),
                          (["--mode", "min"], "error: --mode: give --metric too"),
                          (["--metric", "val_loss", "--mode", "up"], "error: --mode: 'up' is not allowed"),
                          (["--metric", "val_rmse"], f"error: --metric: no trial in {folder} has val_rmse (they have "
                                                     "train_accuracy")):
        bad = runner.invoke(app, ["report", str(folder), *args])
        assert bad.exit_code == 2 and bad.stderr.startswith(message), (args, bad.stderr)
    assert (folder / "learning_curves.png").exists()  # a refused ranking leaves the files as they were

    rerun = search(path, "--results-dir", tmp_path, "--quiet", "--set", "metric=val_loss")
    assert rerun.exit_code == 0, rerun.output
    assert len(trials(folder)) == 4 and "ranked by val_loss (min)" in (folder / "summary.md").read_text()
    assert ("warning: ranked by val_loss (min) now, by val_accuracy (max) in the last run: the same trials, "
            "ordered anew") in rerun.stderr

    (folder / "search.yaml").unlink()
    guessed = runner.invoke(app, ["report", str(folder), "--quiet"])
    assert guessed.exit_code == 0 and "search.yaml: missing, so the search's metric is unknown; ranked by " \
        "val_accuracy, a guess (give --metric to choose)" in guessed.stderr
    assert "ranked by val_accuracy (max; a guess: no search.yaml" in (folder / "summary.md").read_text()


def test_the_reasons_of_failed_trials_are_on_the_console(search_file, tmp_path):
    """Not only a count: each distinct error once, with its number of trials; a data error names its
    field, not a line of nnexp's source."""
    experiment = {"data": {"dataset": "iris", "normalize": "pca"}, "train": {"epochs": 1}}
    path = search_file({"data.pca_components": [2, 10]}, experiment=experiment, repeats=2)
    result = search(path, "--results-dir", tmp_path, "--n-jobs", 1)
    assert result.exit_code == 0, result.output
    failed = [line for line in result.stdout.splitlines() if line.startswith("failed: ")]
    assert len(failed) == 1 and failed[0].startswith("failed: 2 x DataError: ") and "pca_components" in failed[0]
    assert "(at " not in failed[0]


def test_sigterm_before_the_first_trial_is_one_line_and_exit_143(search_file, tmp_path, monkeypatch):
    """While the search is still being planned: no tables to write, but the same exit code and a
    line saying so (it ended silently with 130)."""
    import nnexp.search.space as space

    def planning_then_terminated(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(1)  # the handler raises here
        raise AssertionError("SIGTERM did not stop the search")

    monkeypatch.setattr(space, "plan_search", planning_then_terminated)
    before = signal.getsignal(signal.SIGTERM)
    result = search(search_file(SPACE), "--results-dir", tmp_path)
    assert result.exit_code == 143 and result.stderr == (
        "terminated (SIGTERM) before the first trial of this run; nothing new was run\n"), result.stderr
    assert signal.getsignal(signal.SIGTERM) is before


def test_a_misspelt_column_of_a_searched_data_drop_is_named_before_the_first_trial(tmp_path):
    """A mistake in the spec (exit 2, nothing run), not configurations whose trials all fail."""
    rows = "".join(f"r{i},{i % 7 / 7},{i % 5},{i % 2}\n" for i in range(60))
    (tmp_path / "d.csv").write_text("id,a,b,label\n" + rows)
    path = tmp_path / "drops.yaml"
    path.write_text(yaml.safe_dump({"name": "drops", "experiment": {"data": {"dataset": "d.csv"}, "train": {"epochs": 1}},
                                    "repeats": 1, "space": {"data.drop": [["id"], ["id", "nosuch"], ["id", "bb"]]}}))
    result = search(path, "--results-dir", tmp_path / "res")
    assert result.exit_code == 2, result.output
    assert result.stderr.splitlines() == [
        f"error: {tmp_path / 'd.csv'}: data.drop: no feature column 'nosuch' (features: id, a, b)",
        f"error: {tmp_path / 'd.csv'}: data.drop: no feature column 'bb'; did you mean 'b'? (features: id, a, b)"]
    assert not (tmp_path / "res" / "drops" / "trials.jsonl").exists()
    for data, dropped, line in [  # with nothing dropped first (its data was the one checked), and of a built-in set
            ({"dataset": "d.csv"}, [[], ["bogus"]], f"error: {tmp_path / 'd.csv'}: data.drop: no feature column 'bogus'"),
            ({"dataset": "iris"}, [[], ["sepal_lenght"]], f"error: {path}: data.drop: no feature column 'sepal_lenght'")]:
        path.write_text(yaml.safe_dump({"name": "drops", "experiment": {"data": data, "train": {"epochs": 1}},
                                        "repeats": 1, "space": {"data.drop": dropped}}))
        result = search(path, "--results-dir", tmp_path / "res")
        assert result.exit_code == 2 and result.stderr.startswith(line), result.output


@pytest.mark.parametrize("order", ["broken first", "broken last"])
def test_a_searched_data_value_that_breaks_its_data_fails_its_trials_wherever_it_is_planned(tmp_path, order):
    """More PCA components than features: that configuration's trials fail, whether or not the plan
    lists it first (it stopped the whole search when first); when no configuration's data can be
    prepared, the search stops with exit 2."""
    rows = "".join(f"{i % 7 / 7},{i % 5},{(i * 3) % 11},{i % 2}\n" for i in range(60))
    (tmp_path / "d.csv").write_text("a,b,c,label\n" + rows)
    values = [{"normalize": "pca", "pca_components": 50}, {"normalize": "zscore"}]
    path = tmp_path / "pca.yaml"
    path.write_text(yaml.safe_dump({"name": "pca", "experiment": {"data": {"dataset": "d.csv"}, "train": {"epochs": 1}},
                                    "repeats": 1, "space": {"data": values if order == "broken first" else values[::-1]}}))
    result = search(path, "--results-dir", tmp_path / "res", "--quiet")
    assert result.exit_code == 0, result.output
    assert sorted(r["status"] for r in trials(tmp_path / "res" / "pca")) == ["failed", "ok"]
    values[1] = {"normalize": "pca", "pca_components": 60}
    path.write_text(yaml.safe_dump({"name": "none", "experiment": {"data": {"dataset": "d.csv"}, "train": {"epochs": 1}},
                                    "repeats": 1, "space": {"data": values}}))
    result = search(path, "--results-dir", tmp_path / "res", "--quiet")
    assert result.exit_code == 2 and "data.pca_components: asks for 50 components" in result.stderr
    assert not (tmp_path / "res" / "none").exists()


def test_settings_a_built_in_data_set_cannot_take_are_bad_input_named_by_the_spec(tmp_path):
    """Built-in sets were not prepared before the first trial: validate passed, and the search wrote a
    folder of failed trials and exited 1; the error named 'iris', which is no file."""
    path = tmp_path / "pcs.yaml"
    path.write_text(yaml.safe_dump({"name": "pcs", "repeats": 1, "space": {"model.hidden": [[2], [3]]},
                                    "experiment": {"data": {"dataset": "iris", "normalize": "pca", "pca_components": 10},
                                                   "train": {"epochs": 1}}}))
    line = f"error: {path}: data.pca_components: asks for 10 components but the training rows span only 4"
    for command in (["validate", path], ["search", path, "--results-dir", tmp_path / "res", "--n-jobs", 1]):
        result = runner.invoke(app, list(map(str, command)))
        assert result.exit_code == 2 and result.stderr.startswith(line), result.output
    assert not (tmp_path / "res").exists()
    with pytest.raises(nnexp.errors.DataError, match=f"^{re.escape(str(path))}: data.pca_components: asks for 10"):
        nnexp.run_search(path, results_dir=tmp_path / "res")
    experiment = tmp_path / "exp.yaml"
    experiment.write_text(yaml.safe_dump({"data": {"dataset": "iris", "train_size": 1000}}))
    for verb in ("validate", "run", "gradcheck"):
        result = runner.invoke(app, [verb, str(experiment), "--results-dir", str(tmp_path / "res")][:2 if verb != "run" else 4])
        assert result.exit_code == 2, (verb, result.output)
        assert result.stderr == f"error: {experiment}: data.train_size: asks for 1000 rows but the training split has only 90\n"
    assert not (tmp_path / "res").exists()


def test_the_trials_different_warnings_are_capped_on_the_console(tmp_path):
    """A column that is constant on some seeds' training rows gives each seed its own warning: 100
    repeats printed 100 lines."""
    rng = np.random.default_rng(1)
    table = pd.DataFrame({f"s{j}": np.eye(60)[rng.integers(60)] for j in range(30)})
    table["a"], table["y"] = rng.normal(size=60), [0, 1] * 30
    table.to_csv(tmp_path / "sparse.csv", index=False)
    path = tmp_path / "sparse.yaml"
    path.write_text(yaml.safe_dump({"name": "sparse", "repeats": 8, "space": {"optimizer.lr": [0.01]},
                                    "experiment": {"data": {"dataset": "sparse.csv"}, "train": {"epochs": 1}}}))
    result = search(path, "--results-dir", tmp_path / "res", "--n-jobs", 1, "-q")
    assert result.exit_code == 0, result.output
    warned = [line for line in result.stderr.splitlines() if line.startswith("warning: ")]
    differing = {w for r in trials(tmp_path / "res" / "sparse") for w in r["warnings"]}
    assert len(differing) > 5 and len(warned) == 6
    assert warned[-1] == (f"warning: ... and {len(differing) - 5} more different warnings of trials (each trial's "
                          f"are in {tmp_path / 'res' / 'sparse'}/trials.jsonl)")


def test_a_base_files_data_settings_are_named_by_the_base_file(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "base.yaml").write_text("data: {dataset: iris, normalize: pca, pca_components: 10}\n")
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump({"name": "x", "base": "sub/base.yaml", "repeats": 1, "space": {"model.hidden": [[4]]}}))
    result = runner.invoke(app, ["validate", str(path), "-q"])
    assert result.exit_code == 2 and result.stderr.startswith(f"error: {tmp_path / 'sub' / 'base.yaml'}: data.pca_components")


def test_progress_on_a_pipe_is_plain_lines(search_file, tmp_path, monkeypatch):
    """Under nohup, a batch job or `| tee` nothing was printed between the plan and the
    leaderboard: a search of hours showed no sign of life. A line after the first trial, then at
    most every LOG_SECONDS, and where it ended."""
    import nnexp.search_cli as search_cli

    path = search_file(SPACE, repeats=1)
    done = search(path, "--n-jobs", "1", "--results-dir", tmp_path)
    lines = [line for line in done.stdout.splitlines() if re.match(r"\d\d:\d\d:\d\d trials ", line)]
    assert done.exit_code == 0 and len(lines) == 2, done.stdout  # the first trial, and the end (all in 30 s)
    assert " trials 1/6  running " in lines[0] and " trials 6/6  running 0  best val_accuracy " in lines[1]
    assert "ETA" in lines[0] and "ETA" not in lines[1]  # the end has none (a Ctrl-C ends it early too)
    assert "trials" not in search(path, "--results-dir", tmp_path, "--fresh", "-q").stdout


def test_progress_lines_come_with_the_clock_while_a_trial_runs(monkeypatch):
    """A line every LOG_SECONDS, not only when a trial ends: under nohup a trial of an hour
    left the log silent for the hour."""
    import io
    from types import SimpleNamespace

    from rich.console import Console

    import nnexp.search_cli as search_cli

    monkeypatch.setattr(search_cli, "LOG_SECONDS", 0.05)
    out = io.StringIO()
    counts = SimpleNamespace(done=0, skipped=0, total=4, running=2, failed=0, diverged=0, best=None, eta=None)
    with search_cli.SearchProgress(Console(file=out, width=120), "val_accuracy") as progress:
        progress.update(None, counts)  # the runner's first report: nothing finished, two trials running
        time.sleep(0.4)
    lines = out.getvalue().splitlines()
    assert len(lines) >= 3 and all(re.fullmatch(r"\d\d:\d\d:\d\d trials 0/4  running 2  best val_accuracy –  ETA –", line)
                                   for line in lines), lines


def test_a_leaderboard_of_many_parameters_keeps_its_figures_whole_at_80_columns(tmp_path):
    """Seven parameters at 80 columns were cut to `ra…`, `d…`, and ok/n to `2…`: the parameters go
    into one column that wraps, the figures are never cut, and a kind inside a kind reads as one
    (schedule=step(every=1, factor=0.5), not JSON)."""
    from rich.console import Console

    from nnexp.search_cli import print_leaderboard

    space = {"model.activation": ["relu", "tanh"], "model.hidden": [[8], [16, 8]], "train.batch_size": [16, 32],
             "optimizer": [{"name": "momentum", "lr": 0.05, "schedule": {"name": "step", "every": 1}},
                           {"name": "adam", "lr": 0.01}], "data.normalize": ["zscore", "minmax"]}
    result = nnexp.run_search({"name": "many", "repeats": 2, "experiment": {"data": {"dataset": "iris"},
                               "train": {"epochs": 1}}, "space": space}, results_dir=tmp_path, n_jobs=1).report
    narrow = Console(width=80, record=True)
    print_leaderboard(narrow, result, None)
    text = narrow.export_text()
    rows = [line for line in text.splitlines() if line.startswith(("┃", "│"))]
    assert "configuration" in rows[0] and not any("…" in line for line in rows) and "schedule=step(every=1" in text
    figures = [line for line in text.splitlines() if re.match(r"│\s+1 │", line)]
    assert figures and re.search(r"\d\.\d{4} ± \d\.\d{4} │", figures[0]) and re.search(r" 2/2 │", figures[0])
    wide = Console(width=200, record=True)
    print_leaderboard(wide, result, None)
    header = next(line for line in wide.export_text().splitlines() if "rank" in line)
    assert "activation" in header and "configuration" not in header  # a column each where they fit


def test_a_progress_line_comes_log_seconds_after_the_last_one(monkeypatch):
    """The clock ticked every 30 s from the start and skipped a tick that fell within 30 s of the
    first trial's line: up to a minute without a line. Now each waits for the last line + 30 s."""
    import io
    from types import SimpleNamespace

    from rich.console import Console

    import nnexp.search_cli as search_cli

    clock = SimpleNamespace(now=0.0)
    waits = []

    class Stop:  # the clock moves by what the ticker waits; the fourth wait ends it
        def wait(self, timeout):
            waits.append(round(timeout, 6))
            clock.now += timeout
            return len(waits) > 3

    out = io.StringIO()
    progress = search_cli.SearchProgress(Console(file=out, width=120), "val_accuracy")
    progress.stop = Stop()
    progress.counts = SimpleNamespace(done=1, skipped=0, total=9, running=2, failed=0, diverged=0, best=0.5, eta=60.0)
    progress.logged_at = 3.0  # the first trial's line, 3 s in
    monkeypatch.setattr(search_cli.time, "monotonic", lambda: clock.now)
    progress._tick()
    assert waits == [33.0, 30.0, 30.0, 30.0] and len(out.getvalue().splitlines()) == 3  # at 33, 63 and 93 s
