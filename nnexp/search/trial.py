"""One trial as a pure function (spec, seed) -> JSON-ready record, run inside a worker.

Workers receive a small `TrialTask` (the spec as JSON, never arrays); each
worker prepares a data set once and keeps it in a per-process cache keyed by
(data spec, seed, dtype), so configurations that share them never prepare it
again, and a file's table is read once for all its seeds (nnexp.data.pipeline).
Whatever happens inside training, the trial returns a record: a raised
exception becomes `status: failed` with a one-line `error`.
"""

from __future__ import annotations

import os
import time
import traceback
import warnings
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Callable

from nnexp.collector import collect_less_often
from nnexp.errors import NnexpError, SpecError, first_line, made_with_warnings, with_warnings_again

CACHE_SIZE = 8
MAIN_METRICS = ("val_accuracy", "val_rmse")
PARENT_POLL_SECONDS = 1.0

_data_cache: OrderedDict[tuple, Any] = OrderedDict()
_controller = None
_parent_watch = None


@dataclass(frozen=True)
class TrialTask:
    """What a worker needs to run one trial: picklable, small, and free of arrays."""

    trial_id: str
    config_id: str
    params: dict
    seed: int
    repeat: int
    spec_json: str

    @property
    def key(self) -> tuple[str, int]:
        return (self.config_id, self.seed)

    @classmethod
    def from_trial(cls, trial) -> "TrialTask":
        return cls(trial.trial_id, trial.config_id, trial.params, trial.seed, trial.repeat, trial.spec.model_dump_json())

    def failed_record(self, error: str | None) -> dict[str, Any]:
        """The identity fields of this trial's record, as failed (run_trial fills in the rest)."""
        return {"trial_id": self.trial_id, "config_id": self.config_id, "params": self.params, "seed": self.seed,
                "repeat": self.repeat, "status": "failed", "error": error}


def data_key(spec) -> tuple:
    """What the prepared data depends on: the data spec, its file as it is now (a pool's workers
    outlive a search: one run again in a notebook after the file was edited reads it again), the
    seed (it drives the split) and the dtype."""
    from nnexp.data.pipeline import file_key

    return (spec.data.model_dump_json(), file_key(spec.data), spec.seed, spec.train.dtype)


def prepared_data(spec) -> Any:
    """The spec's prepared data (or folds), from this process's cache when it was seen before."""
    key = data_key(spec)
    if key not in _data_cache:
        from nnexp.train import load_data

        _data_cache[key] = made_with_warnings(lambda: load_data(spec))
        while len(_data_cache) > CACHE_SIZE:
            _data_cache.popitem(last=False)
    _data_cache.move_to_end(key)
    return with_warnings_again(_data_cache[key])  # each trial's record holds its data's warnings


def forget_data() -> None:
    """Drop this process's prepared data and kept table: a search whose trials run in other
    processes, or that is over, holds no copy of a large data set."""
    from nnexp.data.pipeline import forget_tables

    _data_cache.clear()
    forget_tables()


def _default_train(spec, prepared, metric: str | None = None):
    from nnexp.train import first_split, train_experiment

    if metric:  # a searched data set or task whose data the ranking metric does not suit: this trial fails, named
        from nnexp.spec import metric_problem

        wrong = metric_problem(metric, first_split(prepared).task)
        if wrong:
            raise SpecError(f"the search's {wrong}")
    return train_experiment(spec, prepared=prepared, watch=(metric,) if metric else ())


def pool_worker_started(search_pid: int) -> None:
    """The initializer of the search's own pool workers: they end with the search, and collect
    garbage as the CLI does."""
    exit_with_parent(search_pid)
    collect_less_often()


