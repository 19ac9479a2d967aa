"""Tests for workshop_utils.dataset: finding the dataset, listing images, the releases and the rule for
accepting a copy, patient ids."""
from __future__ import annotations

import os
import re
from collections import Counter
from pathlib import Path

import pytest

from helpers_data import unreadable  # noqa: F401 (a fixture)

from workshop_utils import dataset
from workshop_utils.dataset import (
    CLASSES,
    RELEASES,
    DatasetIncompleteError,
    DatasetNotFoundError,
    find_dataset_root,
    inspect_dataset,
    list_images,
    match_release,
    patient_id,
    verify_dataset,
)

MENDELEY = "Mendeley release (ChestXRay2017.zip)"
KAGGLE = "Kaggle release (chest-xray-pneumonia)"

SMALL = {
    "train": {"NORMAL": 2, "PNEUMONIA": 3},
    "val": {"NORMAL": 1, "PNEUMONIA": 1},
    "test": {"NORMAL": 1, "PNEUMONIA": 2},
}
NO_VAL = {split: per_class for split, per_class in SMALL.items() if split != "val"}


# ---------------------------------------------------------------------------------------------
# find_dataset_root


def test_find_plain_layout(tmp_path, make_tree):
    root = make_tree(tmp_path / "chest_xray", SMALL)
    assert find_dataset_root(root) == root
    # Also found when pointed at the folder above it.
    assert find_dataset_root(tmp_path) == root


def test_find_accepts_str_and_user_path(tmp_path, make_tree, monkeypatch):
    root = make_tree(tmp_path / "chest_xray", SMALL)
    assert find_dataset_root(str(tmp_path)) == root
    monkeypatch.setenv("HOME", str(tmp_path))
    assert find_dataset_root("~") == root


def test_find_kaggle_layout_picks_the_shallower_copy(tmp_path, make_tree):
    outer = make_tree(tmp_path / "chest_xray", SMALL)
    make_tree(outer / "chest_xray", SMALL)  # Kaggle's duplicate nested tree
    # __MACOSX holds a full tree of resource-fork files; it sorts before "chest_xray" and must be skipped.
    for split, per_class in SMALL.items():
        for cls in per_class:
            for prefix in ("chest_xray", "chest_xray/chest_xray"):
                folder = tmp_path / "__MACOSX" / prefix / split / cls
                folder.mkdir(parents=True, exist_ok=True)
                (folder / "._x.jpeg").write_bytes(b"\x00\x05\x16\x07resource fork")
    # The __MACOSX copy, were it searched, is also a full tree at the same depth as chest_xray/.
    for split in ("train", "test"):
        for cls in CLASSES:
            (tmp_path / "__MACOSX" / split / cls).mkdir(parents=True)
    assert find_dataset_root(tmp_path) == outer
    assert find_dataset_root(outer) == outer
    # The nested copy is a valid root by itself when asked for directly.
    assert find_dataset_root(outer / "chest_xray") == outer / "chest_xray"


def test_find_mendeley_layout_without_val(tmp_path, make_tree):
    root = make_tree(tmp_path / "ZhangLabData" / "CellData" / "chest_xray", NO_VAL)
    assert not (root / "val").exists()
    assert find_dataset_root(tmp_path) == root


def test_find_ignores_hidden_folders(tmp_path, make_tree):
    make_tree(tmp_path / ".hidden", SMALL)
    with pytest.raises(DatasetNotFoundError):
        find_dataset_root(tmp_path)


def _assert_actionable(message: str) -> None:
    assert "python -m workshop_utils download" in message
    assert "WORKSHOP_DATA_DIR" in message


def test_missing_folder_is_an_actionable_error(tmp_path):
    missing = tmp_path / "nope"
    with pytest.raises(DatasetNotFoundError) as info:
        find_dataset_root(missing)
    assert str(missing) in str(info.value)
    assert "does not exist" in str(info.value)
    _assert_actionable(str(info.value))
    # It is a FileNotFoundError, so generic handlers catch it too.
    assert isinstance(info.value, FileNotFoundError)


