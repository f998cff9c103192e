"""Faults during `nnexp search` and `nnexp run`: a full disk, a folder that turns read-only,
a failing rename, kill -9 and Ctrl-C of a parallel search.

The promise under test: every trial that finished before the fault is in
trials.jsonl exactly once, no cut-off line is left that could pass for a
record, the command ends with one `error:` line (exit 1 for a storage fault,
130 for Ctrl-C) and running the same command again completes the search.
tests/search already covers Ctrl-C and kill -9 of a serial search
(subprocess) and a killed worker; here the parallel search and storage faults.
"""

import errno
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from nnexp.cli import app

from .processes import children_of, running, start_search, wait_for_lines
from nnexp.search import store as store_module

runner = CliRunner()
SPACE = {"model.activation": ["relu", "tanh", "logistic"], "optimizer.lr": [0.01, 0.1]}  # x 2 repeats = 12 trials
FAST = {"data": {"dataset": "iris"}, "model": {"hidden": [8]}, "optimizer": {"name": "sgd", "lr": 0.1},
        "train": {"epochs": 2, "batch_size": 32}}
# about a second a trial: a search of 12 is still running well after its first lines, however slow
# the test process is to notice them
SLOW = {"data": {"dataset": "iris"}, "model": {"hidden": [32]}, "optimizer": {"name": "sgd", "lr": 0.1},
        "train": {"epochs": 600, "batch_size": 8}}


def write_search(tmp_path, name="grid", experiment=FAST):
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump({"name": name, "experiment": experiment, "metric": "val_accuracy",
                                    "repeats": 2, "space": SPACE}))
    return path


def lines(folder):
    return (folder / "trials.jsonl").read_bytes().decode().splitlines()


def records(folder):
    return [json.loads(line) for line in lines(folder)]


def keys(folder):
    return [(r["config_id"], r["seed"]) for r in records(folder)]


def search(path, results, *args):
    return runner.invoke(app, ["search", str(path), "--results-dir", str(results), "--quiet", *map(str, args)])


def one_error_line(result, *needles):
    assert "Traceback" not in result.output, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, result.stderr
    for needle in needles:
        assert needle in errors[0], errors[0]
    return errors[0]


def assert_complete_log(folder, n=12):
    raw = (folder / "trials.jsonl").read_bytes()
    assert raw.endswith(b"\n")
    got = keys(folder)
    assert len(got) == n and len(set(got)) == n, got  # every key exactly once


# --------------------------------------------------------------------------- storage faults in-process


def _trials_fd(fd):
    try:
        return os.readlink(f"/proc/self/fd/{fd}").endswith("trials.jsonl")
    except OSError:
        return False


