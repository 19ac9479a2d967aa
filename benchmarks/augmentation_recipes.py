"""Recipe search for lesson 5 (augmentation with a frozen base) on pretrained VGG16 features, on VALIDATION only.

Usage: python benchmarks/augmentation_recipes.py [--size 150] [--weights hed] [--seed 42] CANDIDATE ...
       python benchmarks/augmentation_recipes.py --list

Each candidate sets the strength of lesson 5's four layers (rotation, zoom, translation, contrast: a factor times
the lesson's) and the number of augmented passes, runs those passes through the frozen VGG16 (one pass over the
training split each, not cached), then trains lesson 4's head on original + augmented features as lesson 5 does
(class weights from the stacked labels) and prints what benchmarks/transfer_recipes.py prints: curves, kept
epoch, gap, validation metrics. Candidates with the same strength share their passes. It never reads the test
labels. Log: benchmarks/records/transfer_recipe.md.
"""
from __future__ import annotations

import tempfile
import time

import numpy as np

import workshop_utils as wu
from transfer_recipes import arguments, describe, fit, head_hidden

#: id -> (augmentation strength relative to lesson 5's layers, augmented passes)
CANDIDATES = {"A0": (0.0, 0), "A1": (1.0, 1), "A2": (1.0, 2), "A1-half": (0.5, 1), "A1-double": (2.0, 1)}


def augmentation(strength: float):
    """Lesson 5's layers with every factor multiplied by ``strength``."""
    import keras
    from keras import layers

    return keras.Sequential([
        layers.RandomRotation(0.03 * strength, fill_mode="constant"),
        layers.RandomZoom(0.1 * strength, fill_mode="constant"),
        layers.RandomTranslation(0.05 * strength, 0.05 * strength, fill_mode="constant"),
        layers.RandomContrast(0.1 * strength, value_range=(0, 255)),
    ])


def main() -> None:
    import keras

    args = arguments()
    if args.list or not args.candidates:
        for key, (strength, passes) in CANDIDATES.items():
            print(f"{key:<12}strength {strength} x lesson 5's, {passes} augmented pass(es)")
        return
    with tempfile.TemporaryDirectory() as tmp:
        lesson = wu.lesson.start("augmentation_recipes", data_dir=args.data_dir, image_size=args.size, epochs=30,
                                 weights=args.weights, seed=args.seed, run_dir=tmp)
        data = lesson.data()
        base = lesson.frozen_vgg16()
        feats = lesson.frozen_vgg16_features(base, data)
    to_features = keras.Sequential([keras.Input(lesson.input_shape), wu.preprocessing.GrayToVGG16(), base])
    passes: dict[float, list[np.ndarray]] = {}
    for name in args.candidates:
        strength, n = CANDIDATES[name]
        wu.lesson.seed_everything(args.seed)
        start = time.time()
        done = passes.setdefault(strength, [])
        layer = augmentation(strength)
        while len(done) < n:
            done.append(wu.features.extract_features(
                to_features, data.train.images,
                lambda gray: keras.ops.convert_to_numpy(layer(gray[..., None].astype("float32"), training=True)),
                name=f"augmented pass {len(done) + 1}", cache=False, progress=False))
        x = np.concatenate([feats.train, *done[:n]])
        y = np.concatenate([data.train.labels] * (1 + n))
        head = head_hidden(feats.train.shape[1:])
        history = fit(head, x, y, (feats.val, data.val.labels), cw=True)
        print(f"\n== {name}: strength {strength} x lesson 5's, {n} augmented pass(es)")
        describe(name, history, data.val.labels, head.predict(feats.val, verbose=0)[:, 1], time.time() - start)


if __name__ == "__main__":
    main()
