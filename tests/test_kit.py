"""The offline kit, built from local files, then used with the network switched off."""
from __future__ import annotations

import argparse
import hashlib
import os
import socket
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from helpers_data import KAGGLE, no_network, read_only, release_members, zip_bytes  # noqa: F401 (fixtures)
from helpers_models import save_fake_vgg16_weights

from workshop_utils import check, dataset, download, features, kit, load_dataset, paths, weights
from workshop_utils.download import DownloadError

SMALL = {"train": {"NORMAL": 3, "PNEUMONIA": 4}, "val": {"NORMAL": 1, "PNEUMONIA": 1},
         "test": {"NORMAL": 2, "PNEUMONIA": 2}}


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    """No user copy or download URL from outside; SMALL's counts are a known release, so the kit's data
    checks OK (any other count is used with a warning, see test_download)."""
    for name in (paths.DATA_DIR_ENV, download.DATA_URL_ENV):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv(paths.HOME_ENV, str(tmp_path / "home"))
    monkeypatch.setitem(dataset.RELEASES, "Tiny release (tests)", SMALL)


@pytest.fixture(scope="module")
def weights_source(tmp_path_factory) -> tuple[Path, str]:
    """A loadable stand-in for the VGG16 ImageNet weights file, and its md5."""
    path = save_fake_vgg16_weights(tmp_path_factory.mktemp("weights") / weights.VGG16_NOTOP_FILE)
    return path, hashlib.md5(path.read_bytes()).hexdigest()


@pytest.fixture
def archive(tmp_path, make_tree) -> Path:
    """A small zip in the dataset's layout (chest_xray/train/NORMAL/..., plus macOS junk)."""
    tree = make_tree(tmp_path / "tree" / "chest_xray", SMALL)
    path = tmp_path / "upload" / "ChestXRay2017.zip"
    path.parent.mkdir()
    with zipfile.ZipFile(path, "w") as zf:
        for file in sorted(tree.rglob("*.jpeg")):
            zf.write(file, "chest_xray/" + file.relative_to(tree).as_posix())
        zf.writestr("__MACOSX/chest_xray/._junk", b"junk")
    return path


@pytest.fixture
def md5_of(monkeypatch, weights_source):
    monkeypatch.setattr(weights, "VGG16_NOTOP_MD5", weights_source[1])


def test_kit_from_local_files(tmp_path, archive, weights_source, md5_of, no_network):
    parts = kit.build_kit(tmp_path / "kit", dataset_archive=archive, weights_file=weights_source[0],
                          progress=False)
    kit_dir = (tmp_path / "kit").resolve()
    assert parts["data"] == kit_dir / "data" / "chest_xray"
    assert parts["weights"] == kit_dir / "keras" / "models" / weights.VGG16_NOTOP_FILE
    assert parts["weights"].read_bytes() == weights_source[0].read_bytes()
    assert archive.is_file()  # the attendee's own archive is neither moved nor deleted
    assert sorted(p.name for p in (kit_dir / "data").iterdir()) == ["chest_xray"]  # nothing staged left over
    readme = parts["readme"].read_text()
    for needle in ("export WORKSHOP_DATA_DIR=KIT/data", "export KERAS_HOME=KIT/keras",
                   f"keras/models/{weights.VGG16_NOTOP_FILE}", "python -m workshop_utils check",
                   'VGG16(weights="imagenet")', str(kit_dir)):
        assert needle in readme
    assert no_network == []


