"""Validation metrics of the models a run saved: what each lesson's model scores on the patient-level validation
split, beside the test metrics the run recorded.

Usage: python benchmarks/validation_metrics.py RUN_DIR [DATA_DIR]

Rebuilds the run's split (same data, image size and seed as each lesson recorded), then scores each saved model
on the validation images at its own threshold. The VGG16 lessons' frozen layers are read from the lessons' feature
cache (WORKSHOP_CACHE_DIR): only the trained layers run (lesson 7: block 5 and the head), so this takes seconds
once the cache holds the run's weights and size. Prints one row per lesson: validation loss, accuracy, sensitivity,
specificity, AUC, then the run's test accuracy, specificity and AUC.
"""
from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import numpy as np

import workshop_utils as wu
from workshop_utils import features, saving

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "chest_xray"


def main() -> None:
    run = Path(sys.argv[1])
    data_dir = sys.argv[2] if len(sys.argv) > 2 else str(SHARED)
    entries = json.loads((run / "results.json").read_text())
    first = next(e for e in entries if e.get("weights"))
    weights = "none" if first["weights"].startswith("none") else first["weights"].rsplit(" (", 1)[-1].rstrip(")")
    with tempfile.TemporaryDirectory() as tmp:
        lesson = wu.lesson.start("validation_metrics", data_dir=data_dir, image_size=first["image_size"], epochs=1,
                                 weights=weights, seed=first["seed"], run_dir=tmp)
        data = lesson.data()
        base = lesson.frozen_vgg16()
    lower, upper = features.split_vgg16(base)
    pool4 = features.extract_features(lower, data.pool.images, features.with_channel_axis, name=features.BLOCK4,
                                      dtype="float16")
    block5 = features.extract_features(upper, pool4, features.to_float32, name=features.BLOCK5)[data.val_idx]
    block4 = pool4[data.val_idx]
    print(f"\nvalidation: {len(data.val)} images of the split with seed {first['seed']}; weights {lesson.weights_loaded}")
    print(f"{'lesson':<30}{'val loss':>9}{'acc':>7}{'sens':>7}{'spec':>7}{'auc':>7} | test acc   spec    auc")
    for e in entries:
        model, meta = saving.load_lesson_model(e["model"] if Path(e["model"]).is_file()
                                               else run / "models" / Path(e["model"]).name)
        names = [layer.name for layer in model.layers]
        if "vgg16" in names:  # GrayToVGG16, the frozen base, the head
            prob = model.layers[-1].predict(block5, verbose=0)
        elif any(n.startswith("vgg16_block_5") for n in names):  # lesson 7: blocks 1-4, block 5, head
            x = block4.astype(np.float32)
            for layer in model.layers[1:]:
                x = layer(x, training=False)
            prob = np.asarray(x)
        else:  # lesson 6: the whole model on the images
            prob = model.predict(data.val.images[..., None].astype(np.float32), verbose=0)
        p = prob[:, 1].astype(np.float64)
        labels = data.val.labels
        loss = float(-np.mean(np.log(np.clip(np.where(labels == 1, p, 1 - p), 1e-7, 1))))
        r = wu.evaluate(labels, p, threshold=meta.get("threshold", 0.5), n_boot=10)
        t = e["metrics"]
        print(f"{e['lesson']:<30}{loss:>9.4f}" + "".join(f"{r[m]['value']:>7.3f}" for m in
                                                        ("accuracy", "sensitivity", "specificity", "auc"))
              + f" | {t['accuracy']['value']:.3f}  {t['specificity']['value']:.3f}  {t['auc']['value']:.3f}")


if __name__ == "__main__":
    main()
