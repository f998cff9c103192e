"""The runner: streaming into the log, resume, retries, failures, worker deaths, Ctrl-C, determinism."""

import json

import pytest

from nnexp.search.runner import release_workers, run_search, worker_plan
from nnexp.search.store import TrialStore

from .fakes import fake_train, gc_train, no_data, sigint_train

SPACE = {"model.activation": ["relu", "tanh", "logistic"], "optimizer.lr": [0.01, 0.1]}
FAKE = dict(train_fn=fake_train, data_fn=no_data)


def lines(folder):
    return [json.loads(line) for line in (folder / "trials.jsonl").read_text().splitlines()]


def test_grid_writes_one_line_per_trial(planned, tmp_path):
    loaded, plan = planned(SPACE)
    seen = []
    outcome = run_search(loaded, plan, tmp_path / "out", n_jobs=1, progress=lambda r, c: seen.append((r, c.done)), **FAKE)
    records = lines(tmp_path / "out")
    assert len(records) == 12 and {(r["config_id"], r["seed"]) for r in records} == {t.key for t in plan.trials}
    assert outcome.ran == 12 and outcome.skipped == 0 and not outcome.interrupted and outcome.count("ok") == 12
    assert [d for r, d in seen if r is not None] == list(range(1, 13))
    first = records[0]
    for field in ("trial_id", "config_id", "params", "seed", "repeat", "status", "error", "val_accuracy",
                  "epochs_run", "best_epoch", "diverged_epoch", "seconds", "threads", "pid", "history"):
        assert field in first, field
    assert first["params"] == plan.trials[0].params and first["error"] is None
    assert set(first["history"]) == {"train_loss", "val_loss", "val_accuracy"} and len(first["history"]["val_loss"]) == 3
    assert (tmp_path / "out" / "search.yaml").exists() and not (tmp_path / "out" / ".lock").exists()


def test_resume_runs_only_missing_trials(planned, tmp_path):
    loaded, plan = planned(SPACE)
    folder = tmp_path / "out"
    store = TrialStore(folder.mkdir() or folder)
    first = run_search(loaded, plan, folder, n_jobs=1, **FAKE)
    kept = lines(folder)[:5]
    store.path.write_text("".join(json.dumps(r) + "\n" for r in kept) + '{"trial_id": "torn')
    again = run_search(loaded, plan, folder, n_jobs=1, **FAKE)  # the torn line is reported in notes
    assert again.ran == 7 and again.skipped == 5 and any("torn" in n for n in again.notes)
    records = lines(folder)
    assert records[:5] == kept and len(records) == 12
    assert sorted((r["config_id"], r["seed"]) for r in records) == sorted(t.key for t in plan.trials)
    assert [r["val_accuracy"] for r in first.records] == [r["val_accuracy"] for r in again.records]
    assert run_search(loaded, plan, folder, n_jobs=1, **FAKE).ran == 0


def test_failed_and_diverged_trials_are_recorded_and_retried_on_request(planned, tmp_path):
    loaded, plan = planned({"model.activation": ["relu", "softplus"], "optimizer.lr": [0.1, 1e6]})
    folder = tmp_path / "out"
    outcome = run_search(loaded, plan, folder, n_jobs=1, **FAKE)
    by_status = {(r["params"]["model.activation"], r["params"]["optimizer.lr"]): r["status"] for r in outcome.records}
    assert by_status == {("relu", 0.1): "ok", ("relu", 1e6): "diverged", ("softplus", 0.1): "failed",
                         ("softplus", 1e6): "failed"}
    failed = next(r for r in outcome.records if r["status"] == "failed")
    assert failed["error"].startswith("ValueError: fake failure (at fakes.py:") and "\n" not in failed["error"]
    diverged = next(r for r in outcome.records if r["status"] == "diverged")
    assert diverged["val_accuracy"] is None and diverged["diverged_epoch"] == 2
    assert run_search(loaded, plan, folder, n_jobs=1, **FAKE).ran == 0
    retried = run_search(loaded, plan, folder, n_jobs=1, retry_failed=True, **FAKE)
    assert retried.ran == 6 and len(lines(folder)) == 8 + 6 and len(retried.records) == 8