def test_kit_works_with_no_network(tmp_path, archive, weights_source, md5_of, no_network, monkeypatch,
                                   capsys):
    kit_dir = tmp_path / "kit"
    args = argparse.Namespace(dir=kit_dir, source="mendeley", dataset_archive=archive,
                              weights_file=weights_source[0])
    assert kit.main_kit(args) == 0
    out = capsys.readouterr().out
    assert "Offline kit ready" in out
    assert f"dataset  {(kit_dir / 'data' / 'chest_xray').resolve()}  train 3 + 4, val 1 + 1, test 2 + 2 " \
           "(NORMAL + PNEUMONIA): the Tiny release (tests)" in out
    weights_file = kit_dir / "keras" / "models" / weights.VGG16_NOTOP_FILE
    stamp = weights_file.stat().st_mtime_ns
    # Complete: a re-run without local files fetches nothing (and cannot: the network is off).
    kit.build_kit(kit_dir, progress=False)
    assert weights_file.stat().st_mtime_ns == stamp and no_network == []

    monkeypatch.setenv("WORKSHOP_DATA_DIR", str(kit_dir / "data"))
    monkeypatch.setenv("KERAS_HOME", str(kit_dir / "keras"))
    monkeypatch.setenv(paths.CACHE_DIR_ENV, str(tmp_path / "cache"))
    assert check.main_check(argparse.Namespace(data_dir=None, weights=None)) == 0
    out = capsys.readouterr().out
    assert "OK    Dataset:" in out and "OK    VGG16 weights:" in out and "FAIL" not in out
    assert weights.vgg16_weights("imagenet").keras_weights == str(weights_file)

    # A lesson's first steps: the data from the kit, VGG16 with the kit's weights, features.
    import keras

    root = download.locate_dataset(None)
    assert root.resolve() == (kit_dir / "data" / "chest_xray").resolve()
    data = load_dataset(root, 32, cache_dir=tmp_path / "cache", progress=False)
    assert len(data["train"]) == 9 and len(data["test"]) == 4
    base = keras.applications.VGG16(weights=weights.vgg16_weights("imagenet").keras_weights, include_top=False,
                                    input_shape=(32, 32, 3))
    reference = keras.applications.VGG16(weights=str(weights_source[0]), include_top=False,
                                         input_shape=(32, 32, 3))
    np.testing.assert_array_equal(base.get_weights()[0], reference.get_weights()[0])

    out = features.frozen_vgg16_features(base, data["train"].images, batch_size=4, cache_dir=tmp_path / "cache",
                                         progress=False)
    assert out.shape == (9, 1, 1, 512) and np.isfinite(out).all()
    assert no_network == []


def test_keras_itself_looks_in_kit_keras_models(tmp_path, archive, weights_source, md5_of):
    """KERAS_HOME=KIT/keras makes Keras' own cache lookup (get_file, cache_subdir="models") find the file."""
    parts = kit.build_kit(tmp_path / "kit", dataset_archive=archive, weights_file=weights_source[0],
                          progress=False)
    code = ("import keras; print(keras.utils.get_file(%r, origin='http://127.0.0.1:9/unreachable', "
            "cache_subdir='models'))" % weights.VGG16_NOTOP_FILE)
    env = dict(os.environ, KERAS_HOME=str(parts["dir"] / "keras"), TF_CPP_MIN_LOG_LEVEL="3")
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == str(parts["weights"])


def test_kit_refuses_bad_local_files(tmp_path, archive, weights_source, md5_of, capsys):
    broken = tmp_path / "broken.zip"
    broken.write_bytes(archive.read_bytes()[:3000])
    with pytest.raises(DownloadError, match="broken.zip is damaged"):
        kit.kit_dataset(tmp_path / "kit" / "data", dataset_archive=broken, progress=False)
    assert broken.is_file()  # reported, not deleted
    other = tmp_path / "other.h5"
    other.write_bytes(b"something else")
    with pytest.raises(DownloadError, match="md5 differs"):
        kit.kit_weights(tmp_path / "kit" / "keras" / "models", other)
    args = argparse.Namespace(dir=tmp_path / "kit", source="mendeley", dataset_archive=tmp_path / "absent.zip",
                              weights_file=None)
    assert kit.main_kit(args) == 1
    assert "absent.zip not found" in capsys.readouterr().err


def test_kit_downloads_into_a_real_copy(tmp_path, make_tree, weights_source, md5_of, monkeypatch):
    """Downloads go through download_dataset / fetch_file; Kaggle's symlink becomes a real folder, and the
    downloaded archive is dropped so the kit is not twice as big."""
    elsewhere = make_tree(tmp_path / "kagglehub-cache" / "chest_xray", SMALL)
    fetched = []

    def fake_download_dataset(data_dir, source, progress):
        assert source == "kaggle"
        data_dir.mkdir(parents=True)
        (data_dir / download.ARCHIVE_NAME).write_bytes(b"archive")
        (data_dir / "chest_xray").symlink_to(elsewhere, target_is_directory=True)
        return data_dir / "chest_xray"

    def fake_fetch_file(url, dest, known_hash, progress):
        fetched.append((url, known_hash))
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(weights_source[0].read_bytes())
        return dest

    monkeypatch.setattr(download, "download_dataset", fake_download_dataset)
    monkeypatch.setattr(download, "fetch_file", fake_fetch_file)
    parts = kit.build_kit(tmp_path / "kit", source="kaggle", progress=False)
    link = parts["dir"] / "data" / "chest_xray"
    assert link.is_dir() and not link.is_symlink() and parts["data"] == link
    assert not (parts["dir"] / "data" / download.ARCHIVE_NAME).exists()
    assert fetched == [(weights.VGG16_NOTOP_URL, f"md5:{weights_source[1]}")]


