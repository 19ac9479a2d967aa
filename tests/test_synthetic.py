"""Tests for workshop_utils.synthetic: layout, counts, determinism, image modes, learnability."""
from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from workshop_utils.dataset import find_dataset_root, list_images, patient_id, verify_dataset
from workshop_utils.images import load_dataset
from workshop_utils.synthetic import DEFAULT_COUNTS, make_synthetic_dataset

SMALL = {
    "train": {"NORMAL": 14, "PNEUMONIA": 15},
    "val": {"NORMAL": 1, "PNEUMONIA": 2},
    "test": {"NORMAL": 3, "PNEUMONIA": 4},
}


@pytest.fixture(scope="module")
def default_root(tmp_path_factory) -> Path:
    return make_synthetic_dataset(tmp_path_factory.mktemp("synthetic"))


@pytest.fixture(scope="module")
def decoded(default_root, tmp_path_factory):
    return load_dataset(default_root, 32, cache_dir=tmp_path_factory.mktemp("cache"), progress=False)


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_default_layout_and_counts(default_root):
    assert default_root.name == "chest_xray"
    assert find_dataset_root(default_root.parent) == default_root
    assert verify_dataset(default_root, DEFAULT_COUNTS) == DEFAULT_COUNTS
    total = sum(n for per_class in DEFAULT_COUNTS.values() for n in per_class.values())
    assert len(_files(default_root)) == total  # nothing but images
    for split in DEFAULT_COUNTS:
        assert not list_images(default_root, split).ignored


def test_custom_counts(tmp_path):
    counts = {"train": {"NORMAL": 3, "PNEUMONIA": 5}, "test": {"NORMAL": 2, "PNEUMONIA": 1}}
    root = make_synthetic_dataset(tmp_path, counts, seed=3, min_size=20, max_size=30)
    assert root == tmp_path / "chest_xray"
    assert verify_dataset(root, counts) == counts
    assert not (root / "val").exists()  # Mendeley-like: no val split
    for p in root.rglob("*.*"):
        assert all(20 <= s <= 30 for s in Image.open(p).size)


def test_missing_class_gives_an_empty_folder(tmp_path):
    root = make_synthetic_dataset(tmp_path, {"train": {"PNEUMONIA": 2}, "test": {"NORMAL": 1}})
    assert (root / "train" / "NORMAL").is_dir() and not any((root / "train" / "NORMAL").iterdir())
    assert verify_dataset(root, {"train": {"NORMAL": 0, "PNEUMONIA": 2}, "test": {"NORMAL": 1, "PNEUMONIA": 0}})


def test_same_seed_gives_byte_identical_files(tmp_path):
    a = _files(make_synthetic_dataset(tmp_path / "a", SMALL, seed=5))
    b = _files(make_synthetic_dataset(tmp_path / "b", SMALL, seed=5))
    assert len(a) == 29 + 3 + 7
    assert a.keys() == b.keys()
    assert all(a[k] == b[k] for k in a)
    c = _files(make_synthetic_dataset(tmp_path / "c", SMALL, seed=6))
    assert sum(a[k] != c.get(k) for k in a) > len(a) // 2


def test_contains_every_file_mode(default_root):
    modes = Counter()
    for p in default_root.rglob("*.*"):
        with Image.open(p) as img:
            modes[(p.suffix, img.format, img.mode)] += 1
    assert set(modes) == {(".jpeg", "JPEG", "L"), (".jpeg", "JPEG", "RGB"),
                          (".png", "PNG", "RGBA"), (".png", "PNG", "I;16")}
    # Every 13th file of a class folder is 16-bit, every 11th (not 13th) RGBA, every 7th (not 11th/13th) RGB.
    train_normal = sorted((default_root / "train" / "NORMAL").iterdir())
    assert len(train_normal) == 60
    assert sum(Image.open(p).mode == "I;16" for p in train_normal) == 4  # k = 13, 26, 39, 52
    assert sum(Image.open(p).mode == "RGBA" for p in train_normal) == 5  # k = 11, 22, 33, 44, 55
    assert sum(Image.open(p).mode == "RGB" for p in train_normal) == 8  # k = 7, 14, ..., 56
    sixteen = Image.open(default_root / "train" / "NORMAL" / "IM-1006-0001.png")  # k = 13
    assert sixteen.mode == "I;16" and np.asarray(sixteen).max() > 255


