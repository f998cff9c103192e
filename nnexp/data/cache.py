"""An on-disk cache of the built-in data sets that scikit-learn makes.

Importing scikit-learn takes 2-3 s, paid again by every search worker; reading
a cached .npz takes milliseconds. Entries are keyed by the data set, its
parameters and the installed scikit-learn version (read from package metadata,
without importing it), written atomically, and re-made when unreadable. The
cache is an optimisation only: if its folder cannot be written, data sets are
simply made each time.

Location: $NNEXP_CACHE_DIR, else $XDG_CACHE_HOME/nnexp, else ~/.cache/nnexp.
Deleting it is always safe.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

Made = tuple[np.ndarray, np.ndarray, list[str], list[str] | None]  # X, y, feature names, class names


def cache_dir() -> Path:
    if os.environ.get("NNEXP_CACHE_DIR"):
        return Path(os.environ["NNEXP_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "nnexp"


def _entry(name: str, params: dict) -> Path:
    from importlib.metadata import version

    key = json.dumps([name, params, version("scikit-learn")], sort_keys=True)
    return cache_dir() / "datasets" / f"{name}-{hashlib.sha256(key.encode()).hexdigest()[:16]}.npz"


def cached(name: str, params: dict, make: Callable[[], Made]) -> Made:
    """make() the first time; afterwards the arrays and names it returned, from disk."""
    path = _entry(name, params)
    try:  # our own `with` closes the file when np.load fails on a damaged entry (it leaves it open)
        with open(path, "rb") as fh, np.load(fh, allow_pickle=False) as npz:
            classes = [str(c) for c in npz["class_names"]] if "class_names" in npz.files else None
            return npz["X"], npz["y"], [str(f) for f in npz["feature_names"]], classes
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):  # absent or damaged: make it anew
        pass
    made = make()
    _store(path, made)
    return made


def _store(path: Path, made: Made) -> None:
    from nnexp.errors import StorageError
    from nnexp.results import atomic_write

    X, y, feature_names, class_names = made
    arrays = {"X": np.asarray(X), "y": np.asarray(y), "feature_names": np.asarray(feature_names, dtype=str)}
    if class_names is not None:
        arrays["class_names"] = np.asarray(class_names, dtype=str)
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, buffer.getvalue())  # readers see the whole entry or none
    except (OSError, StorageError):  # read-only home, full disk: the cache is only an optimisation
        pass
