"""Fitted preprocessing: numbers against NumPy, no leakage, saving, target scaling."""

import warnings

import numpy as np
import pandas as pd
import pytest

from nnexp.data import DataWarning, Preprocessor, load_table, prepare
from nnexp.data.split import split_indices
from nnexp.errors import DataError
from nnexp.spec import DataSpec


def _frame(seed=0, n=60, d=4):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)) * [1.0, 10.0, 0.1, 3.0][:d] + [0.0, 5.0, -2.0, 100.0][:d]
    X[:, 1] += 2 * X[:, 0]  # correlated, so pca has something to find
    return pd.DataFrame(X, columns=[f"f{i}" for i in range(d)])


def _fit(frame, **kw):
    return Preprocessor.fit(frame, np.zeros(len(frame), dtype=np.int64), task="classification",
                            class_names=["a", "b"], dtype="float64", **kw)


def test_zscore_matches_numpy():
    train, other = _frame(0), _frame(1)
    prep = _fit(train, normalize="zscore")
    X = train.to_numpy()
    np.testing.assert_allclose(prep.transform_features(train), (X - X.mean(0)) / X.std(0), rtol=1e-12)
    np.testing.assert_allclose(prep.transform_features(other), (other.to_numpy() - X.mean(0)) / X.std(0), rtol=1e-12)


def test_minmax_matches_numpy_and_maps_training_rows_to_unit_interval():
    train = _frame(0)
    prep = _fit(train, normalize="minmax")
    X = train.to_numpy()
    Z = prep.transform_features(train)
    np.testing.assert_allclose(Z, (X - X.min(0)) / (X.max(0) - X.min(0)), rtol=1e-12)
    assert Z.min() == 0.0 and Z.max() == 1.0


def test_none_passes_values_through():
    train = _frame(0)
    np.testing.assert_array_equal(_fit(train, normalize="none").transform_features(train), train.to_numpy())


def _numpy_pca(X):
    Z = (X - X.mean(0)) / X.std(0)
    Zc = Z - Z.mean(0)
    eigvals, eigvecs = np.linalg.eigh(np.cov(Zc, rowvar=False))
    order = np.argsort(eigvals)[::-1]
    return Zc, eigvals[order], eigvecs[:, order]


def test_pca_int_components_match_numpy_eigen_decomposition():
    train = _frame(0)
    prep = _fit(train, normalize="pca", pca_components=2)
    Zc, eigvals, eigvecs = _numpy_pca(train.to_numpy())
    P = prep.transform_features(train)
    assert P.shape == (60, 2) and prep.feature_names == ["pc1", "pc2"]
    expected = Zc @ eigvecs[:, :2]
    np.testing.assert_allclose(np.abs(P), np.abs(expected), atol=1e-10)  # axes are defined up to sign
    np.testing.assert_allclose(P.var(0, ddof=1), eigvals[:2], rtol=1e-10)


@pytest.mark.parametrize("fraction", [0.5, 0.8, 0.95, 0.999])
def test_pca_variance_fraction_keeps_the_fewest_components_reaching_it(fraction):
    train = _frame(0)
    prep = _fit(train, normalize="pca", pca_components=fraction)
    _, eigvals, _ = _numpy_pca(train.to_numpy())
    ratio = np.cumsum(eigvals) / eigvals.sum()
    k = prep.n_features
    assert ratio[k - 1] >= fraction and (k == 1 or ratio[k - 2] < fraction)


def test_pca_whitening_gives_unit_variance_uncorrelated_components():
    train = _frame(0)
    P = _fit(train, normalize="pca", pca_components=3, pca_whiten=True).transform_features(train)
    np.testing.assert_allclose(np.cov(P, rowvar=False), np.eye(3), atol=1e-10)
    np.testing.assert_allclose(P.mean(0), 0, atol=1e-12)


def test_pca_more_components_than_features_is_an_error():
    with pytest.raises(DataError, match=r"data.pca_components: asks for 9 components but the training rows span only 4"):
        _fit(_frame(0), normalize="pca", pca_components=9)