def test_folder_without_dataset_is_an_actionable_error(tmp_path, make_tree):
    # Something that looks almost right: train/ without test/, and a test/ lacking PNEUMONIA.
    make_tree(tmp_path / "a", {"train": SMALL["train"]})
    make_tree(tmp_path / "b", {"train": SMALL["train"], "test": {"NORMAL": 1}})
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(DatasetNotFoundError) as info:
        find_dataset_root(tmp_path)
    message = str(info.value)
    assert str(tmp_path) in message
    for needed in ("train/NORMAL", "train/PNEUMONIA", "test/NORMAL", "test/PNEUMONIA"):
        assert needed in message
    _assert_actionable(message)


def test_find_names_a_lowercase_class_folder(tmp_path, make_tree):
    root = make_tree(tmp_path / "chest_xray", SMALL)
    (root / "train" / "NORMAL").rename(root / "train" / "normal")
    if (root / "train" / "NORMAL").is_dir():
        pytest.skip("case-insensitive file system: train/normal is found as train/NORMAL")
    with pytest.raises(DatasetNotFoundError) as info:
        find_dataset_root(tmp_path)
    message = str(info.value)
    assert ("found train/normal: the folders must be named NORMAL and PNEUMONIA (upper case); rename it "
            f"({root / 'train' / 'normal'} -> {root / 'train' / 'NORMAL'})") in message
    assert info.value.near_miss == root
    _assert_actionable(message)


def test_find_names_what_it_could_not_read(tmp_path, make_tree, unreadable):
    make_tree(tmp_path / "locked" / "chest_xray", SMALL)
    locked = unreadable(tmp_path / "locked")
    with pytest.raises(DatasetNotFoundError) as info:
        find_dataset_root(tmp_path)
    assert f"cannot read {locked} (Permission denied)" in str(info.value)


def test_find_searches_four_levels_down_and_no_further(tmp_path, make_tree):
    make_tree(tmp_path / "1" / "2" / "3" / "4", SMALL)
    assert find_dataset_root(tmp_path) == tmp_path / "1" / "2" / "3" / "4"
    make_tree(tmp_path / "deep" / "1" / "2" / "3" / "4" / "5", SMALL)
    with pytest.raises(DatasetNotFoundError):
        find_dataset_root(tmp_path / "deep")


# ---------------------------------------------------------------------------------------------
# list_images


def test_list_images_skips_junk_and_warns_with_the_count(tmp_path, make_tree):
    root = make_tree(tmp_path, {"train": {"NORMAL": 2, "PNEUMONIA": 3}})
    normal = root / "train" / "NORMAL"
    (normal / ".DS_Store").write_bytes(b"junk")
    (normal / "Thumbs.db").write_bytes(b"junk")
    (normal / "notes.txt").write_text("not an image")
    (normal / "extra").mkdir()  # a sub-folder, even one named like an image, is not listed
    (root / "train" / "PNEUMONIA" / "folder.jpeg").mkdir()
    (root / "train" / "PNEUMONIA" / "._person100_bacteria_0.jpeg").write_bytes(b"fork")
    with pytest.warns(UserWarning, match=r"train: ignored 6 non-image entries") as record:
        listing = list_images(root, "train")
    message = str(record[0].message)
    # The first five ignored names (sorted per class folder) are shown, then "...".
    for name in (".DS_Store", "Thumbs.db", "extra", "notes.txt", "._person100_bacteria_0.jpeg"):
        assert name in message
    assert message.endswith("...)")
    assert len(listing.paths) == 5
    assert listing.labels == [0, 0, 1, 1, 1]
    assert all(Path(p).suffix == ".jpeg" and Path(p).is_file() for p in listing.paths)
    assert sorted(os.path.basename(p) for p in listing.ignored) == sorted(
        [".DS_Store", "Thumbs.db", "notes.txt", "extra", "folder.jpeg", "._person100_bacteria_0.jpeg"])


