"""Save a lesson's model with what is needed to use it: image size, classes, decision threshold.

A lesson model takes the grayscale image itself, shape (size, size, 1), float values 0-255, and holds its
preprocessing as layers (:mod:`workshop_utils.preprocessing`), so nothing about preprocessing is stored
beside it. It outputs the two class probabilities (softmax), in the order of ``dataset.CLASSES``.

The description is a small JSON entry, ``workshop_model.json``, added inside the ``.keras`` file (a zip
archive); ``keras.saving.load_model`` ignores it, so the file stays an ordinary Keras model. Keras is
imported only inside the functions that need it.
"""
from __future__ import annotations

import json
import math
import zipfile
from pathlib import Path

import numpy as np

from .cachefiles import unique_temporary
from .dataset import CLASSES

FORMAT = "pneumonia-workshop-model"
VERSION = 2
ENTRY = "workshop_model.json"
INPUT = "grayscale, 0-255, shape (size, size, 1)"
#: Largest deviation tolerated from a probability row (values in [0, 1], summing to 1): float16 rounding.
PROBABILITY_TOLERANCE = 5e-3
_RESERVED = ("format", "version", "image_size", "input", "classes", "threshold", "keras_version")


class ModelFormatError(ValueError):
    """The file is not a usable model saved by the workshop lessons; the message says what to do."""


def describe(image_size: int, threshold: float = 0.5, **details) -> dict:
    """The description stored with a model: format, version, image size, input, classes, threshold,
    Keras version, and ``details`` (JSON values, e.g. ``lesson="06_from_scratch_cnn"``).

    Raises ValueError for a size that is not a positive integer, a threshold outside (0, 1), or details
    that clash with these names or cannot be written as JSON.
    """
    if isinstance(image_size, bool) or not isinstance(image_size, (int, np.integer)) or image_size < 1:
        raise ValueError(f"image_size must be a positive whole number of pixels, not {image_size!r}.")
    if (isinstance(threshold, bool) or not isinstance(threshold, (int, float, np.floating))
            or not 0.0 < float(threshold) < 1.0):
        hint = (" (preprocessing is no longer saved beside the model: it is a layer inside it, see "
                "workshop_utils.preprocessing)" if isinstance(threshold, str) else "")
        raise ValueError(f"threshold must be a probability between 0 and 1 (exclusive), not {threshold!r}{hint}.")
    clash = sorted(set(details) & set(_RESERVED))
    if clash:
        raise ValueError(f"{clash} are set by save_lesson_model itself; do not pass them as details.")
    try:
        json.dumps(details, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"details must be JSON values (text, numbers, lists, dicts): {exc}") from exc
    import keras

    return {"format": FORMAT, "version": VERSION, "image_size": int(image_size), "input": INPUT,
            "classes": list(CLASSES), "threshold": float(threshold), **details,
            "keras_version": keras.__version__}


def check_model(model, image_size: int) -> None:
    """Raise ValueError unless ``model`` takes one (size, size, 1) grayscale input and gives one output of
    2 values per image (NORMAL, PNEUMONIA). Dimensions the model leaves open (None) are accepted."""
    inputs, outputs = getattr(model, "inputs", None), getattr(model, "outputs", None)
    if not inputs or not outputs:
        raise ValueError("The model is not built: call it once on an input, or start it with keras.Input.")
    if len(inputs) != 1 or len(outputs) != 1:
        raise ValueError(f"The model has {len(inputs)} inputs and {len(outputs)} outputs; a lesson model has one "
                         "of each.")
    shape = tuple(inputs[0].shape[1:])
    if len(shape) != 3 or any(got not in (None, want) for got, want in zip(shape, (image_size, image_size, 1))):
        colour = " (3 colour channels)" if shape[-1:] == (3,) else ""
        raise ValueError(
            f"The model takes inputs of shape {shape}{colour}, not the grayscale image ({image_size}, {image_size}, "
            "1). A lesson model takes the raw grayscale image (values 0-255) and holds its preprocessing inside: "
            "start it with keras.Input((size, size, 1)) followed by workshop_utils.preprocessing.GrayToVGG16() "
            "for VGG16, or keras.layers.Rescaling(1 / 255) for a CNN of your own.")
    out = tuple(outputs[0].shape[1:])
    if out != (len(CLASSES),):
        raise ValueError(f"The model outputs shape {out} per image; a lesson model outputs {len(CLASSES)} class "
                         f"probabilities ({', '.join(CLASSES)}): end it with Dense({len(CLASSES)}, "
                         "activation='softmax').")


def check_probabilities(probabilities: np.ndarray) -> int | None:
    """The index of the first row that is not a probability distribution (a value outside [0, 1], not
    finite, or a row not summing to 1), or None when all are."""
    p = np.asarray(probabilities, dtype=np.float64)
    tol = PROBABILITY_TOLERANCE
    bad = (~np.isfinite(p).all(axis=1) | (p < -tol).any(axis=1) | (p > 1 + tol).any(axis=1)
           | (np.abs(p.sum(axis=1) - 1.0) > tol))
    return int(np.argmax(bad)) if bad.any() else None


def not_softmax_message(row: np.ndarray) -> str:
    """Why a model whose output ``row`` is not a probability distribution cannot be used."""
    values = ", ".join(f"{v:.2f}" for v in np.asarray(row, dtype=np.float64))
    return (f"the model does not end in softmax: its outputs are not probabilities (got {values}, which should "
            f"lie in [0, 1] and sum to 1). End it with Dense({len(CLASSES)}, activation='softmax') and save it again.")


