"""Which VGG16 weights a lesson loads, and what the run records say: no silent fallback to random weights."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from helpers_models import save_fake_vgg16_weights

from workshop_utils import download, weights
from workshop_utils.download import DownloadError
from workshop_utils.weights import VGG16Weights, vgg16_weights


@pytest.fixture(scope="module")
def fake_weights(tmp_path_factory) -> Path:
    """A loadable stand-in for Keras' ImageNet file (random weights, the same h5 layout)."""
    return save_fake_vgg16_weights(tmp_path_factory.mktemp("w") / weights.VGG16_NOTOP_FILE)


@pytest.fixture
def offline(monkeypatch, tmp_path) -> Path:
    """An empty Keras home and no way to download: returns where the ImageNet file would have to go."""
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    monkeypatch.setattr(weights, "VGG16_NOTOP_URL", "http://127.0.0.1:9/vgg16.h5")  # nothing listens
    monkeypatch.setattr(download, "RETRY_BACKOFF", 0.0)
    return tmp_path / "keras" / "models" / weights.VGG16_NOTOP_FILE


def test_random_weights_only_when_asked_and_recorded_as_such():
    for asked in (None, "none", "None", "random"):
        assert vgg16_weights(asked) == VGG16Weights(None, "none (random weights)")
    with pytest.raises(TypeError):
        vgg16_weights("imagenet", allow_random=True)  # the silent fallback is gone


def test_offline_imagenet_is_an_error_that_says_what_to_do(offline):
    with pytest.raises(DownloadError) as info:
        vgg16_weights("imagenet")
    message = str(info.value)
    assert message.startswith("The ImageNet weights for VGG16 are not on this machine and cannot be downloaded")
    assert f"copy {weights.VGG16_NOTOP_FILE} (from the offline kit) to {offline}" in message
    assert "WEIGHTS = None (--weights none)" in message and "--weights FILE" in message
    assert not offline.exists() and not offline.with_name(offline.name + ".part").exists()


def test_imagenet_file_in_keras_cache_is_used_and_named(offline, fake_weights, monkeypatch):
    offline.parent.mkdir(parents=True)
    offline.write_bytes(fake_weights.read_bytes())
    monkeypatch.setattr(weights, "VGG16_NOTOP_MD5", download.md5_of(fake_weights))
    assert vgg16_weights("imagenet") == VGG16Weights(str(offline), f"imagenet ({offline})")
    assert vgg16_weights() == vgg16_weights("imagenet")


def test_a_damaged_cached_file_is_reported_not_deleted(offline):
    offline.parent.mkdir(parents=True)
    offline.write_bytes(b"half a download")
    with pytest.raises(DownloadError, match=re.escape(f"{offline} is damaged or not Keras' VGG16 weights file")):
        vgg16_weights("imagenet")
    assert offline.read_bytes() == b"half a download"


def test_a_local_file_is_recorded_by_path_and_kind(fake_weights, tmp_path, monkeypatch):
    assert vgg16_weights(fake_weights) == VGG16Weights(str(fake_weights), f"file {fake_weights}")
    assert vgg16_weights(str(fake_weights)).description == f"file {fake_weights}"
    monkeypatch.setattr(weights, "VGG16_NOTOP_MD5", download.md5_of(fake_weights))  # the real ImageNet file
    assert vgg16_weights(fake_weights).description == f"imagenet ({fake_weights})"
    with pytest.raises(FileNotFoundError, match=re.escape(f"VGG16 weights file {tmp_path / 'no.h5'} not found")
                       + ".*WEIGHTS = None \\(--weights none\\)"):
        vgg16_weights(tmp_path / "no.h5")


def test_what_is_recorded_is_what_keras_loads(fake_weights):
    import keras
    import numpy as np

    chosen = vgg16_weights(str(fake_weights))
    base = keras.applications.VGG16(weights=chosen.keras_weights, include_top=False, input_shape=(32, 32, 3))
    reference = keras.applications.VGG16(weights=str(fake_weights), include_top=False, input_shape=(32, 32, 3))
    np.testing.assert_array_equal(base.get_weights()[0], reference.get_weights()[0])
    random = keras.applications.VGG16(weights=vgg16_weights(None).keras_weights, include_top=False,
                                      input_shape=(32, 32, 3))
    assert not np.array_equal(random.get_weights()[0], reference.get_weights()[0])


def _not_vgg16_files(folder: Path) -> dict[str, tuple[Path, str]]:
    """Files a user might pass by mistake, with what the error must call each."""
    import keras
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    text = folder / "notes.h5"
    text.write_text("not weights\n")
    png = folder / "xray.png"
    Image.new("L", (8, 8)).save(png)
    dense = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    dense.save_weights(folder / "head.weights.h5")
    dense.save(folder / "model.keras")
    convs = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Conv2D(4, 3), keras.layers.Conv2D(8, 3)])
    convs.save_weights(folder / "small_cnn.weights.h5")
    return {"text": (text, "is a text file, not VGG16 weights"),
            "png": (png, "is a PNG image, not VGG16 weights"),
            "dense": (folder / "head.weights.h5", "is an HDF5 file with dense layers (dense)"),
            "keras model": (folder / "model.keras", "is a zip archive (a .keras model file? give the weights file"),
            "other convs": (folder / "small_cnn.weights.h5",
                            "is an HDF5 file, but not VGG16's layers: it holds 2 conv kernels; VGG16 has 13")}


@pytest.fixture(scope="module")
def not_vgg16(tmp_path_factory):
    return _not_vgg16_files(tmp_path_factory.mktemp("wrong"))


@pytest.mark.parametrize("which", ["text", "png", "dense", "keras model", "other convs"])
def test_a_weights_file_that_is_not_vgg16_is_refused_up_front_in_one_line(which, not_vgg16):
    path, what = not_vgg16[which]
    proc = subprocess.run([sys.executable, "-m", "workshop_utils", "run", "--weights", str(path), "--data-dir",
                           "synthetic", "--quick", "--only", "2", "--out", str(path.parent / f"run-{which}")],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2
    [line] = [line for line in proc.stderr.splitlines() if line.startswith("python -m workshop_utils run: error")]
    assert f"argument --weights: {path} {what}" in line
    assert "Expected: VGG16 weights without the classifier: an HDF5 file holding its 13 conv layers" in line
    assert "Traceback" not in proc.stderr and "\x1b[" not in proc.stderr
    assert not (path.parent / f"run-{which}").exists()  # refused before anything ran
    with pytest.raises(weights.WeightsFileError, match=re.escape(f"{path} {what}")):
        vgg16_weights(path)  # WEIGHTS = path in a notebook: the same message


def test_vgg16_weights_files_in_both_layouts_pass_the_check(fake_weights):
    from workshop_utils import runner

    assert weights.check_weights_file(fake_weights) == fake_weights  # Keras' legacy layout, as the ImageNet file
    import keras

    base = keras.applications.VGG16(weights=None, include_top=False, input_shape=(32, 32, 3))
    keras3 = fake_weights.parent / "vgg16_keras3.weights.h5"
    base.save_weights(keras3)  # Keras 3's layout, as hed-weights writes it
    assert runner.weights_option(str(keras3)) == str(keras3.resolve())