def test_list_images_warning_truncates_long_lists(tmp_path, make_tree):
    root = make_tree(tmp_path, {"test": {"NORMAL": 1, "PNEUMONIA": 1}})
    for i in range(7):
        (root / "test" / "NORMAL" / f"junk{i}.txt").write_text("x")
    with pytest.warns(UserWarning, match=r"ignored 7 non-image entries \(.*\.\.\.\)"):
        listing = list_images(root, "test")
    assert len(listing.paths) == 2 and len(listing.ignored) == 7


def test_list_images_is_sorted_and_takes_any_image_suffix(tmp_path, write_jpeg):
    folder = tmp_path / "train" / "PNEUMONIA"
    names = ["b.JPEG", "a.jpg", "c.png", "d.jpeg"]
    for name in names:
        write_jpeg(folder / name)  # content does not matter for listing
    write_jpeg(tmp_path / "train" / "NORMAL" / "z.jpeg")
    listing = list_images(tmp_path, "train")
    assert [os.path.basename(p) for p in listing.paths] == ["z.jpeg"] + sorted(names)
    assert listing.labels == [0, 1, 1, 1, 1]
    assert listing.ignored == []


def test_list_images_without_junk_does_not_warn(tmp_path, make_tree, recwarn):
    root = make_tree(tmp_path, SMALL)
    listing = list_images(root, "train")
    assert len(listing.paths) == 5
    assert not [w for w in recwarn if issubclass(w.category, UserWarning)]


def test_list_images_warn_false_is_silent(tmp_path, make_tree, recwarn):
    root = make_tree(tmp_path, SMALL)
    (root / "train" / "NORMAL" / ".DS_Store").write_bytes(b"junk")
    listing = list_images(root, "train", warn=False)
    assert len(listing.ignored) == 1
    assert not [w for w in recwarn if issubclass(w.category, UserWarning)]


def test_list_images_missing_split_is_empty_and_unknown_split_raises(tmp_path, make_tree):
    root = make_tree(tmp_path, NO_VAL)
    listing = list_images(root, "val")
    assert listing.paths == [] and listing.labels == [] and listing.ignored == []
    with pytest.raises(ValueError, match="Unknown split 'validation'"):
        list_images(root, "validation")


# ---------------------------------------------------------------------------------------------
# verify_dataset


def test_verify_accepts_matching_counts(tmp_path, make_tree):
    root = make_tree(tmp_path, SMALL)
    assert verify_dataset(root, SMALL) == SMALL


def test_verify_ignores_junk_files(tmp_path, make_tree):
    root = make_tree(tmp_path, SMALL)
    (root / "train" / "NORMAL" / ".DS_Store").write_bytes(b"junk")
    (root / "test" / "PNEUMONIA" / "._person100_bacteria_1000.jpeg").write_bytes(b"fork")
    assert verify_dataset(root, SMALL) == SMALL


def test_verify_names_every_wrong_split_and_class(tmp_path, make_tree):
    root = make_tree(tmp_path, SMALL)
    (root / "train" / "NORMAL" / "IM-1000-0001.jpeg").unlink()  # train/NORMAL: 1 instead of 2
    for name in os.listdir(root / "test" / "PNEUMONIA"):  # test/PNEUMONIA: 0 instead of 2
        (root / "test" / "PNEUMONIA" / name).unlink()
    expected = {**SMALL, "val": {"NORMAL": 1, "PNEUMONIA": 4}}  # val/PNEUMONIA: 1 instead of 4
    with pytest.raises(DatasetIncompleteError) as info:
        verify_dataset(root, expected)
    message = str(info.value)
    assert "train/NORMAL: 1 images, expected 2" in message
    assert "test/PNEUMONIA: 0 images, expected 2" in message
    assert "val/PNEUMONIA: 1 images, expected 4" in message
    # Exactly those three, no correct split/class is named.
    assert len(re.findall(r"\w+/\w+: \d+ images, expected \d+", message)) == 3
    assert "train/PNEUMONIA" not in message and "test/NORMAL" not in message
    assert isinstance(info.value, ValueError)


