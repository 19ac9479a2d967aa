"""``python -m workshop_utils check``: one OK / WARN / FAIL line per item, exit 0 when nothing FAILs."""
from __future__ import annotations

import argparse
import hashlib
import io
import time
import zipfile
from collections import namedtuple
from importlib import metadata
from pathlib import Path

import pytest
from helpers_data import MENDELEY, read_only, release_members, unreadable, zip_bytes  # noqa: F401
from PIL import Image

from workshop_utils import check, cli, dataset, paths, weights

SMALL = {"train": {"NORMAL": 2, "PNEUMONIA": 3}, "val": {"NORMAL": 1, "PNEUMONIA": 1},
         "test": {"NORMAL": 1, "PNEUMONIA": 2}}
TINY_RELEASE = "Tiny release (tests)"


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch) -> Path:
    """No user copy from outside; the default data folder and the caches under $WORKSHOP_HOME=tmp/home.
    Returns the default data folder (not created)."""
    for name in (paths.DATA_DIR_ENV, paths.CACHE_DIR_ENV):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv(paths.HOME_ENV, str(tmp_path / "home"))
    return tmp_path / "home" / "data"


@pytest.fixture
def tiny_release(monkeypatch):
    """SMALL's counts become a published release (check says OK for a release it recognises)."""
    monkeypatch.setitem(dataset.RELEASES, TINY_RELEASE, SMALL)


@pytest.fixture
def no_gpu_probe(monkeypatch):
    """Skip starting Keras (slow) in tests about other items."""
    monkeypatch.setattr(check, "check_gpu", lambda: check.Item("WARN", "GPU", "none found (test)", "QUICK"))


@pytest.fixture
def fake_weights(tmp_path, monkeypatch):
    """A small stand-in weights file in $KERAS_HOME/models, its md5 made the expected one."""
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    path = paths.keras_models_dir() / weights.VGG16_NOTOP_FILE
    path.parent.mkdir(parents=True)
    path.write_bytes(b"not really hdf5" * 1000)
    monkeypatch.setattr(weights, "VGG16_NOTOP_MD5", hashlib.md5(path.read_bytes()).hexdigest())
    return path


def _by_name(items: list[check.Item]) -> dict[str, check.Item]:
    return {item.name.split(" (")[0]: item for item in items}


def test_ready_machine_exits_0(tmp_path, make_tree, fake_weights, no_gpu_probe, tiny_release, capsys):
    root = make_tree(tmp_path / "data" / "chest_xray", SMALL)
    items = _by_name(check.run_checks(tmp_path / "data"))
    assert items["Python"].status == "OK"
    assert items["Dataset"] == check.Item(
        "OK", "Dataset", f"{root}: train 2 + 3, val 1 + 1, test 1 + 2 (NORMAL + PNEUMONIA): the {TINY_RELEASE}")
    assert items["Cache folder"] == check.Item("OK", "Cache folder",
                                               f"{tmp_path / 'home' / 'cache'} (will be created)")
    assert items["VGG16 weights"].status == "OK" and "md5 ok" in items["VGG16 weights"].detail

    args = argparse.Namespace(data_dir=tmp_path / "data", weights=None)
    assert check.main_check(args) == 0
    out = capsys.readouterr().out
    assert "\nREADY (" in out and "WARN  GPU: none found" in out and "-> QUICK" in out


def test_each_published_release_is_ok(tmp_path):
    """Mendeley's layout (no val/) with its exact counts, as its archive unpacks: OK, named."""
    with zipfile.ZipFile(io.BytesIO(zip_bytes(release_members(MENDELEY)))) as zf:
        zf.extractall(tmp_path / "mendeley")
    item = check.check_dataset(tmp_path / "mendeley")
    assert item == check.Item("OK", "Dataset", f"{tmp_path / 'mendeley' / 'chest_xray'}: train 1349 + 3883, "
                                               "test 234 + 390 (NORMAL + PNEUMONIA): the " + MENDELEY)


