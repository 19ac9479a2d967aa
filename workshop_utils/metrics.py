"""Test-set metrics for a binary classifier (PNEUMONIA = positive class), with bootstrap CIs."""
from __future__ import annotations

import numpy as np

METRICS = ("accuracy", "sensitivity", "specificity", "precision", "f1", "auc")


def _point(y_true: np.ndarray, y_prob: np.ndarray, threshold: float) -> dict[str, float]:
    from sklearn.metrics import f1_score, precision_score, recall_score, roc_auc_score  # slow to import: on use

    y_pred = (y_prob >= threshold).astype(int)
    both = len(np.unique(y_true)) == 2
    return {
        "accuracy": float(np.mean(y_pred == y_true)),
        "sensitivity": float(recall_score(y_true, y_pred, pos_label=1, zero_division=0)),
        "specificity": float(recall_score(y_true, y_pred, pos_label=0, zero_division=0)),
        "precision": float(precision_score(y_true, y_pred, pos_label=1, zero_division=0)),
        "f1": float(f1_score(y_true, y_pred, pos_label=1, zero_division=0)),
        "auc": float(roc_auc_score(y_true, y_prob)) if both else float("nan"),
    }


def _bootstrap(y_true: np.ndarray, y_prob: np.ndarray, threshold: float, n_boot: int,
               seed: int) -> dict[str, np.ndarray]:
    """All metrics on ``n_boot`` resamples at once (vectorised; AUC from the Mann-Whitney U statistic)."""
    from scipy.stats import rankdata

    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(y_true), (n_boot, len(y_true)))
    y, prob = y_true[idx], y_prob[idx]
    idx = idx[(y.min(axis=1) == 0) & (y.max(axis=1) == 1)]  # resamples holding both classes
    y, prob = y_true[idx], y_prob[idx]
    pred = prob >= threshold
    tp = (pred & (y == 1)).sum(1)
    tn = (~pred & (y == 0)).sum(1)
    pos, neg, predicted = (y == 1).sum(1), (y == 0).sum(1), pred.sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.where(predicted > 0, tp / predicted, 0.0)
        sensitivity = tp / pos
        f1 = np.where(precision + sensitivity > 0, 2 * precision * sensitivity / (precision + sensitivity), 0.0)
    ranks = rankdata(prob, axis=1)
    auc = ((ranks * (y == 1)).sum(1) - pos * (pos + 1) / 2) / (pos * neg)
    return {"accuracy": (tp + tn) / y.shape[1], "sensitivity": sensitivity, "specificity": tn / neg,
            "precision": precision, "f1": f1, "auc": auc}


def evaluate(y_true: np.ndarray, y_prob: np.ndarray, threshold: float = 0.5, n_boot: int = 2000,
             seed: int = 0) -> dict:
    """Accuracy, sensitivity (PNEUMONIA recall), specificity (NORMAL recall), precision, F1 and
    ROC-AUC, each with a 95% percentile bootstrap confidence interval, plus the confusion matrix.

    ``y_prob`` is the predicted probability of PNEUMONIA. Returns ``{"accuracy": {"value", "low",
    "high"}, ..., "confusion": [[TN, FP], [FN, TP]], "n": N, "threshold": t}``.
    """
    y_true = np.asarray(y_true).ravel()
    y_prob = np.asarray(y_prob, dtype=float).ravel()
    if y_true.shape != y_prob.shape:
        raise ValueError(f"y_true has {y_true.size} labels but y_prob has {y_prob.size} probabilities.")
    if not np.isin(y_true, [0, 1]).all():
        raise ValueError("y_true must hold 0 (NORMAL) and 1 (PNEUMONIA) only; did you swap y_true and y_prob?")
    y_true = y_true.astype(int)
    point = _point(y_true, y_prob, threshold)
    boots = _bootstrap(y_true, y_prob, threshold, n_boot, seed)
    result: dict = {}
    for m in METRICS:
        low, high = np.percentile(boots[m], [2.5, 97.5]) if len(boots[m]) else (np.nan, np.nan)
        result[m] = {"value": point[m], "low": float(low), "high": float(high)}
    from sklearn.metrics import confusion_matrix

    result["confusion"] = confusion_matrix(y_true, (y_prob >= threshold).astype(int), labels=[0, 1]).tolist()
    result["n"] = int(len(y_true))
    result["threshold"] = float(threshold)
    return result


def format_metrics(result: dict) -> str:
    """One line per metric: ``accuracy    0.853  [0.820, 0.884]``, then the confusion matrix."""
    lines = [f"{m:<12}{result[m]['value']:.3f}  [{result[m]['low']:.3f}, {result[m]['high']:.3f}]"
             for m in METRICS]
    (tn, fp), (fn, tp) = result["confusion"]
    lines.append(f"confusion   TN={tn} FP={fp} FN={fn} TP={tp}  (n={result['n']})")
    return "\n".join(lines)


def _calibration_point(y: np.ndarray, p: np.ndarray, n_bins: int) -> tuple[np.ndarray, np.ndarray]:
    """Expected calibration error and Brier score along the last axis (rows are resamples)."""
    bins = np.minimum((p * n_bins).astype(int), n_bins - 1)
    ece = np.zeros(p.shape[:-1])
    for b in range(n_bins):
        inside = bins == b
        count = inside.sum(-1)
        with np.errstate(invalid="ignore", divide="ignore"):
            gap = np.abs((p * inside).sum(-1) - (y * inside).sum(-1)) / count
        ece += np.where(count > 0, gap * count / p.shape[-1], 0.0)
    return ece, ((p - y) ** 2).mean(-1)


def calibration(y_true: np.ndarray, y_prob: np.ndarray, n_bins: int = 10, n_boot: int = 2000,
                seed: int = 0) -> dict:
    """Expected calibration error (ECE: the gap between confidence and frequency of PNEUMONIA, averaged over
    ``n_bins`` equal-width bins of P(PNEUMONIA), weighted by the images in each) and Brier score (mean squared
    error of P(PNEUMONIA)), each ``{"value", "low", "high"}`` with a 95% percentile bootstrap interval."""
    y = np.asarray(y_true, dtype=float).ravel()
    p = np.asarray(y_prob, dtype=float).ravel()
    if y.shape != p.shape:
        raise ValueError(f"y_true has {y.size} labels but y_prob has {p.size} probabilities.")
    if p.size and (p.min() < 0 or p.max() > 1):
        raise ValueError("y_prob must hold probabilities between 0 and 1.")
    point = _calibration_point(y, p, n_bins)
    idx = np.random.default_rng(seed).integers(0, len(y), (n_boot, len(y)))
    boots = _calibration_point(y[idx], p[idx], n_bins)
    return {name: {"value": float(value), "low": float(np.percentile(boot, 2.5)),
                   "high": float(np.percentile(boot, 97.5))}
            for name, value, boot in zip(("ece", "brier"), point, boots)}