def test_verify_missing_split_class_counts_as_zero(tmp_path, make_tree):
    root = make_tree(tmp_path, {"train": SMALL["train"], "test": {"NORMAL": 1, "PNEUMONIA": 2}})
    expected = {**NO_VAL, "train": {"NORMAL": 2, "PNEUMONIA": 3}}
    verify_dataset(root, expected)
    (root / "train" / "PNEUMONIA").rename(root / "train" / "pneumonia_moved")
    with pytest.raises(DatasetIncompleteError, match=r"train/PNEUMONIA: 0 images, expected 3"):
        verify_dataset(root, expected)


def test_verify_accepts_missing_val(tmp_path, make_tree):
    root = make_tree(tmp_path, NO_VAL)
    counts = verify_dataset(root, SMALL)  # expected has val, the copy does not
    assert counts == NO_VAL
    assert "val" not in counts


def test_verify_checks_val_when_present(tmp_path, make_tree):
    root = make_tree(tmp_path, {**NO_VAL, "val": {"NORMAL": 1, "PNEUMONIA": 0}})
    with pytest.raises(DatasetIncompleteError, match=r"val/PNEUMONIA: 0 images, expected 1"):
        verify_dataset(root, SMALL)


def test_verify_without_expected_applies_the_rule(tmp_path, make_tree):
    """No ``expected``: any counts pass (the rule only refuses a class without images in train or test)."""
    root = make_tree(tmp_path, SMALL)
    assert verify_dataset(root) == SMALL
    for f in (root / "test" / "NORMAL").iterdir():
        f.unlink()
    with pytest.raises(DatasetIncompleteError, match=r"has no images in test/NORMAL"):
        verify_dataset(root)


# ---------------------------------------------------------------------------------------------
# the releases and the rule


def test_the_two_releases():
    """Kermany et al. 2018: Mendeley's archive has the paper's 5,232 training images and no val/; Kaggle moved
    8 + 8 of them into val/. Both have the same 624-image test split."""
    mendeley, kaggle = RELEASES[MENDELEY], RELEASES[KAGGLE]
    assert mendeley == {"train": {"NORMAL": 1349, "PNEUMONIA": 3883}, "test": {"NORMAL": 234, "PNEUMONIA": 390}}
    assert kaggle == {"train": {"NORMAL": 1341, "PNEUMONIA": 3875}, "val": {"NORMAL": 8, "PNEUMONIA": 8},
                      "test": {"NORMAL": 234, "PNEUMONIA": 390}}
    assert sum(mendeley["train"].values()) == 5232 == sum(kaggle["train"].values()) + sum(kaggle["val"].values())
    for cls in CLASSES:
        assert mendeley["train"][cls] == kaggle["train"][cls] + kaggle["val"][cls]


@pytest.mark.parametrize("release", [MENDELEY, KAGGLE])
def test_match_release_recognises_each_release(release):
    counts = {split: dict(per_class) for split, per_class in RELEASES[release].items()}
    assert match_release(counts) == (release, [])
    assert match_release(counts).describe() == release


