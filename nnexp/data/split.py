"""Row splits: train/val/test, cross-validation folds, training subsamples.

All of them work on row indices (sorted, int64) so the data are never copied
until the final arrays are built. Classification splits are stratified. Each
stage draws from its own stream derived from the spec seed, so e.g. changing
val_fraction leaves the test rows alone.
"""

from __future__ import annotations

import math

import numpy as np

from nnexp.errors import DataError

_STAGES = {"test": 1, "val": 2, "cv": 3, "train_size": 4}


def stage_seed(seed: int, stage: str) -> int:
    """A random_state for one splitting stage, derived from the spec seed."""
    return int(np.random.SeedSequence([seed, _STAGES[stage]]).generate_state(1)[0])


def _class_counts(y: np.ndarray, class_names: list[str]) -> np.ndarray:
    return np.bincount(y, minlength=len(class_names))


def _split(idx: np.ndarray, y: np.ndarray | None, n_out: int, random_state: int, keep: int = 1):
    """(kept, taken): `n_out` rows taken from the sorted idx at random, stratified by y when given.

    Each class gives its largest-remainder share of the n_out rows (as scikit-learn's
    StratifiedShuffleSplit does), at least one, and keeps at least `keep` rows back
    for the later splits. NumPy only: search workers never pay for importing scikit-learn.
    """
    rng = np.random.default_rng(random_state)
    if y is None:
        taken = rng.permutation(idx)[:n_out]
    else:
        labels = y[idx]
        counts = np.bincount(labels)
        quota = _proportional(counts, n_out, at_most=np.where(counts > keep, counts - keep, np.minimum(counts, 1)))
        taken = np.concatenate([rng.permutation(idx[labels == c])[:quota[c]] for c in np.flatnonzero(counts)])
    kept = np.ones(len(idx), dtype=bool)
    kept[np.searchsorted(idx, taken)] = False  # idx is sorted
    return idx[kept], np.sort(taken)


def guessed_classes_hint(class_names: list[str] | None, task_setting: str) -> str:
    """Why a class may be too small: task auto took a whole-number target for labels (a count,
    a score from 0 to 11); said where a split cannot be made."""
    numbers = class_names is not None and all(name.lstrip("-").isdigit() for name in class_names)
    if task_setting != "auto" or not numbers or len(class_names) == 2:  # 0/1 is a label, not a quantity
        return ""
    return (f" (data.task auto read the target's {len(class_names)} distinct whole numbers as classes; "
            "set data.task: regression if it is a quantity)")


def split_indices(y: np.ndarray, *, task: str, class_names: list[str] | None, val_fraction: float,
                  test_fraction: float, seed: int, source: str,
                  task_setting: str = "classification") -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """(train, val, test) row indices; val/test are None when their fraction is 0.
    `task_setting`: the spec's data.task, which may have left the task to the auto rule."""
    n = len(y)
    n_test = math.ceil(test_fraction * n) if test_fraction > 0 else 0
    n_val = math.ceil(val_fraction * n) if val_fraction > 0 else 0
    n_train = n - n_test - n_val
    strat = task == "classification"
    if strat:
        parts = 1 + (n_val > 0) + (n_test > 0)
        counts = _class_counts(y, class_names)
        small = int(counts.argmin())
        if counts[small] < parts:
            raise DataError.at(source, "data.target", f"class '{class_names[small]}' has only {counts[small]} row(s); stratified train/val/test splits need at least {parts} per class"
                               + guessed_classes_hint(class_names, task_setting))
    need = len(class_names) if strat else 1
    sizes = [s for s in (n_train, n_val, n_test) if s]
    if n_train < max(need, 2) or min(sizes) < need:
        per_class = f" (each split needs at least {need} rows, one per class)" if strat else ""
        if n_train < 1:  # the rounded-up val and test rows took more than every row
            shares = f"val and test would take {n_val}/{n_test} of them and leave no training row"
        else:
            shares = f"the splits would get {n_train}/{n_val}/{n_test} rows"
        raise DataError.at(source, "data.val_fraction", f"{n} rows are too few for val_fraction {val_fraction} and test_fraction {test_fraction}: {shares}{per_class}")
    labels = y if strat else None
    rest, test = np.arange(n), None
    if n_test:
        rest, test = _split(rest, labels, n_test, stage_seed(seed, "test"), keep=1 + (n_val > 0))
    train, val = rest, None
    if n_val:
        train, val = _split(rest, labels, n_val, stage_seed(seed, "val"))
    return train, val, test


