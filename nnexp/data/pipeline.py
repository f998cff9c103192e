"""From a DataSpec to ready arrays: load, split, fit the preprocessing on train, transform."""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from nnexp.data.datasets import Table, load_table, npz_frame, read_frame, read_npz, with_names_as_read
from nnexp.data.preprocess import Preprocessor, check_features, check_levels
from nnexp.data.split import fold_indices, split_indices, subsample
from nnexp.errors import DataError, made_with_warnings, with_warnings_again

if TYPE_CHECKING:  # pragma: no cover
    from nnexp.spec import DataSpec


@dataclass
class PreparedData:
    """One train/val/test split as network-ready arrays, plus the preprocessing that made them.

    X_* are (n_samples, n_features) C-contiguous arrays of the requested dtype;
    y_* are int64 class indices 0..K-1, or standardised float targets of shape
    (n_samples,) for regression (preprocessor.inverse_target undoes the scaling).
    """

    X_train: np.ndarray
    y_train: np.ndarray
    X_val: np.ndarray | None
    y_val: np.ndarray | None
    X_test: np.ndarray | None
    y_test: np.ndarray | None
    task: str
    n_outputs: int
    class_names: list[str] | None
    feature_names: list[str]
    preprocessor: Preprocessor
    source: str
    fold: int | None = None
    val_rows: np.ndarray | None = None  # positions of the split's rows in the data set (0: its first row)
    test_rows: np.ndarray | None = None
    raw_targets: dict[str, np.ndarray] | None = None  # regression: val/test targets as the data gives them

    @property
    def n_features(self) -> int:
        return self.X_train.shape[1]

    def splits(self) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """The non-empty splits by name: {'train': (X, y), 'val': ..., 'test': ...}."""
        parts = {"train": (self.X_train, self.y_train), "val": (self.X_val, self.y_val), "test": (self.X_test, self.y_test)}
        return {name: xy for name, xy in parts.items() if xy[0] is not None}


def prepare(spec: DataSpec, seed: int, dtype: str = "float32") -> PreparedData:
    """One train/val/test split of the spec's data (cv_folds is ignored: see prepare_folds)."""
    _check_dtype(dtype)
    table = _load(spec, seed)
    train, val, test = split_indices(table.y, task=table.task, class_names=table.class_names,
                                     val_fraction=spec.val_fraction, test_fraction=spec.test_fraction,
                                     seed=seed, source=table.source, task_setting=spec.task)
    return _build(table, spec, train, val, test, seed=seed, dtype=dtype)


def prepare_folds(spec: DataSpec, seed: int, dtype: str = "float32") -> list[PreparedData]:
    """One PreparedData per cross-validation fold, sharing the test rows of `prepare`.

    The folds partition the non-test rows; each is validated on its own fold
    and the preprocessing is refitted on each fold's training rows. With
    cv_folds < 2 this is [prepare(spec, seed, dtype)].
    """
    if spec.cv_folds < 2:
        return [prepare(spec, seed, dtype)]
    _check_dtype(dtype)
    table = _load(spec, seed)
    rest, _, test = split_indices(table.y, task=table.task, class_names=table.class_names, val_fraction=0.0,
                                  test_fraction=spec.test_fraction, seed=seed, source=table.source, task_setting=spec.task)
    folds = fold_indices(table.y, rest, task=table.task, class_names=table.class_names, k=spec.cv_folds,
                         seed=seed, source=table.source, task_setting=spec.task)
    return [_build(table, spec, train, val, test, seed=seed, dtype=dtype, fold=i) for i, (train, val) in enumerate(folds)]


def load_features(path, preprocessor: Preprocessor, dtype: str | None = None) -> np.ndarray:
    """Network input for the rows of a .csv/.parquet/.npz file, or of a DataFrame (`nnexp predict`).

    The target column, if present, is dropped; the feature columns the model was
    trained on must be there (named in the DataError otherwise), except those it
    dropped as constant.
    """
    import pandas as pd

    categories = [c for c, categorical in zip(preprocessor.columns, preprocessor.categorical) if categorical]
    if isinstance(path, pd.DataFrame):
        source = "rows"
        frame = with_names_as_read(path, source).drop(columns=[preprocessor.target], errors="ignore")
    elif Path(str(path)).suffix.lower() == ".npz":
        source = str(path)
        arrays = read_npz(source, need_y=False, field=None)
        X = arrays["X"]
        if "feature_names" in arrays:
            frame = npz_frame(X, list(arrays["feature_names"]), categories)
        elif X.shape[1] == len(preprocessor.columns):
            frame = npz_frame(X, preprocessor.columns, categories)
        else:
            raise DataError.at(source, None, f"X has {X.shape[1]} columns but the model needs {len(preprocessor.columns)}")
    else:
        source = str(path)
        frame = read_frame(source, field=None, text_columns=categories).drop(columns=[preprocessor.target], errors="ignore")
    check_features(frame, [c for c in preprocessor.columns if c in frame.columns], preprocessor.fill, source)
    return preprocessor.transform_features(frame, dtype, source=source)


