"""One trial: the record it returns, the per-process data cache, failures as records."""

import json

import nnexp.data
from nnexp.search import trial as trial_module
from nnexp.search.store import dumps
from nnexp.search.trial import TrialTask, compact_history, one_line, run_trial


def task_of(planned, space=None, **fields):
    _, plan = planned(space or {"optimizer.lr": [0.1]}, repeats=1, **fields)
    return TrialTask.from_trial(plan.trials[0])


def test_data_is_prepared_once_per_process(planned, monkeypatch):
    calls = []
    real = nnexp.data.prepare
    monkeypatch.setattr(nnexp.data, "prepare", lambda *a, **k: calls.append(a) or real(*a, **k))
    monkeypatch.setattr(trial_module, "_data_cache", type(trial_module._data_cache)())
    _, plan = planned({"optimizer.lr": [0.1, 0.05]}, repeats=2)
    records = [run_trial(TrialTask.from_trial(t)) for t in plan.trials]
    assert [r["status"] for r in records] == ["ok"] * 4
    assert len(calls) == 2  # one per seed, shared by both configurations


def test_every_trial_records_its_datas_warnings_also_from_the_cache(planned, monkeypatch):
    """Only the trial that prepared the data recorded its warnings, so a record's warnings
    depended on which process had run which trial first (the job count)."""
    monkeypatch.setattr(trial_module, "_data_cache", type(trial_module._data_cache)())
    experiment = {"data": {"dataset": "digits"}, "train": {"epochs": 1}}
    _, plan = planned({"optimizer.lr": [0.1, 0.05]}, repeats=1, experiment=experiment)
    records = [run_trial(TrialTask.from_trial(t)) for t in plan.trials]
    assert len(records) == 2 and len(trial_module._data_cache) == 1
    assert [r["warnings"] for r in records] == [records[0]["warnings"]] * 2
    assert any("constant on the training rows" in w for w in records[0]["warnings"])


def test_cross_validation_trial(planned):
    task = task_of(planned, experiment={"data": {"dataset": "iris", "cv_folds": 3}, "train": {"epochs": 2}})
    record = run_trial(task, threads=1)
    assert record["status"] == "ok" and record["cv_folds"] == 3 and 0 <= record["val_accuracy"] <= 1
    assert record["threads"] == 1
    json.loads(dumps(record))


def test_record_of_a_real_trial(planned):
    record = run_trial(task_of(planned), metric="val_accuracy")
    assert record["status"] == "ok" and record["error"] is None and record["epochs_run"] == 3
    assert record["seconds"] >= record["train_seconds"] > 0 and isinstance(record["pid"], int)
    assert set(record["history"]) == {"train_loss", "val_loss", "val_accuracy"}


def test_a_trial_computes_auc_and_ap_each_epoch_only_when_its_search_ranks_by_them(planned, monkeypatch):
    """They cost a tenth of a small network's epoch: per epoch only for the curves of a search ranked
    by them; every trial's final metrics have them."""
    import nnexp.train

    seen = []
    real = nnexp.train.evaluate
    monkeypatch.setattr(nnexp.train, "evaluate", lambda *a: seen.append(real(*a)) or seen[-1])
    by_accuracy = run_trial(task_of(planned), metric="val_accuracy")
    assert "auc" not in seen[0] and "val_auc" not in by_accuracy["history"] and 0 <= by_accuracy["val_auc"] <= 1
    seen.clear()
    by_auc = run_trial(task_of(planned), metric="val_ap")
    assert {"auc", "ap"} <= set(seen[0]) and len(by_auc["history"]["val_ap"]) == by_auc["epochs_run"]
    assert {k: v for k, v in by_auc.items() if k.startswith(("train_", "val_", "test_")) and "seconds" not in k} == {
        k: v for k, v in by_accuracy.items() if k.startswith(("train_", "val_", "test_")) and "seconds" not in k}


def test_an_exception_becomes_a_failed_record():
    def broken(spec, prepared):
        raise RuntimeError("boom\nmore detail")

    task = TrialTask("c-s0", "c", {"x": 1}, 0, 0, '{"data": {"dataset": "iris"}}')
    record = run_trial(task, train_fn=broken, data_fn=lambda spec: None)
    assert record["status"] == "failed" and record["error"].startswith("RuntimeError: boom (at test_trial.py:")
    assert record["history"] == {} and record["params"] == {"x": 1}


def test_compact_history_and_one_line():
    history = [{"epoch": 1, "train_loss": 1.0, "val_loss": float("nan"), "val_accuracy": 0.123456789, "lr": 0.1}]
    assert compact_history(history) == {"train_loss": [1.0], "val_loss": [None], "val_accuracy": [0.123457]}
    assert compact_history([]) == {}
    folds = [{"fold": f, "epoch": e, "train_loss": f + e / 10, "val_loss": 1.0} for f in (0, 1, 2) for e in (1, 2)]
    assert compact_history(folds) == {"train_loss": [0.1, 0.2], "val_loss": [1.0, 1.0], "fold": 0}
    assert one_line(ValueError()) == "ValueError"


