"""A small synthetic dataset in the real dataset's on-disk layout, for offline demos and fast tests.

PNEUMONIA images carry bright blotches in the lung fields; NORMAL images do not. Sizes and modes vary
(grayscale, RGB, RGBA, 16-bit PNG) like the real data's quirks. Deterministic for a given seed. ``test_shift``
makes the test folder's images differ from the training folder's (another "hospital": brighter, less contrast, a
burnt-in marker), as the real test folder does in ways lesson 9 measures; 0 (the default) makes no difference.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import time
import uuid
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from .dataset import CLASSES, count_images

#: Name prefix of the temporary folder a dataset is generated in, beside its final ``chest_xray`` folder.
PARTIAL_PREFIX = ".chest_xray-partial-"
DEFAULT_COUNTS = {
    "train": {"NORMAL": 60, "PNEUMONIA": 150},
    "val": {"NORMAL": 4, "PNEUMONIA": 4},
    "test": {"NORMAL": 30, "PNEUMONIA": 45},
}


def _chest(rng: np.random.Generator, w: int, h: int, sick: bool) -> np.ndarray:
    img = Image.new("L", (w, h), int(rng.integers(10, 40)))
    draw = ImageDraw.Draw(img)
    for cx in (0.3, 0.7):  # two dark lung fields inside a brighter body
        draw.ellipse([w * (cx - 0.17), h * 0.2, w * (cx + 0.17), h * 0.85], fill=int(rng.integers(50, 80)))
    draw.rectangle([w * 0.46, h * 0.1, w * 0.54, h * 0.95], fill=int(rng.integers(150, 200)))  # spine
    if sick:
        for _ in range(int(rng.integers(2, 5))):
            cx = w * rng.choice([0.3, 0.7]) + w * rng.normal(0, 0.05)
            cy = h * rng.uniform(0.35, 0.75)
            r = w * rng.uniform(0.05, 0.1)
            draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=int(rng.integers(150, 220)))
    img = img.filter(ImageFilter.GaussianBlur(radius=max(1, w // 60)))
    arr = np.asarray(img, dtype=np.float32) + rng.normal(0, 8, (h, w))
    return np.clip(arr, 0, 255).astype(np.uint8)


def _name(cls: str, i: int, rng: np.random.Generator) -> str:
    if cls == "NORMAL":
        patient = 1000 + i // 2  # two images per patient
        return f"IM-{patient:04d}-{i % 2 + 1:04d}.jpeg"
    person = 100 + i // 3  # up to three images per person
    kind = "bacteria" if rng.random() < 0.65 else "virus"
    return f"person{person}_{kind}_{i}.jpeg"


def shifted(arr: np.ndarray, strength: float) -> np.ndarray:
    """``arr`` as another hospital's machine would give it, by ``strength`` (0: unchanged, 1: strong): a brighter,
    flatter exposure and a burnt-in bright marker in the top left corner. The same for both classes, so the
    label depends on the lungs alone in both folders (a covariate shift)."""
    if strength <= 0:
        return arr
    h, w = arr.shape
    out = arr.astype(np.float32) * (1 - 0.35 * strength) + 70 * strength
    out[: max(2, h // 8), : max(2, w // 6)] = 255 * min(1.0, 0.5 + 0.5 * strength)
    return np.clip(out, 0, 255).astype(np.uint8)


def make_synthetic_dataset(root: str | Path, counts: dict | None = None, seed: int = 0,
                           min_size: int = 64, max_size: int = 160, test_shift: float = 0.0) -> Path:
    """Write a synthetic dataset under ``root/chest_xray`` and return that folder.

    ``counts`` is ``{split: {class: n}}`` (default DEFAULT_COUNTS). Most files are grayscale JPEGs;
    every 7th is RGB, every 11th an RGBA PNG and every 13th a 16-bit PNG (saved with a .png suffix).
    ``test_shift`` (0 to 1) passes the test folder's images through :func:`shifted`; the other files, and every
    file at 0, are the same as without it.

    ``root/chest_xray`` only ever exists complete: the files are written into a temporary folder beside it,
    renamed into place at the end. An interrupted run leaves no ``chest_xray`` (its temporary folder is
    removed, or by a later call once an hour old), and two processes making it at once both succeed. A
    ``chest_xray`` already holding these counts is returned as it is; an incomplete one left by an older
    version (only files this call writes) is replaced with a warning; anything else is never overwritten
    (FileExistsError). (A folder with these counts is returned whatever ``test_shift`` made it: give each shift
    its own ``root``.)
    """
    if not 0 <= test_shift <= 1:
        raise ValueError(f"test_shift must be between 0 (no shift) and 1 (strong), got {test_shift}.")
    counts = DEFAULT_COUNTS if counts is None else counts
    wanted = {split: {cls: per_class.get(cls, 0) for cls in CLASSES} for split, per_class in counts.items()}
    root = Path(root)
    out = root / "chest_xray"
    if out.is_dir() and count_images(out) == wanted:
        return out
    root.mkdir(parents=True, exist_ok=True)
    for stale in root.glob(f"{PARTIAL_PREFIX}*"):  # left by a killed run; a running one is younger
        with contextlib.suppress(OSError):
            if time.time() - stale.stat().st_mtime > 3600:
                shutil.rmtree(stale)
    partial = root / f"{PARTIAL_PREFIX}{uuid.uuid4().hex}"
    partial.mkdir()
    try:
        _write_images(partial, counts, seed, min_size, max_size, test_shift)
        _move_into_place(partial, out, wanted)
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return out


def _files(folder: Path) -> set[str]:
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}


def _move_into_place(partial: Path, out: Path, wanted: dict) -> None:
    try:
        os.rename(partial, out)  # atomic; refused where ``out`` already holds files
        return
    except OSError:
        if not out.exists():
            raise
    if count_images(out) == wanted:  # another process finished first
        return
    if not _files(out) <= _files(partial):
        raise FileExistsError(f"{out} exists and is not the synthetic dataset with the counts {wanted}: "
                              "move it away, or make the synthetic dataset in another folder.")
    warnings.warn(f"Replacing the incomplete synthetic dataset at {out} (an interrupted earlier run).", stacklevel=3)
    old = out.parent / f"{PARTIAL_PREFIX}{uuid.uuid4().hex}"
    os.rename(out, old)
    os.rename(partial, out)
    shutil.rmtree(old, ignore_errors=True)


def _write_images(out: Path, counts: dict, seed: int, min_size: int, max_size: int, test_shift: float = 0.0) -> None:
    rng = np.random.default_rng(seed)
    for s, split in enumerate(counts):
        for cls in CLASSES:
            folder = out / split / cls
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(counts[split].get(cls, 0)):
                w, h = (int(v) for v in rng.integers(min_size, max_size + 1, 2))
                arr = _chest(rng, w, h, cls == "PNEUMONIA")
                if split == "test":
                    arr = shifted(arr, test_shift)
                name = _name(cls, i + 10_000 * s, rng)
                k = i + 1
                if k % 13 == 0:
                    Image.fromarray(arr.astype(np.uint16) * 257).save(folder / name.replace(".jpeg", ".png"))
                elif k % 11 == 0:
                    rgba = np.dstack([arr, arr, arr, np.full_like(arr, 255)])
                    Image.fromarray(rgba, "RGBA").save(folder / name.replace(".jpeg", ".png"))
                elif k % 7 == 0:
                    Image.fromarray(arr).convert("RGB").save(folder / name, quality=90)
                else:
                    Image.fromarray(arr).save(folder / name, quality=90)