def test_kit_from_a_published_release_archive(tmp_path, weights_source, md5_of, no_network, capsys):
    """Kaggle's zip as its site serves it (nested duplicate tree, __MACOSX, val/), given with --dataset-archive:
    the kit holds the release, named, and the archive is not copied into the kit."""
    archive = tmp_path / "archive.zip"
    archive.write_bytes(zip_bytes(release_members(KAGGLE)))
    args = argparse.Namespace(dir=tmp_path / "kit", source="mendeley", dataset_archive=archive,
                              weights_file=weights_source[0])
    assert kit.main_kit(args) == 0
    out = capsys.readouterr().out
    data = (tmp_path / "kit" / "data").resolve()
    assert f"train 1341 + 3875, val 8 + 8, test 234 + 390 (NORMAL + PNEUMONIA): the {KAGGLE}" in out
    assert sorted(p.name for p in data.iterdir()) == ["chest_xray"] and archive.is_file()
    assert no_network == []


def test_kit_in_a_read_only_folder_is_a_clear_error(tmp_path, archive, weights_source, md5_of, read_only, capsys):
    folder = read_only(tmp_path / "usb")
    args = argparse.Namespace(dir=folder, source="mendeley", dataset_archive=archive, weights_file=weights_source[0])
    assert kit.main_kit(args) == 1
    assert capsys.readouterr().err == (f"error: Cannot write to the kit folder {folder} (Permission denied): choose "
                                       "a folder you can write to.\n")


def test_a_lesson_notebook_runs_from_the_kit_with_no_network(tmp_path, weights_source, md5_of):
    """Build a kit from local files (synthetic data zip + stand-in weights), then run lesson 2 against it in a
    kernel whose every HTTP(S) request goes to a closed local port."""
    import json

    import papermill

    from workshop_utils import runner
    from workshop_utils.synthetic import make_synthetic_dataset

    tree = make_synthetic_dataset(tmp_path / "synthetic")
    archive = tmp_path / "upload" / "ChestXRay2017.zip"
    archive.parent.mkdir()
    with zipfile.ZipFile(archive, "w") as zf:
        for file in sorted(p for p in tree.rglob("*") if p.is_file()):
            zf.write(file, "chest_xray/" + file.relative_to(tree).as_posix())
    kit_dir = tmp_path / "kit"
    kit.build_kit(kit_dir, dataset_archive=archive, weights_file=weights_source[0], progress=False)
    weights_file = kit_dir / "keras" / "models" / weights.VGG16_NOTOP_FILE

    closed = "http://127.0.0.1:9"  # the discard port: nothing listens there
    env = {"HTTP_PROXY": closed, "HTTPS_PROXY": closed, "http_proxy": closed, "https_proxy": closed,
           "KERAS_HOME": str(kit_dir / "keras"), "WORKSHOP_CACHE_DIR": str(tmp_path / "cache")}
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        out = tmp_path / "run"
        out.mkdir()
        papermill.execute_notebook(
            str(runner.NOTEBOOK_DIR / "02_baseline_vgg16.ipynb"), str(out / "02.ipynb"), cwd=str(out),
            kernel_name="python3", progress_bar=False,
            parameters={"DATA_DIR": str(kit_dir / "data"), "QUICK": True, "WEIGHTS": str(weights_file),
                        "RUN_DIR": str(out)})
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    executed = (out / "02.ipynb").read_text()
    assert "RANDOM weights" not in executed  # the kit's weights file was used, no download was tried
    assert json.loads((out / "results.json").read_text())[0]["lesson"].startswith("02")
