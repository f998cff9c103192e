"""Run a search plan over worker processes with joblib, streaming records into the trials log.

The plan is fixed before the first trial; trials already in the log are skipped
(resume). Records stream back as they finish (`generator_unordered`) and are
appended at once. A worker killed by the OS costs only the trial(s) it held:
the batch is restarted without them. Ctrl-C stops scheduling and keeps what
finished. The joblib backend is a registry entry, so adding one (dask) is one
function.
"""

from __future__ import annotations

import math
import os
import re
import time
import uuid
import warnings
from collections import OrderedDict
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ContextManager

from nnexp.errors import (ClusterLost, NnexpError, StorageError, first_line, made_with_warnings, said_as, warn,
                           with_warnings_again)
from nnexp.search.store import (
    LOCK_FILE,
    SPEC_FILE,
    SearchLock,
    TrialStore,
    check_same_search,
    data_fingerprints,
    key_of,
    save_spec,
    search_identity,
)
from nnexp.search.trial import TrialTask, data_key, forget_data, run_trial

RETRYABLE = ("failed", "diverged")


# --------------------------------------------------------------------------- backends


@dataclass(frozen=True)
class Backend:
    """How to fan trials out: a joblib configuration context, and the errors meaning 'a worker died'."""

    name: str
    context: Callable[[int, int, str | None], ContextManager]  # (n_workers, threads, scheduler)
    lost_worker_errors: Callable[[], tuple[type[BaseException], ...]]


@contextmanager
def _loky_context(n_workers: int, threads: int, scheduler: str | None):
    from joblib import parallel_config

    if scheduler:
        raise NnexpError("--scheduler: only used with --backend dask")
    from nnexp.search.trial import pool_worker_started

    # inner_max_num_threads sets the BLAS/OpenMP thread variables of fresh workers
    with parallel_config(backend="loky", inner_max_num_threads=threads, initializer=pool_worker_started,
                         initargs=(os.getpid(),)):
        yield


def _loky_lost():
    from joblib.externals.loky.process_executor import BrokenProcessPool

    return (BrokenProcessPool,)


def dask_missing() -> str:
    return f"{said_as('--backend dask', 'backend=' + repr('dask'))}: dask.distributed is not installed (pip install 'nnexp[dask]')"
NO_WORKERS_GRACE = 10.0  # seconds without any dask worker before a search says it is waiting


@contextmanager
def _dask_context(n_workers: int, threads: int, scheduler: str | None):
    """A distributed.Client: to `scheduler` (an address or a scheduler file), else to a LocalCluster here.

    The local cluster has `n_workers` processes of one thread each, on the loopback interface.
    """
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        raise NnexpError(dask_missing()) from None

    with _client_logs_quiet():
        yield from _dask_client(n_workers, scheduler, Client, LocalCluster)


def quiet_cluster_logs() -> list[tuple[Any, int]]:
    """Raise distributed's and tornado's loggers to CRITICAL; return their previous levels.

    While nnexp is the client, their lines (tracebacks of reconnection attempts, a callback
    of the event loop that failed when the scheduler went away) stay off the terminal: what
    matters comes back as an exception. The CLI calls this for the rest of its process.
    """
    import logging

    loggers = [logging.getLogger(name) for name in list(logging.root.manager.loggerDict)
               if name.split(".")[0] in ("distributed", "tornado")]
    levels = [(lg, lg.level) for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.CRITICAL)
    return levels


@contextmanager
def _client_logs_quiet():
    levels = quiet_cluster_logs()
    try:
        yield
    finally:
        for lg, level in levels:
            lg.setLevel(level)


