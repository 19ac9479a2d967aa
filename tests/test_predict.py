"""Saving lesson models with their description, Grad-CAM, and the ``predict`` command (tiny models only).

Lesson models take the raw grayscale image, (size, size, 1) values 0-255, with their preprocessing inside
(GrayToVGG16 for VGG16, Rescaling(1/255) for lesson 6's CNN); ``predict`` must give exactly what the model
gives the lesson's own decoded images.
"""
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
from helpers_models import (brightness_model, brightness_p, fine_tuned_vgg16, lesson_vgg16, patch_detector,
                            patch_image, small_cnn)
from PIL import Image

from workshop_utils import cli, gradcam, predict, saving
from workshop_utils.images import decode_image
from workshop_utils.predict import overlay_names, predict_files
from workshop_utils.preprocessing import GrayToVGG16
from workshop_utils.saving import ModelFormatError

REPO = Path(__file__).resolve().parents[1]
LINE = re.compile(r"^(?P<file>\S+)\s+ (?P<cls>NORMAL|PNEUMONIA)\s+ p\(PNEUMONIA\) (?P<p>[01]\.\d\d)$")


def _model_p(model, files: list[Path], size: int) -> np.ndarray:
    """p(PNEUMONIA) as the lessons get it: the images decoded by images.decode_image, fed as they are."""
    x = np.stack([decode_image(f, size) for f in files]).astype(np.float32)[..., None]
    return model.predict(x, verbose=0)[:, 1]


def _uniform_png(path: Path, shade: int, size: tuple[int, int] = (20, 16)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("L", size, shade).save(path)
    return path


@pytest.fixture(scope="module")
def cnn(tmp_path_factory) -> tuple[Path, keras.Model]:
    """Lesson 6's kind of CNN (Rescaling inside), 24 px, saved as a lesson model."""
    model = small_cnn(24)
    path = tmp_path_factory.mktemp("models") / "cnn.keras"
    return saving.save_lesson_model(model, path, 24, lesson="06_from_scratch_cnn"), model


@pytest.fixture(scope="module")
def vgg(tmp_path_factory) -> tuple[Path, keras.Model]:
    """The VGG16 lessons' model (GrayToVGG16, frozen VGG16, Flatten/Dense head), random weights, 32 px."""
    model = lesson_vgg16(32)
    path = tmp_path_factory.mktemp("models") / "vgg.keras"
    return saving.save_lesson_model(model, path, 32, lesson="02_baseline_vgg16"), model


@pytest.fixture(scope="module")
def plain_keras_file(tmp_path_factory) -> Path:
    """A lesson-style model saved with plain model.save: no workshop description."""
    path = tmp_path_factory.mktemp("models") / "plain.keras"
    small_cnn(24).save(path)
    return path


def _described(tmp_path: Path, model, image_size: int, name: str = "m.keras", **kw) -> Path:
    """``model`` saved with plain model.save, then described with write_metadata (no checks on the model)."""
    path = tmp_path / name
    model.save(path)
    saving.write_metadata(path, image_size, **kw)
    return path


# --------------------------------------------------------------------------- saving

def test_saved_model_carries_its_description_and_still_loads_in_keras(vgg):
    path, original = vgg
    with zipfile.ZipFile(path) as zf:
        meta = json.loads(zf.read(saving.ENTRY))
    assert meta == {"format": "pneumonia-workshop-model", "version": 2, "image_size": 32,
                    "input": "grayscale, 0-255, shape (size, size, 1)", "classes": ["NORMAL", "PNEUMONIA"],
                    "threshold": 0.5, "lesson": "02_baseline_vgg16", "keras_version": keras.__version__}
    assert "preprocessing" not in meta  # the model holds it
    plain = keras.saving.load_model(path)  # the extra zip entry does not bother Keras
    model, loaded = saving.load_lesson_model(path)
    assert loaded == meta
    x = np.random.default_rng(0).uniform(0, 255, (2, 32, 32, 1)).astype("float32")
    expected = original.predict(x, verbose=0)
    np.testing.assert_allclose(model.predict(x, verbose=0), expected, rtol=1e-5)
    np.testing.assert_allclose(plain.predict(x, verbose=0), expected, rtol=1e-5)
    assert not list(path.parent.glob("*partial*")) and not list(path.parent.glob("*.tmp"))


def test_write_metadata_describes_a_plain_keras_file(plain_keras_file, tmp_path):
    path = tmp_path / "described.keras"
    path.write_bytes(plain_keras_file.read_bytes())
    with pytest.raises(ModelFormatError, match="not a model saved by the workshop lessons.*save_lesson_model"):
        saving.load_lesson_model(path)
    saving.write_metadata(path, 24)
    saving.write_metadata(path, 24, threshold=0.3, lesson="mine")  # replaces, does not duplicate
    with zipfile.ZipFile(path) as zf:
        assert zf.namelist().count(saving.ENTRY) == 1
    meta = saving.load_lesson_model(path)[1]
    assert (meta["threshold"], meta["lesson"], meta["image_size"]) == (0.3, "mine", 24)


@pytest.mark.parametrize(("model", "size", "message"), [
    (lambda: small_cnn(24), 32, r"inputs of shape \(24, 24, 1\), not the grayscale image \(32, 32, 1\)"),
    (lambda: keras.Sequential([keras.Input((24, 24, 3)), keras.layers.Flatten(),
                               keras.layers.Dense(2, activation="softmax")]), 24,
     r"\(24, 24, 3\) \(3 colour channels\).*GrayToVGG16"),
    (lambda: brightness_model(8, classes=3), 8, r"outputs shape \(3,\) per image.*2 class probabilities"),
    (lambda: keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Flatten(),
                               keras.layers.Dense(1, activation="sigmoid")]), 8, r"outputs shape \(1,\)"),
    (lambda: brightness_model(8, activation=None, bias=(-0.2, 1.2)), 8,
     r"Not saved: the model does not end in softmax.*got -0\.20, 1\.20"),
], ids=["size", "colour-input", "3-classes", "sigmoid", "no-softmax"])
def test_save_refuses_a_model_that_is_not_a_lesson_model(tmp_path, model, size, message):
    with pytest.raises(ValueError, match=message):
        saving.save_lesson_model(model(), tmp_path / "m.keras", size)
    assert not list(tmp_path.iterdir())  # refused before writing anything