@pytest.mark.skipif(not Path("/proc/self/fd").exists(), reason="needs /proc to tell which file a write goes to")
@pytest.mark.parametrize("n_jobs", [1, 2])
def test_disk_full_mid_line_keeps_finished_trials_and_resumes(tmp_path, monkeypatch, n_jobs):
    """After 3 records the disk fills in the middle of the 4th line: the half line is cut back off."""
    path = write_search(tmp_path)
    folder = tmp_path / "res" / "grid"
    real_write = os.write
    state = {"records": 0, "torn": False}

    def filling_write(fd, data):
        if not _trials_fd(fd):
            return real_write(fd, data)
        if state["records"] >= 3:
            if not state["torn"]:
                state["torn"] = True
                return real_write(fd, bytes(data[: len(data) // 2]))  # the disk takes half the line ...
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))  # ... then is full
        state["records"] += 1
        return real_write(fd, data)

    monkeypatch.setattr(os, "write", filling_write)
    result = search(path, tmp_path / "res", "--n-jobs", n_jobs)
    assert result.exit_code == 1, result.output
    one_error_line(result, "trials.jsonl", "No space left on device", "3 trial(s) finished", "run the same command again")
    assert state["torn"]
    assert (folder / "trials.jsonl").read_bytes().endswith(b"\n")  # the torn half line is gone
    first = records(folder)
    assert len(first) == 3 and len(set(keys(folder))) == 3
    assert not (folder / ".lock").exists()

    monkeypatch.setattr(os, "write", real_write)  # space freed
    again = search(path, tmp_path / "res", "--n-jobs", n_jobs)
    assert again.exit_code == 0, again.output
    assert_complete_log(folder)
    assert records(folder)[:3] == first  # the finished ones were not trained again


@pytest.mark.skipif(not Path("/proc/self/fd").exists(), reason="needs /proc to tell which file a write goes to")
def test_torn_line_that_cannot_be_cut_back_is_never_read_as_a_trial(tmp_path, monkeypatch):
    """Disk full mid-line and the truncation fails too: the half line stays at the end, readers skip it,
    and the next run cuts it off before appending."""
    path = write_search(tmp_path)
    folder = tmp_path / "res" / "grid"
    real_write, real_truncate = os.write, os.ftruncate
    state = {"records": 0}

    def filling_write(fd, data):
        if _trials_fd(fd):
            state["records"] += 1
            if state["records"] == 3:
                real_write(fd, bytes(data[: len(data) // 2]))
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_write(fd, data)

    def no_truncate(fd, length):
        raise OSError(errno.EIO, os.strerror(errno.EIO))

    monkeypatch.setattr(os, "write", filling_write)
    monkeypatch.setattr(os, "ftruncate", no_truncate)
    result = search(path, tmp_path / "res", "--n-jobs", 1)
    assert result.exit_code == 1, result.output
    one_error_line(result, "No space left on device", "2 trial(s) finished")
    raw = (folder / "trials.jsonl").read_bytes()
    assert not raw.endswith(b"\n") and raw.count(b"\n") == 2  # the torn half line is there ...
    report = runner.invoke(app, ["report", str(folder), "--quiet"])
    assert report.exit_code == 0 and "torn last line" in report.stderr  # ... and is not read as a trial
    assert pd.read_csv(folder / "summary.csv")["n_trials"].sum() == 2

    monkeypatch.setattr(os, "write", real_write)
    monkeypatch.setattr(os, "ftruncate", real_truncate)
    again = search(path, tmp_path / "res", "--n-jobs", 1)
    assert again.exit_code == 0, again.output
    assert_complete_log(folder)


def _make_read_only(folder, monkeypatch):
    """chmod the folder and its files read-only; as root (permission bits ignored) fail writes like EROFS."""
    for p in [folder, *folder.iterdir()]:
        p.chmod(0o555 if p.is_dir() else 0o444)
    probe = folder / "trials.jsonl"
    if not os.access(probe, os.W_OK):
        return
    real_open, real_unlink, real_replace = os.open, os.unlink, os.replace
    inside = lambda p: Path(os.fsdecode(p)).resolve().parent == folder.resolve()  # noqa: E731
    writes = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC

    def ro_open(p, flags, *a, **kw):
        if flags & writes and inside(p):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), os.fsdecode(p))
        return real_open(p, flags, *a, **kw)

    def ro_unlink(p, *a, **kw):
        if inside(p):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), os.fsdecode(p))
        return real_unlink(p, *a, **kw)

    def ro_replace(src, dst, *a, **kw):
        if inside(dst):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), os.fsdecode(dst))
        return real_replace(src, dst, *a, **kw)

    monkeypatch.setattr(os, "open", ro_open)
    monkeypatch.setattr(os, "unlink", ro_unlink)
    monkeypatch.setattr(os, "replace", ro_replace)


