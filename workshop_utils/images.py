"""Decode the dataset's images once to fixed-size uint8 arrays and cache them on disk.

Pillow and NumPy only (no TensorFlow): the same arrays feed Keras on any backend. Each cache entry is an
array file and a metadata file, both written atomically, the array checked against its checksum when read
(:mod:`workshop_utils.cachefiles`).
"""
from __future__ import annotations

import hashlib
import json
import os
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from . import cachefiles, paths
from .dataset import CLASSES, list_images, patient_id
from .splits import patient_subset

CACHE_VERSION = 2


@dataclass
class ImageSet:
    """Decoded images of one split.

    images: uint8 array (N, size, size), grayscale; labels: int array (N,), index into CLASSES;
    names: paths relative to the dataset root; groups: patient id per image; skipped: unreadable files.
    """

    images: np.ndarray
    labels: np.ndarray
    names: list[str]
    groups: np.ndarray
    skipped: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, index: np.ndarray) -> "ImageSet":
        """The images at ``index`` (an integer or boolean array)."""
        index = np.asarray(index)
        if index.size == 0:
            index = index.astype(np.int64)
        if index.dtype == bool:
            index = np.flatnonzero(index)
        return ImageSet(self.images[index], self.labels[index], [self.names[i] for i in index],
                        self.groups[index], list(self.skipped))

    def class_counts(self) -> dict[str, int]:
        """Number of images per class name."""
        return {cls: int((self.labels == i).sum()) for i, cls in enumerate(CLASSES)}


def to_grayscale(img: Image.Image) -> Image.Image:
    """Any Pillow mode (1, L, P, RGB, RGBA, LA, I;16, I, F, CMYK) to 8-bit grayscale."""
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        # Scale by the smallest bit depth holding the values: true 16-bit /257, 12-bit data /16.06, 8-bit as is.
        arr = np.asarray(img, dtype=np.float64)
        bits = max(8, int(np.ceil(np.log2(max(float(arr.max()), 1.0) + 1))))
        arr = np.round(arr * 255.0 / (2 ** bits - 1))
        return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), mode="L")
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        img = img.convert("RGBA")
        background = Image.new("RGBA", img.size, (0, 0, 0, 255))
        img = Image.alpha_composite(background, img)
    return img.convert("L")


def decode_image(path: str | Path, size: int) -> np.ndarray:
    """Decode one image file to a (size, size) uint8 grayscale array (squashed, not cropped).

    Large JPEGs are decoded at reduced size (Pillow's ``draft``), which is several times faster.
    Raises OSError (or ValueError) for a corrupt or truncated file.
    """
    with Image.open(path) as img:
        if img.format == "JPEG":
            img.draft("L", (size, size))
        img.load()
        img = to_grayscale(img)
        if img.size != (size, size):
            img = img.resize((size, size), Image.Resampling.BILINEAR, reducing_gap=2.0)
        return np.asarray(img, dtype=np.uint8)


def _try_decode(path: str, size: int) -> np.ndarray | None:
    try:
        return decode_image(path, size)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as err:
        reason = str(err).replace(f" '{path}'", "") or type(err).__name__  # Pillow repeats the path
        warnings.warn(f"Skipped unreadable image {path}: {reason}", stacklevel=3)
        return None


def _first_names(names: list[str], n: int = 5) -> str:
    return ", ".join(names[:n]) + (f" ... ({len(names) - n} more)" if len(names) > n else "")


def _cache_key(files: list[str], size: int) -> str:
    h = hashlib.sha1(f"v{CACHE_VERSION}|{size}".encode())
    for p in files:
        st = os.stat(p)
        h.update(f"|{p.rsplit(os.sep, 3)[-3:]}|{st.st_size}|{st.st_mtime_ns}".encode())
    return h.hexdigest()[:16]


def _read_cache(stem: Path) -> ImageSet | None:
    """The cached ImageSet under ``stem``, or None: absent, or damaged (then named in a warning and removed)."""
    meta_path = stem.with_name(stem.name + ".json")
    if not meta_path.exists():
        return None
    redo = "Decoding the images again"
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        labels = np.asarray(meta["labels"], dtype=np.int64)
        names, skipped = [str(n) for n in meta["names"]], [str(n) for n in meta["skipped"]]
        array_path = stem.with_name(f"{stem.name}-{meta['checksum']}.npy")
        if labels.ndim != 1 or len(labels) != len(names):
            raise ValueError(f"{len(labels)} labels for {len(names)} names")
    except (OSError, ValueError, KeyError, TypeError) as err:
        cachefiles.discard(meta_path, cachefiles.CacheFileError(f"Cache file {meta_path} is damaged ({err})"), redo)
        return None
    try:
        if not array_path.exists():
            raise cachefiles.CacheFileError(f"Cache file {array_path}, named in {meta_path.name}, is missing")
        images = cachefiles.load_array(array_path)
        if images.shape[0] != len(labels):
            raise cachefiles.CacheFileError(f"Cache file {array_path} holds {images.shape[0]} images, "
                                            f"{meta_path.name} names {len(labels)}")
    except cachefiles.CacheFileError as err:
        cachefiles.discard(array_path, err, redo)
        return None
    return ImageSet(images, labels, names, np.array([patient_id(n) for n in names]), skipped)