def exit_with_parent(parent: int) -> None:
    """Make this pool worker exit once `parent` (the search that started it) is gone.

    A loky worker waits on its task queue for good, idle for up to 300 s: when the search's
    main process is killed (kill -9, the OOM killer), nothing else ends it, and it would sleep
    on with its data in memory. The watch starts as the worker does, so one that was still
    importing when the search died exits too, and costs a wake-up a second.
    """
    global _parent_watch
    if _parent_watch is not None:
        return
    import threading

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(PARENT_POLL_SECONDS)
        os._exit(1)

    _parent_watch = threading.Thread(target=watch, name="nnexp-exit-with-parent", daemon=True)
    _parent_watch.start()


def blas_limit(threads: int | None):
    """A context capping this process's BLAS threads (the controller is built once per process)."""
    global _controller
    import contextlib

    if threads is None:
        return contextlib.nullcontext()
    if _controller is None:
        import numpy  # noqa: F401 - BLAS must be loaded before threadpoolctl looks for it
        from threadpoolctl import ThreadpoolController

        _controller = ThreadpoolController()
    return _controller.limit(limits=threads, user_api="blas")


def blas_threads() -> int | None:
    """BLAS threads in use now (None when no BLAS library is loaded)."""
    if _controller is None:
        return None
    counts = [lib.num_threads for lib in _controller.select(user_api="blas").lib_controllers]
    return max(counts) if counts else None


def one_line(exc: BaseException) -> str:
    """`Type: message (at file.py:line)`: enough to find the problem, short enough for a table;
    an error in the user's input (a spec or data error) names its field, not nnexp's line."""
    if isinstance(exc, NnexpError):
        return first_line(exc)
    frames = traceback.extract_tb(exc.__traceback__)
    where = f" (at {os.path.basename(frames[-1].filename)}:{frames[-1].lineno})" if frames else ""
    return first_line(exc) + where


def compact_history(history: list[dict], metric: str | None = None) -> dict[str, Any]:
    """The learning curves a report plots: train_loss, val_loss and the main validation metric;
    under cross-validation the first fold's (`fold` names it), as `nnexp run` plots them: the
    folds back to back read as one run of k times the epochs."""
    if not history:
        return {}
    fold = history[0].get("fold")
    if fold is not None:
        history = [row for row in history if row.get("fold") == fold]
    keys = ["train_loss", "val_loss", *[m for m in MAIN_METRICS if m in history[0]][:1]]
    if metric and metric not in keys and metric in history[0]:
        keys.append(metric)
    curves = {k: [_round(row.get(k)) for row in history] for k in keys if k in history[0]}
    return curves if fold is None else {**curves, "fold": fold}


def _round(value):
    """Six significant digits are plenty for a curve and keep the log small."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = float(value)
        return float(f"{value:.6g}") if value == value and abs(value) != float("inf") else None
    return value


def run_trial(
    task: TrialTask,
    train_fn: Callable | None = None,
    data_fn: Callable | None = None,
    threads: int | None = None,
    metric: str | None = None,
) -> dict:
    """Train one configuration with one seed and return its record (never raises for a training error)."""
    start = time.perf_counter()
    record = task.failed_record(None)
    history: dict = {}
    with blas_limit(threads), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")  # kept in the record, not printed by a worker
        try:
            from nnexp.spec import ExperimentSpec

            spec = ExperimentSpec.model_validate_json(task.spec_json)
            prepared = (data_fn or prepared_data)(spec)
            result = train_fn(spec, prepared) if train_fn else _default_train(spec, prepared, metric)
            record["status"] = result.status
            metrics = {k: v for k, v in result.metrics.items() if k != "status"}
            if "seconds" in metrics:
                metrics["train_seconds"] = metrics.pop("seconds")
            record.update(metrics)
            history = compact_history(result.history, metric)
        except Exception as exc:  # a failed trial must not end the search
            record["error"] = one_line(exc)
        record["threads"] = blas_threads()
    if caught:
        record["warnings"] = list(dict.fromkeys(str(w.message) for w in caught))
    record["pid"] = os.getpid()
    record["seconds"] = time.perf_counter() - start
    record["history"] = history
    return record