def test_file_names_give_patient_groups(default_root):
    listing = list_images(default_root, "train")
    groups = [patient_id(p) for p in listing.paths]
    assert not [g for g in groups if g.startswith("file:")]
    per_group = Counter(groups)
    normal = {g: n for g, n in per_group.items() if g.startswith("im-")}
    sick = {g: n for g, n in per_group.items() if g.startswith("person")}
    assert len(normal) == 30 and set(normal.values()) == {2}  # two images per NORMAL patient
    assert len(sick) == 50 and set(sick.values()) == {3}  # three per PNEUMONIA patient
    test_groups = {patient_id(p) for p in list_images(default_root, "test").paths}
    assert not test_groups & set(groups)  # no patient in both train and test


def test_decodes_cleanly(decoded):
    train, test = decoded["train"], decoded["test"]
    assert train.skipped == [] and test.skipped == []
    assert train.class_counts() == {"NORMAL": 64, "PNEUMONIA": 154}
    assert test.class_counts() == {"NORMAL": 30, "PNEUMONIA": 45}
    assert train.images.shape == (218, 32, 32) and train.images.dtype == np.uint8


def _lung_brightness(images: np.ndarray) -> np.ndarray:
    """Fraction of bright (> 120) pixels in the two lung fields, where the blotches are drawn."""
    s = images.shape[1]
    rows = images[:, int(s * 0.35):int(s * 0.75)]
    lungs = np.concatenate([rows[:, :, int(s * 0.15):int(s * 0.42)], rows[:, :, int(s * 0.58):int(s * 0.85)]], 2)
    return (lungs > 120).mean(axis=(1, 2))


def test_classes_separate_on_a_simple_feature(decoded):
    train, test = decoded["train"], decoded["test"]
    f_train, f_test = _lung_brightness(train.images), _lung_brightness(test.images)
    assert f_train[train.labels == 1].mean() > f_train[train.labels == 0].mean() + 0.1
    threshold = (f_train[train.labels == 0].mean() + f_train[train.labels == 1].mean()) / 2
    accuracy = ((f_test > threshold).astype(int) == test.labels).mean()
    assert accuracy > 0.8


def test_classes_are_learnable_by_logistic_regression(decoded):
    from sklearn.linear_model import LogisticRegression

    train, test = decoded["train"], decoded["test"]
    x_train = train.images.reshape(len(train), -1) / 255.0
    x_test = test.images.reshape(len(test), -1) / 255.0
    model = LogisticRegression(max_iter=2000).fit(x_train, train.labels)
    accuracy = model.score(x_test, test.labels)
    majority = max(test.class_counts().values()) / len(test)  # 45 / 75 = 0.6
    assert accuracy > 0.8 > majority


# ---------------------------------------------------------------------------------------------
# Interrupted and concurrent generation


def _interrupt_after(monkeypatch, n_files: int) -> None:
    """Make the n-th image save raise KeyboardInterrupt (Ctrl-C, a closed notebook)."""
    real_save = Image.Image.save
    saved = []

    def save(self, *args, **kwargs):
        if len(saved) == n_files:
            raise KeyboardInterrupt
        saved.append(args[0])
        return real_save(self, *args, **kwargs)

    monkeypatch.setattr(Image.Image, "save", save)