def _write_with_entry(path: Path, meta: dict) -> None:
    """Rewrite the zip ``path`` with ``meta`` as its (only) description entry; atomic (a temporary file replaced)."""
    tmp = unique_temporary(path, ".tmp")
    try:
        with zipfile.ZipFile(path) as src, zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as dst:
            for item in src.infolist():
                if item.filename != ENTRY:
                    dst.writestr(item, src.read(item.filename))
            dst.writestr(ENTRY, json.dumps(meta, indent=1))
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)


def write_metadata(path: str | Path, image_size: int, threshold: float = 0.5, **details) -> dict:
    """Add (or replace) the workshop description in an existing ``.keras`` file; return it.

    For a model saved with plain ``model.save``, to make it usable by ``python -m workshop_utils predict``.
    The model must follow the lesson models' contract (see :func:`check_model`); ``predict`` checks it.
    """
    path = Path(path)
    meta = describe(image_size, threshold, **details)
    if not zipfile.is_zipfile(path):
        raise ModelFormatError(f"{path} is not a .keras model file.")
    _write_with_entry(path, meta)
    return meta


def save_lesson_model(model, path: str | Path, image_size: int, threshold: float = 0.5, **details) -> Path:
    """``model.save(path)`` (a ``.keras`` file) plus the description that :func:`load_lesson_model` and the
    ``predict`` command need; returns the path.

    ``threshold``: predict PNEUMONIA when p(PNEUMONIA) >= threshold (0.5 unless the lesson chose one, on
    validation data). ``details``: more to record, e.g. ``lesson="06_from_scratch_cnn"``. Refuses (ValueError,
    nothing written) a model that does not take (size, size, 1) or does not output 2 probabilities.
    """
    path = Path(path)
    if path.suffix != ".keras":
        raise ValueError(f"Save lesson models as .keras files, not {path.name}.")
    meta = describe(image_size, threshold, **details)
    check_model(model, int(image_size))
    probe = np.stack([np.zeros((image_size, image_size, 1), np.float32),
                      np.random.default_rng(0).uniform(0, 255, (image_size, image_size, 1)).astype(np.float32)])
    p = np.asarray(model.predict_on_batch(probe))
    bad = check_probabilities(p)
    if bad is not None:
        raise ValueError(f"Not saved: {not_softmax_message(p[bad])}")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = unique_temporary(path, ".partial.keras")  # a complete, described file or none, in every process
    try:
        model.save(tmp)
        _write_with_entry(tmp, meta)
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def read_metadata(path: str | Path) -> dict:
    """The workshop description stored in a ``.keras`` file, without loading the model (or Keras).

    Raises FileNotFoundError or ModelFormatError.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"Model file {path} not found.")
    if path.is_dir() or not zipfile.is_zipfile(path):
        raise ModelFormatError(f"{path} is not a Keras model file (a .keras zip archive saved by model.save).")
    try:
        with zipfile.ZipFile(path) as zf:
            names = set(zf.namelist())
            if "config.json" not in names:
                raise ModelFormatError(f"{path} is a zip archive but not a Keras model file (.keras).")
            if ENTRY not in names:
                raise ModelFormatError(
                    f"{path} is not a model saved by the workshop lessons: it has no {ENTRY} describing its image "
                    "size and classes. Save it with workshop_utils.saving.save_lesson_model(model, path, "
                    "image_size), or describe an existing file with "
                    "workshop_utils.saving.write_metadata(path, image_size).")
            meta = json.loads(zf.read(ENTRY))
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        if isinstance(exc, ModelFormatError):
            raise
        raise ModelFormatError(f"{path}: cannot read its {ENTRY} ({exc}); the file is damaged.") from exc
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ModelFormatError(f"{path}: {ENTRY} does not describe a {FORMAT} file.")
    version = meta.get("version")
    if not isinstance(version, int):
        raise ModelFormatError(f"{path}: {ENTRY} has no format version.")
    if version < VERSION:
        raise ModelFormatError(f"{path} was saved by an older workshop version (model format {version}, "
                               "preprocessing outside the model): re-run its lesson to save it again.")
    if version > VERSION:
        raise ModelFormatError(f"{path} was saved by a newer workshop_utils (model format {version}); "
                               "update the package.")
    size, threshold, classes = meta.get("image_size"), meta.get("threshold"), meta.get("classes")
    if (not isinstance(size, int) or size < 1 or not isinstance(threshold, (int, float))
            or not 0 < threshold < 1 or math.isnan(threshold) or classes != list(CLASSES)):
        raise ModelFormatError(f"{path}: {ENTRY} is incomplete or invalid (image_size {size!r}, threshold "
                               f"{threshold!r}, classes {classes!r}); save the model again with save_lesson_model.")
    return meta


def load_lesson_model(path: str | Path):
    """Load a model saved by :func:`save_lesson_model`; return ``(model, metadata)``.

    The model itself is checked against its description (input size, two outputs); its outputs being
    probabilities is checked where it runs (``predict``). Raises FileNotFoundError for a missing file and
    ModelFormatError, naming the file, for anything else.
    """
    meta = read_metadata(path)
    import keras

    from . import preprocessing  # noqa: F401  registers GrayToVGG16, which the VGG16 lesson models hold

    try:
        model = keras.saving.load_model(path, compile=False)
    except Exception as exc:  # Keras raises many kinds for damaged or incompatible files
        raise ModelFormatError(f"Keras could not load {path}: {exc}") from exc
    try:
        check_model(model, meta["image_size"])
    except ValueError as exc:
        raise ModelFormatError(f"{path} does not match its description ({meta['image_size']} px grayscale "
                               f"images, {len(CLASSES)} classes): {exc}") from exc
    return model, meta