def test_fresh_moves_the_old_log_aside(planned, tmp_path):
    loaded, plan = planned(SPACE)
    folder = tmp_path / "out"
    run_search(loaded, plan, folder, n_jobs=1, **FAKE)
    outcome = run_search(loaded, plan, folder, n_jobs=1, fresh=True, **FAKE)
    assert outcome.ran == 12 and len(lines(folder)) == 12 and len(list(folder.glob("trials-*.jsonl.old"))) == 1


def test_fresh_removes_the_old_logs_tables_before_its_first_trial(planned, tmp_path):
    """A --fresh search killed before its report left the old log's summary, effects, best.yaml and
    plots beside a new log they do not describe."""
    from nnexp.report import report

    loaded, plan = planned(SPACE)
    folder = tmp_path / "out"
    run_search(loaded, plan, folder, n_jobs=1, **FAKE)
    written = {p.name for p in report(folder).files}
    assert {"summary.csv", "summary.md", "effects.md", "best.yaml"} <= written and any(n.endswith(".png") for n in written)

    def stop_after_one(record, counts):
        if record is not None:
            raise KeyboardInterrupt

    outcome = run_search(loaded, plan, folder, n_jobs=1, fresh=True, progress=stop_after_one, **FAKE)
    assert outcome.interrupted and not any((folder / name).exists() for name in written)
    assert "(their tables and plots removed)" in outcome.notes[0]
    # tables beside an empty log (a search stopped before its first trial) are as stale
    assert {p.name for p in report(folder).files} == written
    (folder / "trials.jsonl").write_text("")
    run_search(loaded, plan, folder, n_jobs=1, fresh=True, progress=stop_after_one, **FAKE)
    assert not any((folder / name).exists() for name in written)


def test_ctrl_c_keeps_finished_trials(planned, tmp_path):
    loaded, plan = planned(SPACE)
    folder = tmp_path / "out"

    def interrupt_after_three(record, counts):
        if counts.done == 3:
            raise KeyboardInterrupt

    outcome = run_search(loaded, plan, folder, n_jobs=1, progress=interrupt_after_three, **FAKE)
    assert outcome.interrupted and outcome.ran == 3 and len(lines(folder)) == 3
    assert not (folder / ".lock").exists()
    assert run_search(loaded, plan, folder, n_jobs=1, **FAKE).ran == 9


def test_ctrl_c_before_the_first_trial_leaves_an_empty_log(planned, tmp_path):
    """What `nnexp report` and a resume read: an empty trials.jsonl, not a folder without one."""
    loaded, plan = planned(SPACE)
    folder = tmp_path / "out"

    def interrupted(spec, prepared=None):
        raise KeyboardInterrupt

    outcome = run_search(loaded, plan, folder, n_jobs=1, train_fn=interrupted, data_fn=no_data)
    assert outcome.interrupted and outcome.ran == 0 and outcome.records == []
    assert (folder / "trials.jsonl").read_bytes() == b"" and not (folder / ".lock").exists()
    assert run_search(loaded, plan, folder, n_jobs=1, **FAKE).ran == 12


def test_killed_worker_costs_only_its_trials(planned, tmp_path):
    """`identity` makes the fake kill its own process, as the OS's OOM killer would."""
    loaded, plan = planned({"model.activation": ["relu", "identity", "tanh"], "optimizer.lr": [0.1]})
    outcome = run_search(loaded, plan, tmp_path / "out", n_jobs=2, **FAKE)
    status = {(r["params"]["model.activation"], r["seed"]): r["status"] for r in outcome.records}
    assert len(outcome.records) == 6 and len(lines(tmp_path / "out")) == 6
    assert status == {("relu", 0): "ok", ("relu", 1): "ok", ("identity", 0): "failed", ("identity", 1): "failed",
                      ("tanh", 0): "ok", ("tanh", 1): "ok"}
    killed = [r for r in outcome.records if r["status"] == "failed"]
    assert all("worker process died" in r["error"] for r in killed)