@pytest.mark.parametrize("normalize", ["zscore", "minmax", "pca"])
def test_constant_feature_is_dropped_with_a_warning(normalize):
    train = _frame(0)
    train.insert(1, "flat", 7.0)
    with pytest.warns(DataWarning, match=r"dropping 1 feature\(s\) constant on the training rows: 'flat'"):
        prep = _fit(train, normalize=normalize, pca_components=4)
    assert "flat" not in prep.feature_names
    assert prep.transform_features(train).shape[1] == 4
    assert np.isfinite(prep.transform_features(train)).all()


def test_constant_feature_is_kept_without_normalisation():
    train = _frame(0)
    train["flat"] = 7.0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert _fit(train, normalize="none").n_features == 5


def test_digits_drops_its_blank_pixels():
    with pytest.warns(DataWarning, match="digits: dropping"):
        p = prepare(DataSpec(dataset="digits"), seed=0)
    assert p.X_train.shape[1] < 64 and "pixel_0_0" not in p.feature_names
    np.testing.assert_allclose(p.X_train.mean(0), 0, atol=1e-5)
    np.testing.assert_allclose(p.X_train.std(0), 1, atol=1e-4)


def test_changing_test_rows_does_not_change_the_fitted_scaler(tmp_path):
    frame = _frame(0, n=100)
    frame["label"] = np.arange(100) % 2
    path = tmp_path / "rows.csv"
    frame.to_csv(path, index=False)
    spec = DataSpec(dataset=str(path))
    before = prepare(spec, seed=3, dtype="float64")
    _, _, test = split_indices(frame["label"].to_numpy(), task="classification", class_names=["0", "1"],
                               val_fraction=0.2, test_fraction=0.2, seed=3, source="x")
    frame.loc[test, ["f0", "f1", "f2", "f3"]] *= 1000.0
    frame.to_csv(path, index=False)
    after = prepare(spec, seed=3, dtype="float64")
    np.testing.assert_array_equal(before.preprocessor.shift, after.preprocessor.shift)
    np.testing.assert_array_equal(before.preprocessor.scale, after.preprocessor.scale)
    np.testing.assert_array_equal(before.X_train, after.X_train)
    np.testing.assert_array_equal(before.X_val, after.X_val)
    assert not np.allclose(before.X_test, after.X_test)


def test_scaler_statistics_come_from_the_training_rows():
    p = prepare(DataSpec(dataset="wine"), seed=0, dtype="float64")
    np.testing.assert_allclose(p.X_train.mean(0), 0, atol=1e-12)
    np.testing.assert_allclose(p.X_train.std(0), 1, atol=1e-12)
    assert np.abs(p.X_test.mean(0)).max() > 1e-3  # held-out rows are not exactly standardised


def test_regression_target_standardisation_inverts_exactly():
    p = prepare(DataSpec(dataset="diabetes"), seed=0, dtype="float64")
    table = load_table(DataSpec(dataset="diabetes"), 0)
    prep = p.preprocessor
    assert abs(p.y_train.mean()) < 1e-12 and abs(p.y_train.std() - 1) < 1e-12
    original = prep.inverse_target(p.y_test)
    assert set(np.round(original, 6)) <= set(np.round(table.y, 6))
    np.testing.assert_allclose(prep.inverse_target(prep.transform_target(table.y)), table.y, rtol=1e-14)
    np.testing.assert_allclose(prep.transform_target(prep.inverse_target(p.y_val)), p.y_val, rtol=1e-12, atol=1e-14)


def test_constant_regression_target_is_an_error():
    with pytest.raises(DataError, match="constant on the training rows"):
        Preprocessor.fit(_frame(0), np.full(60, 3.0), task="regression", target="y")


@pytest.mark.parametrize("normalize", ["none", "zscore", "minmax", "pca"])
@pytest.mark.parametrize("name", ["iris", "diabetes"])
def test_preprocessor_round_trips_through_npz(tmp_path, normalize, name):
    p = prepare(DataSpec(dataset=name, normalize=normalize, pca_whiten=True), seed=0)
    arrays = p.preprocessor.to_arrays()
    assert all(k.startswith("prep.") for k in arrays)
    assert all(isinstance(v, np.ndarray) and v.dtype != object for v in arrays.values())
    np.savez(tmp_path / "model.npz", W1=np.ones((2, 2)), **arrays)
    with np.load(tmp_path / "model.npz", allow_pickle=False) as saved:
        back = Preprocessor.from_arrays(saved)
    raw = load_table(DataSpec(dataset=name), 0).features
    np.testing.assert_array_equal(back.transform_features(raw), p.preprocessor.transform_features(raw))
    assert back.feature_names == p.feature_names and back.class_names == p.class_names
    assert back.task == p.task and back.dtype == "float32"
    if p.task == "regression":
        np.testing.assert_array_equal(back.inverse_target(p.y_test), p.preprocessor.inverse_target(p.y_test))
    else:
        np.testing.assert_array_equal(back.decode_labels([0, 2, 1]), ["setosa", "virginica", "versicolor"])


