"""Floors that a pipeline bug would break, checked on a run of the reduced real-data profile.

The profile (``PROFILE``): the shared real data, all images at 64 px, few epochs, random VGG16 weights, lessons 2, 3
and 6. The floors were set from measured runs of it, with a margin (see FLOORS). ``problems(...)`` returns what
fails, so that a test can also show that a deliberately broken pipeline (labels shuffled, images scaled twice)
is caught.
"""
from __future__ import annotations

import numpy as np

from workshop_utils import metrics

#: The runner's command-line settings of the profile.
PROFILE = ["--image-size", "64", "--epochs", "4", "--weights", "none", "--only", "02", "03", "06"]

#: Set from the profile measured on the shared data (2-core CPU, TensorFlow 2.21 / Keras 3.15, 2026-11-29, commit
#: cb567ac: lesson 6 test AUC 0.929, accuracy 0.797; lesson 2 specificity 0.000, lesson 3 0.973; predict within 4e-5 of
#: the lesson's probabilities; 3.9 min per run), with a margin below each.
FLOORS = {
    "cnn_auc": 0.85,            # lesson 6's test ROC-AUC
    "cnn_accuracy": 0.72,       # lesson 6's test accuracy
    "specificity_gain": 0.05,   # lesson 3's test specificity minus lesson 2's
    "predict_tolerance": 0.01,  # largest |predict's P(PNEUMONIA) - the lesson's own| on the test images
}


def problems(entries: dict[str, dict], predictions: dict[str, dict[str, np.ndarray]]) -> list[str]:
    """What breaks a floor. ``entries``: lesson name -> its record (results.json); ``predictions``: lesson name ->
    ``{"labels", "lesson", "predict"}`` arrays (test labels, the lesson's P(PNEUMONIA), predict's on the files)."""
    found = []
    for name, entry in entries.items():
        if entry.get("patient_overlap", 0) != 0:
            found.append(f"{name}: {entry['patient_overlap']} patients in both train and validation")
    cnn = _metrics(predictions["06_from_scratch_cnn"])
    if cnn["auc"]["value"] < FLOORS["cnn_auc"]:
        found.append(f"lesson 6 test AUC {cnn['auc']['value']:.3f} < {FLOORS['cnn_auc']}")
    if cnn["accuracy"]["value"] < FLOORS["cnn_accuracy"]:
        found.append(f"lesson 6 test accuracy {cnn['accuracy']['value']:.3f} < {FLOORS['cnn_accuracy']}")
    gain = (_metrics(predictions["03_class_weights"])["specificity"]["value"]
            - _metrics(predictions["02_baseline_vgg16"])["specificity"]["value"])
    if gain < FLOORS["specificity_gain"]:
        found.append(f"class weights raised test specificity by {gain:+.3f} over lesson 2 (< {FLOORS['specificity_gain']})")
    for name, p in predictions.items():
        gap = float(np.max(np.abs(p["predict"] - p["lesson"])))
        if gap > FLOORS["predict_tolerance"]:
            found.append(f"{name}: predict's probabilities differ from the lesson's by up to {gap:.3f}")
    return found


def _metrics(p: dict[str, np.ndarray]) -> dict:
    return metrics.evaluate(p["labels"], p["lesson"], n_boot=10)