def test_match_release_names_the_differences_from_the_closest():
    # Kaggle's copy with a smaller test split (the shared downsized copy).
    shared = {"train": {"NORMAL": 1341, "PNEUMONIA": 3875}, "val": {"NORMAL": 8, "PNEUMONIA": 8},
              "test": {"NORMAL": 113, "PNEUMONIA": 182}}
    assert match_release(shared) == (KAGGLE, ["test/NORMAL: 113 images (the release has 234)",
                                              "test/PNEUMONIA: 182 images (the release has 390)"])
    assert match_release(shared).describe() == (
        "matches no published release; closest: Kaggle release (chest-xray-pneumonia), but test/NORMAL: 113 "
        "images (the release has 234); test/PNEUMONIA: 182 images (the release has 390)")
    # Mendeley's counts less one image, with no val/: closest is Mendeley, one difference.
    one_less = {"train": {"NORMAL": 1348, "PNEUMONIA": 3883}, "test": {"NORMAL": 234, "PNEUMONIA": 390}}
    assert match_release(one_less) == (MENDELEY, ["train/NORMAL: 1348 images (the release has 1349)"])
    # Kaggle's train and test, but val/ deleted: Kaggle is 16 images away, Mendeley 16 too; the first wins,
    # and a missing or an extra val/ is named either way.
    no_val = {"train": {"NORMAL": 1341, "PNEUMONIA": 3875}, "test": {"NORMAL": 234, "PNEUMONIA": 390}}
    assert match_release(no_val) == (MENDELEY, ["train/NORMAL: 1341 images (the release has 1349)",
                                                "train/PNEUMONIA: 3875 images (the release has 3883)"])
    kaggle_train_with_val = {**no_val, "val": {"NORMAL": 8, "PNEUMONIA": 8}}
    assert match_release(kaggle_train_with_val) == (KAGGLE, [])
    mendeley_with_val = {**RELEASES[MENDELEY], "val": {"NORMAL": 8, "PNEUMONIA": 8}}
    assert match_release(mendeley_with_val) == (MENDELEY, ["val/NORMAL: 8 images (the release has no val/ folder)",
                                                           "val/PNEUMONIA: 8 images (the release has no val/ folder)"])
    kaggle_no_val = {"train": {"NORMAL": 1340, "PNEUMONIA": 3875}, "test": {"NORMAL": 234, "PNEUMONIA": 390}}
    match = match_release(kaggle_no_val)
    assert match.release == MENDELEY and len(match.differences) == 2


def test_inspect_accepts_any_counts_and_says_how_they_differ(tmp_path, make_tree):
    root = make_tree(tmp_path, SMALL)
    found = inspect_dataset(root)
    assert found.root == root and found.counts == SMALL and found.notes == []
    assert found.release.release == KAGGLE and "train/NORMAL: 2 images (the release has 1341)" in found.release.differences
    assert found.warnings() == [f"the dataset at {root} {found.release.describe()}. It is used as it is."]


def test_inspect_refuses_a_class_without_images(tmp_path, make_tree):
    root = make_tree(tmp_path, NO_VAL)
    for f in (root / "train" / "NORMAL").iterdir():
        f.unlink()
    (root / "train" / "NORMAL" / "Thumbs.db").write_bytes(b"junk")  # not an image either
    with pytest.raises(DatasetIncompleteError) as info:
        inspect_dataset(root)
    assert str(info.value) == (f"The dataset at {root} has no images in train/NORMAL: every class needs images "
                               "in train and test (found train 0 + 3, test 1 + 2, NORMAL + PNEUMONIA).")
    # An empty val/ class is fine: val/ is optional (Mendeley has none).
    root = make_tree(tmp_path / "b", {**NO_VAL, "val": {"NORMAL": 0, "PNEUMONIA": 1}})
    assert inspect_dataset(root).counts["val"] == {"NORMAL": 0, "PNEUMONIA": 1}


def test_inspect_names_extra_and_misnamed_class_folders(tmp_path, make_tree):
    root = make_tree(tmp_path, SMALL)
    make_tree(tmp_path / "other", {"train": {"COVID": 1}, "test": {"normal": 1}})
    (tmp_path / "other" / "train" / "COVID").rename(root / "train" / "COVID")
    case_sensitive = not (root / "test" / "normal").exists()
    if case_sensitive:  # NORMAL and normal side by side
        (tmp_path / "other" / "test" / "normal").rename(root / "test" / "normal")
    notes = inspect_dataset(root).notes
    assert f"train/COVID in {root} is not used: the lessons only use the classes NORMAL and PNEUMONIA" in notes
    if case_sensitive:
        assert ("found test/normal: the folders must be named NORMAL and PNEUMONIA (upper case); rename it "
                f"({root / 'test' / 'normal'} -> {root / 'test' / 'NORMAL'})") in notes
    assert len(notes) == 1 + case_sensitive


def test_unreadable_class_folder_names_the_folder(tmp_path, make_tree, unreadable):
    root = make_tree(tmp_path, SMALL)
    folder = unreadable(root / "train" / "PNEUMONIA")
    with pytest.raises(DatasetIncompleteError) as info:
        inspect_dataset(root)
    assert str(info.value) == (f"Cannot read {folder} (Permission denied): make it readable (e.g. chmod -R u+rX "
                               f"{folder}), or copy the dataset to a folder you own.")


