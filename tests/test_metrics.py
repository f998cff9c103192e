"""nnexp's fast per-epoch metrics agree with scikit-learn's."""

import math
import warnings

import numpy as np
import pytest
from sklearn import exceptions as sk_exceptions
from sklearn import metrics as sk
from sklearn.preprocessing import label_binarize

from nnexp.metrics import (average_precision, balanced_accuracy, classification_metrics, confusion_matrix, macro_f1,
                           per_class_scores, regression_metrics, roc_auc)


@pytest.mark.parametrize("n_classes", [2, 3, 7])
def test_classification_metrics_match_sklearn(n_classes):
    rng = np.random.default_rng(n_classes)
    y = rng.integers(n_classes, size=200)
    logits = rng.normal(size=(200, n_classes)) + 2 * np.eye(n_classes)[y]
    proba = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    output = proba[:, 1] / proba[:, :2].sum(axis=1) if n_classes == 2 else proba
    if n_classes == 2:
        proba = np.column_stack([1 - output, output])
    got = classification_metrics(output, y, n_classes)
    pred = proba.argmax(axis=1)
    assert got["accuracy"] == pytest.approx(sk.accuracy_score(y, pred))
    assert got["f1"] == pytest.approx(sk.f1_score(y, pred, average="macro"))
    assert got["balanced_accuracy"] == pytest.approx(sk.balanced_accuracy_score(y, pred), rel=1e-12)
    expected_auc = sk.roc_auc_score(y, output) if n_classes == 2 else sk.roc_auc_score(y, proba, multi_class="ovr")
    assert got["auc"] == pytest.approx(expected_auc, rel=1e-12)
    assert got["ap"] == pytest.approx(sklearn_ap(y, output if n_classes == 2 else proba), rel=1e-12)
    assert got["loss"] == pytest.approx(sk.log_loss(y, proba, labels=list(range(n_classes))), rel=1e-9)


def test_f1_with_a_class_never_predicted():
    y = np.array([0, 0, 1, 1, 2, 2])
    pred_proba = np.eye(3)[[0, 0, 1, 1, 1, 1]]
    got = classification_metrics(pred_proba, y, 3)
    assert got["f1"] == pytest.approx(sk.f1_score(y, [0, 0, 1, 1, 1, 1], average="macro", zero_division=0))


def test_regression_metrics_in_target_units():
    rng = np.random.default_rng(0)
    y_scaled = rng.normal(size=50)
    pred_scaled = y_scaled + rng.normal(scale=0.3, size=50)
    inverse = lambda v: np.asarray(v) * 10.0 + 100.0  # noqa: E731
    got = regression_metrics(pred_scaled, y_scaled, inverse)
    true, pred = inverse(y_scaled), inverse(pred_scaled)
    assert got["rmse"] == pytest.approx(np.sqrt(sk.mean_squared_error(true, pred)))
    assert got["mae"] == pytest.approx(sk.mean_absolute_error(true, pred))
    assert got["r2"] == pytest.approx(sk.r2_score(true, pred))
    assert got["loss"] == pytest.approx(0.5 * np.mean((pred_scaled - y_scaled) ** 2))


def test_r2_of_a_constant_target_follows_sklearn():
    same = lambda v: np.asarray(v)  # noqa: E731
    y = np.full(5, 2.0)
    for pred in (y, y + np.arange(5)):
        assert regression_metrics(pred, y, same)["r2"] == sk.r2_score(y, pred)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_log_loss_charges_a_confident_mistake_in_full(dtype):
    """Unlike scikit-learn (clipped at eps), a probability far below eps costs its own -log p."""
    p_wrong = np.finfo(dtype).eps / 1e3
    proba = np.array([[1 - p_wrong, p_wrong], [0.5, 0.5]], dtype=dtype)
    got = classification_metrics(proba, np.array([1, 0]), 2)["loss"]
    expected = (-np.log(np.float64(dtype(p_wrong))) + np.log(2.0)) / 2
    assert got == pytest.approx(expected, rel=1e-6)
    assert got > sk.log_loss([1, 0], proba, labels=[0, 1]) + 1.0


