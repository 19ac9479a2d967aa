"""Run a frozen network over the images once and cache its outputs ("features") on disk.

A frozen base gives the same output for an image every epoch, so the lessons compute it once per
(weights, image size, images) and train only the head on the result. Works on any Keras backend.
"""
from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
from tqdm import tqdm

from .images import default_cache_dir


def gray_to_rgb(images: np.ndarray) -> np.ndarray:
    """(N, H, W) uint8 grayscale -> (N, H, W, 3) float32 in 0-255, the input pretrained CNNs expect."""
    return np.repeat(np.asarray(images, dtype=np.float32)[..., None], 3, axis=-1)


def _fingerprint(model, images: np.ndarray, extra: str) -> str:
    h = hashlib.sha1(extra.encode())
    h.update(str(model.output.shape if hasattr(model, "output") else "").encode())
    for w in model.weights:
        h.update(np.ascontiguousarray(w.numpy()).tobytes())
    h.update(str(images.shape).encode())
    h.update(np.ascontiguousarray(images).tobytes())
    return h.hexdigest()[:16]


def extract_features(model, images: np.ndarray, preprocess: Callable[[np.ndarray], np.ndarray],
                     batch_size: int = 32, cache_dir: str | Path | None = None, name: str = "features",
                     progress: bool = True, cache: bool = True) -> np.ndarray:
    """``model(preprocess(images))`` in batches, cached on disk.

    The cache key covers the model's weights, the images and ``name`` (say which preprocessing you
    used in it), so changing any of them recomputes. The last batch is padded to ``batch_size``
    so that every call has the same shape (no recompilation under JAX). ``cache=False`` computes
    afresh and stores nothing (for random augmentation, which must differ at every pass).
    """
    folder = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    cache_file = folder / f"{name}-{_fingerprint(model, images, name)}.npy" if cache else None
    if cache_file is not None and cache_file.exists():
        return np.load(cache_file)
    outputs = []
    for start in tqdm(range(0, len(images), batch_size), desc=f"Extracting {name}", disable=not progress,
                      unit="batch"):
        batch = images[start:start + batch_size]
        n = len(batch)
        if n < batch_size:
            batch = np.concatenate([batch, np.repeat(batch[-1:], batch_size - n, axis=0)])
        out = model.predict_on_batch(preprocess(batch))
        outputs.append(np.asarray(out)[:n])
    features = np.concatenate(outputs) if outputs else np.zeros((0,), np.float32)
    if cache_file is None:
        return features
    folder.mkdir(parents=True, exist_ok=True)
    tmp = cache_file.with_name(cache_file.name + ".tmp.npy")
    np.save(tmp, features)
    tmp.replace(cache_file)
    return features
