"""The on-disk cache of built-in data sets: same data as scikit-learn makes, no scikit-learn import once warm."""

import os
import subprocess
import sys

import numpy as np
import pytest

from nnexp.data import DATASETS, load_table
from nnexp.data.cache import cache_dir
from nnexp.spec import DataSpec

MADE_BY_SKLEARN = {
    "iris": lambda sk: sk.load_iris(return_X_y=True),
    "wine": lambda sk: sk.load_wine(return_X_y=True),
    "breast_cancer": lambda sk: sk.load_breast_cancer(return_X_y=True),
    "digits": lambda sk: sk.load_digits(return_X_y=True),
    "diabetes": lambda sk: sk.load_diabetes(return_X_y=True, scaled=False),
    "friedman1": lambda sk: sk.make_friedman1(1000, n_features=10, noise=1.0, random_state=3),
    "moons": lambda sk: sk.make_moons(1000, noise=0.2, random_state=3),
    "circles": lambda sk: sk.make_circles(1000, noise=0.1, factor=0.5, random_state=3),
    "blobs": lambda sk: sk.make_blobs(1000, n_features=2, centers=3, cluster_std=1.0, random_state=3),
}


@pytest.fixture
def fresh_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("NNEXP_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_every_sklearn_made_builtin_is_cached():
    made_by_us = {n for n in DATASETS if n not in MADE_BY_SKLEARN}
    assert made_by_us == {"xor", "spirals"}  # pure NumPy: nothing to cache


@pytest.mark.parametrize("name", MADE_BY_SKLEARN)
def test_cold_and_warm_loads_equal_scikit_learns_data(name, fresh_cache):
    import sklearn.datasets

    X, y = MADE_BY_SKLEARN[name](sklearn.datasets)
    for _ in ("cold", "warm"):
        table = load_table(DataSpec(dataset=name), seed=3)
        np.testing.assert_array_equal(table.features.to_numpy(), X)
        np.testing.assert_array_equal(table.y, y)
    assert len(list((fresh_cache / "datasets").glob("*.npz"))) == 1  # written once, then read


def test_warm_load_does_not_call_scikit_learn(fresh_cache, monkeypatch):
    import sklearn.datasets

    first = load_table(DataSpec(dataset="wine"), seed=0)

    def refuse(*args, **kwargs):
        raise AssertionError("scikit-learn was asked again")

    monkeypatch.setattr(sklearn.datasets, "load_wine", refuse)
    again = load_table(DataSpec(dataset="wine"), seed=0)
    assert again.class_names == first.class_names and list(again.features.columns) == list(first.features.columns)


def test_parameters_and_seeds_get_their_own_entries(fresh_cache):
    a = load_table(DataSpec(dataset="moons", noise=0.1), seed=0)
    b = load_table(DataSpec(dataset="moons", noise=0.3), seed=0)
    c = load_table(DataSpec(dataset="moons", noise=0.1), seed=1)
    d = load_table(DataSpec(dataset="moons", noise=0.1, n_samples=200), seed=0)
    assert len(list((fresh_cache / "datasets").glob("*.npz"))) == 4
    assert len(d.y) == 200
    assert not np.array_equal(a.features, b.features) and not np.array_equal(a.features, c.features)
    np.testing.assert_array_equal(load_table(DataSpec(dataset="moons", noise=0.1), seed=0).features, a.features)


def test_a_damaged_entry_is_made_anew(fresh_cache):
    good = load_table(DataSpec(dataset="iris"), seed=0)
    [entry] = (fresh_cache / "datasets").glob("*.npz")
    entry.write_bytes(b"PK\x03\x04 torn")
    again = load_table(DataSpec(dataset="iris"), seed=0)
    np.testing.assert_array_equal(again.features, good.features)
    with np.load(entry) as npz:  # rewritten whole
        assert npz["X"].shape == (150, 4)
    entry.write_bytes(entry.read_bytes()[:3000])  # cut off inside the zip: np.load left the file open
    import gc
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        again = load_table(DataSpec(dataset="iris"), seed=0)
        gc.collect()
    assert not [w for w in caught if issubclass(w.category, ResourceWarning)]  # printed as a warning by the CLI
    np.testing.assert_array_equal(again.features, good.features)


def test_an_unwritable_cache_only_costs_time(tmp_path, monkeypatch):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("NNEXP_CACHE_DIR", str(blocker / "cache"))
    table = load_table(DataSpec(dataset="iris"), seed=0)
    assert table.features.shape == (150, 4)


def test_default_location_follows_xdg(monkeypatch, tmp_path):
    monkeypatch.delenv("NNEXP_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert cache_dir() == tmp_path / "nnexp"


def test_a_warm_trial_never_imports_scikit_learn_or_pandas(fresh_cache):
    """What makes search workers start fast: with the cache warm, training a
    network on a built-in set imports neither scikit-learn, SciPy nor pandas."""
    load_table(DataSpec(dataset="digits"), seed=0)
    script = ("import sys\n"
              "from nnexp.api import run_experiment\n"
              "r = run_experiment({'data': {'dataset': 'digits', 'cv_folds': 2}, 'model': {'hidden': [4]},"
              " 'train': {'epochs': 1}}, results_dir=None)\n"
              "assert r.status == 'ok'\n"
              "print(sorted(m for m in sys.modules if m.split('.')[0] in ('sklearn', 'scipy', 'pandas')))\n")
    env = {**os.environ, "NNEXP_CACHE_DIR": str(fresh_cache)}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "[]"
