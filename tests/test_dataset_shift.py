"""Lesson 9 (09_dataset_shift) as it runs: its domain classifier finds a shift that is there and none that is not,
and none of its remedies reads the test labels.

The synthetic dataset gets a controllable shift (``make_synthetic_dataset(test_shift=...)``: the test folder's
images brighter, flatter and with a burnt-in marker). Lesson 9 runs in quick mode through the runner on it, and
again on a copy whose test images sit in shuffled class folders (the same images, the labels permuted): every
candidate's test probabilities, the choice and the thresholds must be the same. A variant of the lesson whose
standardisation peeks at the test labels is shown to fail that comparison. The unshifted case is the lessons'
nbval run of this session (conftest.py runs this module after the notebooks), or a run of its own.
"""
from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import numpy as np
import pytest

from workshop_utils import dataset, runner
from workshop_utils.synthetic import make_synthetic_dataset

LESSON = "09_dataset_shift"
NOTEBOOK = runner.NOTEBOOK_DIR / f"{LESSON}.ipynb"
QUICK = ["--quick", "--weights", "none", "--only", "9"]


def run_lesson(data_dir: str | Path, out: Path, cache: Path, notebooks: Path = runner.NOTEBOOK_DIR) -> dict:
    """Lesson 9 through the runner (quick, random weights); returns its record."""
    env = dict(os.environ, WORKSHOP_CACHE_DIR=str(cache))
    proc = subprocess.run([sys.executable, "-m", "workshop_utils", "run", "--data-dir", str(data_dir), "--out",
                           str(out), "--notebooks", str(notebooks), *QUICK], env=env, capture_output=True, text=True,
                          timeout=900)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    return record_of(out)


def record_of(run: Path) -> dict:
    return next(e for e in json.loads((run / "results.json").read_text()) if e["lesson"] == LESSON)


def predictions_by_file(run: Path) -> dict[str, dict[str, float]]:
    """Every column of the lesson's test CSV (the final model's P(PNEUMONIA) and each candidate's), by file name."""
    with (run / "models" / f"{LESSON}.test.csv").open(newline="") as f:
        return {Path(r["file"]).name: {k: float(v) for k, v in r.items() if k.startswith("p_")}
                for r in csv.DictReader(f)}


def label_free_differences(first: Path, second: Path, tolerance: float = 1e-4) -> list[str]:
    """What differs between two runs of lesson 9 on the same images: choice, thresholds, probabilities."""
    a, b = record_of(first), record_of(second)
    found = [f"chosen: {a['chosen']} vs {b['chosen']}"] if a["chosen"] != b["chosen"] else []
    for name in a["remedies"]:
        for key in ("av_loss", "threshold"):
            x, y = a["remedies"][name][key], b["remedies"][name][key]
            if (x is None) != (y is None) or (x is not None and abs(x - y) > tolerance):
                found.append(f"{name} {key}: {x} vs {y}")
    pa, pb = predictions_by_file(first), predictions_by_file(second)
    assert set(pa) == set(pb), "the two runs saw other test images"
    for file in sorted(pa):
        for column, value in pa[file].items():
            if abs(value - pb[file][column]) > tolerance:
                found.append(f"{file} {column}: {value:.6f} vs {pb[file][column]:.6f}")
    return found


def shuffle_test_labels(root: Path, out: Path, seed: int = 0) -> Path:
    """A copy of the dataset at ``root`` whose test images are moved between the class folders at random (the same
    images and class counts, the labels permuted, each image's file name kept)."""
    shutil.copytree(root, out)
    listing = dataset.list_images(out, "test")
    labels = np.random.default_rng(seed).permutation(listing.labels)
    assert np.mean(labels != np.array(listing.labels)) > 0.3  # a real shuffle
    for path, label in zip(listing.paths, labels):
        target = out / "test" / dataset.CLASSES[label] / Path(path).name
        if Path(path) != target:
            os.replace(path, target)
    return out


