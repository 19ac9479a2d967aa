"""Recipe search for the transfer lessons (2, 3, 4, 5, 8) on frozen pretrained VGG16 features, on VALIDATION only.

Usage: python benchmarks/transfer_recipes.py [--size 150] [--weights hed] [--seed 42] CANDIDATE ...
       python benchmarks/transfer_recipes.py --list

Each candidate trains a head on the cached frozen features (the lessons' own cache: a lesson run with the same
weights and size fills it) of the patient-level train split and prints, per epoch, the training and validation
loss, then the kept epoch, the train/validation gap there and the validation metrics at 0.5 and at the
validation-chosen threshold. It never reads the test labels: the test folder is for the lesson runs. The log of
what was tried and why is benchmarks/records/transfer_recipe.md.
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

import workshop_utils as wu

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "chest_xray"


def head_flatten(shape, dropout=0.0, l2=0.0):
    import keras
    from keras import layers

    reg = keras.regularizers.L2(l2) if l2 else None
    return keras.Sequential([keras.Input(shape), layers.Flatten(), *([layers.Dropout(dropout)] if dropout else []),
                             layers.Dense(2, activation="softmax", kernel_regularizer=reg)])


def head_hidden(shape, units=256, dropout=0.5, batchnorm=True, gap=False, l2=0.0, input_dropout=0.0):
    import keras
    from keras import layers

    reg = keras.regularizers.L2(l2) if l2 else None
    return keras.Sequential([
        keras.Input(shape), layers.GlobalAveragePooling2D() if gap else layers.Flatten(),
        *([layers.Dropout(input_dropout)] if input_dropout else []),
        layers.Dense(units, activation="relu", kernel_regularizer=reg),
        *([layers.BatchNormalization()] if batchnorm else []),
        *([layers.Dropout(dropout)] if dropout else []),
        layers.Dense(2, activation="softmax")])


#: id -> (what it is, head builder(shape), fit options)
CANDIDATES = {
    "L2": ("lesson 2 as committed: Flatten+Dense(2), Adam 1e-4, batch 32, ES patience 5", head_flatten, {}),
    "L2-lr1e-3": ("L2 with Adam 1e-3", head_flatten, {"lr": 1e-3}),
    "L2-lr1e-5": ("L2 with Adam 1e-5", head_flatten, {"lr": 1e-5}),
    "L3": ("L2 + balanced class weights", head_flatten, {"cw": True}),
    "L3-lr1e-5": ("L3 with Adam 1e-5", head_flatten, {"cw": True, "lr": 1e-5}),
    "L4": ("lesson 4 as committed: Dense(256)+BN+Dropout(0.5), class weights, Adam 1e-4", head_hidden,
           {"cw": True}),
    "L4-plain": ("Dense(256), no BN, no dropout, class weights", lambda s: head_hidden(s, 256, 0.0, False),
                 {"cw": True}),
    "L4-lr1e-5": ("L4 with Adam 1e-5", head_hidden, {"cw": True, "lr": 1e-5}),
    "L4-gap": ("GAP + Dense(256)+BN+Dropout(0.5), class weights", lambda s: head_hidden(s, gap=True), {"cw": True}),
    "L4-nobn": ("Dense(256)+Dropout(0.5), class weights", lambda s: head_hidden(s, batchnorm=False), {"cw": True}),
    "L4-in0.5": ("Dropout(0.5) on the features + Dense(256)+Dropout(0.5), class weights",
                 lambda s: head_hidden(s, batchnorm=False, input_dropout=0.5), {"cw": True}),
    "L4-l2": ("Dense(256, L2 1e-3)+BN+Dropout(0.5), class weights", lambda s: head_hidden(s, l2=1e-3), {"cw": True}),
    "L3-wval": ("L3, early stopping on the class-weighted validation loss", head_flatten, {"cw": True, "wval": True}),
    "L4-wval": ("L4, early stopping on the class-weighted validation loss", head_hidden, {"cw": True, "wval": True}),
    "L2-drop": ("Dropout(0.5)+Flatten+Dense(2), class weights", lambda s: head_flatten(s, dropout=0.5), {"cw": True}),
}


def fit(head, x, y, val, lr=1e-4, cw=False, epochs=30, patience=5, batch_size=32, wval=False):
    import keras

    if wval:  # the validation loss weighted like the training loss: the same objective on new patients
        weights = wu.class_weights(y)
        val = (*val, np.array([weights[int(label)] for label in val[1]], dtype="float32"))

    head.compile(optimizer=keras.optimizers.Adam(lr), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    stop = keras.callbacks.EarlyStopping(monitor="val_loss", patience=patience, restore_best_weights=True)
    return head.fit(x, y, validation_data=val, epochs=epochs, batch_size=batch_size, verbose=0, callbacks=[stop],
                    class_weight=wu.class_weights(y) if cw else None)


def describe(name, history, val_labels, val_prob, seconds):
    h = history.history
    best = int(np.argmin(h["val_loss"]))
    at_half = wu.evaluate(val_labels, val_prob, n_boot=10)
    v = {k: at_half[k]["value"] for k in ("accuracy", "sensitivity", "specificity", "auc")}
    print(f"\n{name}: kept epoch {best + 1} of {len(h['loss'])}, val loss {h['val_loss'][best]:.4f}, "
          f"train loss {h['loss'][best]:.4f}, gap {h['val_loss'][best] - h['loss'][best]:+.4f}; {seconds:.0f} s")
    print("  val loss  " + " ".join(f"{x:.3f}" for x in h["val_loss"]))
    print("  train loss " + " ".join(f"{x:.3f}" for x in h["loss"]))
    print("  val at 0.5: " + "  ".join(f"{k} {x:.3f}" for k, x in v.items()))


def arguments() -> argparse.Namespace:
    """The recipe scripts' command line: candidates, --size, --weights, --seed, --data-dir, --list."""
    parser = argparse.ArgumentParser()
    parser.add_argument("candidates", nargs="*")
    parser.add_argument("--size", type=int, default=150)
    parser.add_argument("--weights", default="hed")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--data-dir", default=str(SHARED))
    parser.add_argument("--list", action="store_true")
    return parser.parse_args()


def main() -> None:
    args = arguments()
    if args.list or not args.candidates:
        for key, (what, *_rest) in CANDIDATES.items():
            print(f"{key:<12}{what}")
        return
    with tempfile.TemporaryDirectory() as tmp:
        lesson = wu.lesson.start("recipes", data_dir=args.data_dir, image_size=args.size, epochs=30,
                                 weights=None if args.weights == "none" else args.weights, seed=args.seed,
                                 run_dir=tmp)
        data = lesson.data()
        feats = lesson.frozen_vgg16_features(lesson.frozen_vgg16(), data)
    print(f"weights: {lesson.weights_loaded}")
    for name in args.candidates:
        what, build, options = CANDIDATES[name]
        wu.lesson.seed_everything(args.seed)
        start = time.time()
        head = build(feats.train.shape[1:])
        history = fit(head, feats.train, data.train.labels, (feats.val, data.val.labels), **options)
        print(f"\n== {name}: {what}")
        describe(name, history, data.val.labels, head.predict(feats.val, verbose=0)[:, 1], time.time() - start)


if __name__ == "__main__":
    main()
