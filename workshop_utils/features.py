"""Run a frozen network over the images once and cache its outputs ("features") on disk.

A frozen base gives the same output for an image every epoch, so the lessons compute it once per
(weights, image size, images) and train only the head on the result. Works on any Keras backend.
"""
from __future__ import annotations

import hashlib
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
from tqdm import tqdm

from . import cachefiles, paths

BLOCK4 = "vgg16-block4"  # cache name of VGG16's blocks 1-4 outputs, shared by lessons 2-5, 7 and 8
BLOCK5 = "vgg16-block5"


def _fingerprint(model, images: np.ndarray, extra: str) -> str:
    h = hashlib.sha1(extra.encode())
    h.update(str(model.output.shape if hasattr(model, "output") else "").encode())
    h.update(str(getattr(getattr(model, "dtype_policy", None), "name", "")).encode())  # mixed precision or not
    for w in model.weights:
        h.update(np.ascontiguousarray(w.numpy()).tobytes())
    h.update(str(images.shape).encode())
    h.update(np.ascontiguousarray(images).tobytes())
    return h.hexdigest()[:16]


def extract_features(model, images: np.ndarray, preprocess: Callable[[np.ndarray], np.ndarray] | None = None,
                     batch_size: int = 32, cache_dir: str | Path | None = None, name: str = "features",
                     progress: bool = True, cache: bool = True, dtype: str | None = None) -> np.ndarray:
    """``model(preprocess(images))`` in batches (``model(images)`` without ``preprocess``), cached on disk.

    The cache key covers the model's weights, the images and ``name`` (say which preprocessing you
    used in it), so changing any of them recomputes. The last batch is padded to ``batch_size``
    so that every call has the same shape (no recompilation under JAX). ``cache=False`` computes
    afresh and stores nothing (for random augmentation, which must differ at every pass).
    ``dtype="float16"`` halves the memory and disk the outputs take (about 3 significant digits kept);
    values too large for float16 keep the model's dtype, with a warning. The cache file is written atomically
    and checked against the checksum in its name when read (:mod:`workshop_utils.cachefiles`): a damaged file
    is named in a warning and computed again; an unwritable cache folder gives a warning and no cache.
    """
    folder = Path(cache_dir) if cache_dir is not None else paths.cache_dir()
    stem = f"{name}-{_fingerprint(model, images, f'{name}|{dtype}')}"
    if cache:
        found = cachefiles.find_array(folder, stem, redo=f"Computing {name} again")
        if found is not None:
            return found
        cache = cachefiles.writable(folder)  # before computing: an unwritable folder must not cost the work
    outputs = []
    for start in tqdm(range(0, len(images), batch_size), desc=f"Extracting {name}", disable=not progress,
                      unit="batch"):
        batch = images[start:start + batch_size]
        n = len(batch)
        if n < batch_size:
            batch = np.concatenate([batch, np.repeat(batch[-1:], batch_size - n, axis=0)])
        out = np.asarray(model.predict_on_batch(batch if preprocess is None else preprocess(batch)))[:n]
        if out.dtype.kind not in "fiu":  # bfloat16 (mixed precision): not a dtype np.save can store and read back
            out = out.astype(np.float32)
        outputs.append(out if dtype is None else _narrow(out, dtype, name))
    features = np.concatenate(outputs) if outputs else np.zeros((0,), dtype or np.float32)
    if cache:
        with cachefiles.tolerate_write_errors(folder):
            cachefiles.save_array(folder, stem, features)
    return features


def _narrow(out: np.ndarray, dtype: str, name: str) -> np.ndarray:
    largest = float(np.abs(out).max(initial=0.0))
    if np.issubdtype(np.dtype(dtype), np.floating) and largest > float(np.finfo(dtype).max):
        warnings.warn(f"{name}: outputs up to {largest:.3g} do not fit {dtype}; kept as {out.dtype}", stacklevel=3)
        return out
    return out.astype(dtype)


def split_vgg16(base, at: str = "block4_pool"):
    """A VGG16 base as two models that share its layers: grayscale image -> ``at``, and the layers after ``at``.

    The first takes (N, size, size, 1) grayscale 0-255 images and starts with :class:`GrayToVGG16`.
    """
    import keras

    from .preprocessing import GrayToVGG16

    gray = keras.Input((*base.input.shape[1:3], 1), name="grayscale")
    to_block = keras.Model(base.input, base.get_layer(at).output)
    lower = keras.Model(gray, to_block(GrayToVGG16()(gray)), name=f"{base.name}_to_{at}")
    upper_input = keras.Input(lower.output.shape[1:])
    names = [layer.name for layer in base.layers]
    x = upper_input
    for layer in base.layers[names.index(at) + 1:]:
        x = layer(x)
    return lower, keras.Model(upper_input, x, name=f"{base.name}_after_{at}")


def frozen_vgg16_features(base, images: np.ndarray, batch_size: int = 32, cache_dir: str | Path | None = None,
                          progress: bool = True) -> np.ndarray:
    """The frozen VGG16 base's outputs for (N, size, size) grayscale ``images``, in two cached steps.

    Blocks 1-4 first (the grayscale images through :class:`GrayToVGG16`, stored as float16 under
    ``BLOCK4``: lesson 7 fine-tunes block 5 on exactly these), then block 5. Equal to
    ``base.predict(GrayToVGG16()(images[..., None]))`` up to float16 rounding of the intermediate outputs.
    """
    lower, upper = split_vgg16(base)
    block4 = extract_features(lower, images, with_channel_axis, batch_size, cache_dir, BLOCK4, progress,
                              dtype="float16")
    return extract_features(upper, block4, to_float32, batch_size, cache_dir, BLOCK5, progress)


def with_channel_axis(gray: np.ndarray) -> np.ndarray:
    """(N, H, W) grayscale -> (N, H, W, 1) float32, the input the lesson models take."""
    return np.asarray(gray, dtype=np.float32)[..., None]


def to_float32(x: np.ndarray) -> np.ndarray:
    """``x`` as float32 (float16 cached features -> the dtype the next layers compute in)."""
    return np.asarray(x, dtype=np.float32)