@pytest.fixture(scope="module")
def shifted_data(tmp_path_factory) -> dict[str, Path]:
    """The shifted synthetic dataset, and a copy of it with the test labels shuffled."""
    base = tmp_path_factory.mktemp("shift-data")
    root = make_synthetic_dataset(base / "shifted", test_shift=1.0)
    return {"shifted": root, "shuffled": shuffle_test_labels(root, base / "shuffled" / "chest_xray")}


@pytest.fixture(scope="module")
def shifted_runs(shifted_data, tmp_path_factory) -> dict[str, Path]:
    """Lesson 9 on each of them."""
    base = tmp_path_factory.mktemp("shift-runs")
    for name, root in shifted_data.items():
        run_lesson(root, base / name, base / "cache")
    return {name: base / name for name in shifted_data}


def test_the_domain_classifier_finds_a_shift_that_is_there(shifted_runs):
    auc = record_of(shifted_runs["shifted"])["shift"]["domain_auc"]
    assert auc["value"] > 0.9 and auc["low"] > 0.8, auc


def test_the_domain_classifier_finds_none_where_there_is_none(tmp_path):
    nbval_run = Path(os.environ.get("WORKSHOP_TEST_LESSONS_RUN", tmp_path / "none"))
    run = nbval_run if (nbval_run / "results.json").is_file() and any(
        e["lesson"] == LESSON for e in json.loads((nbval_run / "results.json").read_text())) else None
    if run is None:  # run alone: a run of its own on the (unshifted) synthetic dataset
        run = tmp_path / "run"
        run_lesson("synthetic", run, tmp_path / "cache")
    auc = record_of(run)["shift"]["domain_auc"]
    assert abs(auc["value"] - 0.5) < 0.15 and auc["low"] < 0.5 < auc["high"], auc


def test_no_remedy_reads_the_test_labels(shifted_runs):
    assert label_free_differences(shifted_runs["shifted"], shifted_runs["shuffled"]) == []
    # the labels did change: the one evaluation (and only it) sees the shuffle
    metrics = [record_of(run)["metrics"]["accuracy"]["value"] for run in shifted_runs.values()]
    assert metrics[0] != metrics[1]


def test_a_remedy_that_peeks_at_the_test_labels_is_caught(shifted_data, tmp_path):
    """The same lesson with its standardisation fitted on the test folder's NORMAL images only (a label leak): on
    shuffled labels its predictions change, and the comparison above says so."""
    nb = nbformat.read(NOTEBOOK, as_version=4)
    leak = "standardiser(feats.test[data.test.labels == 0])"
    for cell in nb.cells:
        if "deployed = keras.Sequential([keras.Input(feats.test.shape[1:]), standardiser(feats.test), aligned])" \
                in cell.source:
            cell.source = cell.source.replace("standardiser(feats.test)", leak)
            break
    else:
        pytest.fail("lesson 9's standardisation cell has changed: update this test")
    folder = tmp_path / "notebooks"
    folder.mkdir()
    nbformat.write(nb, folder / NOTEBOOK.name)
    leaky = {name: tmp_path / f"leaky-{name}" for name in shifted_data}
    for name, root in shifted_data.items():
        run_lesson(root, leaky[name], tmp_path / "cache", notebooks=folder)
    found = label_free_differences(leaky["shifted"], leaky["shuffled"])
    assert any("standardisation" in line for line in found), found


def test_predict_gives_what_lesson_9_recorded(shifted_runs):
    """The saved final model, through `predict`, reproduces the lesson's test probabilities and decisions, whichever
    remedy was chosen (per-folder standardisation carries the test folder's statistics; label-shift correction is
    the threshold)."""
    from workshop_utils import lesson
    from workshop_utils.predict import predict_files
    run = shifted_runs["shifted"]
    model = run / "models" / f"{LESSON}.keras"
    rows = lesson.read_predictions(model.with_suffix(".test.csv"))
    predicted = predict_files(model, [r["file"] for r in rows])
    assert max(abs(p["p_pneumonia"] - r["p_pneumonia"]) for p, r in zip(predicted, rows, strict=True)) < 0.01
    threshold = record_of(run)["threshold"]
    assert all(p["threshold"] == pytest.approx(threshold) for p in predicted)