def tied_outputs(rng, n_classes: int, dtype, n: int = 400, distinct: int = 12):
    """Imbalanced labels (the first class 70%) and outputs drawn from a few distinct rows, so
    many scores tie; softmax rows sum to 1, as roc_auc_score's multi_class="ovr" requires."""
    weights = np.r_[0.7, np.full(n_classes - 1, 0.3 / (n_classes - 1))]
    y = rng.choice(n_classes, size=n, p=weights)
    rows = rng.dirichlet(np.ones(n_classes), size=distinct).astype(dtype)
    proba = rows[rng.integers(distinct, size=n)]
    proba[y == 1] = rows[0]  # a whole class tied with some rows of the others
    return y, proba


def sklearn_ap(y, scores):
    """scikit-learn's average precision: of P(y=1) for a binary output, else one-vs-rest macro."""
    if scores.ndim == 1:
        return sk.average_precision_score(y == 1, scores)
    return sk.average_precision_score(label_binarize(y, classes=range(scores.shape[1])), scores, average="macro")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n_classes", [2, 3, 7])
@pytest.mark.parametrize("seed", range(5))
def test_auc_ap_and_balanced_accuracy_match_sklearn_with_ties_and_imbalance(n_classes, dtype, seed):
    rng = np.random.default_rng([seed, n_classes])
    y, proba = tied_outputs(rng, n_classes, dtype)
    output = proba[:, 1] if n_classes == 2 else proba  # a binary network's single logistic unit
    got = classification_metrics(output, y, n_classes)
    if n_classes == 2:
        assert got["auc"] == pytest.approx(sk.roc_auc_score(y, output), rel=1e-12)
        pred = np.column_stack([1 - output, output]).argmax(axis=1)  # as the first test: the predicted class
    else:
        assert got["auc"] == pytest.approx(sk.roc_auc_score(y, proba, multi_class="ovr", average="macro"), rel=1e-12)
        pred = proba.argmax(axis=1)
    assert got["balanced_accuracy"] == pytest.approx(sk.balanced_accuracy_score(y, pred), rel=1e-12)
    # a float32 output is scored as float32: its ties are the ties scikit-learn sees in the same array
    assert roc_auc(output, y) == got["auc"]
    assert got["ap"] == pytest.approx(sklearn_ap(y, output), rel=1e-12)
    assert average_precision(output, y) == got["ap"]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name, sklearn_score", [("auc", sk.roc_auc_score), ("ap", sk.average_precision_score)])
def test_auc_and_ap_of_two_softmax_columns_are_the_binary_ones_of_the_second(dtype, name, sklearn_score):
    rng = np.random.default_rng(3)
    y, proba = tied_outputs(rng, 2, dtype)
    got = classification_metrics(proba, y, 2)[name]
    assert got == pytest.approx(sklearn_score(y, proba[:, 1]), rel=1e-12)


def test_auc_of_perfect_reversed_and_constant_scores():
    y = np.array([0, 0, 1, 1, 1])
    assert roc_auc(np.array([0.1, 0.2, 0.3, 0.4, 0.9]), y) == 1.0
    assert roc_auc(np.array([0.9, 0.8, 0.3, 0.2, 0.1]), y) == 0.0
    assert roc_auc(np.full(5, 0.5, dtype=np.float32), y) == 0.5


def test_balanced_accuracy_leaves_out_a_predicted_class_absent_from_y_true():
    y = np.array([0, 0, 0, 1, 1, 1])
    pred = np.array([0, 0, 2, 1, 2, 2])  # class 2 predicted, never true
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scikit-learn: "y_pred contains classes not in y_true"
        expected = sk.balanced_accuracy_score(y, pred)
    assert balanced_accuracy(y, pred, 3) == pytest.approx(expected, rel=1e-12) and expected == pytest.approx(0.5)
    proba = np.eye(3)[pred]
    assert classification_metrics(proba, y, 3)["balanced_accuracy"] == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("n_classes", [2, 3])
