"""The garbage collector's pace in the processes nnexp owns: the CLI's and its search workers'.

CPython scans its youngest generation every 700 new container objects, and the older
ones after a number of those scans. Importing pydantic's models, pandas and matplotlib
makes a few hundred thousand objects that live until the process ends, so a command
kept re-scanning them: 0.2-0.3 s of every `nnexp search` (measured, benchmarks/README.md).
Training makes almost no reference cycles (73 unreachable objects after 100 epochs
with the collector off), so collecting less often holds back no memory that matters.
The Python API never calls this: a caller's process keeps its own settings.
"""

from __future__ import annotations

import gc

YOUNG_GENERATION = 50_000  # new container objects between two scans of the youngest generation


def collect_less_often() -> None:
    """Raise the youngest generation's threshold (never lower it, never turn a disabled collector on)."""
    young, middle, old = gc.get_threshold()
    if young:
        gc.set_threshold(max(young, YOUNG_GENERATION), middle, old)