def _check_dtype(dtype: str) -> None:
    if dtype not in ("float32", "float64"):
        raise ValueError(f"dtype must be 'float32' or 'float64', got {dtype!r}")


def _load(spec: DataSpec, seed: int) -> Table:
    """The spec's table, checked. A file's is kept for the next call with the same file and settings
    (the last one only): a search's seeds split one table, and reading a large file again for
    each seed took longer than training on it."""
    key = file_key(spec)
    kept = _tables.get(key) if key is not None else None
    if kept is None:
        kept = made_with_warnings(lambda: _checked_table(spec, seed))
        if key is not None:
            _tables.clear()
            _tables[key] = kept
    return with_warnings_again(kept)  # each use gives the read's warnings, as a fresh read would


def _checked_table(spec: DataSpec, seed: int) -> Table:
    table = load_table(spec, seed)
    if table.numeric is None:  # a built-in's numbers are finite and complete (tests/data/test_datasets.py)
        check_features(table.features, table.columns, {} if spec.impute == "none" else None, table.source)
        check_levels(table.features, spec.max_categories, table.source)
    return table


_tables: dict[tuple, tuple[Table, list[Warning]]] = {}


def file_key(spec: DataSpec) -> tuple | None:
    """What a file's checked table depends on, the file's identity and times included (a file
    edited or replaced between two calls in a notebook is read again, also when `cp -p` or
    `tar x` kept its size and modification time); None for a built-in."""
    if spec.is_builtin:
        return None
    try:
        stat = os.stat(spec.dataset)
    except OSError:
        return None  # the read names the problem
    file = (os.path.realpath(spec.dataset), stat.st_ino, stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns)
    return (*file, spec.target, spec.task, tuple(spec.drop), spec.impute == "none", spec.max_categories)


def forget_tables() -> None:
    """Drop the kept table (once a run or search is over, or its trials run in other processes)."""
    _tables.clear()


def positive_last(table: Table, positive: str | None) -> Table:
    """The table with `positive` as the second of its two classes (index 1): the class a single
    logistic unit gives the probability of, and AUC, AP and the threshold score. Applied after
    the rows are split, so a run with and without it trains and scores the same rows. A value
    that does not fit the data changes nothing here: training refuses it, naming the spec
    (spec.positive_class_problem)."""
    names = table.class_names or []
    if positive is None or table.task != "classification" or len(names) != 2 or positive != names[0]:
        return table
    return replace(table, y=1 - table.y, class_names=[names[1], names[0]])


def _build(table: Table, spec: DataSpec, train: np.ndarray, val: np.ndarray | None, test: np.ndarray | None,
           *, seed: int, dtype: str, fold: int | None = None) -> PreparedData:
    train = subsample(train, table.y, task=table.task, class_names=table.class_names,
                      train_size=spec.train_size, seed=seed, source=table.source)
    table = positive_last(table, spec.positive_class)
    prep = Preprocessor.fit(table.rows(train), table.y[train], task=table.task, class_names=table.class_names,
                            target=table.target, normalize=spec.normalize, impute=spec.impute,
                            max_categories=spec.max_categories, pca_components=spec.pca_components,
                            pca_whiten=spec.pca_whiten, dtype=dtype, source=table.source, columns=table.columns)

    def arrays(rows):
        if rows is None:
            return None, None
        X = prep.transform_features(table.rows(rows), dtype, source=table.source, training=True)
        # a regression target in float64 whatever the network computes in: training casts it once an
        # epoch, and the metrics in the target's units come from it (from float32, one outlier of
        # 1e12 rounded every validation target alike, and R^2 read 0 where it was -1.2e17)
        return X, prep.transform_target(table.y[rows], "float64")

    (X_train, y_train), (X_val, y_val), (X_test, y_test) = arrays(train), arrays(val), arrays(test)
    n_outputs = len(table.class_names) if table.task == "classification" else 1
    return PreparedData(X_train, y_train, X_val, y_val, X_test, y_test, task=table.task, n_outputs=n_outputs,
                        class_names=table.class_names, feature_names=list(prep.feature_names), preprocessor=prep,
                        source=table.source, fold=fold, val_rows=val, test_rows=test,
                        raw_targets={name: table.y[rows] for name, rows in (("val", val), ("test", test))
                                     if rows is not None} if table.task == "regression" else None)