def _dask_client(n_workers: int, scheduler: str | None, Client, LocalCluster):
    import logging

    if scheduler:
        if "://" not in scheduler and (scheduler.endswith(".json") or os.sep in scheduler) and not Path(scheduler).is_file():
            raise NnexpError(f"{said_as('--scheduler', 'scheduler')}: {scheduler}: no such scheduler file (or give an "
                             "address, tcp://host:8786)")
        try:
            if Path(scheduler).is_file():
                client = Client(scheduler_file=scheduler, set_as_default=False)
            else:
                client = Client(scheduler, set_as_default=False)
        except (OSError, TimeoutError, ValueError) as exc:
            raise NnexpError(f"{said_as('--scheduler', 'scheduler')}: cannot connect to the dask scheduler at {scheduler} "
                             f"({first_line(exc)})") from None
        with client:
            yield client
        return
    # its scheduler and worker processes log below CRITICAL to this terminal otherwise (a Ctrl-C
    # printed 'Async instruction ... ended with CancelledError' warnings beside nnexp's own line)
    with _children_ignore_ctrl_c():
        cluster = LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True, host="127.0.0.1",
                               dashboard_address=":0", silence_logs=logging.CRITICAL)
    with cluster, Client(cluster, set_as_default=False) as client:
        yield client


@contextmanager
def _children_ignore_ctrl_c():
    """Start processes that ignore the terminal's Ctrl-C: it reaches the whole process group, and
    pool and cluster workers printed a traceback each (one caught mid-import, as it started); this
    process stops them itself. SIGINT ignored at a Python process's start stays ignored: it installs
    no KeyboardInterrupt handler. A Ctrl-C in this short window is ignored too."""
    import signal

    from nnexp.interrupts import ignoring

    with ignoring(signal.SIGINT):
        yield


def _scheduler_lost_errors():
    """What a client raises when its scheduler is gone: its futures are cancelled, its comms closed."""
    from concurrent.futures import CancelledError

    from distributed.comm.core import CommClosedError

    return (CancelledError, CommClosedError)  # distributed's FutureCancelledError is a CancelledError


def _dask_lost():
    try:
        from distributed.scheduler import KilledWorker
    except ImportError:
        return ()
    return (KilledWorker,)


BACKENDS: dict[str, Backend] = {
    "loky": Backend("loky", _loky_context, _loky_lost),
    "dask": Backend("dask", _dask_context, _dask_lost),
}


# --------------------------------------------------------------------------- progress and outcome


@dataclass
class Progress:
    """Counts a progress bar needs; `best` is the best single trial so far by the search metric."""

    total: int
    skipped: int = 0
    done: int = 0
    ok: int = 0
    failed: int = 0
    diverged: int = 0
    running: int = 0
    best: float | None = None
    best_trial: str | None = None
    started: float = field(default_factory=time.perf_counter)

    @property
    def to_run(self) -> int:
        return self.total - self.skipped

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self.started

    @property
    def eta(self) -> float | None:
        """Seconds left, from the mean pace so far."""
        if self.done == 0:
            return None
        return self.elapsed / self.done * max(0, self.to_run - self.done)


@dataclass
class SearchOutcome:
    """What a search run did; the records are the latest of each planned trial."""

    folder: Path
    records: list[dict]
    ran: int
    skipped: int
    interrupted: bool
    seconds: float
    notes: list[str] = field(default_factory=list)

    def count(self, status: str) -> int:
        return sum(r["status"] == status for r in self.records)

    @property
    def all_failed(self) -> bool:
        """No planned trial finished ok (the search produced nothing to compare)."""
        return bool(self.records) and self.count("ok") == 0


ProgressHook = Callable[[dict | None, Progress], None]


# --------------------------------------------------------------------------- the run


def cores() -> int:
    from joblib import cpu_count

    return max(1, cpu_count())


def check_n_jobs(n_jobs, name: str = "--n-jobs") -> int:
    """A worker count as joblib reads it: positive, or -1 for all cores (-2 all but one, ...)."""
    if isinstance(n_jobs, bool) or not isinstance(n_jobs, int) or n_jobs == 0 or n_jobs < -64:
        raise NnexpError(f"{name}: must be a positive number of workers, or -1 for all cores (-2 all but one, ...), got {n_jobs!r}")
    return n_jobs


