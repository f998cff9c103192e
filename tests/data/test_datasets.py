"""Built-in data sets: registry, shapes, class names, reproducibility."""

import numpy as np
import pytest

from nnexp.data import DATASETS, list_datasets, load_table, prepare
from nnexp.errors import DataError
from nnexp.spec import BUILTIN_DATASETS, DataSpec

EXPECTED = {  # rows, features, classes (None = regression) at the default n_samples
    "iris": (150, 4, 3),
    "wine": (178, 13, 3),
    "breast_cancer": (569, 30, 2),
    "digits": (1797, 64, 10),
    "diabetes": (442, 10, None),
    "friedman1": (1000, 10, None),
    "xor": (1000, 2, 2),
    "moons": (1000, 2, 2),
    "circles": (1000, 2, 2),
    "spirals": (1000, 2, 2),
    "blobs": (1000, 2, 3),
}
SYNTHETIC = [n for n, d in DATASETS.items() if d.kind == "synthetic"]


def test_registry_matches_schema():
    assert set(DATASETS) == set(BUILTIN_DATASETS) == set(EXPECTED)


@pytest.mark.parametrize("name", BUILTIN_DATASETS)
def test_builtin_loads_with_right_shape(name):
    rows, features, classes = EXPECTED[name]
    table = load_table(DataSpec(dataset=name), seed=0)
    assert table.features.shape == (rows, features)
    assert len(table.y) == rows
    assert np.isfinite(table.features.to_numpy()).all()
    if classes is None:
        assert table.task == "regression" and table.class_names is None
        assert table.y.dtype == np.float64
    else:
        assert table.task == "classification"
        assert len(table.class_names) == classes
        assert set(np.unique(table.y)) == set(range(classes))


@pytest.mark.parametrize("name", BUILTIN_DATASETS)
def test_list_datasets_agrees_with_loaded_data(name):
    row = {r["name"]: r for r in list_datasets()}[name]
    table = load_table(DataSpec(dataset=name), seed=0)
    assert (row["rows"], row["features"]) == table.features.shape
    assert row["classes"] == (None if table.class_names is None else len(table.class_names))
    assert row["task"] == table.task and row["kind"] in ("real", "synthetic")


def test_real_sets_keep_names():
    iris = load_table(DataSpec(dataset="iris"), seed=0)
    assert iris.class_names == ["setosa", "versicolor", "virginica"]
    assert list(iris.features.columns)[0] == "sepal length (cm)"
    diabetes = load_table(DataSpec(dataset="diabetes"), seed=0)
    assert "bmi" in diabetes.features.columns


@pytest.mark.parametrize("name", SYNTHETIC)
def test_synthetic_sets_are_seed_reproducible(name):
    spec = DataSpec(dataset=name, n_samples=200)
    a, b, c = load_table(spec, seed=3), load_table(spec, seed=3), load_table(spec, seed=4)
    assert a.features.shape == (200, EXPECTED[name][1])
    np.testing.assert_array_equal(a.features.to_numpy(), b.features.to_numpy())
    np.testing.assert_array_equal(a.y, b.y)
    assert not np.array_equal(a.features.to_numpy(), c.features.to_numpy())


@pytest.mark.parametrize("name", SYNTHETIC)
def test_noise_changes_synthetic_sets(name):
    quiet = load_table(DataSpec(dataset=name, n_samples=100, noise=0.0), seed=0)
    noisy = load_table(DataSpec(dataset=name, n_samples=100, noise=0.5), seed=0)
    if name == "friedman1":  # Friedman's noise is added to the target
        assert not np.allclose(quiet.y, noisy.y)
    else:
        assert not np.allclose(quiet.features.to_numpy(), noisy.features.to_numpy())


def test_xor_labels_are_xor_of_signs_without_noise():
    table = load_table(DataSpec(dataset="xor", n_samples=400, noise=0.0), seed=1)
    X = table.features.to_numpy()
    np.testing.assert_array_equal(table.y, ((X[:, 0] > 0) != (X[:, 1] > 0)).astype(int))
    assert np.bincount(table.y).tolist() == [200, 200]


def test_spirals_arms_are_balanced_and_within_unit_radius():
    table = load_table(DataSpec(dataset="spirals", n_samples=501, noise=0.0), seed=0)
    radius = np.hypot(*table.features.to_numpy().T)
    assert radius.max() <= 1.0 + 1e-12
    assert abs(np.bincount(table.y)[0] - np.bincount(table.y)[1]) <= 1


def test_task_that_contradicts_a_builtin_is_an_error():
    """The spec says so before any row is read (nnexp validate too); the loader keeps its own guard."""
    from pydantic import ValidationError

    from nnexp.data.datasets import load_builtin

    with pytest.raises(ValidationError, match=r"'iris' is a classification data set, not regression"):
        DataSpec(dataset="iris", task="regression")
    with pytest.raises(DataError, match=r"iris: data.task: 'iris' is a classification data set"):
        load_builtin("iris", task="regression")


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_prepare_dtypes_and_layout(dtype):
    p = prepare(DataSpec(dataset="wine"), seed=0, dtype=dtype)
    for X, y in p.splits().values():
        assert X.dtype == np.dtype(dtype) and X.flags.c_contiguous
        assert y.dtype == np.int64
    reg = prepare(DataSpec(dataset="diabetes"), seed=0, dtype=dtype)
    # a regression target stays float64 (training casts it; the metrics in its units come from it)
    assert reg.y_train.dtype == np.float64 and reg.X_train.dtype == np.dtype(dtype) and reg.n_outputs == 1
