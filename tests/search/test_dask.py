"""`nnexp search --backend dask`: a real scheduler and two workers as separate processes on 127.0.0.1.

The workers are started with a preload that makes reading data fail, so every
trial that finishes ok got its data from the client. The scheduler gives up on
a task after it killed two workers (allowed-failures 1), so the test of a
trial that kills its worker stays short. Every process started here is
stopped by the fixture's finalizer, also when a test fails.
"""

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from nnexp.errors import NnexpError
from nnexp.search.runner import run_search
from nnexp.search.space import plan_search
from nnexp.spec import load_search

from . import fakes
from .app import app

pytest.importorskip("distributed")

runner = CliRunner()
APP = str(Path(__file__).with_name("app.py"))
SPACE = {"model.activation": ["relu", "tanh", "logistic"], "optimizer.lr": [0.01, 0.1]}
NOT_COMPARED = ("seconds", "train_seconds", "seconds_per_epoch", "pid", "threads")
PRELOAD = '''
"""Worker preload: a worker must never read a data set; the client ships it."""
import nnexp.data


def refuse(*args, **kwargs):
    raise RuntimeError("a dask worker tried to read data")


nnexp.data.prepare = nnexp.data.prepare_folds = refuse
'''


def trials(folder):
    return [json.loads(line) for line in (folder / "trials.jsonl").read_text().splitlines()]


def search(*args):
    return runner.invoke(app, ["search", *map(str, args)])


def strip(record):
    return {k: v for k, v in record.items() if k not in NOT_COMPARED}


