"""A study of the train/test shift with the pretrained stand-in: what intensity normalisation, thresholds and class
weights do on validation AND on the shared test folder.

Usage: python benchmarks/shift_study.py [--size 150] [--weights hed] [--normalise none equalize standardise]

This script looks at the test labels: it is a study of why the lessons' validation scores do not carry over to the
test folder, run after the lessons' recipes were fixed (benchmarks/records/transfer_recipe.md), and nothing it
finds was used to choose a lesson's recipe. For each normalisation of the decoded images (none; Pillow's histogram
equalisation; per-image standardisation to mean 128, standard deviation 48), it computes the frozen features,
trains lesson 2's head (no class weights), lesson 3's (class weights) and lesson 4's (regularised, class weights)
as ``lesson.train`` does, and prints validation and test metrics at 0.5 and at the threshold that maximises
validation balanced accuracy, and each split's mean intensity by class.
"""
from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np

import workshop_utils as wu

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "chest_xray"


def normalise(images: np.ndarray, how: str) -> np.ndarray:
    """(N, H, W) uint8 grayscale images, normalised one image at a time."""
    if how == "none":
        return images
    if how == "equalize":
        from PIL import Image, ImageOps

        return np.stack([np.asarray(ImageOps.equalize(Image.fromarray(im))) for im in images])
    if how == "standardise":
        x = images.astype(np.float32)
        mean = x.mean(axis=(1, 2), keepdims=True)
        std = x.std(axis=(1, 2), keepdims=True) + 1e-6
        return np.clip(128 + 48 * (x - mean) / std, 0, 255).round().astype(np.uint8)
    raise ValueError(how)


def line(labels, prob, threshold=0.5) -> str:
    r = wu.evaluate(labels, prob, threshold=threshold, n_boot=10)
    return "  ".join(f"{k} {r[k]['value']:.3f}" for k in ("accuracy", "sensitivity", "specificity", "auc"))


def balanced_threshold(labels, prob) -> float:
    from sklearn.metrics import roc_curve

    fpr, tpr, thresholds = roc_curve(labels, prob)
    return float(thresholds[np.argmax(tpr - fpr)])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", type=int, default=150)
    parser.add_argument("--weights", default="hed")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--normalise", nargs="+", default=["none", "equalize", "standardise"])
    parser.add_argument("--data-dir", default=str(SHARED))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        lesson = wu.lesson.start("shift_study", data_dir=args.data_dir, image_size=args.size, epochs=30,
                                 weights=args.weights, seed=args.seed, run_dir=tmp)
        data = lesson.data()
        base = lesson.frozen_vgg16()
    for name, part in (("train", data.train), ("validation", data.val), ("test", data.test)):
        means = {c: float(part.images[part.labels == k].mean()) for k, c in enumerate(wu.CLASSES)}
        print(f"mean intensity, {name:<10}" + "  ".join(f"{c} {m:.1f}" for c, m in means.items()))
    for how in args.normalise:
        pool = wu.features.frozen_vgg16_features(base, normalise(data.pool.images, how), progress=False)
        test = wu.features.frozen_vgg16_features(base, normalise(data.test.images, how), progress=False)
        train, val = pool[data.train_idx], pool[data.val_idx]
        for head_name, build, cw in (("L2 flatten", wu.heads.flatten_dense, None),
                                     ("L3 flatten + class weights", wu.heads.flatten_dense, True),
                                     ("L4 regularised + class weights", wu.heads.regularised, True)):
            wu.lesson.seed_everything(args.seed)
            head = build(train.shape[1:])
            history = lesson.train(head, train, data.train.labels, (val, data.val.labels), verbose=0,
                                   class_weight=wu.class_weights(data.train.labels) if cw else None)
            val_prob = head.predict(val, verbose=0)[:, 1]
            test_prob = head.predict(test, verbose=0)[:, 1]
            t = balanced_threshold(data.val.labels, val_prob)
            best = int(np.argmin(history.history["val_loss"]))
            print(f"\n[{how}] {head_name}: kept epoch {best + 1}, val loss {history.history['val_loss'][best]:.4f}")
            print(f"  validation at 0.5:    {line(data.val.labels, val_prob)}")
            print(f"  test at 0.5:          {line(data.test.labels, test_prob)}")
            print(f"  test at {t:.3f} (threshold of best validation balanced accuracy): "
                  f"{line(data.test.labels, test_prob, t)}")
            print(f"  mean P(PNEUMONIA) of test NORMAL images {test_prob[data.test.labels == 0].mean():.3f}, "
                  f"of validation NORMAL images {val_prob[data.val.labels == 0].mean():.3f}")


if __name__ == "__main__":
    main()