def test_missing_things_fail_with_what_to_do(tmp_path, isolated, monkeypatch, no_gpu_probe, capsys):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    code = cli.main(["check"])
    out = capsys.readouterr().out
    assert code == 1
    assert f"FAIL  Dataset: not found in {isolated}\n      -> python -m workshop_utils download" in out
    assert f"FAIL  VGG16 weights: {tmp_path / 'keras' / 'models' / weights.VGG16_NOTOP_FILE} not found" in out
    assert "NOT READY: fix Dataset, VGG16 weights" in out
    # A folder given with --data-dir that does not exist: named, with the setting.
    cli.main(["check", "--data-dir", str(tmp_path / "nothing")])
    out = capsys.readouterr().out
    assert (f"FAIL  Dataset: --data-dir {tmp_path / 'nothing'} does not exist\n      -> fix the path, or leave "
            f"out --data-dir to download the dataset into {isolated}\n") in out


def test_a_copy_without_its_test_folder_says_test_is_missing(tmp_path, make_tree, isolated, no_gpu_probe, capsys):
    root = make_tree(tmp_path / "mine" / "chest_xray", {"train": {"NORMAL": 2, "PNEUMONIA": 2},
                                                        "val": {"NORMAL": 1, "PNEUMONIA": 1}})
    assert cli.main(["check", "--data-dir", str(tmp_path / "mine")]) == 1
    out = capsys.readouterr().out
    assert (f"FAIL  Dataset: --data-dir {tmp_path / 'mine'} holds no chest X-ray dataset: expected a folder with "
            f"train/NORMAL, train/PNEUMONIA, test/NORMAL and test/PNEUMONIA, but {root} holds train/ but no test/ "
            "folder: test/NORMAL and test/PNEUMONIA are missing") in out


def test_mistyped_workshop_data_dir_fails_naming_it(tmp_path, isolated, monkeypatch):
    monkeypatch.setenv(paths.DATA_DIR_ENV, str(tmp_path / "hom" / "me"))
    assert check.check_dataset() == check.Item(
        "FAIL", "Dataset", f"WORKSHOP_DATA_DIR={tmp_path / 'hom' / 'me'} does not exist",
        f"fix the path, or unset WORKSHOP_DATA_DIR to download the dataset into {isolated}")


def test_an_archive_not_yet_unpacked_is_a_warning(isolated):
    isolated.mkdir(parents=True)
    (isolated / "ChestXRay2017.zip").write_bytes(b"PK")
    assert check.check_dataset() == check.Item("WARN", "Dataset", f"{isolated / 'ChestXRay2017.zip'} is not unpacked "
                                               "yet", "python -m workshop_utils download   (unpacks it; no network needed)")


def test_a_copy_that_differs_is_a_warning_and_a_class_without_images_fails(tmp_path, make_tree, monkeypatch):
    root = make_tree(tmp_path / "a", SMALL)
    monkeypatch.setenv(paths.DATA_DIR_ENV, str(root))
    item = check.check_dataset()
    assert item.status == "WARN"
    assert item.detail.startswith(f"{root}: train 2 + 3, val 1 + 1, test 1 + 2 (NORMAL + PNEUMONIA); matches no "
                                  "published release; closest: Kaggle release (chest-xray-pneumonia), but "
                                  "train/NORMAL: 2 images (the release has 1341); ")
    assert item.fix.startswith("fine for the workshop (the copy is used as it is)")
    for f in (root / "test" / "PNEUMONIA").iterdir():
        f.unlink()
    item = check.check_dataset()
    assert item.status == "FAIL" and "has no images in test/PNEUMONIA" in item.detail
    assert item.fix == "complete the copy, or get the dataset again: python -m workshop_utils download"