def test_save_refuses_bad_descriptions(tmp_path):
    model = brightness_model(8)
    for threshold in (0, 1, 1.5, -0.1, "0.5", True, float("nan")):
        with pytest.raises(ValueError, match="threshold must be a probability between 0 and 1"):
            saving.save_lesson_model(model, tmp_path / "m.keras", 8, threshold=threshold)
    for size in (0, -8, 8.0, "8"):
        with pytest.raises(ValueError, match="image_size must be a positive whole number"):
            saving.save_lesson_model(model, tmp_path / "m.keras", size)
    with pytest.raises(ValueError, match=r"\['version'\] are set by save_lesson_model"):
        saving.save_lesson_model(model, tmp_path / "m.keras", 8, lesson="x", version=3)
    with pytest.raises(ValueError, match="JSON values"):
        saving.save_lesson_model(model, tmp_path / "m.keras", 8, lesson=object())
    with pytest.raises(ValueError, match="'vgg16'.*preprocessing is no longer saved beside the model"):
        saving.save_lesson_model(model, tmp_path / "m.keras", 8, "vgg16")  # the format-1 call
    with pytest.raises(ValueError, match=".keras files, not m.h5"):
        saving.save_lesson_model(model, tmp_path / "m.h5", 8)
    assert not list(tmp_path.iterdir())


def test_load_errors_name_the_problem(tmp_path, plain_keras_file, cnn):
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


def _with_entry(source: Path, target: Path, entry: dict | bytes) -> Path:
    """A copy of ``source`` whose description entry is ``entry``."""
    with zipfile.ZipFile(source) as src, zipfile.ZipFile(target, "w") as dst:
        for item in src.infolist():
            if item.filename != saving.ENTRY:
                dst.writestr(item, src.read(item.filename))
        dst.writestr(saving.ENTRY, entry if isinstance(entry, bytes) else json.dumps(entry))
    return target