def test_folder_turning_read_only_mid_search(tmp_path, monkeypatch):
    path = write_search(tmp_path)
    folder = tmp_path / "res" / "grid"
    real_append = store_module.TrialStore.append
    calls = {"n": 0}

    def append(self, record):
        calls["n"] += 1
        if calls["n"] == 5:
            _make_read_only(folder, monkeypatch)
        return real_append(self, record)

    monkeypatch.setattr(store_module.TrialStore, "append", append)
    try:
        result = search(path, tmp_path / "res", "--n-jobs", 1)
        assert result.exit_code == 1, result.output
        line = one_error_line(result, "trials.jsonl", "4 trial(s) finished", "run the same command again")
        assert "Read-only file system" in line or "Permission denied" in line, line
        first = records(folder)
        assert len(first) == 4 and len(set(keys(folder))) == 4
    finally:
        monkeypatch.undo()
        for p in [folder, *folder.iterdir()]:
            p.chmod(0o755 if p.is_dir() else 0o644)

    # A truly read-only folder also keeps the .lock (it cannot be deleted). Its owner is this test process,
    # still alive; a real `nnexp search` has exited by now, and the next one takes a dead owner's lock over
    # (tested below with kill -9), so stand in for that exit here.
    lock = folder / ".lock"
    if lock.exists():
        assert json.loads(lock.read_text())["pid"] == os.getpid()
        lock.unlink()
    # writable again: the same command, in a new process as a user would run it, completes the search
    done = subprocess.run([sys.executable, "-m", "nnexp", "search", str(path), "--results-dir", str(tmp_path / "res"),
                           "--n-jobs", "1", "--quiet"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert_complete_log(folder)
    assert records(folder)[:4] == first


def test_unwritable_results_dir_from_the_start_is_one_line(tmp_path, monkeypatch):
    path = write_search(tmp_path)
    blocker = tmp_path / "res"
    blocker.write_text("a file where the results folder should be")
    result = search(path, blocker)
    assert result.exit_code == 1, result.output
    one_error_line(result, "res/grid", "cannot create the results folder")


def fail_replace(monkeypatch, name: str) -> None:
    """Make os.replace onto a file called `name` fail as on a full disk (atomic writes end with it)."""
    real_replace = os.replace

    def full(src, dst, *a, **kw):
        if os.fsdecode(dst).endswith(name):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_replace(src, dst, *a, **kw)

    monkeypatch.setattr(os, "replace", full)


def test_report_tables_fail_whole_and_keep_the_trials(tmp_path, monkeypatch):
    """The search finished but its tables cannot be written: the trials stay, the old table stays whole."""
    path = write_search(tmp_path)
    folder = tmp_path / "res" / "grid"
    assert search(path, tmp_path / "res", "--n-jobs", 1).exit_code == 0
    old_summary = (folder / "summary.md").read_bytes()
    fail_replace(monkeypatch, "summary.md")
    result = runner.invoke(app, ["report", str(folder), "--quiet"])
    assert result.exit_code == 1, result.output
    one_error_line(result, "summary.md", "No space left on device")
    assert (folder / "summary.md").read_bytes() == old_summary
    assert not list(folder.glob(".*.tmp*"))
    assert_complete_log(folder)


# --------------------------------------------------------------------------- nnexp run: atomic files


def _experiment(tmp_path):
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump({"name": "exp", **FAST}))
    return path


@pytest.mark.parametrize("fault", ["replace", "fsync"])
def test_run_files_are_whole_or_the_old_ones(tmp_path, monkeypatch, fault):
    spec = _experiment(tmp_path)
    folder = tmp_path / "res" / "exp"
    first = runner.invoke(app, ["run", str(spec), "--results-dir", str(tmp_path / "res"), "--quiet"])
    assert first.exit_code == 0, first.output
    before = {p.name: p.read_bytes() for p in folder.iterdir()}

    target = "metrics.json"
    if fault == "replace":
        fail_replace(monkeypatch, target)
    else:
        real_fsync = os.fsync

        def failing(fd, *a, **kw):
            if os.readlink(f"/proc/self/fd/{fd}").split("/")[-1].startswith(f".{target}."):
                raise OSError(errno.EIO, os.strerror(errno.EIO))
            return real_fsync(fd, *a, **kw)

        monkeypatch.setattr(os, "fsync", failing)
    second = runner.invoke(app, ["run", str(spec), "--results-dir", str(tmp_path / "res"), "--quiet",
                                 "--set", "train.epochs=3"])
    assert second.exit_code == 1, second.output
    one_error_line(second, f"{folder / target}: cannot write")
    # the earlier run, whole: no new spec.yaml beside its metrics, and no temp file left behind
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before
    assert json.loads((folder / target).read_text())["epochs_run"] == 2


def test_run_into_a_fresh_folder_leaves_no_partial_file(tmp_path, monkeypatch):
    spec = _experiment(tmp_path)
    fail_replace(monkeypatch, "history.csv")
    result = runner.invoke(app, ["run", str(spec), "--results-dir", str(tmp_path / "res"), "--quiet"])
    assert result.exit_code == 1, result.output
    one_error_line(result, "history.csv: cannot write (No space left on device)")
    folder = tmp_path / "res" / "exp"
    assert not (folder / "history.csv").exists() and not list(folder.glob(".*"))


# --------------------------------------------------------------------------- signals to a parallel search


@pytest.mark.slow
def test_parallel_search_ctrl_c_then_kill_9_then_resume(tmp_path, procs, interrupt):
    """Two workers: SIGINT keeps finished trials and writes the tables (130); kill -9 of the main
    process alone (workers orphaned) loses only running trials; a re-run trains only the missing ones."""
    path = write_search(tmp_path, experiment=SLOW)
    folder = tmp_path / "grid"
    log = folder / "trials.jsonl"

    procs.append(proc := start_search(path, tmp_path, n_jobs=2))
    wait_for_lines(log, 2, proc)
    interrupt(proc, log)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err.decode()
    assert "Traceback" not in err.decode() and "interrupted:" in err.decode()
    after_int = lines(folder)
    assert 2 <= len(after_int) < 12 and len(set(keys(folder))) == len(after_int)
    assert (folder / "summary.md").exists() and not (folder / ".lock").exists()

    procs.append(proc := start_search(path, tmp_path, n_jobs=2))
    wait_for_lines(log, len(after_int) + 2, proc)
    os.kill(proc.pid, signal.SIGKILL)  # the main process only; its workers end with it (next test)
    proc.wait(timeout=30)
    time.sleep(0.5)  # an orphaned worker must not add anything
    after_kill = lines(folder)
    assert after_kill[: len(after_int)] == after_int and len(after_kill) < 12
    assert len(set(keys(folder))) == len(after_kill)

    procs.append(proc := start_search(path, tmp_path, n_jobs=2))
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err.decode()
    assert lines(folder)[: len(after_kill)] == after_kill
    assert_complete_log(folder)
    assert not (folder / ".lock").exists()


def test_sigterm_stops_a_search_as_ctrl_c_does(tmp_path, procs):
    """`timeout`, a batch scheduler's time limit and `docker stop` send SIGTERM: finished trials
    and the tables are kept, one line says so, exit 143 (128 + 15) instead of dying at once."""
    path = write_search(tmp_path, experiment=SLOW)
    folder = tmp_path / "grid"
    procs.append(proc := start_search(path, tmp_path, n_jobs=2))
    wait_for_lines(folder / "trials.jsonl", 1, proc)
    os.kill(proc.pid, signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err.decode()
    assert "terminated (SIGTERM): " in err.decode() and "Traceback" not in err.decode(), err.decode()
    assert "leaked" not in err.decode()  # loky's tracker saw its pool shut down, not orphaned
    assert 1 <= len(lines(folder)) < 12 and (folder / "summary.md").exists() and not (folder / ".lock").exists()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_workers_end_with_a_killed_search(tmp_path, procs):
    """kill -9 of the main process alone: its loky workers, which would wait on their task
    queue for good, notice that their parent is gone and exit, mid-trial, within seconds."""
    path = write_search(tmp_path, experiment=SLOW)
    procs.append(proc := start_search(path, tmp_path, n_jobs=2))
    wait_for_lines(tmp_path / "grid" / "trials.jsonl", 1, proc)
    workers = [pid for pid in children_of(proc.pid) if b"popen_loky" in Path(f"/proc/{pid}/cmdline").read_bytes()]
    assert len(workers) == 2 and all(running(pid) for pid in workers)

    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    deadline = time.time() + 20
    while time.time() < deadline and any(running(pid) for pid in workers):
        time.sleep(0.1)
    assert not any(running(pid) for pid in workers), [pid for pid in workers if running(pid)]
