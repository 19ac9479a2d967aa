"""Recipe search for lesson 7 (fine-tuning VGG16's top blocks) on pretrained weights, on VALIDATION only.

Usage: python benchmarks/fine_tune_recipes.py [--size 150] [--weights hed] [--head-lr 1e-4] [--ft-lr 1e-5]
                                              [--ft-epochs 4] [--dropout 0.5] [--units 256] [--patience 2]
                                              [--unfreeze 5 | 4]

Lesson 7's two steps: the head on the frozen base (early stopping on the validation loss), then the top blocks
unfrozen and recompiled at ``--ft-lr``: block 5 alone (``--unfreeze 5``, the lesson, trained on the lessons' cached
blocks 1-4 outputs) or blocks 4 and 5 (``--unfreeze 4``, trained on cached blocks 1-3 outputs). Prints both steps'
validation curves, the seconds per fine-tuning epoch and the validation metrics before and after fine-tuning.
Never reads the test labels.
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

import workshop_utils as wu

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "chest_xray"


def val_line(labels, prob) -> str:
    r = wu.evaluate(labels, prob, n_boot=10)
    return "  ".join(f"{k} {r[k]['value']:.3f}" for k in ("accuracy", "sensitivity", "specificity", "auc"))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", type=int, default=150)
    parser.add_argument("--weights", default="hed")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--head-lr", type=float, default=1e-4)
    parser.add_argument("--ft-lr", type=float, default=1e-5)
    parser.add_argument("--ft-epochs", type=int, default=4)
    parser.add_argument("--patience", type=int, default=2)
    parser.add_argument("--units", type=int, default=256)
    parser.add_argument("--dropout", type=float, default=0.5)
    parser.add_argument("--unfreeze", type=int, choices=(4, 5), default=5, help="the lowest block to unfreeze")
    parser.add_argument("--data-dir", default=str(SHARED))
    args = parser.parse_args()
    print(vars(args))
    import keras

    with tempfile.TemporaryDirectory() as tmp:
        lesson = wu.lesson.start("fine_tune_recipes", data_dir=args.data_dir, image_size=args.size, epochs=30,
                                 weights=args.weights, seed=args.seed, run_dir=tmp)
        data = lesson.data()
        base = lesson.frozen_vgg16()
        lower, upper = wu.features.split_vgg16(base)
        block4 = wu.features.extract_features(lower, data.pool.images, wu.features.with_channel_axis,
                                              name=wu.features.BLOCK4, dtype="float16")
        frozen = wu.features.extract_features(upper, block4, wu.features.to_float32, name=wu.features.BLOCK5)
        below = block4  # the unfrozen blocks' inputs: blocks 1-4 outputs, or blocks 1-3 outputs for --unfreeze 4
        if args.unfreeze == 4:
            lower, upper = wu.features.split_vgg16(base, at="block3_pool")
            below = wu.features.extract_features(lower, data.pool.images, wu.features.with_channel_axis,
                                                 name="vgg16-block3", dtype="float16")
        cw = wu.class_weights(data.train.labels)
        head = wu.heads.regularised(frozen.shape[1:], args.units, args.dropout)
        lesson.epochs = 30
        history = lesson.train(head, frozen[data.train_idx], data.train.labels, (frozen[data.val_idx], data.val.labels),
                     class_weight=cw, learning_rate=args.head_lr, verbose=0)
        val4 = below[data.val_idx]
        for layer in upper.layers:  # each layer: `upper.trainable = True` is a no-op on TensorFlow (lesson 7)
            layer.trainable = True
        unfrozen = sum(int(np.prod(w.shape)) for w in upper.trainable_weights)
        assert unfrozen == upper.count_params() > 0, f"blocks {args.unfreeze}-5 are still frozen"
        print(f"unfrozen: blocks {args.unfreeze}-5, {unfrozen:,} parameters")
        model = keras.Sequential([keras.Input(upper.input.shape[1:]), upper, head])
        model.compile(optimizer=keras.optimizers.Adam(args.ft_lr), loss="sparse_categorical_crossentropy",
                      metrics=["accuracy"])
        before = model.predict(val4, verbose=0)[:, 1]
        print(f"\nhead on frozen base: val loss {model.evaluate(val4, data.val.labels, verbose=0)[0]:.4f}; "
              + val_line(data.val.labels, before))
        print("  head val loss " + " ".join(f"{x:.3f}" for x in history.history["val_loss"]))
        start = time.time()
        ft = model.fit(wu.batches.ArrayBatches(below[data.train_idx], data.train.labels, 32),
                       validation_data=(val4, data.val.labels), epochs=args.ft_epochs, class_weight=cw, verbose=0,
                       callbacks=[keras.callbacks.EarlyStopping(monitor="val_loss", patience=args.patience,
                                                                restore_best_weights=True)])
        seconds = (time.time() - start) / len(ft.history["loss"])
        after = model.predict(val4, verbose=0)[:, 1]
        best = int(np.argmin(ft.history["val_loss"]))
        print(f"fine-tuned: kept epoch {best + 1} of {len(ft.history['loss'])}, val loss "
              f"{ft.history['val_loss'][best]:.4f}, train loss {ft.history['loss'][best]:.4f}; {seconds:.0f} s/epoch")
        print("  ft val loss   " + " ".join(f"{x:.3f}" for x in ft.history["val_loss"]))
        print("  ft train loss " + " ".join(f"{x:.3f}" for x in ft.history["loss"]))
        print("  after: " + val_line(data.val.labels, after))


if __name__ == "__main__":
    main()