def test_old_newer_and_damaged_descriptions(tmp_path, cnn):
    path = cnn[0]
    version1 = {"format": "pneumonia-workshop-model", "version": 1, "image_size": 24,
                "preprocessing": "scale01", "channels": 1, "classes": ["NORMAL", "PNEUMONIA"]}
    old = _with_entry(path, tmp_path / "06_from_scratch.keras", version1)
    with pytest.raises(ModelFormatError, match=re.escape(
            f"{old} was saved by an older workshop version (model format 1, preprocessing outside the model): "
            "re-run its lesson to save it again.")):
        saving.load_lesson_model(old)
    meta = saving.read_metadata(path)
    newer = _with_entry(path, tmp_path / "newer.keras", {**meta, "version": 3})
    with pytest.raises(ModelFormatError, match="newer workshop_utils.*update the package"):
        saving.load_lesson_model(newer)
    broken = _with_entry(path, tmp_path / "broken.keras", b"{not json")
    with pytest.raises(ModelFormatError, match="broken.keras: cannot read its workshop_model.json"):
        saving.load_lesson_model(broken)
    bad = _with_entry(path, tmp_path / "bad.keras", {**meta, "threshold": 2})
    with pytest.raises(ModelFormatError, match="bad.keras: workshop_model.json is incomplete or invalid"):
        saving.load_lesson_model(bad)


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


def test_gradcam_through_gray_to_vgg16_and_a_saved_file(vgg):
    path, model = vgg
    x = np.random.default_rng(0).uniform(0, 255, (3, 32, 32, 1)).astype(np.float32)
    assert isinstance(model.layers[0], GrayToVGG16)
    assert gradcam.find_conv_layer(model).name == "block5_conv3"
    heat = gradcam.gradcam(model, x, batch_size=2)
    assert heat.shape == (3, 2, 2) and heat.dtype == np.float32
    assert heat.min() >= 0.0 and heat.max() <= 1.0 and np.isfinite(heat).all()
    loaded = saving.load_lesson_model(path)[0]
    np.testing.assert_allclose(gradcam.gradcam(loaded, x), heat, atol=1e-5)
    assert gradcam.gradcam(model, x[:1], class_index=0, layer_name="block4_conv3").shape == (1, 4, 4)
    with pytest.raises(ValueError, match="No layer named"):
        gradcam.gradcam(model, x, layer_name="block9_conv9")
    dense = model.layers[-1].layers[-1].name
    with pytest.raises(ValueError, match="last layer"):
        gradcam.gradcam(model, x, layer_name=dense)


def test_gradcam_on_the_fine_tuning_lessons_split_vgg16(tmp_path):
    """Lesson 7's model (features.split_vgg16: block 5 re-uses VGG16's layers in a second functional model)
    explains exactly as the same network built as one chain does, also after saving and loading."""
    model = fine_tuned_vgg16(32)
    lower, upper, head = model.layers
    to_block4 = lower.layers[-1]  # VGG16's blocks 1-4, after GrayToVGG16
    chain = keras.Sequential([keras.Input((32, 32, 1)), GrayToVGG16(), to_block4, upper, head])
    x = np.random.default_rng(0).uniform(0, 255, (2, 32, 32, 1)).astype("float32")
    np.testing.assert_allclose(model.predict(x, verbose=0), chain.predict(x, verbose=0), rtol=1e-5)
    heat = gradcam.gradcam(model, x)
    assert heat.shape == (2, 2, 2) and np.isfinite(heat).all() and heat.max() == pytest.approx(1.0)
    np.testing.assert_allclose(heat, gradcam.gradcam(chain, x), atol=1e-5)
    np.testing.assert_array_equal(gradcam.gradcam(model, x), heat)  # Dropout stays off
    path = saving.save_lesson_model(model, tmp_path / "07.keras", 32, lesson="07_fine_tuning")
    np.testing.assert_allclose(gradcam.gradcam(saving.load_lesson_model(path)[0], x), heat, atol=1e-5)


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
def test_gradcam_on_jax_matches_tensorflow(vgg, tmp_path):
    """The hand-built patch detector, and the saved VGG16 lesson model (GrayToVGG16 inside) loaded on JAX:
    the same heatmaps, and predict gives the same probability."""
    path, model = vgg
    image = _write_formats(tmp_path)[0]
    code = ("import numpy as np, sys, json; sys.path.insert(0, 'tests');"
            "from helpers_models import patch_detector, patch_image;"
            "from workshop_utils import gradcam, saving;"
            "x = patch_image(16, bright='left', dark='right')[None];"
            "gray = np.random.default_rng(0).uniform(0, 255, (2, 32, 32, 1)).astype('float32');"
            f"vgg = saving.load_lesson_model({str(path)!r})[0];"
            "from workshop_utils.predict import predict_files;"
            f"p = [r['p_pneumonia'] for r in predict_files({str(path)!r}, [{str(image)!r}])];"
            "print(json.dumps([gradcam.gradcam(patch_detector(16), x, class_index=1).tolist(),"
            " gradcam.gradcam(vgg, gray).tolist(), p]))")
    env = dict(os.environ, KERAS_BACKEND="jax")
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    jax_patch, jax_vgg, jax_p = (np.array(a) for a in json.loads(done.stdout.strip().splitlines()[-1]))
    tf_patch = gradcam.gradcam(patch_detector(16), patch_image(16, bright="left", dark="right")[None], 1)
    np.testing.assert_allclose(jax_patch, tf_patch, atol=1e-3)
    gray = np.random.default_rng(0).uniform(0, 255, (2, 32, 32, 1)).astype("float32")
    np.testing.assert_allclose(jax_vgg, gradcam.gradcam(model, gray), atol=1e-3)
    np.testing.assert_allclose(jax_p, [predict_files(path, [image])[0]["p_pneumonia"]], atol=1e-4)