def fold_indices(y: np.ndarray, rest: np.ndarray, *, task: str, class_names: list[str] | None, k: int,
                 seed: int, source: str, task_setting: str = "classification") -> list[tuple[np.ndarray, np.ndarray]]:
    """k (train, val) index pairs partitioning `rest` (sorted) into folds whose sizes differ by at most one.

    Classification folds are stratified: the rows are shuffled within each class,
    laid out class after class and dealt to the folds in turn, so every class's
    count also differs by at most one between folds.
    """
    if len(rest) < k:
        raise DataError.at(source, "data.cv_folds", f"{len(rest)} rows outside the test split are too few for {k} folds")
    rng = np.random.default_rng(stage_seed(seed, "cv"))
    if task == "classification":
        counts = _class_counts(y[rest], class_names)
        small = int(counts.argmin())
        if counts[small] < k:
            raise DataError.at(source, "data.cv_folds", f"class '{class_names[small]}' has only {counts[small]} row(s) outside the test split; {k} stratified folds need at least {k} per class"
                               + guessed_classes_hint(class_names, task_setting))
        labels = y[rest]
        order = np.concatenate([rng.permutation(rest[labels == c]) for c in np.flatnonzero(counts)])
    else:
        order = rng.permutation(rest)
    fold_of = np.empty(len(rest), dtype=np.int64)
    fold_of[np.searchsorted(rest, order)] = (np.arange(len(order)) + rng.integers(k)) % k
    return [(rest[fold_of != i], rest[fold_of == i]) for i in range(k)]


def subsample(train: np.ndarray, y: np.ndarray, *, task: str, class_names: list[str] | None,
              train_size: int | float | None, seed: int, source: str) -> np.ndarray:
    """The first `train_size` rows (int) or fraction of the training split, stratified by class."""
    if train_size is None:
        return train
    n = len(train)
    k = train_size if isinstance(train_size, int) else max(1, round(train_size * n))
    if k > n:
        raise DataError.at(source, "data.train_size", f"asks for {k} rows but the training split has only {n}")
    if k == n:
        return train
    rng = np.random.default_rng(stage_seed(seed, "train_size"))
    if task != "classification":
        return np.sort(rng.choice(train, size=k, replace=False))
    counts = _class_counts(y[train], class_names)
    present = np.flatnonzero(counts)
    if k < len(present):
        raise DataError.at(source, "data.train_size", f"{k} rows cannot hold one of each of the {len(present)} classes")
    quota = _proportional(counts, k)
    picked = [rng.choice(train[y[train] == c], size=quota[c], replace=False) for c in present]
    return np.sort(np.concatenate(picked))


def _proportional(counts: np.ndarray, k: int, at_most: np.ndarray | None = None) -> np.ndarray:
    """Largest-remainder allocation of k rows over classes: at least one per present
    class and at most `at_most` (default: the class count) per class."""
    at_most = counts if at_most is None else at_most
    if at_most.sum() < k:
        raise ValueError(f"cannot allocate {k} rows with at most {at_most.tolist()} per class")
    exact = counts * k / counts.sum()
    present = counts > 0
    quota = np.minimum(np.floor(exact).astype(np.int64), at_most)
    quota[present] = np.maximum(quota[present], 1)
    while quota.sum() > k:  # the minimum of one per class overshot: take from the largest
        quota[np.argmax(np.where(quota > 1, quota, -1))] -= 1
    while quota.sum() < k:  # hand the rest to the classes furthest below their share
        quota[np.argmax(np.where(quota < at_most, exact - quota, -np.inf))] += 1
    return quota
