"""Patient-level validation split and class weights."""
from __future__ import annotations

import numpy as np
from sklearn.model_selection import StratifiedGroupKFold
from sklearn.utils.class_weight import compute_class_weight


def patient_split(labels: np.ndarray, groups: np.ndarray, val_fraction: float = 0.2,
                  seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Split indices into (train, validation), stratified by class and disjoint by patient.

    Every image of a patient lands on the same side, so validation never sees a patient that
    training saw. Uses scikit-learn's StratifiedGroupKFold with ``round(1 / val_fraction)`` folds
    and keeps the first fold as validation; the same seed gives the same split.
    """
    if not 0 < val_fraction < 1:
        raise ValueError(f"val_fraction must be between 0 and 1, got {val_fraction}.")
    labels, groups = np.asarray(labels), np.asarray(groups)
    n_splits = max(2, round(1 / val_fraction))
    if len(np.unique(groups)) < n_splits:
        raise ValueError(f"Only {len(np.unique(groups))} patients: too few for a {val_fraction:.0%} "
                         "patient-level validation split. Use more images (quick mode: raise the subset).")
    folds = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    train_idx, val_idx = next(folds.split(np.zeros(len(labels)), labels, groups))
    return train_idx, val_idx


def class_weights(labels: np.ndarray) -> dict[int, float]:
    """Balanced class weights as the ``{class_index: weight}`` dict that ``model.fit`` applies.

    ``n_samples / (n_classes * n_in_class)``: the minority class (NORMAL) weighs more. Keras only
    applies a dict; the original workshop passed sklearn's array, which Keras 2.2 silently ignored.
    """
    labels = np.asarray(labels)
    classes = np.unique(labels)
    weights = compute_class_weight("balanced", classes=classes, y=labels)
    return {int(c): float(w) for c, w in zip(classes, weights)}


def patient_subset(labels: np.ndarray, groups: np.ndarray, n_images: int, seed: int = 0) -> np.ndarray:
    """Sorted indices of a subset of at most ``n_images`` images: whole patients, the class ratio kept.

    Quick mode trains on such a subset; it keeps the full split's class ratio (so class weights still
    differ from 1) and never cuts a patient. Uses StratifiedGroupKFold with ``ceil(N / n_images)``
    folds and keeps the fold of at most ``n_images`` images whose class ratio is nearest the full one.
    ``n_images >= N`` keeps everything. The same seed gives the same subset.
    """
    labels, groups = np.asarray(labels), np.asarray(groups)
    if int(n_images) != n_images or n_images < 1:
        raise ValueError(f"A subset needs at least 1 image, got {n_images!r}.")
    if n_images >= len(labels):
        return np.arange(len(labels))
    n_groups = len(np.unique(groups))
    ratio = np.bincount(labels) / len(labels)
    for n_splits in range(max(2, -(-len(labels) // int(n_images))), n_groups + 1):
        folds = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
        fitting = [fold for _, fold in folds.split(np.zeros(len(labels)), labels, groups) if len(fold) <= n_images]
        if fitting:
            def distance(fold: np.ndarray) -> tuple[float, int]:
                share = np.bincount(labels[fold], minlength=len(ratio)) / len(fold)
                return float(np.abs(share - ratio).sum()), -len(fold)

            return np.sort(min(fitting, key=distance))
    raise ValueError(f"No set of whole patients holds at most {n_images} of these {len(labels)} images "
                     f"({n_groups} patients): raise the subset size.")
