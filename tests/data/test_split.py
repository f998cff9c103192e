"""Splits: sizes, stratification, reproducibility, folds, training subsamples."""

import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nnexp.data import load_table, prepare, prepare_folds
from nnexp.data.split import split_indices, subsample
from nnexp.errors import DataError
from nnexp.spec import DataSpec

warnings.filterwarnings("ignore", message=".*constant on the training rows")


def _iris_split(seed=0, **kw):
    table = load_table(DataSpec(dataset="iris"), seed)
    args = dict(val_fraction=0.2, test_fraction=0.2) | kw
    return table, split_indices(table.y, task=table.task, class_names=table.class_names, seed=seed, source="iris", **args)


def test_split_sizes_partition_and_stratify():
    table, (train, val, test) = _iris_split()
    assert (len(train), len(val), len(test)) == (90, 30, 30)
    assert np.array_equal(np.sort(np.concatenate([train, val, test])), np.arange(150))
    for part in (train, val, test):
        counts = np.bincount(table.y[part], minlength=3)
        np.testing.assert_array_equal(counts, [len(part) // 3] * 3)  # iris is balanced 50/50/50


def test_stratification_keeps_unbalanced_proportions():
    table = load_table(DataSpec(dataset="breast_cancer"), 0)
    train, val, test = split_indices(table.y, task=table.task, class_names=table.class_names,
                                     val_fraction=0.25, test_fraction=0.25, seed=7, source="bc")
    overall = table.y.mean()
    for part in (train, val, test):
        assert abs(table.y[part].mean() - overall) < 0.01


def test_splits_depend_on_the_seed_only():
    _, a = _iris_split(seed=1)
    _, b = _iris_split(seed=1)
    _, c = _iris_split(seed=2)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    assert not np.array_equal(a[2], c[2])


def test_test_rows_do_not_depend_on_val_fraction():
    _, (_, _, test_a) = _iris_split(val_fraction=0.1)
    _, (_, _, test_b) = _iris_split(val_fraction=0.3)
    np.testing.assert_array_equal(test_a, test_b)


def test_zero_fractions_give_no_split():
    p = prepare(DataSpec(dataset="iris", val_fraction=0, test_fraction=0), seed=0)
    assert p.X_val is None and p.y_val is None and p.X_test is None and p.y_test is None
    assert p.X_train.shape == (150, 4)
    assert list(p.splits()) == ["train"]
    q = prepare(DataSpec(dataset="iris", val_fraction=0.2, test_fraction=0), seed=0)
    assert q.X_test is None and q.X_val.shape == (30, 4)


def test_regression_split_sizes():
    p = prepare(DataSpec(dataset="diabetes", val_fraction=0.1, test_fraction=0.3), seed=0)
    assert len(p.y_val) == 45 and len(p.y_test) == 133 and len(p.y_train) == 442 - 45 - 133


def test_cv_folds_partition_the_non_test_rows():
    spec = DataSpec(dataset="iris", cv_folds=5, test_fraction=0.2)
    folds = prepare_folds(spec, seed=0, dtype="float64")
    assert [f.fold for f in folds] == list(range(5))
    table, (_, _, test) = _iris_split(val_fraction=0.0)
    X_all = table.features.to_numpy()
    # the same test rows for every fold, the same as prepare() picks
    plain = prepare(spec, seed=0, dtype="float64")
    for f in folds:
        np.testing.assert_array_equal(f.y_test, plain.y_test)
        np.testing.assert_array_equal(f.preprocessor.transform_features(X_all[test], "float64"), f.X_test)
    # validation folds are stratified and, with the training rows, cover the 120 other rows
    sizes = [len(f.y_val) for f in folds]
    assert sizes == [24] * 5 and all(len(f.y_train) == 96 for f in folds)
    for f in folds:
        np.testing.assert_array_equal(np.bincount(f.y_val), [8, 8, 8])


def test_cv_fold_indices_are_a_partition():
    from nnexp.data.split import fold_indices

    table = load_table(DataSpec(dataset="wine"), 0)
    rest, _, test = split_indices(table.y, task="classification", class_names=table.class_names,
                                  val_fraction=0, test_fraction=0.2, seed=0, source="wine")
    folds = fold_indices(table.y, rest, task="classification", class_names=table.class_names, k=4, seed=0, source="wine")
    vals = np.concatenate([va for _, va in folds])
    np.testing.assert_array_equal(np.sort(vals), rest)
    for tr, va in folds:
        assert not set(tr) & set(va) and not set(tr) & set(test)
        np.testing.assert_array_equal(np.sort(np.concatenate([tr, va])), rest)


def test_cv_folds_for_regression_use_kfold():
    folds = prepare_folds(DataSpec(dataset="diabetes", cv_folds=3, test_fraction=0), seed=0)
    assert sum(len(f.y_val) for f in folds) == 442 and all(f.X_test is None for f in folds)


def test_prepare_folds_without_cv_is_one_split():
    [only] = prepare_folds(DataSpec(dataset="iris"), seed=0)
    assert only.fold is None and len(only.y_val) == 30


@pytest.mark.parametrize("train_size, rows", [(30, 30), (0.5, 45), (1.0, 90), (90, 90)])
def test_train_size_subsamples_the_training_split_stratified(train_size, rows):
    p = prepare(DataSpec(dataset="iris", train_size=train_size), seed=0)
    full = prepare(DataSpec(dataset="iris"), seed=0)
    assert len(p.y_train) == rows
    np.testing.assert_array_equal(np.bincount(p.y_train), [rows // 3] * 3)
    np.testing.assert_array_equal(p.y_test, full.y_test)  # held-out rows untouched
    np.testing.assert_array_equal(p.y_val, full.y_val)


def test_train_size_subsample_is_a_subset_and_reproducible():
    table = load_table(DataSpec(dataset="breast_cancer"), 0)
    train = np.arange(0, 569, 2)
    a = subsample(train, table.y, task="classification", class_names=table.class_names, train_size=37, seed=5, source="bc")
    b = subsample(train, table.y, task="classification", class_names=table.class_names, train_size=37, seed=5, source="bc")
    np.testing.assert_array_equal(a, b)
    assert len(a) == 37 and set(a) <= set(train)
    assert abs(table.y[a].mean() - table.y[train].mean()) < 0.03


def test_train_size_errors():
    with pytest.raises(DataError, match=r"data.train_size: asks for 500 rows but the training split has only 90"):
        prepare(DataSpec(dataset="iris", train_size=500), seed=0)
    with pytest.raises(DataError, match=r"data.train_size: 2 rows cannot hold one of each of the 3 classes"):
        prepare(DataSpec(dataset="iris", train_size=2), seed=0)


# --------------------------------------------------------------------------- against scikit-learn


@pytest.mark.parametrize("dataset, val, test", [("digits", 0.25, 0.0), ("breast_cancer", 0.2, 0.2), ("wine", 0.1, 0.3),
                                                ("iris", 0.15, 0.15)])
def test_stratified_class_counts_match_scikit_learn(dataset, val, test):
    """Our splitter draws other rows than train_test_split, but each class's count per split is the same to +-1."""
    from sklearn.model_selection import train_test_split

    table = load_table(DataSpec(dataset=dataset), 0)
    ours = split_indices(table.y, task=table.task, class_names=table.class_names, val_fraction=val,
                         test_fraction=test, seed=3, source=dataset)
    rows = np.arange(len(table.y))
    n_test, n_val = int(np.ceil(test * len(rows))), int(np.ceil(val * len(rows)))
    theirs_rest, theirs_test = (train_test_split(rows, test_size=n_test, stratify=table.y, random_state=0)
                                if n_test else (rows, None))
    theirs_train, theirs_val = train_test_split(theirs_rest, test_size=n_val, stratify=table.y[theirs_rest], random_state=0)
    k = len(table.class_names)
    for mine, sk in zip(ours, (theirs_train, theirs_val, theirs_test)):
        if sk is None:
            assert mine is None
            continue
        assert len(mine) == len(sk)
        diff = np.bincount(table.y[mine], minlength=k) - np.bincount(table.y[sk], minlength=k)
        assert np.abs(diff).max() <= 1, diff


@settings(max_examples=60, deadline=None)
@given(counts=st.lists(st.integers(3, 40), min_size=2, max_size=6), val=st.floats(0.05, 0.4),
       test=st.floats(0.0, 0.4), seed=st.integers(0, 2**31))
def test_stratified_split_properties(counts, val, test, seed):
    """Exact sizes, a partition, every class on every side, each class within one row of its share."""
    y = np.random.default_rng(seed).permutation(np.repeat(np.arange(len(counts)), counts))
    names = [str(c) for c in range(len(counts))]
    try:
        parts = split_indices(y, task="classification", class_names=names, val_fraction=val, test_fraction=test,
                              seed=seed, source="s")
    except DataError:
        return  # too few rows for these fractions: refused up front
    n = len(y)
    n_test, n_val = (int(np.ceil(test * n)) if test > 0 else 0), int(np.ceil(val * n))
    train, vals, tests = parts
    assert len(vals) == n_val and (tests is None if not n_test else len(tests) == n_test)
    got = [p for p in parts if p is not None]
    np.testing.assert_array_equal(np.sort(np.concatenate(got)), np.arange(n))
    for part in got:
        share = np.bincount(y[part], minlength=len(counts))
        assert share.min() >= 1
    # where no bound binds (a share of at least one row, and enough rows left behind),
    # each class gives its share of the rows to within one: the test split of all rows,
    # the validation split of the rest
    _check_share(y, tests, np.array(counts), n_test, keep=2)  # one row each kept back for train and val
    _check_share(y, vals, np.bincount(y[np.concatenate([train, vals])], minlength=len(counts)), n_val, keep=1)


def _check_share(y, taken, pool_counts, n_taken, keep):
    if taken is None:
        return
    exact = pool_counts * n_taken / pool_counts.sum()
    if exact.min() >= 1 and (pool_counts - keep - exact).min() >= 1:
        assert np.abs(np.bincount(y[taken], minlength=len(pool_counts)) - exact).max() < 1 + 1e-9


@pytest.mark.parametrize("k", [2, 3, 5, 7])
def test_stratified_folds_are_balanced(k):
    from nnexp.data.split import fold_indices

    table = load_table(DataSpec(dataset="breast_cancer"), 0)
    rest = np.arange(len(table.y))
    folds = fold_indices(table.y, rest, task="classification", class_names=table.class_names, k=k, seed=1, source="bc")
    sizes = [len(va) for _, va in folds]
    assert max(sizes) - min(sizes) <= 1
    per_class = np.array([np.bincount(table.y[va], minlength=2) for _, va in folds])
    assert (per_class.max(axis=0) - per_class.min(axis=0)).max() <= 1
    again = fold_indices(table.y, rest, task="classification", class_names=table.class_names, k=k, seed=1, source="bc")
    for (a, b), (c, d) in zip(folds, again):
        np.testing.assert_array_equal(a, c)
        np.testing.assert_array_equal(b, d)