class Cluster:
    """A `dask scheduler` and two `dask worker` processes (each with its nanny), on loopback only."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.scheduler_file = folder / "scheduler.json"
        self.procs: list[subprocess.Popen] = []
        self.client = None
        (folder / "refuse_data.py").write_text(PRELOAD)
        # the fake training functions of the tests must be importable on the workers
        fakes_root = Path(fakes.__file__).parents[fakes.__name__.count(".")]
        self.env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(fakes_root), os.environ.get("PYTHONPATH", "")]),
                    "DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES": "1"}

    def _start(self, name: str, *args: str) -> None:
        log = open(self.folder / f"{name}.log", "wb")
        self.procs.append(subprocess.Popen([sys.executable, "-m", "dask", *args], env=self.env, cwd=self.folder,
                                           stdout=log, stderr=subprocess.STDOUT, start_new_session=True))
        log.close()

    def start(self) -> "Cluster":
        from distributed import Client

        self._start("scheduler", "scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
                    "--scheduler-file", str(self.scheduler_file))
        deadline = time.time() + 60
        while not self.scheduler_file.exists():
            assert time.time() < deadline and self.procs[0].poll() is None, self.logs()
            time.sleep(0.05)
        for i in range(2):
            self._start(f"worker{i}", "worker", "--scheduler-file", str(self.scheduler_file), "--nthreads", "1",
                        "--host", "127.0.0.1", "--no-dashboard", "--name", f"w{i}",
                        "--preload", str(self.folder / "refuse_data.py"))
        self.client = Client(scheduler_file=str(self.scheduler_file), set_as_default=False)
        self.ready()
        return self

    @property
    def address(self) -> str:
        return self.client.scheduler.address

    def ready(self) -> None:
        """Both workers up (after a kill, the nanny starts a new worker process)."""
        self.client.wait_for_workers(2, timeout=60)

    def worker_pids(self) -> dict[str, int]:
        return self.client.run(os.getpid)

    def logs(self) -> str:
        return "\n".join(p.read_text(errors="replace")[-2000:] for p in sorted(self.folder.glob("*.log")))

    def stop(self) -> None:
        if self.client is not None:
            # Closed also when its scheduler is gone: a client dropped unclosed keeps reconnecting
            # in distributed's shared IO-loop thread for the rest of the test session.
            try:
                self.client.close(timeout=2)
            except (OSError, TimeoutError):
                pass
        for proc in self.procs:  # each in its own process group: nanny and worker processes alike
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        for proc in self.procs:
            proc.wait(timeout=30)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    cluster = Cluster(tmp_path_factory.mktemp("dask"))
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


def test_local_cluster_without_scheduler(search_file, tmp_path):
    path = search_file({"optimizer.lr": [0.1, 0.01]}, repeats=1)
    result = search(path, "--results-dir", tmp_path, "--backend", "dask", "--n-jobs", 1, "-q")  # one worker
    assert result.exit_code == 0, result.output
    records = trials(tmp_path / "grid")
    assert [r["status"] for r in records] == ["ok", "ok"] and os.getpid() not in {r["pid"] for r in records}
    assert {r["threads"] for r in records} <= {1, None}


def test_cluster_logs_stay_off_the_terminal(search_file, tmp_path, monkeypatch):
    """distributed's and tornado's loggers (tornado.application logs a callback that failed when
    the scheduler went away, with its traceback) are silent while the API is the client and
    restored after; the CLI keeps them silent for the rest of its process."""
    import logging

    from nnexp.search.runner import _client_logs_quiet

    names = ("tornado.application", "distributed.client", "distributed.comm.tcp")
    for name in names:
        monkeypatch.setattr(logging.getLogger(name), "level", logging.ERROR)
    with _client_logs_quiet():
        assert [logging.getLogger(n).level for n in names] == [logging.CRITICAL] * 3
    assert [logging.getLogger(n).level for n in names] == [logging.ERROR] * 3

    result = search(search_file({"optimizer.lr": [0.1]}, repeats=1), "--results-dir", tmp_path,
                    "--backend", "dask", "--n-jobs", 1, "-q")
    assert result.exit_code == 0, result.output
    assert [logging.getLogger(n).level for n in names] == [logging.CRITICAL] * 3


def test_unreachable_scheduler_exits_2(search_file, tmp_path):
    import dask

    with dask.config.set({"distributed.comm.timeouts.connect": "1s"}):
        result = search(search_file(SPACE), "--results-dir", tmp_path, "--backend", "dask",
                        "--scheduler", "tcp://127.0.0.1:9", "-q")
    assert result.exit_code == 2, result.output
    assert "--scheduler: cannot connect to the dask scheduler at tcp://127.0.0.1:9" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.output


@pytest.mark.parametrize("name", ["scheduler.json", "no/such/dir/scheduler"])
def test_a_missing_scheduler_file_is_named_as_a_file(search_file, tmp_path, name):
    """Not 'missing port number in address': a path is a scheduler file that is not there."""
    result = search(search_file(SPACE), "--results-dir", tmp_path, "--backend", "dask",
                    "--scheduler", tmp_path / name, "-q")
    assert result.exit_code == 2, result.output
    assert result.stderr.strip() == (f"error: --scheduler: {tmp_path / name}: no such scheduler file "
                                     "(or give an address, tcp://host:8786)")


def test_without_dask_exits_2_with_the_pip_command(search_file, planned, tmp_path, monkeypatch):
    from nnexp.errors import NnexpError

    monkeypatch.setitem(sys.modules, "distributed", None)  # `import distributed` fails as when not installed
    result = search(search_file(SPACE), "--results-dir", tmp_path, "--backend", "dask")
    assert result.exit_code == 2 and "pip install 'nnexp[dask]'" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.output
    loaded, plan = planned(SPACE)
    with pytest.raises(NnexpError, match=r"pip install 'nnexp\[dask\]'"):
        run_search(loaded, plan, tmp_path / "api", backend="dask", train_fn=fakes.fake_train, data_fn=fakes.no_data)


def test_search_on_the_cluster_matches_local_and_resumes(cluster, search_file, tmp_path):
    cluster.ready()
    path = search_file(SPACE)
    started = time.perf_counter()
    result = search(path, "--results-dir", tmp_path, "--backend", "dask", "--scheduler", cluster.address, "-q")
    cluster_seconds = time.perf_counter() - started
    assert result.exit_code == 0, result.output + cluster.logs()
    folder = tmp_path / "grid"
    records = trials(folder)
    assert len(records) == 12 and len({(r["config_id"], r["seed"]) for r in records}) == 12
    assert all(r["status"] == "ok" for r in records), [r["error"] for r in records]
    assert {r["pid"] for r in records} <= set(cluster.worker_pids().values()) and os.getpid() not in {
        r["pid"] for r in records}
    assert {r["threads"] for r in records} <= {1, None}  # one BLAS thread per dask worker thread

    loaded = load_search(path)
    started = time.perf_counter()
    local = run_search(loaded, plan_search(loaded), tmp_path / "local", n_jobs=1)
    local_seconds = time.perf_counter() - started
    by_key = {(r["config_id"], r["seed"]): r for r in records}
    for r in local.records:
        assert strip(r) == strip(by_key[(r["config_id"], r["seed"])])
    print(f"12 iris trials: dask {cluster_seconds:.1f} s, local --n-jobs 1 {local_seconds:.1f} s")

    # resume: drop five finished trials from the log; a re-run trains exactly those again
    log = folder / "trials.jsonl"
    log.write_text("".join(line + "\n" for line in log.read_text().splitlines()[:7]))
    again = search(path, "--results-dir", tmp_path, "--backend", "dask", "--scheduler", str(cluster.scheduler_file))
    assert again.exit_code == 0, again.output
    assert "ran 5 trials, resumed 7" in again.stdout.replace("\n", " ")
    final = trials(folder)
    assert final[:7] == records[:7] and len(final) == 12
    assert {(r["config_id"], r["seed"]) for r in final} == set(by_key)


def test_worker_killed_mid_search_loses_no_trial(cluster, search_file, tmp_path):
    cluster.ready()
    experiment = {"data": {"dataset": "iris"}, "model": {"hidden": [32]}, "optimizer": {"name": "sgd", "lr": 0.1},
                  "train": {"epochs": 300, "batch_size": 8}}
    path = search_file({"model.activation": ["relu", "tanh", "logistic"]}, experiment=experiment)
    log = tmp_path / "grid" / "trials.jsonl"
    proc = subprocess.Popen([sys.executable, APP, "search", str(path), "--results-dir", str(tmp_path), "--backend",
                             "dask", "--scheduler", cluster.address, "--quiet"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    try:
        deadline = time.time() + 60
        while not (log.exists() and log.read_text().count("\n") >= 1):
            assert time.time() < deadline and proc.poll() is None, proc.stderr.read().decode() if proc.poll() else ""
            time.sleep(0.02)
        busy = {w: keys for w, keys in cluster.client.processing().items() if keys}
        assert busy, "no trial running"
        worker, keys = next(iter(busy.items()))
        victim = cluster.worker_pids()[worker]
        lost = {re.match(r"batch_of_trial-(.+)_1_calls-", str(k)).group(1) for k in keys}
        os.kill(victim, signal.SIGKILL)  # the worker process; its nanny starts a new one
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 0, err.decode() + cluster.logs()
    records = trials(tmp_path / "grid")
    keys = [(r["config_id"], r["seed"]) for r in records]
    assert len(keys) == 6 and len(set(keys)) == 6  # every planned trial exactly once
    for r in records:
        assert r["status"] == "ok" or (r["status"] == "failed" and "tcp://127.0.0.1:" in r["error"]), r
    # what the killed worker was running was run again elsewhere (dask retries it) and written once;
    # its own record, with the victim's pid, only if it finished in the instant between look and kill
    assert lost <= {r["trial_id"] for r in records}
    assert any(r["pid"] != victim for r in records if r["trial_id"] in lost) or len(lost) == 1

    loaded = load_search(path)
    local = {(r["config_id"], r["seed"]): r for r in run_search(loaded, plan_search(loaded), tmp_path / "local",
                                                                 n_jobs=1).records}
    for r in records:
        if r["status"] == "ok":
            assert strip(r) == strip(local[(r["config_id"], r["seed"])])


def test_trial_that_keeps_killing_workers_is_recorded_failed(cluster, planned, tmp_path):
    """`identity` makes the fake kill its own worker process each time; the scheduler gives up on it."""
    cluster.ready()
    loaded, plan = planned({"model.activation": ["relu", "identity", "tanh"]}, repeats=1)
    outcome = run_search(loaded, plan, tmp_path / "out", backend="dask", scheduler=cluster.address,
                         train_fn=fakes.fake_train, data_fn=fakes.no_data)
    status = {r["params"]["model.activation"]: r for r in outcome.records}
    assert len(trials(tmp_path / "out")) == 3 and len(outcome.records) == 3
    assert status["relu"]["status"] == "ok" and status["tanh"]["status"] == "ok"
    killed = status["identity"]
    assert killed["status"] == "failed" and killed["error"].startswith("KilledWorker: 2 workers died")
    assert "tcp://127.0.0.1:" in killed["error"]


def test_the_client_loads_the_report_libraries_while_the_cluster_trains(cluster, planned, tmp_path, monkeypatch):
    import nnexp.report

    started = []
    monkeypatch.setattr(nnexp.report, "preload", lambda: started.append(True))
    cluster.ready()
    loaded, plan = planned({"optimizer.lr": [0.1, 0.01]}, repeats=1)
    outcome = run_search(loaded, plan, tmp_path / "out", backend="dask", scheduler=cluster.address,
                         train_fn=fakes.fake_train, data_fn=fakes.no_data)
    assert outcome.count("ok") == 2 and started == [True]


def test_lost_scheduler_exits_1_in_one_line_and_keeps_finished_trials(search_file, tmp_path):
    """The scheduler is killed mid-search: one error line (no traceback, no dask log), exit 1,
    every finished trial kept; the same command on another backend then runs only the rest."""
    (tmp_path / "cluster").mkdir()
    own = Cluster(tmp_path / "cluster")
    experiment = {"data": {"dataset": "iris"}, "model": {"hidden": [32]}, "optimizer": {"name": "sgd", "lr": 0.1},
                  "train": {"epochs": 300, "batch_size": 8}}
    path = search_file({"model.activation": ["relu", "tanh", "logistic"]}, experiment=experiment)
    log = tmp_path / "grid" / "trials.jsonl"
    try:
        own.start()
        proc = subprocess.Popen([sys.executable, APP, "search", str(path), "--results-dir", str(tmp_path), "--backend",
                                 "dask", "--scheduler", own.address, "--quiet"], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, start_new_session=True,
                                env={**os.environ, "DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT": "3s"})
        try:
            deadline = time.time() + 60
            while not (log.exists() and log.read_text().count("\n") >= 1):
                assert time.time() < deadline and proc.poll() is None, proc.stderr.read() if proc.poll() else ""
                time.sleep(0.02)
            os.killpg(own.procs[0].pid, signal.SIGKILL)  # the scheduler
            out, err = proc.communicate(timeout=120)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
    finally:
        own.stop()
    assert proc.returncode == 1, err
    assert "Traceback" not in err and " - ERROR - " not in err, err
    [line] = [line for line in err.splitlines() if line.startswith("error:")]
    kept = trials(tmp_path / "grid")
    assert "lost the connection to the dask scheduler" in line
    assert f"the {len(kept)} trial(s) finished before it this run are kept in" in line and "resume" in line
    assert 1 <= len(kept) < 6 and all(r["status"] == "ok" for r in kept)

    result = search(path, "--results-dir", tmp_path, "--n-jobs", "1", "-q")
    assert result.exit_code == 0, result.output
    final = trials(tmp_path / "grid")
    assert final[:len(kept)] == kept and len(final) == 6
    assert len({(r["config_id"], r["seed"]) for r in final}) == 6


def test_the_local_cluster_keeps_its_processes_logs_off_the_terminal():
    """Its scheduler and workers log to this terminal: a Ctrl-C printed 'Async instruction ...
    ended with CancelledError' warnings beside nnexp's own line."""
    import logging

    from nnexp.search.runner import _dask_client

    seen = {}

    class Cluster:
        def __init__(self, **options):
            seen.update(options)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

    class Client(Cluster):
        def __init__(self, cluster, **options):
            pass

    clients = _dask_client(2, None, Client, Cluster)
    assert isinstance(next(clients), Client)
    assert seen["silence_logs"] == logging.CRITICAL and seen["n_workers"] == 2


def test_local_cluster_workers_ignore_the_terminals_ctrl_c(planned, tmp_path):
    """Each worker process of a local cluster printed a KeyboardInterrupt traceback on a terminal's Ctrl-C."""
    loaded, plan = planned({"optimizer.lr": [0.1, 0.01]})
    outcome = run_search(loaded, plan, tmp_path / "out", backend="dask", n_jobs=2, train_fn=fakes.sigint_train,
                         data_fn=fakes.no_data)
    assert [r["val_accuracy"] for r in outcome.records] == [1.0] * len(plan.trials)


