"""The trials log: one line per record, torn last lines, the lock, the saved spec."""

import json
import os
import socket
import subprocess
import sys
import time

import pytest

from nnexp.search.store import (
    LockError,
    SearchChangedError,
    SearchLock,
    TornLineWarning,
    TrialStore,
    check_same_search,
    save_spec,
)


def rec(cid, seed, status="ok", **extra):
    return {"trial_id": f"{cid}-s{seed}", "config_id": cid, "seed": seed, "status": status, **extra}


def test_append_writes_valid_json_lines_with_nan_as_null(tmp_path):
    store = TrialStore(tmp_path)
    store.append(rec("a", 0, val_loss=float("nan"), test_loss=float("inf"), history={"val_loss": [1.0, float("nan")]}))
    store.append(rec("a", 1, val_loss=0.5))
    lines = store.path.read_text().splitlines()
    assert len(lines) == 2
    first = json.loads(lines[0])
    assert first["val_loss"] is None and first["test_loss"] is None and first["history"]["val_loss"] == [1.0, None]
    assert "NaN" not in store.path.read_text() and "Infinity" not in store.path.read_text()


def test_torn_last_line_is_ignored_with_a_warning_and_repaired(tmp_path):
    store = TrialStore(tmp_path)
    store.append(rec("a", 0))
    store.append(rec("a", 1))
    with open(store.path, "ab") as fh:
        fh.write(b'{"trial_id": "b-s0", "config_id": "b", "se')
    with pytest.warns(TornLineWarning):
        records = store.read()
    assert [r["trial_id"] for r in records] == ["a-s0", "a-s1"]
    assert store.repair() is True
    store.append(rec("b", 0))
    assert [r["trial_id"] for r in store.read()] == ["a-s0", "a-s1", "b-s0"]


def test_damaged_middle_line_is_an_error(tmp_path):
    store = TrialStore(tmp_path)
    store.path.write_text(json.dumps(rec("a", 0)) + '\nnot json\n' + json.dumps(rec("b", 0)) + '\n')
    with pytest.raises(Exception, match="line 2"):
        store.read()


def test_latest_record_of_a_key_wins(tmp_path):
    store = TrialStore(tmp_path)
    store.append(rec("a", 0, "failed"))
    store.append(rec("b", 0))
    store.append(rec("a", 0, "ok"))
    latest = store.latest()
    assert list(latest) == [("a", 0), ("b", 0)] and latest[("a", 0)]["status"] == "ok"


def test_move_aside_keeps_the_old_log(tmp_path):
    store = TrialStore(tmp_path)
    store.append(rec("a", 0))
    moved = store.move_aside()
    assert not store.path.exists() and moved.exists() and moved.name.endswith(".jsonl.old")
    assert json.loads(moved.read_text())["trial_id"] == "a-s0"


def test_create_starts_an_empty_log_and_keeps_an_existing_one(tmp_path):
    store = TrialStore(tmp_path)
    store.create()
    assert store.path.read_bytes() == b"" and store.read() == []
    assert store.move_aside() is None and store.path.exists()  # nothing to keep aside
    store.append(rec("a", 0))
    store.create()
    assert [r["trial_id"] for r in store.read()] == ["a-s0"]


def test_lock_refuses_a_second_search(tmp_path):
    with SearchLock(tmp_path):
        with pytest.raises(LockError, match="another search is running"):
            SearchLock(tmp_path).acquire()
    SearchLock(tmp_path).acquire().release()  # released on exit
    assert not (tmp_path / ".lock").exists()


