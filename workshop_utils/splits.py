"""Patient-level validation split and class weights."""
from __future__ import annotations

import numpy as np


def patient_split(labels: np.ndarray, groups: np.ndarray, val_fraction: float = 0.2,
                  seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Split indices into (train, validation), stratified by class and disjoint by patient.

    Every image of a patient lands on the same side, so validation never sees a patient that
    training saw. Uses scikit-learn's StratifiedGroupKFold with ``round(1 / val_fraction)`` folds
    and keeps the first fold as validation; the same seed gives the same split. The seed renumbers the
    patients at random and the folds are built without shuffling: StratifiedGroupKFold's own
    ``shuffle=True`` stops stratifying before scikit-learn 1.8, while this works the same on every version.
    """
    if not 0 < val_fraction < 1:
        raise ValueError(f"val_fraction must be between 0 and 1, got {val_fraction}.")
    labels, groups = np.asarray(labels), np.asarray(groups)
    n_splits = max(2, round(1 / val_fraction))
    if len(np.unique(groups)) < n_splits:
        raise ValueError(f"Only {len(np.unique(groups))} patients: too few for a {val_fraction:.0%} "
                         "patient-level validation split. Use more images (quick mode: raise the subset).")
    from sklearn.model_selection import StratifiedGroupKFold  # slow to import: on use

    names, patient = np.unique(groups, return_inverse=True)
    renumbered = np.random.default_rng(seed).permutation(len(names))[patient]
    folds = StratifiedGroupKFold(n_splits=n_splits, shuffle=False)
    train_idx, val_idx = next(folds.split(np.zeros(len(labels)), labels, renumbered))
    return train_idx, val_idx


def class_weights(labels: np.ndarray) -> dict[int, float]:
    """Balanced class weights as the ``{class_index: weight}`` dict that ``model.fit`` applies.

    ``n_samples / (n_classes * n_in_class)``: the minority class (NORMAL) weighs more. Keras only
    applies a dict; the original workshop passed sklearn's array, which Keras 2.2 silently ignored.
    """
    from sklearn.utils.class_weight import compute_class_weight

    labels = np.asarray(labels)
    classes = np.unique(labels)
    weights = compute_class_weight("balanced", classes=classes, y=labels)
    return {int(c): float(w) for c, w in zip(classes, weights)}


def patient_subset(labels: np.ndarray, groups: np.ndarray, n_images: int, seed: int = 0) -> np.ndarray:
    """Sorted indices of a subset of at most ``n_images`` images: whole patients, the class ratio kept.

    Quick mode trains on such a subset: it keeps the full split's class ratio (so class weights still
    differ from 1) and never cuts a patient. Each class gets its share of ``n_images``
    (``n_images * n_class // N``), filled with that class's patients in a random order (``seed``),
    skipping a patient whose images no longer fit; a patient belongs to the class of its first image.
    ``n_images >= N`` keeps everything. (scikit-learn's group splitters cannot aim at a number of
    images: StratifiedGroupKFold gives folds of N / k images, e.g. 165 for 320 of 330.)
    """
    labels, groups = np.asarray(labels), np.asarray(groups)
    if int(n_images) != n_images or n_images < 1:
        raise ValueError(f"A subset needs at least 1 image, got {n_images!r}.")
    if n_images >= len(labels):
        return np.arange(len(labels))
    _, first, inverse, sizes = np.unique(groups, return_index=True, return_inverse=True, return_counts=True)
    rng = np.random.default_rng(seed)
    chosen = []
    for cls, n_class in zip(*np.unique(labels, return_counts=True)):
        budget = int(n_images) * int(n_class) // len(labels)
        for g in rng.permutation(np.flatnonzero(labels[first] == cls)):
            if sizes[g] <= budget:
                chosen.append(g)
                budget -= sizes[g]
    index = np.flatnonzero(np.isin(inverse, chosen))
    if set(np.unique(labels[index])) != set(np.unique(labels)):
        raise ValueError(f"No subset of at most {n_images} of these {len(labels)} images holds whole patients "
                         f"of every class ({len(first)} patients): raise the subset size.")
    return index