def test_interrupted_generation_leaves_nothing_that_looks_ready(tmp_path, monkeypatch):
    _interrupt_after(monkeypatch, 20)
    with pytest.raises(KeyboardInterrupt):
        make_synthetic_dataset(tmp_path, SMALL)
    # download.locate_dataset reuses tmp_path/chest_xray when it is a folder: it must not exist.
    assert not (tmp_path / "chest_xray").exists()
    assert list(tmp_path.iterdir()) == []  # the partial files were removed
    monkeypatch.undo()
    root = make_synthetic_dataset(tmp_path, SMALL)
    assert verify_dataset(root, SMALL) == SMALL
    assert load_dataset(root, 16, cache_dir=tmp_path / "cache", progress=False)["test"].class_counts() == SMALL["test"]


def test_leftover_of_a_killed_generation_is_ignored_then_removed(tmp_path):
    import os
    import time

    from workshop_utils.synthetic import PARTIAL_PREFIX

    killed = tmp_path / f"{PARTIAL_PREFIX}killed"  # what a killed process leaves (no finally ran)
    (killed / "train" / "NORMAL").mkdir(parents=True)
    (killed / "train" / "NORMAL" / "IM-1000-0001.jpeg").write_bytes(b"half a jpeg")
    running = tmp_path / f"{PARTIAL_PREFIX}running"  # another process generating right now
    running.mkdir()
    an_hour_ago = time.time() - 3700
    os.utime(killed, (an_hour_ago, an_hour_ago))
    root = make_synthetic_dataset(tmp_path, SMALL)
    assert verify_dataset(root, SMALL) == SMALL
    assert sorted(p.name for p in tmp_path.iterdir()) == [running.name, "chest_xray"]


def test_incomplete_tree_of_an_older_version_is_replaced_with_a_warning(tmp_path):
    complete = _files(make_synthetic_dataset(tmp_path / "reference", SMALL))
    root = make_synthetic_dataset(tmp_path / "old", SMALL)
    import shutil

    shutil.rmtree(root / "test")  # the old generator wrote in place; killed before it reached test/
    (root / "val" / "PNEUMONIA" / "person100_virus_10000.jpeg").unlink(missing_ok=True)
    with pytest.warns(UserWarning, match=f"Replacing the incomplete synthetic dataset at {root}"):
        again = make_synthetic_dataset(tmp_path / "old", SMALL)
    assert again == root and _files(root) == complete
    assert [p.name for p in (tmp_path / "old").iterdir()] == ["chest_xray"]


def test_complete_tree_is_reused_and_a_foreign_one_never_overwritten(tmp_path, write_jpeg):
    root = make_synthetic_dataset(tmp_path, SMALL)
    mtimes = {p: p.stat().st_mtime_ns for p in root.rglob("*.*")}
    assert make_synthetic_dataset(tmp_path, SMALL) == root
    assert {p: p.stat().st_mtime_ns for p in root.rglob("*.*")} == mtimes  # not written again
    mine = tmp_path / "mine"
    write_jpeg(mine / "chest_xray" / "train" / "NORMAL" / "my-scan.jpeg")
    with pytest.raises(FileExistsError, match="is not the synthetic dataset"):
        make_synthetic_dataset(mine, SMALL)
    assert [p.name for p in (mine / "chest_xray").rglob("*.*")] == ["my-scan.jpeg"]
    assert sorted(p.name for p in mine.iterdir()) == ["chest_xray"]


def test_two_processes_generating_at_once_both_succeed(tmp_path):
    import subprocess
    import sys

    code = ("import sys; from workshop_utils.synthetic import make_synthetic_dataset; "
            "print(make_synthetic_dataset(sys.argv[1]))")
    procs = [subprocess.Popen([sys.executable, "-c", code, str(tmp_path)], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outputs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [err for _, err in outputs]
    assert {out.strip() for out, _ in outputs} == {str(tmp_path / "chest_xray")}
    assert verify_dataset(tmp_path / "chest_xray", DEFAULT_COUNTS) == DEFAULT_COUNTS
    assert [p.name for p in tmp_path.iterdir()] == ["chest_xray"]
