"""Shared fixtures: where the real (downsized) dataset lives, and writers for tiny test images.

None of these import TensorFlow or Keras.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

#: The shared copy of the Kermany 2018 dataset, next to the repository checkout.
REAL_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "chest_xray"

#: Its exact counts (a downsized copy: the test split is smaller than the official 234 + 390).
REAL_COUNTS = {
    "train": {"NORMAL": 1341, "PNEUMONIA": 3875},
    "val": {"NORMAL": 8, "PNEUMONIA": 8},
    "test": {"NORMAL": 113, "PNEUMONIA": 182},
}


@pytest.fixture(scope="session")
def real_data_root() -> Path:
    """The real dataset's root; skips the test when the shared copy is absent."""
    if not all((REAL_DATA / split / cls).is_dir() for split in ("train", "test")
               for cls in ("NORMAL", "PNEUMONIA")):
        pytest.skip(f"real chest X-ray data not found at {REAL_DATA}")
    return REAL_DATA


@pytest.fixture(scope="session")
def real_counts() -> dict[str, dict[str, int]]:
    return {split: dict(per_class) for split, per_class in REAL_COUNTS.items()}


def _write_jpeg(path: str | Path, shade: int | None = None, size: tuple[int, int] = (12, 10),
                mode: str = "L", seed: int = 0) -> Path:
    """Write a small JPEG (noise around ``shade``, or plain noise) and return its path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    w, h = size
    if shade is None:
        arr = rng.integers(0, 256, (h, w), dtype=np.uint8)
    else:
        arr = np.clip(shade + rng.integers(-3, 4, (h, w)), 0, 255).astype(np.uint8)
    img = Image.fromarray(arr, "L")
    if mode != "L":
        img = img.convert(mode)
    img.save(path, "JPEG", quality=95)
    return path


@pytest.fixture
def write_jpeg():
    """``write_jpeg(path, shade=None, size=(w, h), mode="L", seed=0)`` -> path of a tiny JPEG."""
    return _write_jpeg


def _image_name(cls: str, i: int) -> str:
    if cls == "NORMAL":
        return f"IM-{1000 + i:04d}-0001.jpeg"
    return f"person{100 + i}_bacteria_{i}.jpeg"


@pytest.fixture
def make_tree():
    """``make_tree(root, counts)`` writes ``root/<split>/<class>/`` with tiny JPEGs, real-style names
    and distinct content (NORMAL dark, PNEUMONIA bright), and returns ``root``."""

    def make(root: str | Path, counts: dict[str, dict[str, int]]) -> Path:
        root = Path(root)
        for s, (split, per_class) in enumerate(counts.items()):
            for cls, n in per_class.items():
                folder = root / split / cls
                folder.mkdir(parents=True, exist_ok=True)
                for i in range(n):
                    shade = 40 if cls == "NORMAL" else 200
                    _write_jpeg(folder / _image_name(cls, i + 1000 * s), shade=shade,
                                seed=100_000 * s + 10_000 * (cls == "PNEUMONIA") + i)
        return root

    return make