def test_auc_of_a_single_class_is_nan_not_an_error(n_classes):
    proba = np.random.default_rng(0).dirichlet(np.ones(n_classes), size=6)
    y = np.full(6, 1)
    output = proba[:, 1] if n_classes == 2 else proba
    got = classification_metrics(output, y, n_classes)
    assert math.isnan(got["auc"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "y_pred contains classes not in y_true"
        assert got["balanced_accuracy"] == pytest.approx(sk.balanced_accuracy_score(y, proba.argmax(axis=1)))
    if n_classes == 2:  # scikit-learn 1.9: NaN with an UndefinedMetricWarning, as here
        with pytest.warns(sk_exceptions.UndefinedMetricWarning):
            assert math.isnan(sk.roc_auc_score(y, output))
    else:  # one-vs-rest: an error, where nnexp has no class to average
        with pytest.raises(ValueError):
            sk.roc_auc_score(y, output, multi_class="ovr")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("seed", range(5))
def test_ap_of_rare_positives_matches_sklearn(dtype, seed):
    """Fraud-like data: 1-3% positives whose scores tie with negatives' (a few distinct scores)."""
    rng = np.random.default_rng([seed, 11])
    n = 3000
    y = (rng.random(n) < rng.uniform(0.01, 0.03)).astype(int)
    levels = rng.random(25).astype(dtype)
    output = levels[rng.integers(25, size=n)]
    output[y == 1] = levels[rng.integers(5, size=int(y.sum()))]  # positives on five of the levels, with negatives
    got = classification_metrics(output, y, 2)["ap"]
    assert got == pytest.approx(sk.average_precision_score(y, output), rel=1e-12)
    assert got == pytest.approx(sklearn_ap(y, np.column_stack([1 - output, output])[:, 1]), rel=1e-12)


def test_ap_takes_tied_scores_as_one_threshold():
    """Rows scored 0.5 pass the threshold together: precision 1/3 there, not 1/2 (the positive first)
    or 0 (the negative first); AP = 0.5 x 1/3 + 0.5 x 2/4 = 5/12, as scikit-learn's step curve."""
    y = np.array([0, 1, 0, 1])
    scores = np.array([0.9, 0.5, 0.5, 0.1])
    assert average_precision(scores, y) == pytest.approx(5 / 12, rel=1e-15)
    assert sk.average_precision_score(y, scores) == pytest.approx(5 / 12, rel=1e-15)


def test_ap_of_perfect_reversed_and_constant_scores():
    y = np.array([0, 0, 1, 1, 1])
    assert average_precision(np.array([0.1, 0.2, 0.3, 0.4, 0.9]), y) == 1.0
    reversed_scores = np.array([0.9, 0.8, 0.3, 0.2, 0.1])
    assert average_precision(reversed_scores, y) == pytest.approx(sk.average_precision_score(y, reversed_scores), rel=1e-15)
    assert average_precision(np.full(5, 0.5, dtype=np.float32), y) == pytest.approx(0.6, rel=1e-15)  # the prevalence


def test_auc_and_ap_average_the_classes_that_have_positives():
    """scikit-learn raises (AUC) or counts a class without positives as 0 (AP, with a warning) when
    y_true misses a class; nnexp averages the classes it can score."""
    rng = np.random.default_rng(7)
    y, proba = tied_outputs(rng, 4, np.float64)
    y[y == 2] = 3  # class 2 has no positive row
    for name, function, sklearn_score in (("auc", roc_auc, sk.roc_auc_score), ("ap", average_precision,
                                                                                sk.average_precision_score)):
        per_class = [sklearn_score(y == c, proba[:, c]) for c in (0, 1, 3)]
        assert function(proba, y) == pytest.approx(np.mean(per_class), rel=1e-12)
        assert classification_metrics(proba, y, 4)[name] == pytest.approx(np.mean(per_class), rel=1e-12)
    per_class = [sk.average_precision_score(y == c, proba[:, c]) for c in (0, 1, 3)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "No positive class found in y_true"
        counted_as_zero = sklearn_ap(y, proba)
    assert counted_as_zero == pytest.approx(np.mean([*per_class, 0.0]), rel=1e-12)


@pytest.mark.parametrize("n_classes", [2, 3])
def test_ap_without_positives_is_nan_and_with_only_positives_is_1(n_classes):
    proba = np.random.default_rng(0).dirichlet(np.ones(n_classes), size=6)
    output = proba[:, 1] if n_classes == 2 else proba
    only_ones = classification_metrics(output, np.full(6, 1), n_classes)
    assert only_ones["ap"] == 1.0 and math.isnan(only_ones["auc"])  # precision 1 at every threshold, as scikit-learn
    assert sk.average_precision_score(np.ones(6), proba[:, 1]) == 1.0
    if n_classes == 2:  # no positive row: nothing to recall; scikit-learn warns and says 0
        assert math.isnan(classification_metrics(output, np.zeros(6, dtype=int), 2)["ap"])
        with pytest.warns(UserWarning, match="No positive class found"):
            assert sk.average_precision_score(np.zeros(6), output) == 0.0


@pytest.mark.parametrize("seed", range(20))
def test_best_threshold_reaches_the_best_balanced_accuracy_of_any_threshold(seed):
    """Youden's J over scikit-learn's ROC curve: the rule score >= threshold has balanced accuracy
    (1 + max J) / 2, and among thresholds that reach it the highest is chosen (halfway down to the
    next lower score)."""
    from nnexp.metrics import best_threshold

    rng = np.random.default_rng(seed)
    n = int(rng.integers(5, 300))
    positive = rng.random(n) < rng.uniform(0.05, 0.6)
    positive[:2] = [True, False]
    scores = np.round(rng.random(n) * (1 + positive * rng.uniform(0, 2)), int(rng.integers(1, 4))) / 3  # ties
    threshold = best_threshold(scores, positive)
    fpr, tpr, thresholds = sk.roc_curve(positive, scores)
    best = (tpr - fpr).max()
    assert sk.balanced_accuracy_score(positive, scores >= threshold) == pytest.approx((1 + best) / 2, rel=1e-12)
    reaching = thresholds[np.isclose(tpr - fpr, best) & np.isfinite(thresholds)]
    below = scores[scores < reaching.max()]
    assert threshold <= reaching.max() and (not len(below) or threshold > below.max())  # halfway down to the next
    assert best_threshold(scores, np.zeros(n, dtype=bool)) is None


def test_no_threshold_when_every_row_is_scored_alike():
    """A network that learnt nothing scored every row 1.0: the threshold 1.0 (every row positive,
    J = 0) was printed as `nnexp predict --threshold 1.0`, which predict refuses."""
    from nnexp.metrics import best_threshold

    assert best_threshold(np.ones(6), np.array([1, 0, 1, 0, 0, 1], dtype=bool)) is None
    assert best_threshold(np.array([0.2, 0.7, 0.7]), np.array([1, 0, 0], dtype=bool)) is None  # worse than none
    assert best_threshold(np.array([0.2, 0.7, 0.7]), np.array([0, 1, 0], dtype=bool)) == pytest.approx(0.45)
    # halfway between neighbouring floats rounds to one of them: the rule must still split them
    below_one = np.nextafter(1.0, 0.0)
    scores, positive = np.array([1.0, below_one, 0.2, 0.1]), np.array([1, 0, 0, 0], dtype=bool)
    threshold = best_threshold(scores, positive)
    assert threshold == 1.0 and ((scores >= threshold) == positive).all()
    scores = np.array([0.5, np.nextafter(0.5, 0.0)])
    assert ((scores >= best_threshold(scores, np.array([1, 0], dtype=bool))) == [True, False]).all()


@pytest.mark.parametrize("seed", range(6))
def test_per_class_scores_match_sklearn_and_average_to_macro_f1_and_balanced_accuracy(seed):
    """Random labels over 4 classes, one never predicted and (seeds 3-5) one absent from y_true:
    scikit-learn's figures with zero_division=nan, NaN exactly where a figure is undefined."""
    rng = np.random.default_rng(seed)
    y_true = rng.integers(0, 3 if seed >= 3 else 4, 60)
    y_pred = rng.choice([0, 1, 3], 60)  # class 2 never predicted
    confusion = confusion_matrix(y_true, y_pred, 4)
    np.testing.assert_array_equal(confusion, sk.confusion_matrix(y_true, y_pred, labels=range(4)))
    scores = per_class_scores(confusion)
    expected = sk.precision_recall_fscore_support(y_true, y_pred, labels=range(4), zero_division=np.nan)
    for name, values in zip(("precision", "recall", "f1", "support"), expected):
        np.testing.assert_allclose(scores[name], values, rtol=1e-12, equal_nan=True)
    assert math.isnan(scores["precision"][2]) and math.isnan(scores["recall"][3]) == (seed >= 3)
    assert np.nanmean(scores["f1"]) == pytest.approx(macro_f1(y_true, y_pred, 4), rel=1e-12)
    assert np.nanmean(scores["recall"]) == pytest.approx(balanced_accuracy(y_true, y_pred, 4), rel=1e-12)