# --------------------------------------------------------------------------- predict = the lesson's own numbers

def _write_formats(folder: Path) -> list[Path]:
    """One random picture written as gray JPEG, gray PNG, RGB PNG/JPEG, RGBA PNG and 16-bit PNG, plus a
    huge and a 1-pixel image."""
    rng = np.random.default_rng(1)
    folder.mkdir(parents=True, exist_ok=True)
    gray = rng.integers(0, 256, (40, 50), dtype=np.uint8)
    Image.fromarray(gray).save(folder / "gray.jpeg", quality=95)
    Image.fromarray(gray).save(folder / "gray.png")
    Image.fromarray(gray).convert("RGB").save(folder / "rgb.png")
    Image.fromarray(rng.integers(0, 256, (20, 30, 3), dtype=np.uint8)).save(folder / "colour.jpg")
    Image.fromarray(rng.integers(0, 256, (30, 40, 4), dtype=np.uint8), "RGBA").save(folder / "rgba.png")
    Image.fromarray(gray.astype(np.uint16) * 257).save(folder / "deep16.png")
    Image.new("L", (6000, 4000), 90).save(folder / "huge.jpeg", quality=70)
    Image.new("L", (1, 1), 200).save(folder / "tiny.png")
    return sorted(folder.iterdir())


def test_predict_gives_lesson_6s_own_probabilities(cnn, tmp_path):
    """The double-scaling bug: lesson 6's CNN (Rescaling inside) must get the raw 0-255 image."""
    path, model = cnn
    files = _write_formats(tmp_path / "img")
    with Image.open(tmp_path / "img" / "deep16.png") as img:
        assert img.mode.startswith("I")  # really 16-bit
    results = predict_files(path, files)
    assert [r["file"] for r in results] == [str(f) for f in files] and not any(r["error"] for r in results)
    got = np.array([r["p_pneumonia"] for r in results])
    expected = _model_p(model, files, 24)
    np.testing.assert_allclose(got, expected, atol=1e-5)
    scaled_twice = model.predict(np.stack([decode_image(f, 24) for f in files])[..., None] / 255.0, verbose=0)
    assert np.abs(scaled_twice[:, 1] - expected).max() > 1e-3  # this test would see double scaling
    assert [r["class"] for r in results] == ["PNEUMONIA" if p >= 0.5 else "NORMAL" for p in expected]
    by_name = {Path(r["file"]).name: r["p_pneumonia"] for r in results}
    assert by_name["gray.png"] == pytest.approx(by_name["rgb.png"], abs=1e-6)     # colour of a gray picture
    assert by_name["gray.png"] == pytest.approx(by_name["deep16.png"], abs=1e-6)  # 16-bit of the same picture


def test_predict_gives_the_vgg16_lessons_own_probabilities(vgg, tmp_path):
    path, model = vgg
    files = _write_formats(tmp_path / "img")
    got = np.array([r["p_pneumonia"] for r in predict_files(path, files)])
    np.testing.assert_allclose(got, _model_p(model, files, 32), atol=1e-5)


