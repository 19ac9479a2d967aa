"""What every lesson repeats, as a few explicit calls: settings, seed and precision, the data and its
patient-level split, the cached frozen-VGG16 features, the test evaluation, saving the model and recording
the result. A lesson notebook calls these once, in a few lines, then writes out its own idea::

    lesson = wu.lesson.start("03_class_weights", data_dir=DATA_DIR, quick=QUICK, image_size=IMAGE_SIZE, ...)
    data = lesson.data()                       # train / val (by patient) / test
    base = lesson.frozen_vgg16()               # lesson 2 writes this out
    feats = lesson.frozen_vgg16_features(base, data)
    ...                                        # the lesson's idea
    history = lesson.train(head, feats.train, data.train.labels, (feats.val, data.val.labels))  # lesson 2 writes it out
    result = lesson.evaluate(test_prob, data)  # the test split, once
    lesson.finish(model, result, test_prob, data)

Everything returned is an ordinary object (dataclasses, NumPy arrays, Keras models).
"""
from __future__ import annotations

import contextlib
import csv
import os
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import download, features, images, metrics, parameters, results, splits


@dataclass
class Data:
    """The lesson's images: ``train`` and ``val`` split by patient from ``pool`` (the training images,
    the official 16-image val/ folded in), and ``test``, untouched until the end."""

    root: Path
    pool: images.ImageSet
    train_idx: np.ndarray
    val_idx: np.ndarray
    train: images.ImageSet
    val: images.ImageSet
    test: images.ImageSet

    @property
    def patient_overlap(self) -> int:
        """Patients with images on both sides of the train / validation split (0 by construction)."""
        groups = self.pool.groups
        return len(set(groups[self.train_idx]) & set(groups[self.val_idx]))


@dataclass
class Features:
    """Frozen-base outputs for the three splits, in the order of ``Data.train`` / ``Data.val`` / ``Data.test``,
    and for the whole training folder (``pool``, in the order of ``Data.pool``)."""

    train: np.ndarray
    val: np.ndarray
    test: np.ndarray
    pool: np.ndarray = field(repr=False, default=None)