def test_parallel_streams_with_capped_blas_threads(planned, tmp_path):
    loaded, plan = planned({"model.activation": ["relu", "swish", "tanh"], "optimizer.lr": [0.1]})
    serial = run_search(loaded, plan, tmp_path / "a", n_jobs=1, **FAKE)
    parallel = run_search(loaded, plan, tmp_path / "b", n_jobs=2, **FAKE)
    key = lambda r: (r["config_id"], r["seed"])  # noqa: E731
    strip = lambda r: {k: v for k, v in r.items() if k not in ("pid", "seconds", "threads")}  # noqa: E731
    assert sorted(map(strip, serial.records), key=key) == sorted(map(strip, parallel.records), key=key)
    assert len({r["pid"] for r in parallel.records}) == 2
    workers, threads = worker_plan(2, 6)
    assert {r["threads"] for r in parallel.records} <= {threads, None} and workers * threads <= max(2, workers)


def test_released_workers_exit_and_a_later_search_gets_new_ones(planned, tmp_path):
    """The CLI lets the pool go before writing the report: its processes end without the main process waiting."""
    import os
    import time

    loaded, plan = planned({"optimizer.lr": [0.1, 0.01]})
    first = run_search(loaded, plan, tmp_path / "a", n_jobs=2, **FAKE)
    pids = {r["pid"] for r in first.records}
    # instant fake trials: on a busy machine one worker can take them all before the other is up
    assert 1 <= len(pids) <= 2 and os.getpid() not in pids
    release_workers()

    def alive(pid):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True

    deadline = time.monotonic() + 30
    while any(alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(alive(pid) for pid in pids)
    second = run_search(loaded, plan, tmp_path / "b", n_jobs=2, **FAKE)
    assert second.count("ok") == len(plan.trials) and not pids & {r["pid"] for r in second.records}


def test_unknown_backend_is_a_user_error(planned, tmp_path):
    from nnexp.errors import NnexpError

    loaded, plan = planned(SPACE)
    with pytest.raises(NnexpError, match="unknown backend"):
        run_search(loaded, plan, tmp_path, backend="spark", **FAKE)


def test_parallel_searches_preload_the_report_libraries(planned, tmp_path, monkeypatch):
    """While workers train, the main process loads what the report needs, once; in-process runs never."""
    import nnexp.report

    started = []
    monkeypatch.setattr(nnexp.report, "preload", lambda: started.append(True) or True)
    loaded, plan = planned({"optimizer.lr": [0.1, 0.01]})
    run_search(loaded, plan, tmp_path / "one", n_jobs=1, **FAKE)
    assert started == []
    run_search(loaded, plan, tmp_path / "two", n_jobs=2, **FAKE)
    assert started == [True]


def test_pool_workers_collect_garbage_as_the_cli_does_and_the_callers_process_is_left_alone(planned, tmp_path):
    import gc
    import os

    from nnexp.collector import YOUNG_GENERATION

    loaded, plan = planned({"optimizer.lr": [0.1, 0.01]})
    ours = gc.get_threshold()
    parallel = run_search(loaded, plan, tmp_path / "two", n_jobs=2, train_fn=gc_train, data_fn=no_data)
    assert all(r["pid"] != os.getpid() and r["gc_young"] == YOUNG_GENERATION for r in parallel.records)
    serial = run_search(loaded, plan, tmp_path / "one", n_jobs=1, train_fn=gc_train, data_fn=no_data)
    assert {r["gc_young"] for r in serial.records} == {ours[0]} and gc.get_threshold() == ours


def test_ctrl_c_as_loky_starts_its_workers_is_an_interrupt_not_a_crash(planned, tmp_path, monkeypatch):
    """A Ctrl-C inside loky's start-up can leave its pool unable to shut down ('cannot join thread
    before it is started'): the search still ends as interrupted, with what finished kept."""
    import joblib

    class Aborted:
        def __init__(self, *args, **kwargs):
            pass

        def __call__(self, calls):
            return self

        def __iter__(self):
            raise KeyboardInterrupt

        def close(self):
            raise RuntimeError("cannot join thread before it is started")

    monkeypatch.setattr(joblib, "Parallel", Aborted)
    loaded, plan = planned({"optimizer.lr": [0.1, 0.01]})
    outcome = run_search(loaded, plan, tmp_path / "two", n_jobs=2, **FAKE)
    assert outcome.interrupted and outcome.ran == 0 and not (tmp_path / "two" / ".lock").exists()


def test_pool_workers_ignore_the_terminals_ctrl_c_and_the_search_stops_them(planned, tmp_path):
    """A terminal's Ctrl-C reaches every process of the group: workers caught mid-import printed
    tracebacks. They start with SIGINT ignored; the caller's own handler is put back."""
    import signal

    release_workers()  # a fresh pool, started by this search
    before = signal.getsignal(signal.SIGINT)
    loaded, plan = planned({"optimizer.lr": [0.1, 0.01]})
    outcome = run_search(loaded, plan, tmp_path / "out", n_jobs=2, train_fn=sigint_train, data_fn=no_data)
    assert [r["val_accuracy"] for r in outcome.records] == [1.0] * len(plan.trials)
    assert signal.getsignal(signal.SIGINT) is before


def test_a_suspect_run_alone_after_a_worker_death_ignores_ctrl_c_too(planned, tmp_path):
    """`identity` kills its worker while `swish` (0.3 s) runs in the other: either may be the
    culprit, so each runs again in a pool of its own, whose worker must also ignore Ctrl-C."""
    release_workers()
    loaded, plan = planned({"model.activation": ["identity", "swish"]}, repeats=1)
    outcome = run_search(loaded, plan, tmp_path / "out", n_jobs=2, train_fn=sigint_train, data_fn=no_data)
    by_activation = {r["params"]["model.activation"]: r for r in outcome.records}
    assert by_activation["identity"]["status"] == "failed" and by_activation["swish"]["val_accuracy"] == 1.0


def test_a_search_stopped_by_bad_input_before_its_first_trial_leaves_no_folder_it_made(planned, tmp_path, monkeypatch):
    """An unreachable --scheduler left an empty folder (search.yaml, an empty log) that read as a search."""
    import nnexp.search.runner as runner
    from nnexp.errors import NnexpError

    def unreachable(*args, **kwargs):
        raise NnexpError("--scheduler: cannot connect to the dask scheduler at tcp://nowhere:1")

    monkeypatch.setattr(runner, "_run_parallel", unreachable)
    loaded, plan = planned({"optimizer.lr": [0.1]}, repeats=2)
    for folder in (tmp_path / "results" / "deep" / "new", tmp_path / "kept", tmp_path / "up" / ".." / "side"):
        if folder.name == "kept":
            folder.mkdir()
            (folder / "notes.txt").write_text("mine")
        with pytest.raises(NnexpError, match="cannot connect"):
            run_search(loaded, plan, folder, n_jobs=2, train_fn=fake_train, data_fn=no_data)
    assert not (tmp_path / "results").exists()  # nor the --results-dir folders it made on the way
    assert not (tmp_path / "up").exists() and not (tmp_path / "side").exists()
    assert (tmp_path / "kept" / "notes.txt").read_text() == "mine"  # a folder it did not make stays
    monkeypatch.undo()
    assert run_search(loaded, plan, tmp_path / "new", n_jobs=1, train_fn=fake_train, data_fn=no_data).ran == 2