def test_a_trial_run_in_the_searchs_own_process_does_not_tie_it_to_its_parent(planned, monkeypatch):
    """joblib may run a trial in the calling process (a pool of one): only the pool's initializer
    starts the watch, never a trial."""
    started = []
    monkeypatch.setattr(trial_module, "exit_with_parent", lambda parent: started.append("watch"))
    monkeypatch.setattr(trial_module, "collect_less_often", lambda: started.append("gc"))
    assert run_trial(task_of(planned))["status"] == "ok" and started == []
    trial_module.pool_worker_started(12345)
    assert started == ["watch", "gc"]


def test_a_worker_whose_search_died_before_it_started_exits_at_once():
    """The search was killed while this worker was still importing: its parent is already
    another process when the watch starts, so it exits within a second, not after loky's 300 s."""
    import subprocess
    import sys
    import time

    code = "import time; from nnexp.search.trial import exit_with_parent; exit_with_parent(1); time.sleep(30)"
    start = time.monotonic()
    done = subprocess.run([sys.executable, "-c", code], timeout=20)
    assert done.returncode == 1 and time.monotonic() - start < 10


def test_a_files_seeds_share_one_read_and_an_edited_file_is_read_again(planned, monkeypatch, tmp_path):
    """Each seed of a large file read and parsed the whole file again (5 s a trial against 0.25 s
    of training); the warnings of the read still reach every trial's record."""
    import numpy as np
    import pandas as pd

    import nnexp.data.datasets as datasets

    import nnexp.data.pipeline as pipeline

    rng = np.random.default_rng(0)
    table = pd.DataFrame({"a": rng.normal(size=60), "y": [0, 1] * 30})
    table.to_csv(tmp_path / "d.csv", index=False, lineterminator=",\n")  # a separator ending every line: a read warning
    reads = []
    real = datasets.read_frame
    monkeypatch.setattr(datasets, "read_frame", lambda *a, **k: reads.append(a) or real(*a, **k))
    monkeypatch.setattr(trial_module, "_data_cache", type(trial_module._data_cache)())
    monkeypatch.setattr(pipeline, "_tables", {})
    experiment = {"data": {"dataset": str(tmp_path / "d.csv")}, "train": {"epochs": 1}}
    _, plan = planned({"optimizer.lr": [0.1]}, repeats=3, experiment=experiment)
    records = [run_trial(TrialTask.from_trial(t)) for t in plan.trials]
    assert [r["status"] for r in records] == ["ok"] * 3 and len(reads) == 1
    assert all(any("ignoring 1 empty column(s) without a name" in w for w in r["warnings"]) for r in records)
    import os

    before = os.stat(tmp_path / "d.csv")
    (tmp_path / "d.csv").write_text((tmp_path / "d.csv").read_text().replace("0,", "1,", 1))  # one label flipped
    os.utime(tmp_path / "d.csv", ns=(before.st_atime_ns, before.st_mtime_ns))  # same size and time, as cp -p leaves
    trial_module._data_cache.clear()
    run_trial(TrialTask.from_trial(plan.trials[0]))
    assert len(reads) == 2


def test_a_workers_kept_data_is_read_again_once_its_file_is_edited(planned, monkeypatch, tmp_path):
    """A pool's workers outlive a search: a second search in the same notebook, after the file
    was fixed, trained on the old file's rows wherever a worker had them kept."""
    import numpy as np
    import pandas as pd

    import nnexp.data.pipeline as pipeline

    rng = np.random.default_rng(0)
    table = pd.DataFrame({"a": rng.normal(size=60), "b": rng.normal(size=60), "y": [0, 1] * 30})
    table.to_csv(tmp_path / "d.csv", index=False)
    monkeypatch.setattr(trial_module, "_data_cache", type(trial_module._data_cache)())
    monkeypatch.setattr(pipeline, "_tables", {})
    experiment = {"data": {"dataset": str(tmp_path / "d.csv")}, "train": {"epochs": 3}}
    _, plan = planned({"optimizer.lr": [0.1]}, repeats=1, experiment=experiment)
    task = TrialTask.from_trial(plan.trials[0])
    before = run_trial(task)
    table.assign(y=rng.permutation(table["y"].to_numpy())).to_csv(tmp_path / "d.csv", index=False)
    kept = run_trial(task)  # the cache as a reused worker has it
    trial_module._data_cache.clear()
    pipeline._tables.clear()
    fresh = run_trial(task)  # as a new process reads it
    assert kept["val_loss"] == fresh["val_loss"] != before["val_loss"]
