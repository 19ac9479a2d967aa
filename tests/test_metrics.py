"""Tests for workshop_utils.metrics: point metrics, bootstrap confidence intervals, input checks."""
from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import (
    accuracy_score,
    confusion_matrix,
    f1_score,
    precision_score,
    recall_score,
    roc_auc_score,
)

from workshop_utils import metrics
from workshop_utils.metrics import METRICS, evaluate, format_metrics

# A hand-checkable case: 6 PNEUMONIA (1) and 4 NORMAL (0).
Y_TRUE = np.array([1, 1, 1, 1, 1, 1, 0, 0, 0, 0])
Y_PROB = np.array([0.9, 0.8, 0.7, 0.6, 0.3, 0.2, 0.55, 0.4, 0.1, 0.05])
# At threshold 0.5:
#   positives 0.9 0.8 0.7 0.6 -> TP = 4;  0.3 0.2 -> FN = 2
#   negatives 0.55 -> FP = 1;  0.4 0.1 0.05 -> TN = 3
TP, TN, FP, FN = 4, 3, 1, 2
HAND = {
    "accuracy": (TP + TN) / 10,  # 0.7
    "sensitivity": TP / (TP + FN),  # 4/6 = 0.6667
    "specificity": TN / (TN + FP),  # 3/4 = 0.75
    "precision": TP / (TP + FP),  # 4/5 = 0.8
    "f1": 2 * TP / (2 * TP + FP + FN),  # 8/11 = 0.7273
    # AUC: of the 6 x 4 = 24 (positive, negative) pairs, the positive ranks higher in
    # 4 + 4 + 4 + 4 (0.9..0.6 beat every negative) + 2 + 2 (0.3, 0.2 beat 0.1, 0.05) = 20.
    "auc": 20 / 24,  # 0.8333
}


def _model(n: int, seed: int = 0, prevalence: float = 0.625) -> tuple[np.ndarray, np.ndarray]:
    """Labels and a noisy but informative classifier's probabilities."""
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < prevalence).astype(int)
    logit = 1.5 * (2 * y - 1) + rng.normal(0, 1.5, n)
    return y, 1 / (1 + np.exp(-logit))


def test_hand_computed_case():
    r = evaluate(Y_TRUE, Y_PROB, n_boot=300)
    assert r["confusion"] == [[TN, FP], [FN, TP]] == [[3, 1], [2, 4]]
    assert r["n"] == 10 and r["threshold"] == 0.5
    for m in METRICS:
        assert r[m]["value"] == pytest.approx(HAND[m]), m
    assert r["accuracy"]["value"] == pytest.approx(0.7)
    assert r["sensitivity"]["value"] == pytest.approx(0.6667, abs=1e-4)
    assert r["specificity"]["value"] == pytest.approx(0.75)
    assert r["precision"]["value"] == pytest.approx(0.8)
    assert r["f1"]["value"] == pytest.approx(0.7273, abs=1e-4)
    assert r["auc"]["value"] == pytest.approx(0.8333, abs=1e-4)


def _sklearn(y, prob, threshold=0.5):
    pred = (prob >= threshold).astype(int)
    return {
        "accuracy": accuracy_score(y, pred),
        "sensitivity": recall_score(y, pred, pos_label=1),
        "specificity": recall_score(y, pred, pos_label=0),
        "precision": precision_score(y, pred),
        "f1": f1_score(y, pred),
        "auc": roc_auc_score(y, prob),
    }


@pytest.mark.parametrize("seed", [0, 1])
def test_agrees_with_sklearn(seed):
    y, prob = _model(300, seed)
    r = evaluate(y, prob, n_boot=200)
    ref = _sklearn(y, prob)
    for m in METRICS:
        assert r[m]["value"] == pytest.approx(ref[m]), m
    assert r["confusion"] == confusion_matrix(y, (prob >= 0.5).astype(int)).tolist()
    assert _sklearn(Y_TRUE, Y_PROB) == pytest.approx(HAND)


