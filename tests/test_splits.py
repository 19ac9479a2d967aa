"""Tests for workshop_utils.splits: patient-level validation split and class weights."""
from __future__ import annotations

import numpy as np
import pytest

from workshop_utils.dataset import list_images, patient_id
from workshop_utils.splits import class_weights, patient_split, patient_subset


def _synthetic(n_patients: int = 400, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Labels and patient groups like the real data: ~26% NORMAL patients, 1-6 images per patient,
    every patient's images share one label."""
    rng = np.random.default_rng(seed)
    labels, groups = [], []
    for p in range(n_patients):
        label = int(rng.random() > 0.26)
        k = int(rng.integers(1, 7))
        labels += [label] * k
        groups += [f"{'person' if label else 'im-'}{p}"] * k
    return np.array(labels), np.array(groups)


@pytest.fixture(scope="module")
def data():
    return _synthetic()


def _check_partition(train, val, labels, groups):
    assert not set(groups[train]) & set(groups[val])  # no patient on both sides
    both = np.concatenate([train, val])
    assert len(both) == len(np.unique(both)) == len(labels)  # disjoint, and nothing lost
    np.testing.assert_array_equal(np.sort(both), np.arange(len(labels)))


@pytest.mark.parametrize("val_fraction", [0.1, 0.2, 0.25])
def test_patient_split_partitions_by_patient(data, val_fraction):
    labels, groups = data
    train, val = patient_split(labels, groups, val_fraction=val_fraction, seed=0)
    _check_partition(train, val, labels, groups)
    assert abs(len(val) / len(labels) - val_fraction) < 0.03
    # Stratified: each side's share of PNEUMONIA within a couple of points of the overall share.
    overall = labels.mean()
    assert abs(labels[val].mean() - overall) < 0.02
    assert abs(labels[train].mean() - overall) < 0.02


def test_patient_split_default_is_a_fifth(data):
    labels, groups = data
    train, val = patient_split(labels, groups)
    assert abs(len(val) / len(labels) - 0.2) < 0.03
    assert abs(len(np.unique(groups[val])) / len(np.unique(groups)) - 0.2) < 0.05


def test_patient_split_is_reproducible_by_seed(data):
    labels, groups = data
    a_train, a_val = patient_split(labels, groups, seed=7)
    b_train, b_val = patient_split(labels, groups, seed=7)
    np.testing.assert_array_equal(a_train, b_train)
    np.testing.assert_array_equal(a_val, b_val)
    c_train, c_val = patient_split(labels, groups, seed=8)
    assert set(c_val) != set(a_val)
    _check_partition(c_train, c_val, labels, groups)


def test_patient_split_accepts_lists(data):
    labels, groups = data
    train, val = patient_split(list(labels), list(groups), seed=3)
    ref_train, ref_val = patient_split(labels, groups, seed=3)
    np.testing.assert_array_equal(val, ref_val)
    np.testing.assert_array_equal(train, ref_train)


def test_patient_split_keeps_every_image_of_a_patient_together():
    # One patient with many images (like person23's 30) must not be split.
    labels = np.array([1] * 30 + [0, 1] * 20)
    groups = np.array(["person23"] * 30 + [f"p{i}" for i in range(40)])
    for seed in range(5):
        train, val = patient_split(labels, groups, seed=seed)
        _check_partition(train, val, labels, groups)
        in_val = np.isin(np.arange(30), val)
        assert in_val.all() or not in_val.any()


def test_too_few_patients_is_a_value_error():
    labels = np.array([0, 0, 1, 1, 1, 1, 0, 1])
    groups = np.array(["a", "a", "b", "b", "c", "c", "d", "d"])  # 4 patients, 5 folds needed
    with pytest.raises(ValueError, match="Only 4 patients"):
        patient_split(labels, groups, val_fraction=0.2)
    # With a larger fraction (2 folds) the same four patients suffice.
    train, val = patient_split(labels, groups, val_fraction=0.5)
    _check_partition(train, val, labels, groups)


@pytest.mark.parametrize("bad", [0, 1, -0.2, 1.5])
def test_val_fraction_out_of_range_is_a_value_error(data, bad):
    labels, groups = data
    with pytest.raises(ValueError, match="val_fraction"):
        patient_split(labels, groups, val_fraction=bad)


# ---------------------------------------------------------------------------------------------
# patient_subset (quick mode)


def _one_to_three(n_patients: int = 200) -> tuple[np.ndarray, np.ndarray]:
    """A quarter of the patients NORMAL (1 or 2 images each), the rest PNEUMONIA (1 or 2 images each):
    75 NORMAL and 225 PNEUMONIA images, a 1:3 ratio like the real train split's."""
    labels, groups = [], []
    for p in range(n_patients):
        label = int(p % 4 != 0)
        k = (1 + p % 8 // 4) if label == 0 else 1 + (p % 4 == 2) + (p % 8 == 1)
        labels += [label] * k
        groups += [f"patient{p}"] * k
    return np.array(labels), np.array(groups)


def test_patient_subset_keeps_the_class_ratio_and_whole_patients():
    labels, groups = _one_to_three()
    assert (labels == 0).sum() == 75 and (labels == 1).sum() == 225  # 1:3
    assert set(np.unique(groups, return_counts=True)[1]) == {1, 2}
    for n, seed in [(100, 0), (100, 1), (60, 0), (150, 3)]:
        index = patient_subset(labels, groups, n, seed=seed)
        assert n - 3 <= len(index) <= n  # at most n, short by less than a patient per class
        assert len(np.unique(index)) == len(index) and (np.diff(index) > 0).all()
        assert abs(labels[index].mean() - labels.mean()) < 0.02  # ratio kept within 2 points
        chosen = set(groups[index])
        for g in chosen:  # every image of a chosen patient is in, none of the others
            assert np.isin(np.flatnonzero(groups == g), index).all()
        assert not np.isin(np.flatnonzero(~np.isin(groups, list(chosen))), index).any()
        # Class weights follow the full split's, not 1.0 as with an equal number per class.
        assert class_weights(labels[index])[0] == pytest.approx(class_weights(labels)[0], rel=0.15)
        assert class_weights(labels[index])[0] > 1.8  # 2.0 in the full set; 1.0 with equal counts


def test_patient_subset_is_reproducible_by_seed():
    labels, groups = _one_to_three()
    a = patient_subset(labels, groups, 100, seed=0)
    np.testing.assert_array_equal(a, patient_subset(list(labels), list(groups), 100, seed=0))
    assert set(patient_subset(labels, groups, 100, seed=1)) != set(a)


def test_patient_subset_larger_than_the_split_keeps_it_whole():
    labels, groups = _one_to_three(20)
    np.testing.assert_array_equal(patient_subset(labels, groups, len(labels)), np.arange(len(labels)))
    np.testing.assert_array_equal(patient_subset(labels, groups, 10_000), np.arange(len(labels)))


def test_patient_subset_never_cuts_a_large_patient():
    # person23-like: one patient with 30 images next to 40 single-image patients.
    labels = np.array([1] * 30 + [0, 1] * 20)
    groups = np.array(["person23"] * 30 + [f"p{i}" for i in range(40)])
    for seed in range(4):
        index = patient_subset(labels, groups, 20, seed=seed)
        assert len(index) <= 20 and not np.isin(np.arange(30), index).any()


@pytest.mark.parametrize("bad", [0, -5, 2.5])
def test_patient_subset_size_must_be_a_positive_integer(bad):
    labels, groups = _one_to_three(20)
    with pytest.raises(ValueError, match="at least 1 image"):
        patient_subset(labels, groups, bad)


def test_patient_subset_without_a_fitting_set_of_patients_says_so():
    labels = np.array([0] * 10 + [1] * 10)
    groups = np.array(["a"] * 10 + ["b"] * 10)
    with pytest.raises(ValueError, match="No subset of at most 5 of these 20 images holds whole patients"):
        patient_subset(labels, groups, 5)


# ---------------------------------------------------------------------------------------------
# Real data (file names only, no decoding)


@pytest.fixture(scope="module")
def real_listing(request):
    root = request.getfixturevalue("real_data_root")
    listing = list_images(root, "train")
    return np.array(listing.labels), np.array([patient_id(p) for p in listing.paths])


def test_real_patient_split(real_listing):
    labels, groups = real_listing
    train, val = patient_split(labels, groups, val_fraction=0.2, seed=0)
    _check_partition(train, val, labels, groups)
    assert not set(groups[train]) & set(groups[val])
    assert abs(len(val) / len(labels) - 0.2) < 0.02
    overall = labels.mean()  # 3875 / 5216 = 0.743
    assert abs(overall - 3875 / 5216) < 1e-12
    assert abs(labels[val].mean() - overall) < 0.02
    assert abs(labels[train].mean() - overall) < 0.02
    # person23 (30 images) sits wholly on one side.
    p23 = np.flatnonzero(groups == "person23")
    assert len(p23) == 30
    assert np.isin(p23, val).all() or np.isin(p23, train).all()


def test_real_class_weights(real_listing):
    labels, _ = real_listing
    weights = class_weights(labels)
    assert weights == pytest.approx({0: 5216 / (2 * 1341), 1: 5216 / (2 * 3875)})
    assert weights[0] > 1 > weights[1]


# ---------------------------------------------------------------------------------------------
# class_weights


def test_class_weights_hand_computed_one_to_three():
    labels = np.array([0] * 25 + [1] * 75)
    weights = class_weights(labels)
    # n / (n_classes * n_c): 100 / (2 * 25) = 2.0 and 100 / (2 * 75) = 0.6667
    assert weights == pytest.approx({0: 2.0, 1: 2 / 3})
    assert round(weights[1], 4) == 0.6667
    assert list(weights) == [0, 1]
    assert all(type(k) is int for k in weights)  # plain ints: Keras looks classes up by int
    assert all(type(v) is float for v in weights.values())
    assert weights[0] > weights[1]  # minority weighs more
    # Weighted class totals are equal (each class contributes n / 2).
    assert 25 * weights[0] == pytest.approx(75 * weights[1]) == pytest.approx(50)


def test_class_weights_from_a_list_and_balanced_input():
    assert class_weights([1, 0, 1, 0]) == {0: 1.0, 1: 1.0}
    w = class_weights([1, 1, 1, 0])
    assert w == pytest.approx({0: 2.0, 1: 2 / 3})


def test_class_weights_minority_pneumonia():
    labels = np.array([0] * 90 + [1] * 10)
    w = class_weights(labels)
    assert w[1] > w[0]
    assert 90 * w[0] == pytest.approx(10 * w[1])


def test_real_quick_subset_keeps_the_ratio(real_data_root, capsys):
    """The quick preset's subsets of the real data: counts and class weights, printed for the record."""
    from workshop_utils.parameters import QUICK_PRESET

    for splits, n in ((("train", "val"), QUICK_PRESET["TRAIN_IMAGES"]), (("test",), QUICK_PRESET["TEST_IMAGES"])):
        paths, labels = [], []
        for split in splits:
            listing = list_images(real_data_root, split)
            paths += listing.paths
            labels += listing.labels
        labels, groups = np.array(labels), np.array([patient_id(p) for p in paths])
        index = patient_subset(labels, groups, n, seed=0)
        assert n - 3 <= len(index) <= n
        assert abs(labels[index].mean() - labels.mean()) < 0.01
        assert not set(groups[index]) & set(np.delete(groups, index))  # whole patients
        full, sub = class_weights(labels), class_weights(labels[index])
        assert sub[0] == pytest.approx(full[0], rel=0.03) and sub[0] > 1.2
        with capsys.disabled():
            print(f"\n{'+'.join(splits)}: quick subset {len(index)} of {len(labels)} images, "
                  f"NORMAL {(labels[index] == 0).sum()} PNEUMONIA {(labels[index] == 1).sum()}, "
                  f"class weights {sub[0]:.3f} / {sub[1]:.3f} (full split {full[0]:.3f} / {full[1]:.3f})")