@dataclass
class Lesson:
    """The settings a lesson runs with (after QUICK is applied) and what it has recorded."""

    name: str
    data_dir: str | None = None
    quick: bool = False
    image_size: int = 150
    epochs: int | None = None
    weights: str | None = None
    precision: str = "float32"
    seed: int = 42
    run_dir: str = "results"
    subset: dict[str, int] | None = None
    weights_loaded: str | None = None
    train_seconds: float = field(default=0.0, repr=False)
    epochs_run: int | None = field(default=None, repr=False)
    test_used: bool = field(default=False, repr=False)

    @property
    def results_file(self) -> Path:
        """``RUN_DIR/results.json``: every lesson of a run records its test metrics there."""
        return Path(self.run_dir) / "results.json"

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """The shape of one input image of every lesson model: (size, size, 1), grayscale 0-255."""
        return (self.image_size, self.image_size, 1)

    def data(self, val_fraction: float = 0.2) -> Data:
        """Find (or fetch) the dataset, decode it once (cached), and split train by patient."""
        root = download.locate_dataset(self.data_dir)
        loaded = images.load_dataset(root, self.image_size, subset=self.subset, seed=self.seed)
        pool = loaded["train"]
        train_idx, val_idx = splits.patient_split(pool.labels, pool.groups, val_fraction=val_fraction,
                                                  seed=self.seed)
        data = Data(Path(root), pool, train_idx, val_idx, pool.subset(train_idx), pool.subset(val_idx),
                    loaded["test"])
        for name, part in (("train", data.train), ("validation", data.val), ("test", data.test)):
            counts = part.class_counts()
            print(f"{name:<11}{len(part):>6} images  " + "  ".join(f"{c} {n}" for c, n in counts.items()))
        print(f"patients in both train and validation: {data.patient_overlap}")
        return data

    def vgg16_weights(self) -> str | None:
        """What to pass as ``keras.applications.VGG16(weights=...)`` for the lesson's WEIGHTS: the path of the
        ImageNet file (downloaded once into Keras' cache), of a local file, or None (random weights). What was
        actually loaded is recorded with the lesson's result."""
        from . import weights

        value, self.weights_loaded = weights.vgg16_weights(self.weights)
        return value

    def frozen_vgg16(self):
        """VGG16 without its classifier, with the lesson's weights, frozen (lesson 2 writes this out)."""
        import keras

        base = keras.applications.VGG16(weights=self.vgg16_weights(), include_top=False,
                                        input_shape=(self.image_size, self.image_size, 3))
        base.trainable = False
        return base

    def frozen_vgg16_features(self, base, data: Data) -> Features:
        """The frozen base's outputs for every image, computed once and cached on disk (see features.py)."""
        start = time.time()
        pool = features.frozen_vgg16_features(base, data.pool.images)
        test = features.frozen_vgg16_features(base, data.test.images)
        print(f"frozen VGG16 features {pool.shape[1:]} per image: {time.time() - start:.0f} s "
              "(a second run reads them from the cache)")
        return Features(pool[data.train_idx], pool[data.val_idx], test, pool)

    @contextlib.contextmanager
    def timed(self) -> Iterator[None]:
        """Count the time spent inside the ``with`` block as training time (recorded by :meth:`finish`)."""
        start = time.time()
        try:
            yield
        finally:
            self.train_seconds += time.time() - start

    def train(self, model, x, y, validation: tuple, class_weight: dict | None = None, learning_rate: float = 1e-4,
              batch_size: int = 32, patience: int = 5, verbose: int = 2, **fit_options):
        """Lesson 2's training, for the lessons after it: compile with Adam(``learning_rate``) and sparse
        categorical cross-entropy, fit for at most ``self.epochs`` epochs with early stopping on the validation
        loss (best weights restored), plot the learning curves. Returns the Keras History."""
        import keras

        from .plots import plot_history

        model.compile(optimizer=keras.optimizers.Adam(learning_rate), loss="sparse_categorical_crossentropy",
                      metrics=["accuracy"])
        early_stopping = keras.callbacks.EarlyStopping(monitor="val_loss", patience=patience,
                                                       restore_best_weights=True)
        with self.timed():
            history = model.fit(x, y, validation_data=validation, epochs=self.epochs, batch_size=batch_size,
                                class_weight=class_weight, callbacks=[early_stopping], verbose=verbose,
                                **fit_options)
        self.epochs_run = len(history.history["loss"])
        plot_history(history)
        return history

    def evaluate(self, test_prob: np.ndarray, data: Data, threshold: float = 0.5) -> dict:
        """Test metrics with 95% bootstrap CIs for P(PNEUMONIA) ``test_prob``; prints them and the confusion
        matrix. The test split is for the end: a second call in one lesson warns."""
        from .plots import plot_confusion

        if self.test_used:
            warnings.warn("The test split was already used once in this lesson. Choose models and settings on "
                          "the validation split; a test score you have tuned on is optimistic.", stacklevel=2)
        self.test_used = True
        result = metrics.evaluate(data.test.labels, test_prob, threshold=threshold)
        print(metrics.format_metrics(result))
        plot_confusion(result)
        return result

    def finish(self, model, result: dict, test_prob: np.ndarray, data: Data, threshold: float = 0.5,
               predictions: dict[str, np.ndarray] | None = None, **details) -> dict:
        """Save ``model`` in ``RUN_DIR/models/`` (for ``python -m workshop_utils predict``) with its test
        probabilities beside it (and ``predictions``, other models' test probabilities by name, as more columns),
        record the result with the settings actually used and the training time, and print the table of every
        lesson recorded in this run so far. Returns the recorded entry."""
        from . import saving

        model_path = Path(self.run_dir) / "models" / f"{self.name}.keras"
        saving.save_lesson_model(model, model_path, self.image_size, threshold=threshold, lesson=self.name)
        save_predictions(model_path.with_suffix(".test.csv"), data.root, data.test, test_prob, predictions)
        settings = {"image_size": self.image_size, "epochs": self.epochs, "epochs_run": self.epochs_run,
                    "quick": self.quick, "subset": self.subset, "weights": self.weights_loaded,
                    "precision": self.precision, "seed": self.seed, "test_n": len(data.test),
                    "patient_overlap": data.patient_overlap,
                    "threshold": threshold, "model": str(model_path)}
        entry = results.record_result(self.results_file, self.name, result, self.train_seconds,
                                      **{**settings, **details})
        print(f"saved {model_path}; recorded in {self.results_file}\n")
        print(results.results_table(results.load_results(self.results_file)))
        return entry


