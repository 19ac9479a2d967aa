"""Saving lesson models with their description, Grad-CAM, and the ``predict`` command (tiny models only)."""
from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import keras
import numpy as np
import pytest
from helpers_models import lesson_vgg16, patch_detector, patch_image, small_cnn
from PIL import Image

from workshop_utils import cli, gradcam, saving
from workshop_utils.predict import predict_files
from workshop_utils.saving import ModelFormatError

REPO = Path(__file__).resolve().parents[1]
LINE = re.compile(r"^(?P<file>\S+)\s+ (?P<cls>NORMAL|PNEUMONIA)\s+ (?P<p>[01]\.\d\d)$")


@pytest.fixture(scope="module")
def cnn_model_file(tmp_path_factory) -> Path:
    """A plain CNN saved as a lesson model: 24 px, gray scaled to 0-1, one channel."""
    path = tmp_path_factory.mktemp("models") / "cnn.keras"
    return saving.save_lesson_model(small_cnn(24, 1), path, image_size=24, preprocessing="scale01", channels=1)


@pytest.fixture(scope="module")
def vgg_model_file(tmp_path_factory) -> Path:
    """The lessons' model (frozen VGG16 + Flatten/Dense head), random weights, 32 px."""
    path = tmp_path_factory.mktemp("models") / "vgg.keras"
    return saving.save_lesson_model(lesson_vgg16(32), path, image_size=32, preprocessing="vgg16")


@pytest.fixture(scope="module")
def plain_keras_file(tmp_path_factory) -> Path:
    """A Keras model saved with plain model.save: no workshop description."""
    path = tmp_path_factory.mktemp("models") / "plain.keras"
    small_cnn(24, 1).save(path)
    return path


# --------------------------------------------------------------------------- saving

def test_saved_model_carries_its_description_and_still_loads_in_keras(cnn_model_file):
    with zipfile.ZipFile(cnn_model_file) as zf:
        meta = json.loads(zf.read(saving.ENTRY))
    assert meta == {"format": "pneumonia-workshop-model", "version": 1, "image_size": 24,
                    "preprocessing": "scale01", "channels": 1, "classes": ["NORMAL", "PNEUMONIA"],
                    "keras_version": keras.__version__}
    plain = keras.saving.load_model(cnn_model_file)  # the extra zip entry does not bother Keras
    model, loaded = saving.load_lesson_model(cnn_model_file)
    assert loaded == meta
    x = np.random.default_rng(0).random((2, 24, 24, 1)).astype("float32")
    np.testing.assert_allclose(model.predict(x, verbose=0), plain.predict(x, verbose=0), rtol=1e-6)


def test_write_metadata_describes_a_plain_keras_file(plain_keras_file, tmp_path):
    path = tmp_path / "described.keras"
    path.write_bytes(plain_keras_file.read_bytes())
    with pytest.raises(ModelFormatError, match="not a model saved by the workshop lessons.*save_lesson_model"):
        saving.load_lesson_model(path)
    saving.write_metadata(path, 24, "scale01", channels=1)
    saving.write_metadata(path, 24, "scale01", channels=3)  # replaces, does not duplicate
    with zipfile.ZipFile(path) as zf:
        assert zf.namelist().count(saving.ENTRY) == 1
    assert saving.read_metadata(path)["channels"] == 3


def test_save_refuses_inconsistent_descriptions(tmp_path):
    model = small_cnn(24, 1)
    with pytest.raises(ValueError, match="preprocessing"):
        saving.save_lesson_model(model, tmp_path / "m.keras", 24, "imagenet")
    with pytest.raises(ValueError, match="channels"):
        saving.save_lesson_model(model, tmp_path / "m.keras", 24, "vgg16", channels=1)
    with pytest.raises(ValueError, match="shape"):
        saving.save_lesson_model(model, tmp_path / "m.keras", 32, "scale01", channels=1)
    with pytest.raises(ValueError, match=".keras"):
        saving.save_lesson_model(model, tmp_path / "m.h5", 24, "scale01", channels=1)
    assert not list(tmp_path.iterdir())


def test_load_errors_name_the_problem(tmp_path, plain_keras_file):
    with pytest.raises(FileNotFoundError, match="nowhere.keras"):
        saving.load_lesson_model(tmp_path / "nowhere.keras")
    junk = tmp_path / "junk.keras"
    junk.write_bytes(os.urandom(2000))
    with pytest.raises(ModelFormatError, match="not a Keras model file"):
        saving.load_lesson_model(junk)
    other_zip = tmp_path / "other.keras"
    with zipfile.ZipFile(other_zip, "w") as zf:
        zf.writestr("hello.txt", "hi")
    with pytest.raises(ModelFormatError, match="not a Keras model file"):
        saving.load_lesson_model(other_zip)
    with pytest.raises(ModelFormatError, match="not a model saved by the workshop lessons"):
        saving.load_lesson_model(plain_keras_file)
    assert issubclass(ModelFormatError, ValueError)