def test_bootstrap_resamples_agree_with_sklearn():
    """The vectorised bootstrap (AUC from Mann-Whitney U, with ties) gives sklearn's value on each resample."""
    y, prob = _model(60, 3)
    prob = np.round(prob, 1)  # plenty of ties
    n_boot, seed = 40, 5
    boots = metrics._bootstrap(y, prob, 0.5, n_boot, seed)
    idx = np.random.default_rng(seed).integers(0, len(y), (n_boot, len(y)))
    idx = [i for i in idx if 0 < y[i].sum() < len(i)]
    assert len(boots["auc"]) == len(idx) > 30
    for k, i in enumerate(idx):
        ref = _sklearn(y[i], prob[i])
        for m in METRICS:
            assert boots[m][k] == pytest.approx(ref[m]), (m, k)


def test_confidence_intervals_bracket_the_value():
    y, prob = _model(200, 2)
    r = evaluate(y, prob, n_boot=1000)
    for m in METRICS:
        assert set(r[m]) == {"value", "low", "high"}
        assert 0 <= r[m]["low"] <= r[m]["value"] <= r[m]["high"] <= 1, m
        assert r[m]["high"] - r[m]["low"] > 0.01, m  # a real interval, not a point


def test_hand_case_intervals_bracket_the_value():
    r = evaluate(Y_TRUE, Y_PROB, n_boot=2000)
    for m in METRICS:
        assert r[m]["low"] <= r[m]["value"] <= r[m]["high"], m


def test_intervals_narrow_as_n_grows():
    widths = {}
    for n in (80, 2000):
        y, prob = _model(n, 4)
        r = evaluate(y, prob, n_boot=400)
        widths[n] = {m: r[m]["high"] - r[m]["low"] for m in METRICS}
    for m in METRICS:
        # 25x the data: roughly 5x narrower; demand at least 2.5x.
        assert widths[2000][m] < widths[80][m] / 2.5, (m, widths)


def test_all_pneumonia_predictor():
    y = np.array([0] * 234 + [1] * 390)
    prob = np.full(len(y), 0.97)
    r = evaluate(y, prob, n_boot=500)
    assert r["sensitivity"]["value"] == 1.0
    assert r["specificity"]["value"] == 0.0
    assert r["accuracy"]["value"] == pytest.approx(390 / 624) == pytest.approx(0.625)
    assert r["precision"]["value"] == pytest.approx(0.625)
    assert r["f1"]["value"] == pytest.approx(2 * 0.625 / 1.625)
    assert r["auc"]["value"] == pytest.approx(0.5)  # constant scores carry no ranking
    assert r["confusion"] == [[0, 234], [0, 390]]
    assert r["sensitivity"]["low"] == r["sensitivity"]["high"] == 1.0
    assert r["specificity"]["low"] == r["specificity"]["high"] == 0.0
    assert r["auc"]["low"] == pytest.approx(0.5) and r["auc"]["high"] == pytest.approx(0.5)
    assert r["accuracy"]["low"] < 0.625 < r["accuracy"]["high"]
    assert r["accuracy"]["high"] - r["accuracy"]["low"] < 0.1


def test_threshold_changes_predictions_not_auc():
    high = evaluate(Y_TRUE, Y_PROB, threshold=0.65, n_boot=100)
    # Predicted positive: 0.9 0.8 0.7 -> TP 3, FN 3, FP 0, TN 4.
    assert high["confusion"] == [[4, 0], [3, 3]]
    assert high["sensitivity"]["value"] == pytest.approx(0.5)
    assert high["specificity"]["value"] == 1.0
    assert high["precision"]["value"] == 1.0
    assert high["threshold"] == 0.65
    low = evaluate(Y_TRUE, Y_PROB, threshold=0.25, n_boot=100)
    # Predicted positive: 0.9 .. 0.3 and 0.55, 0.4 -> TP 5, FN 1, FP 2, TN 2.
    assert low["confusion"] == [[2, 2], [1, 5]]
    assert low["sensitivity"]["value"] == pytest.approx(5 / 6)
    assert low["specificity"]["value"] == pytest.approx(0.5)
    # A probability equal to the threshold counts as PNEUMONIA.
    at = evaluate(Y_TRUE, Y_PROB, threshold=0.6, n_boot=100)
    assert at["confusion"][1][1] == 4
    base = evaluate(Y_TRUE, Y_PROB, n_boot=100)
    assert high["auc"]["value"] == low["auc"]["value"] == base["auc"]["value"]