def start(name: str, *, data_dir: str | None = None, quick: bool = False, image_size: int = 150,
          epochs: int | None = None, weights: str | None = None, precision: str = "float32",
          seed: int = 42, run_dir: str = "results") -> Lesson:
    """Begin a lesson: print the versions and whether there is a GPU, apply the QUICK preset, seed everything,
    set the dtype policy, print the settings in use.

    ``name`` is the notebook's name without ``.ipynb`` (models and records are filed under it). A lesson passes
    the settings it has; ``epochs`` and ``weights`` stay None in a lesson that trains nothing or uses no VGG16.
    """
    from . import environment, paths

    environment.report()
    home = paths.mount_colab_drive() or paths.workshop_home()
    if home is not None and not Path(run_dir).is_absolute():
        run_dir = home / run_dir  # on Colab: on Google Drive, where the next lesson's runtime finds it
    if quick:
        preset = parameters.QUICK_PRESET
        image_size = preset["IMAGE_SIZE"]
        epochs = min(epochs, preset["EPOCHS"]) if epochs is not None else None
        subset = {"train": preset["TRAIN_IMAGES"], "test": preset["TEST_IMAGES"]}
    else:
        subset = None
    lesson = Lesson(name, data_dir, quick, image_size, epochs, weights, precision, seed, str(run_dir), subset)
    seed_everything(seed)
    import keras

    keras.config.set_dtype_policy(precision)  # mixed: compute in 16 bits, keep the weights in float32
    hidden = ("name", "weights_loaded", "train_seconds", "epochs_run", "test_used")
    shown = {k: v for k, v in vars(lesson).items() if k not in hidden and not (k in ("epochs", "weights") and v is None)}
    print(f"\n{name}: " + ", ".join(f"{k}={v!r}" for k, v in shown.items()))
    return lesson


def seed_everything(seed: int) -> None:
    """One seed for Python, NumPy and the Keras backend; on TensorFlow, deterministic kernels too, so the same
    seed on the same machine gives the same numbers."""
    import keras

    keras.utils.set_random_seed(seed)
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()


def save_predictions(path: Path, root: Path, test: images.ImageSet, test_prob: np.ndarray,
                     others: dict[str, np.ndarray] | None = None) -> Path:
    """The test images' files, labels and P(PNEUMONIA) as a CSV (what ``predict`` must reproduce); ``others``
    (name -> P(PNEUMONIA) of another model) adds a column ``p_<name>`` each."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    others = {name: np.asarray(p, dtype=float) for name, p in (others or {}).items()}
    with tmp.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["file", "label", "p_pneumonia", *(f"p_{name}" for name in others)])
        for i, (name, label, p) in enumerate(zip(test.names, test.labels, np.asarray(test_prob, dtype=float),
                                                 strict=True)):
            writer.writerow([str(root / name), int(label), f"{p:.6f}", *(f"{q[i]:.6f}" for q in others.values())])
    tmp.replace(path)
    return path


def read_predictions(path: str | Path) -> list[dict]:
    """Rows of a CSV written by :func:`save_predictions`: file, label (int), p_pneumonia (float), and any
    ``p_<name>`` columns (float)."""
    with Path(path).open(newline="") as f:
        return [{"file": r["file"], "label": int(r["label"]),
                 **{k: float(v) for k, v in r.items() if k.startswith("p_")}} for r in csv.DictReader(f)]