def test_prepare_images_follows_the_description():
    gray = np.full((2, 8, 8), 128, np.uint8)
    vgg = saving.prepare_images(gray, {"image_size": 8, "preprocessing": "vgg16", "channels": 3})
    assert vgg.shape == (2, 8, 8, 3) and vgg.dtype == np.float32
    np.testing.assert_allclose(vgg[0, 0, 0], [128 - 103.939, 128 - 116.779, 128 - 123.68], atol=1e-3)
    one = saving.prepare_images(gray, {"image_size": 8, "preprocessing": "scale01", "channels": 1})
    three = saving.prepare_images(gray, {"image_size": 8, "preprocessing": "scale01", "channels": 3})
    assert one.shape == (2, 8, 8, 1) and three.shape == (2, 8, 8, 3)
    np.testing.assert_allclose(three[..., 2], 128 / 255)
    with pytest.raises(ValueError, match="shape"):
        saving.prepare_images(gray, {"image_size": 16, "preprocessing": "scale01", "channels": 1})


# --------------------------------------------------------------------------- Grad-CAM

def _mass_left(heatmap: np.ndarray) -> float:
    return float(heatmap[:, : heatmap.shape[1] // 2].sum() / heatmap.sum())


def test_gradcam_lights_up_the_patch_behind_each_class():
    model = patch_detector(16)
    assert gradcam.find_conv_layer(model).name == "detector"  # the last Conv2D, picked automatically
    both = patch_image(16, bright="left", dark="right")[None]
    pneumonia = gradcam.gradcam(model, both, class_index=1)[0]
    normal = gradcam.gradcam(model, both, class_index=0)[0]
    assert pneumonia.shape == (16, 16) and pneumonia.max() == pytest.approx(1.0)
    assert _mass_left(pneumonia) > 0.95  # PNEUMONIA is decided by the bright patch, on the left
    assert _mass_left(normal) < 0.05     # NORMAL by the dark patch, on the right
    moved = gradcam.gradcam(model, patch_image(16, bright="right")[None])[0]  # default: predicted class
    assert model.predict(patch_image(16, bright="right")[None], verbose=0).argmax() == 1
    assert _mass_left(moved) < 0.05
    assert model.get_layer("classifier").activation is keras.activations.softmax  # restored


def test_gradcam_on_the_lessons_nested_vgg16():
    model = lesson_vgg16(32)
    x = saving.prepare_images(np.random.default_rng(0).integers(0, 256, (3, 32, 32), dtype=np.uint8),
                              {"image_size": 32, "preprocessing": "vgg16", "channels": 3})
    assert gradcam.find_conv_layer(model).name == "block5_conv3"
    heat = gradcam.gradcam(model, x, batch_size=2)
    assert heat.shape == (3, 2, 2) and heat.dtype == np.float32
    assert heat.min() >= 0.0 and heat.max() <= 1.0 and np.isfinite(heat).all()
    assert gradcam.gradcam(model, x[:1], class_index=0, layer_name="block4_conv3").shape == (1, 4, 4)
    with pytest.raises(ValueError, match="No layer named"):
        gradcam.gradcam(model, x, layer_name="block9_conv9")
    dense = model.layers[-1].layers[-1].name
    with pytest.raises(ValueError, match="last layer"):
        gradcam.gradcam(model, x, layer_name=dense)


def test_gradcam_on_the_fine_tuning_lessons_split_vgg16():
    """Lesson 7's model: Sequential([Input, blocks 1-4 (a functional sub-model), block 5 (a Sequential
    re-using VGG16's layers), head with BatchNormalization and Dropout])."""
    base = keras.applications.VGG16(weights=None, include_top=False, input_shape=(32, 32, 3))
    blocks1to4 = keras.Model(base.input, base.get_layer("block4_pool").output)
    block5 = keras.Sequential([keras.Input(blocks1to4.output.shape[1:])] + [
        base.get_layer(n) for n in ("block5_conv1", "block5_conv2", "block5_conv3", "block5_pool")])
    head = keras.Sequential([keras.Input(block5.outputs[0].shape[1:]), keras.layers.Flatten(),
                             keras.layers.Dense(4, activation="relu"), keras.layers.BatchNormalization(),
                             keras.layers.Dropout(0.5), keras.layers.Dense(2, activation="softmax")])
    model = keras.Sequential([keras.Input((32, 32, 3)), blocks1to4, block5, head])
    x = np.random.default_rng(0).normal(0, 50, (2, 32, 32, 3)).astype("float32")
    heat = gradcam.gradcam(model, x)
    assert heat.shape == (2, 2, 2) and np.isfinite(heat).all() and heat.max() == pytest.approx(1.0)
    np.testing.assert_array_equal(gradcam.gradcam(model, x), heat)  # Dropout stays off


def test_gradcam_needs_a_conv_layer_and_a_chain():
    dense_only = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    with pytest.raises(ValueError, match="no Conv2D"):
        gradcam.gradcam(dense_only, np.zeros((1, 4), np.float32))
    inp = keras.Input((8, 8, 1))
    a = keras.layers.Conv2D(2, 3, name="a")(inp)
    b = keras.layers.Conv2D(2, 3, name="b")(inp)
    out = keras.layers.Dense(2)(keras.layers.Flatten()(keras.layers.Concatenate()([a, b])))
    with pytest.raises(ValueError, match="branches"):
        gradcam.gradcam(keras.Model(inp, out), np.zeros((1, 8, 8, 1), np.float32))


def test_overlay_colours_the_hot_region():
    gray = np.full((40, 60), 100, np.uint8)
    heat = np.zeros((4, 4), np.float32)
    heat[:, :2] = 1.0
    out = gradcam.overlay(gray, heat, alpha=0.5)
    assert out.shape == (40, 60, 3) and out.dtype == np.uint8
    assert out[20, 5, 0] > out[20, 5, 2]    # hot: red in "jet"
    assert out[20, 55, 2] > out[20, 55, 0]  # cold: blue
    with pytest.raises(ValueError):
        gradcam.overlay(np.zeros((4, 4, 3), np.uint8), heat)


@pytest.mark.skipif(importlib.util.find_spec("jax") is None, reason="jax is not installed")
def test_gradcam_on_jax_matches_tensorflow():
    code = ("import numpy as np, sys; sys.path.insert(0, 'tests');"
            "from helpers_models import patch_detector, patch_image;"
            "from workshop_utils import gradcam;"
            "x = patch_image(16, bright='left', dark='right')[None];"
            "print(gradcam.gradcam(patch_detector(16), x, class_index=1).round(4).tolist())")
    env = dict(os.environ, KERAS_BACKEND="jax")
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    jax_heat = np.array(json.loads(done.stdout.strip().splitlines()[-1]))
    tf_heat = gradcam.gradcam(patch_detector(16), patch_image(16, bright="left", dark="right")[None], 1)
    np.testing.assert_allclose(jax_heat, tf_heat, atol=1e-3)


# --------------------------------------------------------------------------- predict on real images

@pytest.fixture(scope="module")
def real_images(real_data_root) -> list[Path]:
    picks = []
    for cls in ("NORMAL", "PNEUMONIA"):
        picks += sorted((real_data_root / "test" / cls).glob("*.jpeg"))[:3]
    return picks


def test_predict_real_images_with_gradcam(vgg_model_file, real_images, tmp_path, capsys):
    results = predict_files(vgg_model_file, real_images, gradcam_dir=tmp_path / "cam")
    assert len(results) == len(real_images) == 6 and all(r["error"] is None for r in results)
    for r in results:
        assert r["class"] in ("NORMAL", "PNEUMONIA") and 0.5 <= r["probability"] <= 1.0
        p_normal = 1 - r["p_pneumonia"]
        assert r["probability"] == pytest.approx(max(r["p_pneumonia"], p_normal))
        with Image.open(r["gradcam"]) as img, Image.open(r["file"]) as original:
            assert img.mode == "RGB" and max(img.size) <= 512
            assert img.size[0] / img.size[1] == pytest.approx(original.size[0] / original.size[1], rel=0.02)

    code = cli.main(["predict", str(vgg_model_file), *map(str, real_images), "--gradcam", str(tmp_path / "cli")])
    out = capsys.readouterr().out.splitlines()
    assert code == 0
    lines = [LINE.match(line) for line in out[:6]]
    assert all(lines), out
    assert [m["file"] for m in lines] == [str(p) for p in real_images]
    assert [m["cls"] for m in lines] == [r["class"] for r in results]
    assert sorted(p.name for p in (tmp_path / "cli").iterdir()) == sorted(f"{p.stem}_gradcam.png" for p in real_images)


# --------------------------------------------------------------------------- predict on awkward input

def _write_awkward_images(folder: Path) -> list[Path]:
    rng = np.random.default_rng(1)
    folder.mkdir(parents=True, exist_ok=True)
    rgba = rng.integers(0, 256, (30, 40, 4), dtype=np.uint8)
    Image.fromarray(rgba, "RGBA").save(folder / "rgba.png")
    Image.fromarray((rng.integers(0, 65536, (50, 30))).astype(np.uint16)).save(folder / "deep16.png")
    Image.fromarray(rng.integers(0, 256, (20, 20, 3), dtype=np.uint8)).save(folder / "colour.jpg")
    Image.new("L", (6000, 4000), 90).save(folder / "huge.jpeg", quality=70)
    Image.new("L", (1, 1), 200).save(folder / "tiny.png")
    return [folder / n for n in ("rgba.png", "deep16.png", "colour.jpg", "huge.jpeg", "tiny.png")]


def test_predict_any_image_mode_and_size(cnn_model_file, tmp_path, capsys):
    images = _write_awkward_images(tmp_path / "img")
    with Image.open(images[1]) as img:
        assert img.mode.startswith("I")  # really 16-bit
    code = cli.main(["predict", str(cnn_model_file), *map(str, images), "--gradcam", str(tmp_path / "cam")])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert all(LINE.match(line) for line in captured.out.splitlines()[:5])
    assert len(list((tmp_path / "cam").glob("*_gradcam.png"))) == 5
    with Image.open(tmp_path / "cam" / "huge_gradcam.png") as img:
        assert img.size == (512, 341)


def test_predict_reports_bad_images_and_goes_on(cnn_model_file, tmp_path, capsys, write_jpeg):
    good = write_jpeg(tmp_path / "good.jpeg", shade=120, size=(30, 30))
    text = tmp_path / "notes.jpeg"
    text.write_text("this is not an image\n")
    missing = tmp_path / "missing.png"
    code = cli.main(["predict", str(cnn_model_file), str(text), str(good), str(missing)])
    captured = capsys.readouterr()
    assert code == 1
    assert LINE.match(captured.out.splitlines()[0])["file"] == str(good)
    assert f"{text}: not a readable image" in captured.err
    assert f"{missing}: file not found" in captured.err
    assert "Traceback" not in captured.err + captured.out


def test_predict_rejects_models_that_are_not_ours(plain_keras_file, tmp_path, capsys, write_jpeg):
    image = str(write_jpeg(tmp_path / "x.jpeg"))
    junk = tmp_path / "random.keras"
    junk.write_bytes(os.urandom(5000))
    expected = {plain_keras_file: "not a model saved by the workshop lessons", junk: "not a Keras model file",
                tmp_path / "absent.keras": "absent.keras not found"}
    for model, message in expected.items():
        assert cli.main(["predict", str(model), image]) == 1
        captured = capsys.readouterr()
        assert message in captured.err and "Traceback" not in captured.err
        assert captured.out == ""


def test_predict_command_line_errors_exit_1_without_traceback(tmp_path, plain_keras_file, write_jpeg):
    image = str(write_jpeg(tmp_path / "x.jpeg"))
    for model in (tmp_path / "absent.keras", plain_keras_file):
        done = subprocess.run([sys.executable, "-m", "workshop_utils", "predict", str(model), image],
                              capture_output=True, text=True, timeout=120, cwd=REPO)
        assert done.returncode == 1
        assert done.stderr.startswith("error: ") and "Traceback" not in done.stderr


def test_predict_still_reports_when_gradcam_cannot_explain_the_model(tmp_path, capsys, write_jpeg):
    inp = keras.Input((24, 24, 1))
    a = keras.layers.Conv2D(2, 3)(inp)
    b = keras.layers.Conv2D(2, 3)(inp)
    out = keras.layers.Dense(2, activation="softmax")(keras.layers.Flatten()(keras.layers.Concatenate()([a, b])))
    path = saving.save_lesson_model(keras.Model(inp, out), tmp_path / "branchy.keras", 24, "scale01", channels=1)
    image = str(write_jpeg(tmp_path / "x.jpeg"))
    code = cli.main(["predict", str(path), image, "--gradcam", str(tmp_path / "cam")])
    captured = capsys.readouterr()
    assert code == 1
    assert LINE.match(captured.out.splitlines()[0])["file"] == image
    assert "error: no Grad-CAM overlays:" in captured.err and "branches" in captured.err
