"""Benchmark: lesson 6's from-scratch CNN recipe over several seeds, on the shared real data.

Usage: python benchmarks/scratch_cnn.py [DATA_DIR] [--seeds 42 43 44] [--validation-only] [--deterministic]
Each seed drives the patient-level validation split, the initial weights, the augmentation and the shuffling.
Per seed: trains the recipe (printing validation loss and accuracy, wall and CPU seconds per epoch), keeps the
epoch with the lowest validation loss, and evaluates it once on test at threshold 0.5; then the mean and spread
(max - min) over the seeds. --validation-only never touches test (for choosing the recipe). Run it alone:
anything else sharing the CPU inflates the wall times (CPU seconds / cores is the unshared estimate).
"""
import argparse
import math
import os
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import keras  # noqa: E402
import numpy as np  # noqa: E402
from keras import layers  # noqa: E402

import workshop_utils as wu  # noqa: E402

IMAGE_SIZE = 150    # the lesson's input size (raw grayscale, 0-255)
WORK_SIZE = 150     # resized inside the model (C5-C9 worked at 128 px; C10 at 150 px validated better)
EPOCHS = 16
BATCH_SIZE = 32
PEAK_LEARNING_RATE = 1e-3
EMA_MOMENTUM = 0.99  # validate and keep an exponential moving average of the weights (~100 steps)


def conv_block(filters: int, kernel_size: int = 3, **kwargs) -> list:
    """Convolution, GroupNormalization, ReLU. GroupNormalization uses no batch statistics: training and
    inference compute the same thing (BatchNormalization's moving averages made the validation loss jump)."""
    return [layers.Conv2D(filters, kernel_size, padding="same", use_bias=False, **kwargs),
            layers.GroupNormalization(groups=min(8, filters)), layers.ReLU()]


def build_recipe(n_train: int, image_size: int = IMAGE_SIZE, epochs: int = EPOCHS, work_size: int = WORK_SIZE,
                 ema: float = EMA_MOMENTUM) -> tuple[keras.Model, dict]:
    """The compiled model and the keyword arguments of its ``fit`` (epochs, batch size, callbacks).

    Labels are one-hot (label smoothing needs them); ``n_train`` sets the learning-rate schedule's length.
    ``ema``: momentum of the moving average of the weights that is validated and kept (0: no average).
    """
    model = keras.Sequential([
        keras.Input((image_size, image_size, 1)),
        layers.Resizing(work_size, work_size),
        # augmentation: active in fit(), a no-op in predict() and evaluate(); edges are filled by reflection
        # (Keras' default), not black, which would shift the per-image standardisation below
        layers.RandomRotation(0.03),
        layers.RandomZoom(0.1),
        layers.RandomTranslation(0.05, 0.05),
        layers.RandomContrast(0.2, value_range=(0, 255)),
        # per-image standardisation: each image to mean 0, standard deviation 1 (exposure differences removed)
        layers.LayerNormalization(axis=(1, 2, 3), center=False, scale=False),
        *conv_block(16, 5, strides=2), layers.MaxPooling2D(),
        *conv_block(32), *conv_block(32), layers.MaxPooling2D(),
        *conv_block(64), *conv_block(64), layers.MaxPooling2D(),
        *conv_block(128), *conv_block(128),
        layers.GlobalAveragePooling2D(),
        layers.Dropout(0.5),
        layers.Dense(2, activation="softmax", dtype="float32"),
    ], name="cnn_from_scratch")
    steps = math.ceil(n_train / BATCH_SIZE)
    # one epoch of linear warm-up to the peak rate, then a cosine decay to 0 at the last epoch
    schedule = keras.optimizers.schedules.CosineDecay(
        PEAK_LEARNING_RATE / 10, decay_steps=(epochs - 1) * steps, warmup_target=PEAK_LEARNING_RATE,
        warmup_steps=steps)
    ema = min(ema, 1 - 1 / steps) if ema > 0 else 0  # as in lesson 6: average over at most one epoch
    optimizer = keras.optimizers.AdamW(schedule, weight_decay=1e-4, use_ema=ema > 0, ema_momentum=ema or 0.99)
    model.compile(optimizer=optimizer,
                  loss=keras.losses.CategoricalCrossentropy(label_smoothing=0.1), metrics=["accuracy"])
    # never stops early (patience = all epochs): keeps the weights of the epoch with the lowest validation loss
    callbacks = [keras.callbacks.EarlyStopping(monitor="val_loss", patience=epochs, restore_best_weights=True)]
    if ema > 0:  # first: validation, and the weights EarlyStopping keeps, are the averaged ones
        callbacks.insert(0, keras.callbacks.SwapEMAWeights(swap_on_epoch=True))
    return model, {"epochs": epochs, "batch_size": BATCH_SIZE, "callbacks": callbacks}