def test_a_cluster_without_workers_is_said_to_be_waited_for(planned, tmp_path, monkeypatch):
    """Every worker gone (or none ever joined): the search waited without a word. It now warns once
    the cluster has had no worker for nnexp.no-workers-warning seconds, and goes on when one joins."""
    import threading
    import warnings

    import dask
    from distributed import LocalCluster

    from distributed import Client

    from nnexp.search.dask_data import DaskBackend

    loaded, plan = planned({"optimizer.lr": [0.1, 0.01]}, repeats=1)
    done: dict = {}
    with (LocalCluster(n_workers=0, processes=False, protocol="tcp://", host="127.0.0.1", dashboard_address=":0") as empty,
          dask.config.set({"nnexp.no-workers-warning": 0.3}), warnings.catch_warnings(record=True) as caught):
        warnings.simplefilter("always")
        with Client(empty.scheduler_address, set_as_default=False) as client:  # joblib waited 10 s, then raised
            started = time.perf_counter()
            assert DaskBackend(client=client).effective_n_jobs(-1) == 2 and time.perf_counter() - started < 5

        def search_in_background():
            done["outcome"] = run_search(loaded, plan, tmp_path / "s", backend="dask", scheduler=empty.scheduler_address,
                                         train_fn=fakes.fake_train, data_fn=fakes.no_data)

        thread = threading.Thread(target=search_in_background, daemon=True)
        thread.start()
        deadline = time.time() + 30
        while not any("has had no worker" in str(w.message) for w in caught):
            assert time.time() < deadline and thread.is_alive(), [str(w.message) for w in caught]
            time.sleep(0.05)
        assert "outcome" not in done
        empty.scale(1)  # a worker joins: the waiting search runs its trials
        thread.join(timeout=60)
    assert not thread.is_alive() and done["outcome"].count("ok") == 2
    [message] = [str(w.message) for w in caught if "has had no worker" in str(w.message)]
    assert message.startswith(f"dask: the cluster at {empty.scheduler_address} has had no worker for ")
    assert message.endswith("s: the search waits for one to join (Ctrl-C stops it; every finished trial is kept)")


def test_a_bad_no_workers_setting_is_named(planned, tmp_path):
    import dask

    loaded, plan = planned({"optimizer.lr": [0.1]}, repeats=1)
    with dask.config.set({"nnexp.no-workers-warning": "soon"}), pytest.raises(
            NnexpError, match=r"dask config nnexp.no-workers-warning: must be a number of seconds >= 0, got"):
        run_search(loaded, plan, tmp_path / "s", backend="dask", train_fn=fakes.fake_train, data_fn=fakes.no_data)