def worker_plan(n_jobs: int, n_tasks: int) -> tuple[int, int]:
    """(workers, BLAS threads per worker) with workers x threads <= cores."""
    from joblib import effective_n_jobs

    workers = max(1, min(effective_n_jobs(n_jobs), max(1, n_tasks)))
    return workers, max(1, cores() // workers)


def run_search(
    loaded,
    plan,
    folder: str | Path,
    *,
    n_jobs: int | None = None,
    backend: str = "loky",
    scheduler: str | None = None,
    fresh: bool = False,
    retry_failed: bool = False,
    progress: ProgressHook | None = None,
    train_fn: Callable | None = None,
    data_fn: Callable | None = None,
) -> SearchOutcome:
    """Run the plan's missing trials into `folder`/trials.jsonl and return the outcome (never prints).

    `fresh` moves the old log aside (trials-<time>.jsonl.old) instead of resuming;
    `retry_failed` re-runs failed and diverged trials; `train_fn(spec, prepared)`
    and `data_fn(spec)` replace the real training and data loading (tests).
    """
    if backend not in BACKENDS:
        raise NnexpError(f"{said_as('--backend', 'backend')}: unknown backend '{backend}' (one of {', '.join(BACKENDS)})")
    from nnexp.results import ensure_folder

    search = loaded.spec
    n_jobs = search.n_jobs if n_jobs is None else check_n_jobs(n_jobs)
    # the data files' hashes first (seconds for a large file): a Ctrl-C then leaves no folder behind
    identity = search_identity(loaded, plan.strategy, len(plan.configs) if plan.strategy == "random" else None,
                               data_fingerprints(config.spec for config in plan.configs))
    # so tables rebuilt later can tell an unfinished search: its trials are these configurations x seeds
    identity["plan"] = {"trials": len(plan.trials), "seeds": sorted({t.seed for t in plan.trials}),
                        "configs": [c.config_id for c in plan.configs]}
    identity["trial_base"] = trial_base(loaded, Path(folder))
    # the folders this search makes (not `..`: r4/.. is r4's parent, which exists or is made as r4's)
    made = [p for p in (Path(folder), *Path(folder).parents) if p.name != ".." and not p.exists()]
    folder = ensure_folder(Path(folder))
    start = time.perf_counter()
    notes: list[str] = []
    store = TrialStore(folder)

    with _removed_if_unused(store, made), SearchLock(folder):
        if fresh:
            from nnexp.report import remove_tables

            logged = store.path.exists()  # a search folder (an empty log: one stopped before its first trial)
            moved = store.move_aside()
            if logged:
                remove_tables(folder)
            if moved:
                notes.append(f"{said_as('--fresh', 'fresh=True')}: earlier trials moved to {moved.name} (their tables and plots removed)")
        elif store.path.exists() and store.path.stat().st_size:
            notes += check_same_search(folder, identity)
        save_spec(folder, identity)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            done = store.latest()
        notes += [str(w.message) for w in caught]
        if store.repair():
            notes.append(f"{store.path}: cut off an incomplete last line before appending")
        store.create()
        lines_before = store.lines()

        todo, kept = [], []
        for trial in plan.trials:
            previous = done.get(trial.key)
            if previous is None or (retry_failed and previous["status"] in RETRYABLE):
                todo.append(trial)
            else:
                kept.append(previous)

        counts = Progress(total=len(plan.trials), skipped=len(kept))
        better = (lambda a, b: a > b) if search.mode == "max" else (lambda a, b: a < b)

        def record_done(record: dict | None, count: bool = True) -> None:
            if record is not None and count:
                store.append(record)
                counts.done += 1
                setattr(counts, record["status"], getattr(counts, record["status"]) + 1)
            if record is not None:
                value = record.get(search.metric)
                if record["status"] == "ok" and isinstance(value, (int, float)) and math.isfinite(value):
                    if counts.best is None or better(value, counts.best):
                        counts.best, counts.best_trial = value, record["trial_id"]
            if progress is not None:
                progress(record if count else None, counts)

        for record in kept:
            record_done(record, count=False)
        if progress is not None:
            progress(None, counts)

        tasks = [TrialTask.from_trial(t) for t in todo]
        interrupted = False
        try:
            if tasks:
                workers, threads = worker_plan(n_jobs, len(tasks))
                options = dict(train_fn=train_fn, data_fn=data_fn, threads=threads, metric=search.metric)
                if backend == "dask":  # always through the cluster, even for one worker
                    _run_dask(tasks, options, workers, scheduler, counts, record_done)
                elif workers == 1 and (n_jobs == 1 or cores() == 1):
                    _run_in_process(tasks, options, counts, record_done)
                else:
                    _run_parallel(tasks, options, workers, threads, BACKENDS[backend], scheduler, counts, record_done)
        except KeyboardInterrupt:
            interrupted = True
        except (StorageError, ClusterLost) as exc:  # disk full, scheduler gone: stop, say what is kept
            raise type(exc)(f"{exc.problems[0]}; the {counts.done} trial(s) finished before it this run are "
                            f"kept in {store.path}; fix that and run the same command again to resume") from None
        finally:
            forget_data()  # a notebook's process keeps no data set once its search is over

        latest = store.latest()
        records = [latest[t.key] for t in plan.trials if t.key in latest]
        ran = store.lines() - lines_before  # not counts.done: a Ctrl-C may fall between an append and its count
    return SearchOutcome(folder, records, ran, counts.skipped, interrupted, time.perf_counter() - start, notes)


def trial_base(loaded, folder: Path) -> dict:
    """What a trial's experiment is built from, for tables rebuilt later (best.yaml): the base as
    the search file gives it, before defaults (a searched optimizer.name then takes the new kind's
    defaults, as the trial did), and the folder its data paths are relative to, both as it was and
    as seen from the results folder (which still holds when a project moves as a whole)."""
    spec_dir = Path(loaded.source).parent.resolve()
    return {"experiment": loaded.base, "spec_dir": str(spec_dir),
            "spec_dir_from_results": os.path.relpath(spec_dir, folder.resolve())}


@contextmanager
def _removed_if_unused(store: TrialStore, made: list[Path]):
    """A search that stops on bad input before its first trial (an unreachable scheduler) leaves
    none of the folders behind that it `made` (its own, and a --results-dir): an empty one would
    read as a search that ran nothing."""
    try:
        yield
    except NnexpError:
        if made and not (store.path.exists() and store.path.stat().st_size):
            for name in (SPEC_FILE, store.path.name, LOCK_FILE):
                (store.folder / name).unlink(missing_ok=True)
            for folder in made:  # innermost first
                try:
                    folder.rmdir()
                except OSError:  # something else is in it now: leave it, and those around it
                    break
        raise


def _run_in_process(tasks, options, counts: Progress, record_done) -> None:
    """n_jobs 1: no pool, no pickling; a trial that kills its process kills the search."""
    for task in tasks:
        counts.running = 1
        record = run_trial(task, **options)
        counts.running = 0
        record_done(record)


def _run_parallel(tasks, options, workers, threads, backend: Backend, scheduler, counts: Progress, record_done) -> None:
    """Stream records back as they finish; after a worker death, start a fresh batch without its trial(s)."""
    from joblib import Parallel

    from nnexp.report import preload

    lost_errors = backend.lost_worker_errors()
    pending: OrderedDict[tuple, TrialTask] = OrderedDict((t.key, t) for t in tasks)
    forget_data()  # the workers prepare their own
    # The main process only waits from here on: it imports the report's libraries now, beside
    # the workers, instead of alone on one core after the last trial.
    preload()
    with backend.context(workers, threads, scheduler):
        while pending:
            in_flight: dict[tuple, TrialTask] = {}
            # pre_dispatch n_jobs: nothing waits in a queue, so "dispatched, not returned" = running
            parallel = Parallel(n_jobs=min(workers, len(pending)), return_as="generator_unordered",
                                pre_dispatch="n_jobs", batch_size=1)
            with _children_ignore_ctrl_c():  # joblib starts its worker processes (and loky's tracker) here
                results = parallel(_dispatch(list(pending.values()), in_flight, counts, workers, options))
            interrupted = False
            try:
                for record in results:
                    key = key_of(record)
                    in_flight.pop(key, None)
                    pending.pop(key, None)
                    counts.running = min(workers, len(in_flight))
                    record_done(record)
            except lost_errors as exc:
                suspects = list(in_flight.values())
                for task in suspects:
                    pending.pop(task.key, None)
                counts.running = 0
                if len(suspects) == 1:
                    record_done(killed_record(suspects[0], exc))
                else:  # cannot tell which one died: run each alone, so only the culprit is lost
                    for task in suspects:
                        record_done(_run_alone(task, options, lost_errors))
            except KeyboardInterrupt:
                interrupted = True
                raise
            finally:
                close = getattr(results, "close", None)
                try:
                    if close is not None:
                        _close_quietly(close)  # Ctrl-C: joblib aborts the running trials, nothing new is scheduled
                except Exception:  # noqa: BLE001 - a Ctrl-C while loky was starting its workers can leave
                    if not interrupted:  # it unable to shut them down cleanly; the interrupt is what matters
                        raise
                counts.running = 0


def release_workers() -> None:
    """Let joblib's idle loky workers exit now, without waiting for them.

    joblib keeps them for the next search in this process, and at interpreter exit the
    main process waits while they shut down; a command that is about to end calls this
    first, so they exit while it writes the report.
    """
    from joblib.externals.loky import reusable_executor

    executor = getattr(reusable_executor, "_executor", None)
    if executor is not None:
        executor.shutdown(wait=False)


def _dispatch(batch, in_flight: dict, counts: Progress, workers: int, options: dict):
    """The tasks for joblib, noting each one as it is dispatched (joblib pulls one more as each finishes)."""
    from joblib import delayed

    for task in batch:
        in_flight[task.key] = task
        counts.running = min(workers, len(in_flight))
        yield delayed(run_trial)(task, **options)


def _run_alone(task: TrialTask, options: dict, lost_errors) -> dict:
    """Re-run one suspect of a worker death in a pool of its own."""
    from joblib import Parallel, delayed

    try:  # n_jobs=2: a pool, not this process (a second death must not end the search)
        with _children_ignore_ctrl_c():  # its worker starts here, as the search's own pool does
            results = Parallel(n_jobs=2, batch_size=1, return_as="generator")([delayed(run_trial)(task, **options)])
        (record,) = results
        return record
    except lost_errors as exc:
        return killed_record(task, exc)


def killed_record(task: TrialTask, exc: BaseException) -> dict:
    """The record of a trial whose worker process died (killed by the OS, out of memory, crashed)."""
    codes = re.search(r"exit codes of the workers are (\{.*?\})", str(exc))
    detail = f" (exit codes {codes.group(1)})" if codes else ""
    error = (f"{type(exc).__name__}: the worker process died while running this trial "
             f"(killed by the OS, out of memory, or a crash){detail}")
    return {**task.failed_record(error), "seconds": None, "history": {}}


# --------------------------------------------------------------------------- dask


def dask_blas_threads() -> int:
    """BLAS threads per trial on a dask worker thread: 1, unless the dask config `nnexp.blas-threads`
    (or the environment variable DASK_NNEXP__BLAS_THREADS on the client) says otherwise."""
    try:
        import dask
    except ImportError:
        raise NnexpError(dask_missing()) from None

    value = dask.config.get("nnexp.blas-threads", default=1)
    try:
        value = int(value)
    except (TypeError, ValueError):
        value = 0
    if value < 1:
        raise NnexpError(f"dask config nnexp.blas-threads: must be a positive integer, got {value!r}")
    return value


def no_workers_grace() -> float:
    """Seconds a cluster may have no worker before the search says it is waiting: the dask config
    `nnexp.no-workers-warning` (DASK_NNEXP__NO_WORKERS_WARNING on the client), default 10."""
    import dask

    value = dask.config.get("nnexp.no-workers-warning", default=NO_WORKERS_GRACE)
    try:
        value = float(value)
    except (TypeError, ValueError):
        value = -1.0
    if not value >= 0:
        raise NnexpError(f"dask config nnexp.no-workers-warning: must be a number of seconds >= 0, got {value!r}")
    return value


@contextmanager
def _said_when_no_workers(client, grace: float):
    """A cluster left without any worker (every one died, or none ever joined) takes no task, and the
    search would wait without a word: once the cluster has had no worker for `grace` seconds, warn
    that it waits and how to stop it (again after workers came and went)."""
    import threading

    stop = threading.Event()
    address = getattr(getattr(client, "scheduler", None), "address", "the dask scheduler")

    def watch() -> None:
        empty_since, warned = None, False
        while not stop.wait(min(1.0, max(grace / 4, 0.05))):
            try:
                workers = len(client.nthreads())
            except Exception:  # noqa: BLE001 - a lost scheduler is the search's to report, not the watch's
                continue
            if workers:
                empty_since, warned = None, False
            elif empty_since is None:
                empty_since = time.monotonic()
            elif not warned and time.monotonic() - empty_since >= grace:
                warned = True
                warn(f"dask: the cluster at {address} has had no worker for {time.monotonic() - empty_since:.0f} s: "
                     "the search waits for one to join (Ctrl-C stops it; every finished trial is kept)")

    thread = threading.Thread(target=watch, name="nnexp-no-workers-watch", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=5)


class DaskTrial:
    """`run_trial` on a dask worker, with the data set the client shipped under `data_ref`.

    It has a name of its own: dask shows it (dashboard, task keys, logs), and a KilledWorker
    error carries it back, so the client knows which trial kept killing workers.
    """

    def __init__(self, trial_id: str):
        self.__name__ = f"trial-{trial_id}"

    def __call__(self, task: TrialTask, data_ref: str, **options) -> dict:
        from nnexp.search.dask_data import shipped

        return run_trial(task, data_fn=lambda spec: with_warnings_again(shipped(data_ref)), **options)


def _prepare_in_client(tasks, data_fn) -> tuple[dict, dict, list]:
    """For each distinct (data spec, seed, dtype) of the tasks, its data prepared here: ({ref: (data,
    its warnings)}, {trial key: ref}, and the tasks whose data cannot be prepared: they run here and
    fail as locally)."""
    from nnexp.search.dask_data import ship_key
    from nnexp.train import load_data
    from nnexp.spec import ExperimentSpec

    data: dict[str, object] = {}
    refs: dict[tuple, str] = {}
    broken: set[str] = set()
    unprepared = []
    for task in tasks:
        spec = ExperimentSpec.model_validate_json(task.spec_json)
        ref = ship_key(data_key(spec))
        if ref not in data and ref not in broken:
            try:
                data[ref] = made_with_warnings(lambda: (data_fn or load_data)(spec))
            except Exception:
                broken.add(ref)
        if ref in broken:
            unprepared.append(task)
        else:
            refs[task.key] = ref
    return data, refs, unprepared


def _run_dask(tasks, options, n_workers: int, scheduler, counts: Progress, record_done) -> None:
    """Run the trials on a dask.distributed cluster through joblib's Dask backend.

    The client prepares each distinct data set once and ships them to every worker as a worker
    plugin (once per worker, also to workers that replace a dead one); a trial looks its data up
    by key, so workers need no data files. Records stream back unordered and are written here, by
    the client. A worker that dies is replaced and its trial re-run elsewhere by dask; a trial that
    kills `allowed-failures + 1` workers comes back as KilledWorker and is recorded failed, naming
    the last worker; the other trials go on.
    """
    backend = BACKENDS["dask"]
    threads, grace = dask_blas_threads(), no_workers_grace()
    options = {**options, "threads": threads}
    data_fn = options.pop("data_fn", None)
    with backend.context(n_workers, threads, scheduler) as client:
        from nnexp.search.dask_data import ShippedData

        pending: OrderedDict[tuple, TrialTask] = OrderedDict((t.key, t) for t in tasks)
        data, refs, unprepared = _prepare_in_client(tasks, data_fn)
        forget_data()  # the cluster gets `data`; this process's caches are not needed
        for task in unprepared:
            pending.pop(task.key, None)
            record_done(run_trial(task, data_fn=data_fn, **options))
        if not pending:
            return
        lost_errors = backend.lost_worker_errors()
        plugin = f"nnexp-data-{uuid.uuid4().hex[:12]}"
        client.register_plugin(ShippedData(data), name=plugin)
        from nnexp.report import preload

        preload()  # as in _run_parallel: the client only waits from here on
        try:
            workers = max(1, sum(client.ncores().values()))
            with _said_when_no_workers(client, grace):
                _dask_rounds(client, pending, refs, options, workers, lost_errors, counts, record_done)
        except _scheduler_lost_errors() as exc:
            raise ClusterLost(f"lost the connection to the dask scheduler ({first_line(exc)})") from None
        finally:
            try:
                client.unregister_worker_plugin(plugin)
            except Exception:  # the cluster is gone: nothing left to clean up
                pass


def _dask_rounds(client, pending, refs, options, workers, lost_errors, counts: Progress, record_done) -> None:
    """Stream records as they finish; after a KilledWorker, record its trial failed and go on with the rest."""
    from joblib import Parallel, delayed, parallel_config

    from nnexp.search.dask_data import DaskBackend

    def stream(batch: list[TrialTask], in_flight: dict):
        def calls():
            for task in batch:
                in_flight[task.key] = task
                counts.running = min(workers, len(in_flight))
                yield delayed(DaskTrial(task.trial_id))(task, refs[task.key], **options)

        # a fresh joblib Dask backend each round: an aborted round may leave its result collector waiting
        with parallel_config(backend=DaskBackend(client=client)):
            parallel = Parallel(return_as="generator_unordered", pre_dispatch="n_jobs", batch_size=1)
        return parallel(calls())

    def run_alone(task: TrialTask) -> dict:
        try:
            (record,) = list(stream([task], {}))
            return record
        except lost_errors as exc:
            return _dask_killed_record(task, exc)

    while pending:
        in_flight: dict[tuple, TrialTask] = {}
        results = stream(list(pending.values()), in_flight)
        try:
            for record in results:
                key = key_of(record)
                in_flight.pop(key, None)
                if pending.pop(key, None) is None:
                    continue  # never write a trial twice
                counts.running = min(workers, len(in_flight))
                record_done(record)
        except lost_errors as exc:
            counts.running = 0
            culprit = _culprit(exc, in_flight)
            if culprit is not None:
                pending.pop(culprit.key, None)
                record_done(_dask_killed_record(culprit, exc))
            else:  # cannot tell which trial it was: run each suspect alone
                for task in list(in_flight.values()):
                    pending.pop(task.key, None)
                    record_done(run_alone(task))
        finally:
            close = getattr(results, "close", None)
            if close is not None:
                _close_quietly(close)  # Ctrl-C: joblib stops waiting; dask drops the tasks nobody wants any more
            counts.running = 0


def _close_quietly(close) -> None:
    """Close joblib's result generator without its warning that tasks were 'executed but not used'
    or 'cancelled' and that 'you could benefit from adjusting the input task iterator': after a
    Ctrl-C every finished trial is already in the log, and there is nothing for the user to adjust."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"(?s).*You could benefit from adjusting the input task iterator")
        close()


def _culprit(exc: BaseException, in_flight: dict) -> TrialTask | None:
    """The trial a KilledWorker error is about, from its task key (`batch_of_trial-<id>_1_calls-<uuid>`)."""
    key = str(getattr(exc, "task", "") or "")
    for task in in_flight.values():
        if key.startswith(f"batch_of_{DaskTrial(task.trial_id).__name__[:50]}_1_calls-"):
            return task
    return None


def _dask_killed_record(task: TrialTask, exc: BaseException) -> dict:
    """A trial whose dask workers kept dying while running it: failed, naming the last worker."""
    record = killed_record(task, exc)
    last = getattr(getattr(exc, "last_worker", None), "address", None)
    tries = getattr(exc, "allowed_failures", None)
    tries = f"{tries + 1} workers" if isinstance(tries, int) else "the worker"
    record["error"] = (f"{type(exc).__name__}: {tries} died while running this trial (last: {last or 'unknown'}); "
                       "the dask scheduler gave up on it (distributed.scheduler.allowed-failures)")
    return record