def test_extra_class_folder_is_a_warning(tmp_path, make_tree, tiny_release):
    root = make_tree(tmp_path / "a", SMALL)
    make_tree(tmp_path / "b", {"test": {"COVID": 1}})
    (tmp_path / "b" / "test" / "COVID").rename(root / "test" / "COVID")
    item = check.check_dataset(root)
    assert item.status == "WARN"
    assert item.detail.endswith(f"the {TINY_RELEASE}; test/COVID in {root} is not used: the lessons only use "
                                "the classes NORMAL and PNEUMONIA")


def test_unreadable_class_folder_fails_without_crashing(tmp_path, make_tree, unreadable):
    root = make_tree(tmp_path / "a", SMALL)
    folder = unreadable(root / "train" / "NORMAL")
    item = check.check_dataset(root)
    assert item.status == "FAIL"
    assert item.detail.startswith(f"Cannot read {folder} (Permission denied)")
    assert item.fix.startswith("make the folder readable")


def test_unreadable_split_folder_fails_without_crashing(tmp_path, make_tree, unreadable, monkeypatch):
    root = make_tree(tmp_path / "a", SMALL)
    folder = unreadable(root / "train")
    item = check.check_dataset(root)
    assert item.status == "FAIL" and f"cannot read {folder} (Permission denied)" in item.detail
    assert item.fix.startswith("fix the path, or leave out --data-dir")
    # A user folder below one that cannot be searched: said so, not "does not exist".
    monkeypatch.setenv(paths.DATA_DIR_ENV, str(folder / "NORMAL"))
    item = check.check_dataset()
    assert item.status == "FAIL" and item.detail == f"WORKSHOP_DATA_DIR={folder / 'NORMAL'} cannot be read " \
                                                    "(Permission denied)"


def test_corrupt_files_are_not_counted(tmp_path, make_tree, tiny_release):
    counts = {split: dict(per_class) for split, per_class in SMALL.items()}
    counts["train"]["NORMAL"] += 3
    root = make_tree(tmp_path / "a", counts)
    normal = sorted((root / "train" / "NORMAL").iterdir())
    normal[0].write_bytes(b"")  # zero bytes
    normal[1].write_text("not an image, only named like one")
    normal[2].write_bytes(normal[3].read_bytes()[:-200])  # a JPEG cut short
    item = check.check_dataset(root)
    assert item.status == "WARN"
    assert item.detail.startswith(f"{root}: train 2 + 3, val 1 + 1, test 1 + 2 (NORMAL + PNEUMONIA): the {TINY_RELEASE}; "
                                  "3 file(s) are not readable images and are not counted (")
    for f in normal[:3]:
        assert str(f.relative_to(root)) in item.detail
    assert item.fix == "the lessons skip them; delete or replace them"
    # Every image of a class broken: refused, the files named.
    for f in (root / "test" / "NORMAL").iterdir():
        f.write_bytes(b"")
    item = check.check_dataset(root)
    assert item.status == "FAIL" and "has no images in test/NORMAL" in item.detail
    assert item.detail.endswith(f"4 file(s) are not readable images and are not counted ({normal[0].relative_to(root)}, "
                                f"{normal[1].relative_to(root)}, {normal[2].relative_to(root)}, test/NORMAL/"
                                f"{next((root / 'test' / 'NORMAL').iterdir()).name})")


def test_image_opens_on_files(tmp_path, write_jpeg):
    good = write_jpeg(tmp_path / "a.jpeg")
    assert check.image_opens(good)
    png = tmp_path / "b.png"
    Image.new("L", (8, 8)).save(png)
    assert check.image_opens(png)
    broken_png = tmp_path / "c.png"
    broken_png.write_bytes(png.read_bytes()[:-20])
    assert not check.image_opens(broken_png)
    (tmp_path / "d.jpeg").write_bytes(good.read_bytes()[:-2])
    assert not check.image_opens(tmp_path / "d.jpeg")
    (tmp_path / "e.jpeg").write_bytes(b"")
    assert not check.image_opens(tmp_path / "e.jpeg")