def test_accepts_lists_columns_and_booleans():
    ref = evaluate(Y_TRUE, Y_PROB, n_boot=200)
    assert evaluate(Y_TRUE.tolist(), Y_PROB.tolist(), n_boot=200) == ref
    assert evaluate(Y_TRUE[:, None], Y_PROB[:, None], n_boot=200) == ref  # Keras gives (N, 1)
    assert evaluate(Y_TRUE.astype(bool), Y_PROB, n_boot=200) == ref


def test_mismatched_lengths_raise():
    with pytest.raises(ValueError, match="10 labels but y_prob has 9"):
        evaluate(Y_TRUE, Y_PROB[:9])


@pytest.mark.parametrize("labels", [[0, 1, 2, 1], [-1, 0, 1, 1], [1, 2, 1, 2]])
def test_labels_outside_0_1_raise(labels):
    with pytest.raises(ValueError, match="0 \\(NORMAL\\) and 1 \\(PNEUMONIA\\)"):
        evaluate(labels, [0.1, 0.2, 0.8, 0.9])


def test_same_seed_same_intervals():
    y, prob = _model(150, 6)
    a = evaluate(y, prob, n_boot=500, seed=11)
    b = evaluate(y, prob, n_boot=500, seed=11)
    c = evaluate(y, prob, n_boot=500, seed=12)
    assert a == b
    assert any(a[m]["low"] != c[m]["low"] or a[m]["high"] != c[m]["high"] for m in METRICS)
    assert all(a[m]["value"] == c[m]["value"] for m in METRICS)  # point values do not depend on the seed


def test_single_class_has_no_auc():
    r = evaluate([1, 1, 1], [0.9, 0.8, 0.2], n_boot=100)
    assert r["sensitivity"]["value"] == pytest.approx(2 / 3)
    assert np.isnan(r["auc"]["value"])
    assert all(np.isnan(r[m]["low"]) and np.isnan(r[m]["high"]) for m in METRICS)


def test_format_metrics():
    text = format_metrics(evaluate(Y_TRUE, Y_PROB, n_boot=200))
    lines = text.splitlines()
    assert len(lines) == len(METRICS) + 1
    assert lines[0].startswith("accuracy    0.700  [")
    assert lines[-1] == "confusion   TN=3 FP=1 FN=2 TP=4  (n=10)"


def test_fractional_or_swapped_labels_are_rejected():
    import workshop_utils as wu

    with pytest.raises(ValueError, match="0 \\(NORMAL\\) and 1"):
        wu.evaluate([0.5, 1, 0, 1], [0.2, 0.9, 0.1, 0.8])
    with pytest.raises(ValueError, match="swap"):
        wu.evaluate([0.2, 0.9, 0.1, 0.8], [0, 1, 0, 1])


def test_calibration_matches_hand_computed_ece_and_brier():
    from workshop_utils.metrics import calibration

    y = np.array([0, 0, 1, 1])
    p = np.array([0.1, 0.4, 0.6, 0.9])
    # two bins: [0, 0.5) holds 0.1, 0.4 (mean 0.25, frequency 0) and [0.5, 1] holds 0.6, 0.9 (mean 0.75, frequency 1)
    result = calibration(y, p, n_bins=2)
    assert result["ece"]["value"] == pytest.approx(0.25)
    assert result["brier"]["value"] == pytest.approx((0.01 + 0.16 + 0.16 + 0.01) / 4)
    for name in ("ece", "brier"):
        assert result[name]["low"] <= result[name]["value"] <= result[name]["high"]


def test_calibration_of_perfect_and_wrong_probabilities():
    from workshop_utils.metrics import calibration

    y = np.array([0, 1] * 50)
    perfect = calibration(y, y.astype(float))
    assert perfect["ece"]["value"] == 0 and perfect["brier"]["value"] == 0
    wrong = calibration(y, 1.0 - y)
    assert wrong["ece"]["value"] == pytest.approx(1.0) and wrong["brier"]["value"] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="between 0 and 1"):
        calibration(y, y * 2.0)
