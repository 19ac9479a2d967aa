"""Save a lesson's model together with what is needed to use it: image size, preprocessing, classes.

The description is a small JSON entry, ``workshop_model.json``, added inside the ``.keras`` file (a zip
archive); ``keras.saving.load_model`` ignores it, so the file stays an ordinary Keras model. Keras is
imported only inside the functions that need it.
"""
from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np

from .dataset import CLASSES

FORMAT = "pneumonia-workshop-model"
VERSION = 1
ENTRY = "workshop_model.json"
#: ``"vgg16"``: gray copied to 3 channels (0-255) then ``keras.applications.vgg16.preprocess_input``;
#: ``"scale01"``: gray / 255, as 1 or 3 channels.
PREPROCESSING = ("vgg16", "scale01")


class ModelFormatError(ValueError):
    """The file is not a Keras model saved by the workshop lessons; the message says what to do."""


def _metadata(image_size: int, preprocessing: str, channels: int) -> dict:
    if preprocessing not in PREPROCESSING:
        raise ValueError(f"Unknown preprocessing {preprocessing!r}: use one of {PREPROCESSING}.")
    if channels not in (1, 3) or (preprocessing == "vgg16" and channels != 3):
        raise ValueError(f"channels must be 1 or 3 (3 for 'vgg16'), not {channels}.")
    if int(image_size) < 1:
        raise ValueError(f"image_size must be positive, not {image_size}.")
    import keras

    return {"format": FORMAT, "version": VERSION, "image_size": int(image_size),
            "preprocessing": preprocessing, "channels": int(channels), "classes": list(CLASSES),
            "keras_version": keras.__version__}


def write_metadata(path: str | Path, image_size: int, preprocessing: str, channels: int = 3) -> dict:
    """Add (or replace) the workshop description in an existing ``.keras`` file; return it.

    Use it on a model saved with plain ``model.save`` to make it usable by ``python -m workshop_utils predict``.
    """
    path = Path(path)
    meta = _metadata(image_size, preprocessing, channels)
    if not zipfile.is_zipfile(path):
        raise ModelFormatError(f"{path} is not a .keras model file.")
    with zipfile.ZipFile(path) as zf:
        present = ENTRY in zf.namelist()
    if present:  # zip files cannot replace an entry in place: rewrite without it
        tmp = path.with_name(path.name + ".tmp")
        with zipfile.ZipFile(path) as src, zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as dst:
            for item in src.infolist():
                if item.filename != ENTRY:
                    dst.writestr(item, src.read(item.filename))
        tmp.replace(path)
    with zipfile.ZipFile(path, "a", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(ENTRY, json.dumps(meta, indent=1))
    return meta


def save_lesson_model(model, path: str | Path, image_size: int, preprocessing: str,
                      channels: int = 3) -> Path:
    """``model.save(path)`` (a ``.keras`` file) plus the description that ``load_lesson_model`` and the
    ``predict`` command need. Returns the path."""
    path = Path(path)
    if path.suffix != ".keras":
        raise ValueError(f"Save lesson models as .keras files, not {path.name}.")
    _metadata(image_size, preprocessing, channels)  # fail before writing anything
    try:
        shape = tuple(model.input_shape)[1:]
    except (AttributeError, ValueError, TypeError):  # not built yet, or several inputs
        shape = ()
    if shape and shape != (image_size, image_size, channels):
        raise ValueError(f"The model takes inputs of shape {shape}, not ({image_size}, {image_size}, {channels}).")
    path.parent.mkdir(parents=True, exist_ok=True)
    model.save(path)
    write_metadata(path, image_size, preprocessing, channels)
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
    with zipfile.ZipFile(path) as zf:
        names = set(zf.namelist())
        if "config.json" not in names:
            raise ModelFormatError(f"{path} is a zip archive but not a Keras model file (.keras).")
        if ENTRY not in names:
            raise ModelFormatError(
                f"{path} is not a model saved by the workshop lessons: it has no {ENTRY} describing its image "
                "size and preprocessing. Save it with workshop_utils.saving.save_lesson_model(model, path, "
                "image_size, preprocessing), or describe an existing file with "
                "workshop_utils.saving.write_metadata(path, image_size, preprocessing).")
        try:
            meta = json.loads(zf.read(ENTRY))
        except ValueError as exc:
            raise ModelFormatError(f"{path}: {ENTRY} is not valid JSON ({exc}).") from exc
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ModelFormatError(f"{path}: {ENTRY} does not describe a {FORMAT} file.")
    if not isinstance(meta.get("version"), int):
        raise ModelFormatError(f"{path}: {ENTRY} has no format version.")
    if meta["version"] > VERSION:
        raise ModelFormatError(f"{path} was saved by a newer workshop_utils (format version {meta['version']}); "
                               "update the package.")
    missing = {"image_size", "preprocessing", "channels", "classes"} - set(meta)
    if missing or meta["preprocessing"] not in PREPROCESSING:
        raise ModelFormatError(f"{path}: {ENTRY} is incomplete or unknown (missing {sorted(missing)}, "
                               f"preprocessing {meta.get('preprocessing')!r}).")
    return meta


def load_lesson_model(path: str | Path):
    """Load a model saved by :func:`save_lesson_model`; return ``(model, metadata)``.

    Raises FileNotFoundError for a missing file and ModelFormatError for anything that is not a
    workshop model (not a zip, not a Keras file, no workshop description, or Keras cannot load it).
    """
    meta = read_metadata(path)
    import keras

    try:
        model = keras.saving.load_model(path, compile=False)
    except Exception as exc:  # Keras raises many kinds for damaged or incompatible files
        raise ModelFormatError(f"Keras could not load {path}: {exc}") from exc
    return model, meta


def prepare_images(gray: np.ndarray, meta: dict) -> np.ndarray:
    """(N, S, S) uint8 grayscale images -> the model's input, as described by ``meta``."""
    gray = np.asarray(gray)
    size = meta["image_size"]
    if gray.ndim != 3 or gray.shape[1:] != (size, size):
        raise ValueError(f"Expected images of shape (N, {size}, {size}), got {gray.shape}.")
    if meta["preprocessing"] == "vgg16":
        import keras

        from .features import gray_to_rgb

        return np.asarray(keras.applications.vgg16.preprocess_input(gray_to_rgb(gray)), dtype=np.float32)
    x = gray.astype(np.float32)[..., None] / 255.0
    return np.repeat(x, 3, axis=-1) if meta["channels"] == 3 else x