def test_shared_downsized_copy_is_a_warning(real_data_root, real_counts):
    t0 = time.perf_counter()
    item = check.check_dataset(real_data_root)
    seconds = time.perf_counter() - t0
    assert item.status == "WARN", item
    test = real_counts["test"]
    assert f"test {test['NORMAL']} + {test['PNEUMONIA']}" in item.detail
    assert "test/NORMAL: 113 images (the release has 234)" in item.detail
    assert "not readable" not in item.detail  # every one of the 5,527 files opens
    print(f"check_dataset on the shared copy (every file opened): {seconds:.2f} s")


def test_unwritable_cache_folder_fails_with_what_to_do(tmp_path, monkeypatch, read_only):
    cache = read_only(tmp_path / "cache")
    monkeypatch.setenv(paths.CACHE_DIR_ENV, str(cache))
    assert check.check_cache() == check.Item(
        "FAIL", "Cache folder", f"{cache} is not writable (Permission denied)",
        "export WORKSHOP_CACHE_DIR=<a folder you can write to>   (or WORKSHOP_HOME=<folder>: the caches then go "
        "to <folder>/cache)")
    monkeypatch.setenv(paths.CACHE_DIR_ENV, str(cache / "below"))  # would be created in an unwritable folder
    assert check.check_cache().status == "FAIL"
    monkeypatch.setenv(paths.CACHE_DIR_ENV, str(tmp_path / "ok"))
    (tmp_path / "ok").mkdir()
    assert check.check_cache() == check.Item("OK", "Cache folder", f"{tmp_path / 'ok'} (writable)")


def test_weights_file_checked_by_size_and_md5(tmp_path, fake_weights):
    assert check.check_weights().status == "OK"
    assert check.check_weights(fake_weights).status == "OK"  # --weights FILE
    truncated = tmp_path / "truncated.h5"
    truncated.write_bytes(fake_weights.read_bytes()[:100])
    item = check.check_weights(truncated)
    assert item.status == "FAIL" and "incomplete (0.0 of 58.9 MB)" in item.detail and "delete" in item.fix
    assert check.check_weights(tmp_path / "absent.h5").status == "FAIL"


def test_missing_or_old_packages_fail(monkeypatch):
    real_version = metadata.version

    def version(dist):
        if dist == "seaborn":
            raise metadata.PackageNotFoundError(dist)
        return "2.9.0" if dist == "keras" else real_version(dist)

    monkeypatch.setattr(metadata, "version", version)
    items = _by_name(check.check_packages())
    assert items["seaborn"].status == "FAIL" and items["seaborn"].fix == 'pip install "seaborn>=0.13"'
    assert items["keras"].status == "FAIL" and f"older than {check.declared_minimum('keras')}" in items["keras"].detail
    assert items["numpy"].status == "OK"


def test_backend_package_follows_keras_backend(monkeypatch):
    monkeypatch.setenv("KERAS_BACKEND", "jax")
    monkeypatch.setattr(metadata, "version", lambda dist: "0.4.30" if dist == "jax" else "99.0")
    item = check.check_packages()[1]
    assert item.name == "jax (Keras backend jax)" and item.status == "OK"
    monkeypatch.setenv("KERAS_BACKEND", "mxnet")
    assert check.check_packages()[1].status == "FAIL"


def test_little_disk_space_fails(tmp_path, monkeypatch):
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(check.shutil, "disk_usage", lambda path: usage(10 * check.GB, 0, check.GB // 2))
    assert check.check_disk(tmp_path).status == "FAIL"
    monkeypatch.setattr(check.shutil, "disk_usage", lambda path: usage(10 * check.GB, 0, 5 * check.GB))
    assert check.check_disk(tmp_path, dataset_present=True).status == "OK"
    assert check.check_disk(tmp_path, dataset_present=False).status == "WARN"


def test_gpu_probe_starts_keras():
    item = check.check_gpu()
    assert item.status in ("OK", "WARN") and "Keras backend" in item.detail