class EpochReport(keras.callbacks.Callback):
    """Prints validation loss and accuracy, wall and CPU seconds of every epoch; keeps the seconds."""

    def on_epoch_begin(self, epoch, logs=None):
        self.wall, self.cpu = time.time(), sum(os.times()[:2])

    def on_epoch_end(self, epoch, logs=None):
        logs["seconds"], logs["cpu_seconds"] = time.time() - self.wall, sum(os.times()[:2]) - self.cpu
        print(f"  epoch {epoch + 1:2d}  loss {logs['loss']:.4f}  val_loss {logs['val_loss']:.4f}  "
              f"val_acc {logs['val_accuracy']:.4f}  {logs['seconds']:.0f} s (CPU {logs['cpu_seconds']:.0f} s)",
              flush=True)


def run_seed(data: dict, seed: int, epochs: int, validation_only: bool, **candidate) -> dict:
    """Train the recipe with one seed; return its curves, timings and (unless validation_only) test metrics."""
    keras.utils.set_random_seed(seed)
    train_idx, val_idx = wu.patient_split(data["train"].labels, data["train"].groups, val_fraction=0.2, seed=seed)
    train, val = data["train"].subset(train_idx), data["train"].subset(val_idx)
    model, fit_settings = build_recipe(len(train), data["train"].images.shape[1], epochs, **candidate)
    fit_settings["callbacks"] = [EpochReport(), *fit_settings["callbacks"]]
    one_hot = np.eye(2, dtype="float32")
    start = time.time()
    history = model.fit(train.images[..., None], one_hot[train.labels],
                        validation_data=(val.images[..., None], one_hot[val.labels]),
                        class_weight=wu.class_weights(train.labels), verbose=0, **fit_settings).history
    run = {"seed": seed, "val_loss": history["val_loss"], "val_accuracy": history["val_accuracy"],
           "best_epoch": int(np.argmin(history["val_loss"])) + 1, "train_seconds": time.time() - start,
           "seconds": history["seconds"], "cpu_seconds": history["cpu_seconds"]}
    print(f"  best epoch {run['best_epoch']} (val_loss {min(run['val_loss']):.4f}), "
          f"{run['train_seconds']:.0f} s of training")
    if not validation_only:
        test = data["test"]
        run["test"] = wu.evaluate(test.labels, model.predict(test.images[..., None], verbose=0)[:, 1])
        print(wu.format_metrics(run["test"]))
    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("data_dir", nargs="?",
                        default=str(Path(__file__).resolve().parents[2] / "shared/data/chest_xray"))
    parser.add_argument("--seeds", type=int, nargs="+", default=[42, 43, 44])
    parser.add_argument("--epochs", type=int, default=EPOCHS, help="shorter runs for checks only")
    parser.add_argument("--validation-only", action="store_true", help="never evaluate on test")
    parser.add_argument("--deterministic", action="store_true",
                        help="TensorFlow's enable_op_determinism (default CPU kernels already repeat on one machine)")
    parser.add_argument("--work-size", type=int, default=WORK_SIZE, help="candidate: working size inside the model")
    parser.add_argument("--ema", type=float, default=EMA_MOMENTUM, help="momentum of the weights' moving average (0: none)")
    args = parser.parse_args()
    if args.deterministic:
        import tensorflow as tf
        tf.config.experimental.enable_op_determinism()
    data = wu.load_dataset(wu.find_dataset_root(args.data_dir), IMAGE_SIZE)
    runs = []
    for seed in args.seeds:
        print(f"seed {seed}")
        runs.append(run_seed(data, seed, args.epochs, args.validation_only,
                             work_size=args.work_size, ema=args.ema))

    metrics = [] if args.validation_only else ["accuracy", "sensitivity", "specificity", "auc"]
    print(f"\n{'seed':>6}{'best ep':>8}{'val_loss':>9}{'train s':>8}{'s/ep':>6}{'CPU s/ep':>9}"
          + "".join(f"{m:>12}" for m in metrics))
    for run in runs:
        print(f"{run['seed']:>6}{run['best_epoch']:>8}{min(run['val_loss']):>9.4f}{run['train_seconds']:>8.0f}"
              f"{np.mean(run['seconds']):>6.1f}{np.mean(run['cpu_seconds']):>9.1f}"
              + "".join(f"{run['test'][m]['value']:>12.3f}" for m in metrics))
    if metrics:
        for name, reduce in (("mean", np.mean), ("spread", np.ptp)):
            print(f"{name:>6}{'':>40}" + "".join(
                f"{reduce([run['test'][m]['value'] for run in runs]):>12.3f}" for m in metrics))


if __name__ == "__main__":
    main()