def test_the_same_gray_picture_in_every_format_gets_the_hand_computed_answer(tmp_path):
    path = saving.save_lesson_model(brightness_model(8), tmp_path / "b.keras", 8)
    folder = tmp_path / "img"
    folder.mkdir()
    Image.new("L", (30, 20), 180).save(folder / "l.png")
    Image.new("RGB", (30, 20), (180, 180, 180)).save(folder / "rgb.png")
    Image.new("RGBA", (30, 20), (180, 180, 180, 255)).save(folder / "rgba.png")
    Image.fromarray(np.full((20, 30), 180 * 257, np.uint16)).save(folder / "deep16.png")
    Image.new("L", (30, 20), 180).save(folder / "l.jpeg", quality=100)
    results = predict_files(path, sorted(folder.iterdir()))
    for r in results:
        assert r["p_pneumonia"] == pytest.approx(brightness_p(180), abs=2e-3), r["file"]
        assert r["class"] == "PNEUMONIA"


def test_predict_real_images_with_gradcam(vgg, real_data_root, tmp_path, capsys):
    path, model = vgg
    images = [p for cls in ("NORMAL", "PNEUMONIA") for p in sorted((real_data_root / "test" / cls).glob("*.jpeg"))[:3]]
    results = predict_files(path, images, gradcam_dir=tmp_path / "cam")
    assert len(results) == 6 and all(r["error"] is None for r in results)
    np.testing.assert_allclose([r["p_pneumonia"] for r in results], _model_p(model, images, 32), atol=1e-5)
    for r in results:
        with Image.open(r["gradcam"]) as img, Image.open(r["file"]) as original:
            assert img.mode == "RGB" and max(img.size) <= 512
            assert img.size[0] / img.size[1] == pytest.approx(original.size[0] / original.size[1], rel=0.02)
    # NORMAL and PNEUMONIA are two folders: the overlays keep them apart.
    assert sorted(str(Path(r["gradcam"]).relative_to(tmp_path / "cam")) for r in results) == sorted(
        str(Path(p.parent.name) / f"{p.stem}_gradcam.png") for p in images)

    code = cli.main(["predict", str(path), *map(str, images), "--gradcam", str(tmp_path / "cli")])
    out = capsys.readouterr().out.splitlines()
    assert code == 0
    lines = [LINE.match(line) for line in out[:6]]
    assert all(lines), out
    assert [m["file"] for m in lines] == [str(p) for p in images]
    assert [m["cls"] for m in lines] == [r["class"] for r in results]
    assert [float(m["p"]) for m in lines] == [round(r["p_pneumonia"], 2) for r in results]
    assert out[6] == f"Grad-CAM overlays in {tmp_path / 'cli'}"


# --------------------------------------------------------------------------- the decision threshold