def _write_cache(stem: Path, ims: ImageSet) -> None:
    """Store ``ims`` under ``stem``: the array first, then the metadata that names it (each atomically)."""
    with cachefiles.tolerate_write_errors(stem.parent):
        array_path = cachefiles.save_array(stem.parent, stem.name, ims.images)
        meta = {"labels": ims.labels.tolist(), "names": ims.names, "skipped": ims.skipped,
                "checksum": array_path.stem.rsplit("-", 1)[-1]}
        cachefiles.write_atomic(stem.with_name(stem.name + ".json"), lambda f: f.write(json.dumps(meta).encode()))


def load_split(root: str | Path, split: str | tuple[str, ...], image_size: int = 150,
               cache_dir: str | Path | None = None, subset: int | None = None, seed: int = 0,
               progress: bool = True) -> ImageSet:
    """Decode every image of ``split`` (or of several splits together) to ``image_size`` pixels, or
    read them from the on-disk cache.

    ``subset`` (quick mode) keeps at most that many images, whole patients with the split's class ratio
    (:func:`workshop_utils.splits.patient_subset`, reproducible by ``seed``), chosen before decoding; a
    split no larger than ``subset`` is kept whole. The cache is keyed by image size and the files' names,
    sizes and modification times, so a changed dataset is decoded again; a damaged cache file is named in a
    warning and decoded again; an unwritable cache folder gives a warning and no cache. Unreadable images
    are named in a warning, skipped and listed in ``skipped``.
    """
    root = Path(root)
    split_names = (split,) if isinstance(split, str) else tuple(split)
    files: list[str] = []
    label_list: list[int] = []
    for name in split_names:
        listing = list_images(root, name)
        files += listing.paths
        label_list += listing.labels
    labels = np.asarray(label_list, dtype=np.int64)
    if subset is not None:
        keep = patient_subset(labels, np.array([patient_id(p) for p in files]), subset, seed)
        files, labels = [files[i] for i in keep], labels[keep]
    cache = Path(cache_dir) if cache_dir is not None else paths.cache_dir()
    stem = cache / f"{'+'.join(split_names)}-{image_size}px-{_cache_key(files, image_size)}"
    cached = _read_cache(stem)
    if cached is not None:
        if cached.skipped:
            warnings.warn(f"{'+'.join(split_names)}: {len(cached.skipped)} unreadable images were skipped when "
                          f"this cache was built (left out; replace or delete them): "
                          f"{_first_names(cached.skipped)}", stacklevel=2)
        return cached

    can_cache = cachefiles.writable(cache)  # before decoding: an unwritable folder must not cost the work
    workers = min(8, os.cpu_count() or 1)
    with ThreadPoolExecutor(workers) as pool:
        arrays = list(tqdm(pool.map(lambda p: _try_decode(p, image_size), files), total=len(files),
                           desc=f"Decoding {'+'.join(split_names)} at {image_size}px", disable=not progress))
    ok = np.array([a is not None for a in arrays], dtype=bool)
    rel = [os.path.relpath(p, root) for p in files]
    skipped = [r for r, good in zip(rel, ok) if not good]
    if skipped:
        warnings.warn(f"{'+'.join(split_names)}: skipped {len(skipped)} unreadable images of {len(files)} "
                      f"(left out; replace or delete them): {_first_names(skipped)}", stacklevel=2)
    images = (np.stack([a for a in arrays if a is not None]) if ok.any()
              else np.zeros((0, image_size, image_size), np.uint8))
    labels = labels[ok] if len(files) else labels
    names = [r for r, good in zip(rel, ok) if good]
    result = ImageSet(images, labels, names, np.array([patient_id(n) for n in names]), skipped)
    if can_cache:
        _write_cache(stem, result)
    return result


def load_dataset(root: str | Path, image_size: int = 150, cache_dir: str | Path | None = None,
                 subset: dict[str, int] | None = None, seed: int = 0,
                 progress: bool = True) -> dict[str, ImageSet]:
    """Load ``{"train": ..., "test": ...}``, with the official 16-image val split folded into train.

    ``subset`` (quick mode), e.g. ``{"train": 320, "test": 160}``: at most that many images of a split,
    whole patients with the split's class ratio (see :func:`load_split`); a split left out is loaded whole.
    The official val split is too small to be a validation set (8 images per class); carve one from
    train by patient with :func:`workshop_utils.splits.patient_split` instead.
    """
    subset = dict(subset or {})
    unknown = sorted(set(subset) - {"train", "test"})
    if unknown:
        raise ValueError(f"subset: unknown split {', '.join(map(repr, unknown))}; give sizes for 'train' "
                         "(train and val together) and/or 'test'.")
    return {
        "train": load_split(root, ("train", "val"), image_size, cache_dir, subset.get("train"), seed, progress),
        "test": load_split(root, "test", image_size, cache_dir, subset.get("test"), seed, progress),
    }


def original_sizes(root: str | Path, split: str = "train") -> np.ndarray:
    """(width, height) of every image of ``split`` as stored on disk, read from the file headers only.

    Files that are not images (empty, text, unknown format) are named in a warning and left out.
    """
    sizes, skipped = [], []
    files = list_images(root, split, warn=False).paths
    for path in files:
        try:
            with Image.open(path) as img:
                sizes.append(img.size)
        except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):
            skipped.append(os.path.relpath(path, root))
    if skipped:
        warnings.warn(f"{split}: skipped {len(skipped)} unreadable images of {len(files)} "
                      f"(left out; replace or delete them): {_first_names(skipped)}", stacklevel=2)
    return np.array(sizes, dtype=np.int64).reshape(-1, 2)