def test_lock_of_a_live_process_elsewhere_is_respected(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        (tmp_path / ".lock").write_text(json.dumps({"pid": holder.pid, "host": socket.gethostname(), "started": "x"}))
        with pytest.raises(LockError, match=f"pid {holder.pid}"):
            SearchLock(tmp_path).acquire()
    finally:
        holder.kill()
        holder.wait()
    # now its owner is dead: the stale lock is taken over
    lock = SearchLock(tmp_path).acquire()
    assert json.loads((tmp_path / ".lock").read_text())["pid"] == os.getpid()
    lock.release()


@pytest.mark.skipif(sys.platform == "win32", reason="flock is POSIX")
def test_the_owners_flock_not_its_pid_says_whether_a_lock_is_stale(tmp_path):
    """A dead owner's pid may belong to a live process now (after a reboot; in a container the
    restarted search is pid 1 again, as its killed owner was): its lock was never taken over."""
    stranger = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:  # the dead owner's lock names a live process, but nobody holds the flock
        for pid in (stranger.pid, os.getpid()):
            (tmp_path / ".lock").write_text(json.dumps({"pid": pid, "host": socket.gethostname(), "started": "x",
                                                        "flock": True}))
            SearchLock(tmp_path).acquire().release()
    finally:
        stranger.kill()
        stranger.wait()
    code = ("import sys, time; from nnexp.search.store import SearchLock; SearchLock(sys.argv[1]).acquire(); "
            "print('locked', flush=True); time.sleep(30)")
    owner = subprocess.Popen([sys.executable, "-c", code, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    try:
        assert owner.stdout.readline().strip() == "locked"
        assert json.loads((tmp_path / ".lock").read_text())["flock"] is True
        with pytest.raises(LockError, match=f"pid {owner.pid}"):
            SearchLock(tmp_path).acquire()
    finally:
        owner.kill()  # kill -9: no release, the file stays, the OS drops the flock
        owner.wait()
    assert (tmp_path / ".lock").exists()
    SearchLock(tmp_path).acquire().release()


def test_changed_search_is_refused_but_resumable_fields_may_change(tmp_path):
    saved = {"search": {"metric": "val_loss", "n_jobs": -1, "trials": 20, "repeats": 3, "space": {"a": [1, 2]}},
             "experiment": {"train": {"epochs": 5}}}
    save_spec(tmp_path, saved)
    check_same_search(tmp_path, {**saved, "search": {**saved["search"], "n_jobs": 2, "repeats": 5}})
    # ranking by another metric trains nothing again
    check_same_search(tmp_path, {**saved, "search": {**saved["search"], "metric": "val_accuracy", "mode": "max"}})
    changed = {**saved, "experiment": {"train": {"epochs": 10}}}
    with pytest.raises(SearchChangedError, match=r"experiment.train.epochs: 5 -> 10.*--fresh"):
        check_same_search(tmp_path, changed)


def test_a_folder_older_than_a_field_resumes_while_the_field_keeps_its_default(tmp_path):
    """train.class_weight came after searches were saved without it: they resume at its default
    (what their trials trained with), and only another value is a change."""
    saved = {"search": {"metric": "val_loss", "space": {"a": [1, 2]}}, "experiment": {"train": {"epochs": 5}}}
    save_spec(tmp_path, saved)
    assert check_same_search(tmp_path, {**saved, "experiment": {"train": {"epochs": 5, "class_weight": None}}}) == []
    with pytest.raises(SearchChangedError, match=r"experiment.train.class_weight: '<absent>' -> 'balanced'"):
        check_same_search(tmp_path, {**saved, "experiment": {"train": {"epochs": 5, "class_weight": "balanced"}}})


def test_a_grid_resumes_with_values_added_but_not_removed_or_changed(tmp_path):
    """Adding a learning rate to a finished grid retrained every trial (--fresh): their ids do not change."""
    saved = {"search": {"strategy": "grid", "space": {"lr": [0.1, 0.01], "act": ["relu"]}}, "experiment": {}}
    save_spec(tmp_path, saved)

    def space(**dims):
        return {**saved, "search": {**saved["search"], "space": {**saved["search"]["space"], **dims}}}

    assert check_same_search(tmp_path, space(lr=[0.3, 0.1, 0.01], act=["relu", "tanh"])) == [
        "space: new values since the last run (lr +1, act +1): its trials are kept, and only the new configurations run"]
    assert check_same_search(tmp_path, space(lr=[0.01, 0.1])) == []  # reordered: the same configurations
    zero = {**saved, "search": {**saved["search"], "space": {"l2": [0, 0.001]}}}
    save_spec(tmp_path, zero)  # 0 and 0.0 are two configurations (their ids differ): 0 was taken away
    for l2 in ([0.0, 0.001, 0.01], [0.0, 0.001]):  # (it read as kept, and l2 = 0.0 trained beside l2 = 0)
        with pytest.raises(SearchChangedError, match="a grid resumes with values added"):
            check_same_search(tmp_path, {**zero, "search": {**zero["search"], "space": {"l2": l2}}})
    save_spec(tmp_path, saved)
    for changed in (space(lr=[0.1]), space(lr=[0.1, 0.02]), space(extra=[1]), space(lr={"log_uniform": [0.01, 0.1]})):
        with pytest.raises(SearchChangedError, match=r"a grid resumes with values added to its lists"):
            check_same_search(tmp_path, changed)
    random = {**saved, "search": {**saved["search"], "strategy": "random"}}
    save_spec(tmp_path, random)  # a random search samples anew from a grown space: its trials are other ones
    with pytest.raises(SearchChangedError, match=r"search.space.lr: \[0.1, 0.01\] -> \[0.1, 0.01, 0.3\]\);"):
        check_same_search(tmp_path, {**random, "search": {**random["search"], "space": {"lr": [0.1, 0.01, 0.3],
                                                                                       "act": ["relu"]}}})


def test_a_moved_project_resumes_when_its_data_files_hold_the_same_bytes(tmp_path):
    """The base's data path is kept resolved: moving or renaming the project folder changed it. (Paths a
    space lists are kept as written and name its configurations: absolute ones moved are another search.)"""
    saved = {"search": {"space": {"optimizer.lr": [0.1]}}, "experiment": {"data": {"dataset": "/old/a.csv"}},
             "data_files": {"/old/a.csv": "sha256:aa"}}
    save_spec(tmp_path, saved)
    moved = {**saved, "experiment": {"data": {"dataset": "/new/a.csv"}}, "data_files": {"/new/a.csv": "sha256:aa"}}
    assert check_same_search(tmp_path, moved) == []
    other = {**moved, "data_files": {"/new/a.csv": "sha256:zz"}}
    with pytest.raises(SearchChangedError, match=r"experiment.data.dataset: '/old/a.csv' -> '/new/a.csv'"):
        check_same_search(tmp_path, other)  # another file's contents at the new place: another data set
    listed = {"search": {"space": {"data.dataset": ["/old/a.csv"]}}, "experiment": {}, "data_files": {"/old/a.csv": "sha256:aa"}}
    save_spec(tmp_path, listed)
    with pytest.raises(SearchChangedError, match=r"space.data.dataset"):  # its configurations' ids changed
        check_same_search(tmp_path, {"search": {"space": {"data.dataset": ["/new/a.csv"]}}, "experiment": {},
                                     "data_files": {"/new/a.csv": "sha256:aa"}})


def test_an_edited_data_file_is_refused_on_resume(tmp_path, search_file):
    """Trials of two versions of a file must not meet in one table; folders from before
    fingerprints existed (no data_files in search.yaml) still resume."""
    import numpy as np
    import pandas as pd

    from nnexp.search.runner import run_search
    from nnexp.search.space import plan_search
    from nnexp.spec import load_search

    from .fakes import fake_train, no_data

    rng = np.random.default_rng(0)
    table = pd.DataFrame({"a": rng.normal(size=60), "b": rng.normal(size=60)})
    table["y"] = (table["a"] > 0).astype(int)
    table.to_csv(tmp_path / "mine.csv", index=False)
    experiment = {"data": {"dataset": str(tmp_path / "mine.csv"), "target": "y"}, "train": {"epochs": 2}}
    path = search_file({"optimizer.lr": [0.01, 0.1]}, experiment=experiment, repeats=1)
    folder = tmp_path / "out"

    def resume(**fields):
        loaded = load_search(path, list(fields.items()))
        return run_search(loaded, plan_search(loaded), folder, n_jobs=1, train_fn=fake_train, data_fn=no_data)

    assert resume().ran == 2
    saved = (folder / "search.yaml").read_text()
    assert f"{tmp_path / 'mine.csv'}: sha256:" in saved
    assert resume(repeats=2).ran == 2  # same file: resumes
    table.iloc[:40].to_csv(tmp_path / "mine.csv", index=False)
    with pytest.raises(SearchChangedError, match=r"the data file .*mine.csv changed since the trials here were run"):
        resume(repeats=3)
    import yaml

    identity = yaml.safe_load(saved)
    identity.pop("data_files")
    save_spec(folder, identity)  # as written before fingerprints
    assert resume(repeats=3).ran == 2


@pytest.mark.skipif(sys.platform == "win32", reason="flock is POSIX")
def test_searches_that_find_a_stale_lock_at_once_take_it_over_one_at_a_time(tmp_path):
    """Both removed the dead owner's file, and the second removed the lock the first had just made."""
    code = ("import sys, time\nfrom pathlib import Path\nfrom nnexp.search.store import LockError, SearchLock\n"
            "go = Path(sys.argv[2])\nwhile not go.exists(): time.sleep(0.001)\n"
            "try:\n    SearchLock(sys.argv[1]).acquire()\nexcept LockError:\n    print('refused'); sys.exit(0)\n"
            "print('took it', flush=True); time.sleep(2)\n")
    for _ in range(3):
        (tmp_path / ".lock").write_text(json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "started": "x",
                                                    "flock": True}))  # its owner died: nobody holds the flock
        go = tmp_path / "go"
        go.unlink(missing_ok=True)
        racers = [subprocess.Popen([sys.executable, "-c", code, str(tmp_path), str(go)], stdout=subprocess.PIPE,
                                   text=True) for _ in range(6)]
        time.sleep(1.0)  # all started and waiting
        go.touch()
        said = sorted(p.communicate(timeout=60)[0].strip() for p in racers)
        assert said == ["refused"] * 5 + ["took it"], said