# ---------------------------------------------------------------------------------------------
# patient_id


@pytest.mark.parametrize("name, group", [
    ("person1234_bacteria_5678.jpeg", "person1234"),
    ("person1234_virus_99.jpeg", "person1234"),
    ("IM-0115-0001.jpeg", "im-0115"),
    ("IM-0115-0002.jpeg", "im-0115"),
    ("NORMAL2-IM-1427-0001.jpeg", "im-1427"),
    ("IM-1427-0001.jpeg", "im-1427"),
    ("/data/chest_xray/train/PNEUMONIA/person1_bacteria_1.jpeg", "person1"),
    ("train/NORMAL/NORMAL2-IM-0007-0001.jpeg", "im-0007"),
])
def test_patient_id_rules(name, group):
    assert patient_id(name) == group


def test_patient_id_groups_images_of_one_person():
    assert patient_id("person1234_bacteria_5678.jpeg") == patient_id("person1234_virus_99.jpeg")
    assert patient_id("IM-0115-0001.jpeg") == patient_id("IM-0115-0002.jpeg")
    assert patient_id("NORMAL2-IM-1427-0001.jpeg") == patient_id("IM-1427-0002.jpeg")
    # Different people stay apart, including numbers that share a prefix.
    assert patient_id("person1_bacteria_1.jpeg") != patient_id("person12_bacteria_2.jpeg")
    assert patient_id("IM-0115-0001.jpeg") != patient_id("IM-0117-0001.jpeg")
    assert patient_id("IM-0115-0001.jpeg") != patient_id("person115_bacteria_1.jpeg")


def test_patient_id_unknown_name_is_its_own_group():
    assert patient_id("scan.jpeg") == "file:scan"
    assert patient_id("/x/Scan_2.PNG") == "file:scan_2"
    assert patient_id("scan.jpeg") != patient_id("scan2.jpeg")
    # Near misses of the rules do not parse as a person or series.
    assert patient_id("personA_bacteria_1.jpeg").startswith("file:")
    assert patient_id("IM-0115.jpeg").startswith("file:")


# ---------------------------------------------------------------------------------------------
# Real data


def test_real_dataset_is_found_and_has_the_expected_counts(real_data_root, real_counts):
    assert find_dataset_root(real_data_root) == real_data_root
    assert find_dataset_root(real_data_root.parent) == real_data_root
    assert verify_dataset(real_data_root, real_counts) == real_counts
    # The shared copy is downsized: Kaggle's release with a smaller test split, used with a warning.
    found = inspect_dataset(real_data_root)
    assert found.counts == real_counts and found.notes == []
    assert found.release == (KAGGLE, ["test/NORMAL: 113 images (the release has 234)",
                                      "test/PNEUMONIA: 182 images (the release has 390)"])


def test_real_train_file_names_all_parse(real_data_root):
    listing = list_images(real_data_root, "train")
    assert len(listing.paths) == 1341 + 3875
    groups = [patient_id(p) for p in listing.paths]
    assert not [p for p, g in zip(listing.paths, groups) if g.startswith("file:")]
    by_group = Counter(groups)
    assert len(by_group) == 2635
    # Most images per patient: person23 has 30 pneumonia images.
    assert by_group.most_common(1) == [("person23", 30)]
    # A patient's images all carry the same label (no group spans both classes).
    labels_of = {}
    for g, label in zip(groups, listing.labels):
        labels_of.setdefault(g, set()).add(label)
    assert all(len(v) == 1 for v in labels_of.values())
    normal_groups = {g for g, label in zip(groups, listing.labels) if label == 0}
    assert all(g.startswith("im-") for g in normal_groups)
    assert all(g.startswith("person") for g in set(groups) - normal_groups)


def test_count_images_matches_listing(real_data_root, real_counts):
    assert dataset.count_images(real_data_root) == real_counts
