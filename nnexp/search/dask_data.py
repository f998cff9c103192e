"""What --backend dask needs beyond joblib's Dask backend (imported only with it).

Data: ship a search's prepared data sets to dask workers once per worker.

The client prepares each distinct (data spec, seed, dtype) of the plan and
registers them as a worker plugin: dask sends the plugin to every worker once,
also to workers that join later or replace one that died, and each worker
keeps the data sets in `SHIPPED`, where a trial looks its own up by key.
(Data scattered with `client.scatter(broadcast=True)` is not enough: dask's
active memory manager drops the extra replicas after a while, and a worker
that dies can then take the only copy with it.)
"""

from __future__ import annotations

import asyncio
import hashlib
from typing import Any

from distributed.diagnostics.plugin import WorkerPlugin
from joblib._dask import DaskDistributedBackend

SHIPPED: dict[str, Any] = {}  # on a worker: data key -> prepared data


def ship_key(key: tuple) -> str:
    """A short name for a data_key (data spec, its file, seed, dtype)."""
    return hashlib.sha1(repr(key).encode()).hexdigest()[:20]


class ShippedData(WorkerPlugin):
    """Holds the prepared data sets; dask pickles it once per worker."""

    def __init__(self, data: dict[str, Any]):
        self.data = data

    def setup(self, worker) -> None:
        SHIPPED.update(self.data)

    def teardown(self, worker) -> None:
        for key in self.data:
            SHIPPED.pop(key, None)


def shipped(key: str) -> Any:
    """On a worker: the data set the client shipped under `key`."""
    try:
        return SHIPPED[key]
    except KeyError:
        raise RuntimeError(f"data set {key} was not shipped to this dask worker (worker plugin missing)") from None


class DaskBackend(DaskDistributedBackend):
    """joblib's Dask backend with two fixes for a search:

    - a task that failed in the cluster (KilledWorker: its workers kept dying) is reported to
      joblib's completion callback too, so that `return_as="generator_unordered"` raises it;
      joblib 1.6 only sets it on the job's future, which the unordered generator never waits on,
      and the search would hang instead of recording the trial failed;
    - at least 2 jobs: on a cluster of one worker thread, joblib would otherwise run every trial
      sequentially in the client process instead of on the cluster;
    - no wait for workers up front: joblib's waits 10 s for a first worker, then raises a
      TimeoutError; a search submits its trials, which run once a worker joins, and says that
      it waits (runner._said_when_no_workers).
    """

    def __init__(self, *args, wait_for_workers_timeout=0, **kwargs):
        super().__init__(*args, wait_for_workers_timeout=wait_for_workers_timeout, **kwargs)

    def effective_n_jobs(self, n_jobs):
        return max(2, super().effective_n_jobs(n_jobs))

    async def _collect(self):
        while self._continue:
            async for future, result in self.waiting_futures:
                cf_future = self._results.pop(future)
                callback = self._callbacks.pop(future)
                if future.status == "error":
                    _, exc, _ = result
                    cf_future.set_exception(exc)
                    callback(exc)
                else:
                    cf_future.set_result(result)
                    callback(result)
            await asyncio.sleep(0.01)