def test_from_arrays_without_preprocessing_is_an_error():
    with pytest.raises(DataError, match="no saved preprocessing"):
        Preprocessor.from_arrays({"W1": np.ones(2)})


def test_transform_accepts_arrays_and_checks_columns():
    train = _frame(0)
    prep = _fit(train)
    np.testing.assert_array_equal(prep.transform_features(train.to_numpy()), prep.transform_features(train))
    with pytest.raises(DataError, match=r"expected 4 feature columns"):
        prep.transform_features(np.ones((3, 5)))
    with pytest.raises(DataError, match=r"missing feature column\(s\) 'f2'"):
        prep.transform_features(train.drop(columns=["f2"]))
    shuffled = train[["f3", "f1", "f0", "f2"]].assign(extra=1)
    np.testing.assert_array_equal(prep.transform_features(shuffled), prep.transform_features(train))


NUMERIC_CASES = [dict(normalize="zscore"), dict(normalize="minmax"), dict(normalize="none"),
                 dict(normalize="pca", pca_components=0.9, pca_whiten=True), dict(normalize="zscore", impute="median")]


@pytest.mark.parametrize("case", NUMERIC_CASES, ids=lambda c: "-".join(map(str, c.values())))
@pytest.mark.parametrize("name", ["iris", "digits", "diabetes", "xor"])
def test_builtins_prepare_from_arrays_as_from_a_dataframe(monkeypatch, name, case):
    """Built-ins are prepared from one float array (no pandas); the result is the DataFrame path's, exactly."""
    import nnexp.data.pipeline as pipeline
    from nnexp.data.datasets import Table

    spec = DataSpec(dataset=name, val_fraction=0.2, test_fraction=0.2, **case)
    table = load_table(spec, 0)
    assert table.frame is None and table.numeric.dtype == np.float64 and len(table.columns) == table.numeric.shape[1]
    fast = prepare(spec, seed=0)
    as_frame = Table(table.features, table.y, table.task, table.class_names, table.target, table.source)
    monkeypatch.setattr(pipeline, "load_table", lambda spec, seed: as_frame)
    slow = prepare(spec, seed=0)
    for split in ("train", "val", "test"):
        for part in ("X", "y"):
            np.testing.assert_array_equal(getattr(fast, f"{part}_{split}"), getattr(slow, f"{part}_{split}"))
    a, b = fast.preprocessor.to_arrays(), slow.preprocessor.to_arrays()
    assert a.keys() == b.keys() and fast.feature_names == slow.feature_names
    for key in a:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)


@pytest.mark.parametrize("impute", ["none", "mean"])
def test_array_rows_are_checked_and_filled_as_dataframe_rows(impute):
    """transform_features on a numeric array (no pandas) refuses and fills exactly as on a DataFrame."""
    train = _frame(0)
    if impute != "none":
        train.iloc[[1, 4], 2] = np.nan
    prep = _fit(train, impute=impute)
    rows = np.array(_frame(1).to_numpy()[:6])
    rows[[0, 3], 2] = np.nan
    rows[2, 0] = np.nan
    rows[5, 3] = np.inf

    def outcome(data):
        try:
            return prep.transform_features(data)
        except DataError as exc:
            return str(exc)

    def both():
        return outcome(rows), outcome(pd.DataFrame(rows, columns=train.columns))

    as_array, as_frame = both()
    assert isinstance(as_array, str) and as_array == as_frame
    assert ("'f0' (1), 'f2' (2)" if impute == "none" else "'f3' has 1 infinite") in as_array
    rows[5, 3] = 1.0
    as_array, as_frame = both()
    if impute == "none":
        assert isinstance(as_array, str) and as_array == as_frame and "3 row(s)" in as_array
    else:
        np.testing.assert_array_equal(as_array, as_frame)
        assert np.isfinite(as_array).all()
