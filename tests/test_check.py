"""``python -m workshop_utils check``: one OK / WARN / FAIL line per item, exit 0 when nothing FAILs."""
from __future__ import annotations

import argparse
import hashlib
from collections import namedtuple
from importlib import metadata

import pytest

from workshop_utils import check, cli, weights

SMALL = {"train": {"NORMAL": 2, "PNEUMONIA": 3}, "val": {"NORMAL": 1, "PNEUMONIA": 1},
         "test": {"NORMAL": 1, "PNEUMONIA": 2}}


@pytest.fixture
def no_gpu_probe(monkeypatch):
    """Skip starting Keras (slow) in tests about other items."""
    monkeypatch.setattr(check, "check_gpu", lambda: check.Item("WARN", "GPU", "none found (test)", "QUICK"))


@pytest.fixture
def fake_weights(tmp_path, monkeypatch):
    """A small stand-in weights file in $KERAS_HOME/models, its md5 made the expected one."""
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    path = weights.keras_models_dir() / weights.VGG16_NOTOP_FILE
    path.parent.mkdir(parents=True)
    path.write_bytes(b"not really hdf5" * 1000)
    monkeypatch.setattr(weights, "VGG16_NOTOP_MD5", hashlib.md5(path.read_bytes()).hexdigest())
    return path


def _by_name(items: list[check.Item]) -> dict[str, check.Item]:
    return {item.name.split(" (")[0]: item for item in items}


def test_ready_machine_exits_0(tmp_path, make_tree, fake_weights, no_gpu_probe, capsys):
    root = make_tree(tmp_path / "data" / "chest_xray", SMALL)
    items = _by_name(check.run_checks(tmp_path / "data", expected=SMALL))
    assert items["Python"].status == "OK"
    assert items["Dataset"].status == "OK" and str(root) in items["Dataset"].detail
    assert "train 2 + 3, val 1 + 1, test 1 + 2" in items["Dataset"].detail
    assert items["VGG16 weights"].status == "OK" and "md5 ok" in items["VGG16 weights"].detail
    for name in ("keras", "tensorflow", "numpy", "scikit-learn", "matplotlib", "seaborn", "papermill", "Pillow"):
        assert items[name].status == "OK", items[name]

    args = argparse.Namespace(data_dir=tmp_path / "data", weights=None, expected=SMALL)
    assert check.main_check(args) == 0
    out = capsys.readouterr().out
    assert "\nREADY (1 warning(s)" in out and "WARN  GPU: none found" in out and "-> QUICK" in out


def test_missing_things_fail_with_what_to_do(tmp_path, monkeypatch, no_gpu_probe, capsys):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    code = cli.main(["check", "--data-dir", str(tmp_path / "nothing")])
    out = capsys.readouterr().out
    assert code == 1
    assert f"FAIL  Dataset: not found in {tmp_path / 'nothing'}" in out
    assert "-> python -m workshop_utils download" in out
    assert f"FAIL  VGG16 weights: {tmp_path / 'keras' / 'models' / weights.VGG16_NOTOP_FILE} not found" in out
    assert "NOT READY: fix Dataset, VGG16 weights" in out


def test_downsized_test_split_warns_but_other_differences_fail(tmp_path, make_tree):
    counts = {split: dict(per_class) for split, per_class in SMALL.items()}
    counts["test"]["PNEUMONIA"] = 1
    make_tree(tmp_path / "a", counts)
    item = check.check_dataset(tmp_path / "a", expected=SMALL)
    assert item.status == "WARN" and "test 1 + 1" in item.detail and "(test 1 + 2)" in item.detail
    counts["train"]["NORMAL"] = 1
    make_tree(tmp_path / "b", counts)
    item = check.check_dataset(tmp_path / "b", expected=SMALL)
    assert item.status == "FAIL" and "train 2 + 3" in item.detail and "download" in item.fix


def test_shared_downsized_copy_is_a_warning(real_data_root, real_counts):
    item = check.check_dataset(real_data_root)
    assert item.status == "WARN", item
    test = real_counts["test"]
    assert f"test {test['NORMAL']} + {test['PNEUMONIA']}" in item.detail and "(test 234 + 390)" in item.detail


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
    assert items["keras"].status == "FAIL" and "older than 3.3" in items["keras"].detail
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