def test_predict_applies_the_saved_threshold(tmp_path, capsys):
    model = brightness_model(8)
    chosen = saving.save_lesson_model(model, tmp_path / "08.keras", 8, threshold=0.35, lesson="08")
    default = saving.save_lesson_model(model, tmp_path / "02.keras", 8)
    images = [_uniform_png(tmp_path / f"shade{s}.png", s) for s in (64, 102, 200)]
    p = [brightness_p(s) for s in (64, 102, 200)]
    assert p[0] < 0.35 < p[1] < 0.5 < p[2]  # 0.27, 0.40, 0.72

    results = predict_files(chosen, images)
    assert [r["p_pneumonia"] for r in results] == pytest.approx(p, abs=1e-5)
    assert [r["class"] for r in results] == ["NORMAL", "PNEUMONIA", "PNEUMONIA"]
    assert [r["class"] for r in predict_files(default, images)] == ["NORMAL", "NORMAL", "PNEUMONIA"]

    assert cli.main(["predict", str(chosen), *map(str, images)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "PNEUMONIA when p(PNEUMONIA) >= 0.35: the decision threshold saved with the model (not 0.5)."
    assert [LINE.match(line)["cls"] for line in out[1:]] == ["NORMAL", "PNEUMONIA", "PNEUMONIA"]
    assert out[2].endswith("PNEUMONIA  p(PNEUMONIA) 0.40")
    assert cli.main(["predict", str(default), *map(str, images)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 3 and all(LINE.match(line) for line in out)  # no threshold line at 0.5


# --------------------------------------------------------------------------- models that do not match their file

@pytest.mark.parametrize(("make", "size", "message"), [
    (lambda: brightness_model(8), 16,
     r"m\.keras does not match its description \(16 px grayscale images, 2 classes\): The model takes inputs "
     r"of shape \(8, 8, 1\), not the grayscale image \(16, 16, 1\)"),
    (lambda: brightness_model(8, classes=3), 8, r"m\.keras does not match its description.*outputs shape \(3,\)"),
    (lambda: brightness_model(8, activation=None, bias=(-0.2, 1.2)), 8,
     r"m\.keras: the model does not end in softmax: its outputs are not probabilities \(got -0\.20, 1\.20, "
     r"which should lie in \[0, 1\] and sum to 1\)\..*\(image .*x\.png\)"),
    (lambda: brightness_model(8, activation=None, bias=(0.3, 0.3)), 8,
     r"m\.keras: the model does not end in softmax.*got 0\.30, 0\.30"),
], ids=["size-mismatch", "3-classes", "probability-1.20", "rows-not-summing-to-1"])
def test_predict_checks_the_model_against_its_description(tmp_path, capsys, make, size, message):
    path = _described(tmp_path, make(), size)
    image = _uniform_png(tmp_path / "x.png", 100)
    with pytest.raises(ModelFormatError, match=message):
        predict_files(path, [image])
    assert cli.main(["predict", str(path), str(image)]) == 1
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.startswith(f"error: {path}")
    assert re.search(message, captured.err) and "Traceback" not in captured.err


def test_predict_rejects_files_that_are_not_lesson_models(plain_keras_file, tmp_path, capsys):
    image = str(_uniform_png(tmp_path / "x.png", 100))
    junk = tmp_path / "random.keras"
    junk.write_bytes(os.urandom(5000))
    expected = {plain_keras_file: f"error: {plain_keras_file} is not a model saved by the workshop lessons",
                junk: f"error: {junk} is not a Keras model file",
                tmp_path / "absent.keras": f"error: Model file {tmp_path / 'absent.keras'} not found."}
    for model, message in expected.items():
        assert cli.main(["predict", str(model), image]) == 1
        captured = capsys.readouterr()
        assert captured.err.startswith(message) and "Traceback" not in captured.err
        assert captured.out == ""


def test_predict_command_line_errors_exit_1_without_traceback(tmp_path):
    image = str(_uniform_png(tmp_path / "x.png", 100))
    no_softmax = _described(tmp_path, brightness_model(8, activation=None, bias=(-0.2, 1.2)), 8, "raw.keras")
    old = _with_entry(no_softmax, tmp_path / "old.keras", {"format": "pneumonia-workshop-model", "version": 1})
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("no images here")
    cases = {(old, image): "saved by an older workshop version",  # (the others are checked in-process)
             (no_softmax, image): "the model does not end in softmax",
             (no_softmax, str(empty)): f"error: no image files in {empty}."}
    for (model, target), message in cases.items():
        done = subprocess.run([sys.executable, "-m", "workshop_utils", "predict", str(model), target],
                              capture_output=True, text=True, timeout=120, cwd=REPO)
        assert done.returncode == 1, done.stderr
        errors = [line for line in done.stderr.splitlines() if line.startswith("error: ")]  # past TF's log noise
        assert len(errors) == 1 and message in errors[0], done.stderr
        assert "Traceback" not in done.stderr and done.stdout == ""


# --------------------------------------------------------------------------- bad images, folders, many images

def test_predict_reports_bad_images_and_goes_on(cnn, tmp_path, capsys, write_jpeg):
    path, model = cnn
    good = write_jpeg(tmp_path / "good.jpeg", shade=120, size=(30, 30))
    text = tmp_path / "notes.jpeg"
    text.write_text("this is not an image\n")
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    missing = tmp_path / "missing.png"
    code = cli.main(["predict", str(path), str(text), str(good), str(empty), str(missing)])
    captured = capsys.readouterr()
    assert code == 1
    assert [LINE.match(line)["file"] for line in captured.out.splitlines()] == [str(good)]
    assert f"error: {text}: not a readable image (cannot identify image file" in captured.err
    assert f"error: {empty}: not a readable image (cannot identify image file" in captured.err
    assert f"error: {missing}: file not found" in captured.err
    assert "Traceback" not in captured.err + captured.out


def test_predict_a_folder_takes_its_images(cnn, tmp_path, write_jpeg):
    path, _ = cnn
    root = tmp_path / "test"
    images = [write_jpeg(root / "NORMAL" / "a.jpeg"), write_jpeg(root / "PNEUMONIA" / "b.jpeg", seed=1),
              _uniform_png(root / "PNEUMONIA" / "c.png", 90)]
    (root / "README.txt").write_text("not an image")
    (root / "NORMAL" / "._a.jpeg").write_bytes(b"macOS metadata")
    results = predict_files(path, [root], gradcam_dir=root / "cam")
    assert [r["file"] for r in results] == [str(p) for p in images]
    assert not any(r["error"] for r in results)
    assert len(list((root / "cam").rglob("*_gradcam.png"))) == 3
    again = predict_files(path, [root], gradcam_dir=root / "cam")  # the overlays are not new inputs
    assert [r["file"] for r in again] == [str(p) for p in images]


def test_predict_a_folder_takes_every_format_pillow_reads_and_says_what_it_skipped(cnn, tmp_path, capsys):
    """.webp, .gif and .jpe are predicted from a folder as they are one by one; what is left out is counted."""
    path, _ = cnn
    folder = tmp_path / "clinic"
    folder.mkdir()
    gray = Image.fromarray(np.random.default_rng(0).integers(0, 256, (30, 26), dtype=np.uint8), "L")
    images = []
    for name, fmt in (("a.webp", "WEBP"), ("b.gif", "GIF"), ("c.jpe", "JPEG"), ("d.JPG", "JPEG"), ("e.bmp", "BMP")):
        gray.save(folder / name, fmt)
        images.append(folder / name)
    (folder / "notes.txt").write_text("not an image")
    (folder / "scan.dcm.zip").write_bytes(b"PK")
    (folder / "._a.webp").write_bytes(b"macOS metadata")
    one_by_one = predict_files(path, images)
    assert cli.main(["predict", str(path), str(folder)]) == 0
    captured = capsys.readouterr()
    assert [LINE.match(line)["file"] for line in captured.out.splitlines()] == [str(p) for p in images]
    from_folder = {LINE.match(line)["file"]: float(LINE.match(line)["p"]) for line in captured.out.splitlines()}
    assert [from_folder[r["file"]] for r in one_by_one] == [round(r["p_pneumonia"], 2) for r in one_by_one]
    assert f"skipped 1 file(s) in the folders: not an image format Pillow reads (.txt), e.g. {folder / 'notes.txt'}" \
        in captured.err
    assert f"skipped 1 file(s) in the folders: not an image format Pillow reads (.zip), e.g. {folder / 'scan.dcm.zip'}" \
        in captured.err
    assert f"skipped 1 file(s) in the folders: a macOS resource file (._name), not an image, e.g. {folder / '._a.webp'}" \
        in captured.err


def test_many_images_go_in_batches_with_a_progress_bar(cnn, tmp_path, monkeypatch, capsys, write_jpeg):
    path, model = cnn
    files = [write_jpeg(tmp_path / "img" / f"{i:03d}.jpeg", size=(30, 26), seed=i) for i in range(70)]
    (tmp_path / "img" / "050.jpeg").write_bytes(b"truncated")
    calls = []
    real_decode = predict.decode_image
    monkeypatch.setattr(predict, "decode_image", lambda f, size: calls.append(f) or real_decode(f, size))
    results = predict_files(path, files)
    err = capsys.readouterr().err
    assert "Predicting" in err and "70/70" in err  # more than one batch (32 images)
    assert len(calls) == 70 and [r["file"] for r in results] == [str(f) for f in files]
    assert results[50]["error"].startswith("not a readable image")
    good = [f for i, f in enumerate(files) if i != 50]
    np.testing.assert_allclose([r["p_pneumonia"] for r in results if r["error"] is None],
                               _model_p(model, good, 24), atol=1e-5)
    predict_files(path, files[:5])
    assert "Predicting" not in capsys.readouterr().err  # a few images: no bar

    batches = []  # what one call to the model gets: at most BATCH_SIZE images
    monkeypatch.setattr(predict, "BATCH_SIZE", 8)
    real_predict_batch = predict._predict_batch
    monkeypatch.setattr(predict, "_predict_batch", lambda m, p, gray, f: batches.append(len(gray))
                        or real_predict_batch(m, p, gray, f))
    again = predict_files(path, files, progress=False)
    assert max(batches) == 8 and sum(batches) == 69
    assert [r["p_pneumonia"] for r in again] == pytest.approx([r["p_pneumonia"] for r in results], abs=1e-6)


# --------------------------------------------------------------------------- Grad-CAM overlays in predict

def test_overlay_names_never_collide(tmp_path):
    a, b = tmp_path / "a" / "x.jpeg", tmp_path / "b" / "x.jpeg"
    assert overlay_names([a, b]) == [Path("a/x_gradcam.png"), Path("b/x_gradcam.png")]
    assert overlay_names([a, tmp_path / "a" / "y.png"]) == [Path("x_gradcam.png"), Path("y_gradcam.png")]
    same_stem = overlay_names([a, tmp_path / "a" / "x.png", a])
    assert same_stem == [Path("x_gradcam.png"), Path("x.png_gradcam.png"), Path("x_gradcam.png")]
    assert overlay_names([tmp_path / "c" / "d" / "x.jpeg", b]) == [Path("c/d/x_gradcam.png"),
                                                                   Path("b/x_gradcam.png")]


def test_same_file_names_in_two_folders_keep_both_overlays(cnn, tmp_path, capsys):
    path, _ = cnn
    dark = _uniform_png(tmp_path / "a" / "x.png", 30, (40, 40))
    bright = tmp_path / "b" / "x.png"
    bright.parent.mkdir()
    Image.fromarray(np.tile(np.arange(0, 240, 6, dtype=np.uint8), (40, 1))).save(bright)
    assert cli.main(["predict", str(path), str(dark), str(bright), "--gradcam", str(tmp_path / "cam")]) == 0
    capsys.readouterr()
    overlays = sorted((tmp_path / "cam").rglob("*.png"))
    assert overlays == [tmp_path / "cam" / "a" / "x_gradcam.png", tmp_path / "cam" / "b" / "x_gradcam.png"]
    with Image.open(overlays[0]) as first, Image.open(overlays[1]) as second:
        assert not np.array_equal(np.asarray(first), np.asarray(second))


def test_unwritable_gradcam_folder_keeps_the_predictions(cnn, tmp_path, capsys, write_jpeg):
    path, _ = cnn
    images = [write_jpeg(tmp_path / "x.jpeg"), write_jpeg(tmp_path / "y.jpeg", seed=1)]
    blocker = tmp_path / "cam"
    blocker.write_text("a file where the folder should be")
    code = cli.main(["predict", str(path), *map(str, images), "--gradcam", str(blocker / "sub")])
    captured = capsys.readouterr()
    assert code == 1
    assert [LINE.match(line)["file"] for line in captured.out.splitlines()] == [str(p) for p in images]
    assert captured.err.startswith(f"error: Grad-CAM overlays missing for 2 image(s): cannot write to "
                                   f"{blocker / 'sub'} (")
    assert captured.err.rstrip().endswith("; choose another --gradcam folder.")
    assert "Traceback" not in captured.err

    # One overlay cannot be written (its name is taken by a folder): the other is, and the error names it.
    cam = tmp_path / "cam2"
    (cam / "x_gradcam.png").mkdir(parents=True)
    code = cli.main(["predict", str(path), *map(str, images), "--gradcam", str(cam)])
    captured = capsys.readouterr()
    assert code == 1 and len(captured.out.splitlines()) == 2
    assert (cam / "y_gradcam.png").is_file()
    assert f"error: Grad-CAM overlays missing for 1 image(s): cannot write {cam / 'x_gradcam.png'}:" in captured.err


def test_predict_still_reports_when_gradcam_cannot_explain_the_model(tmp_path, capsys):
    inp = keras.Input((24, 24, 1))
    a = keras.layers.Conv2D(2, 3)(inp)
    b = keras.layers.Conv2D(2, 3)(inp)
    out = keras.layers.Dense(2, activation="softmax")(keras.layers.Flatten()(keras.layers.Concatenate()([a, b])))
    path = saving.save_lesson_model(keras.Model(inp, out), tmp_path / "branchy.keras", 24)
    image = str(_uniform_png(tmp_path / "x.png", 100))
    code = cli.main(["predict", str(path), image, "--gradcam", str(tmp_path / "cam")])
    captured = capsys.readouterr()
    assert code == 1
    assert LINE.match(captured.out.splitlines()[0])["file"] == image
    assert "error: Grad-CAM overlays missing for 1 image(s):" in captured.err and "branches" in captured.err
