"""Find the chest X-ray dataset on disk, list its images and check its counts.

The dataset comes in several layouts: Kaggle's zip nests a duplicate ``chest_xray/chest_xray``
tree and ``__MACOSX`` metadata; Mendeley's has no ``val/``. Everything here works on file names only
(no decoding, no TensorFlow).
"""
from __future__ import annotations

import os
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path

CLASSES: tuple[str, ...] = ("NORMAL", "PNEUMONIA")
SPLITS: tuple[str, ...] = ("train", "val", "test")
IMAGE_SUFFIXES = {".jpeg", ".jpg", ".png", ".bmp", ".tif", ".tiff"}

#: Official counts (Kaggle copy; Mendeley's archive has no val/ split).
OFFICIAL_COUNTS: dict[str, dict[str, int]] = {
    "train": {"NORMAL": 1341, "PNEUMONIA": 3875},
    "val": {"NORMAL": 8, "PNEUMONIA": 8},
    "test": {"NORMAL": 234, "PNEUMONIA": 390},
}


class DatasetNotFoundError(FileNotFoundError):
    """No folder with train/ and test/ class folders was found."""


class DatasetIncompleteError(ValueError):
    """The dataset's image counts differ from what was expected."""


@dataclass
class ImageList:
    """The image files of one split: paths, integer labels (index into CLASSES) and what was ignored."""

    paths: list[str]
    labels: list[int]
    ignored: list[str] = field(default_factory=list)


def _is_dataset_root(path: Path) -> bool:
    return all((path / split / cls).is_dir() for split in ("train", "test") for cls in CLASSES)


def find_dataset_root(path: str | Path) -> Path:
    """Return the folder holding ``train/`` and ``test/`` (each with NORMAL/PNEUMONIA) under ``path``.

    Searches ``path`` itself, then its sub-folders breadth-first (shallowest wins, so Kaggle's
    duplicated ``chest_xray/chest_xray`` tree is not picked over ``chest_xray``), skipping ``__MACOSX``.
    """
    path = Path(path).expanduser()
    if not path.is_dir():
        raise DatasetNotFoundError(
            f"Data folder {path} does not exist. Download the dataset with "
            "`python -m workshop_utils download`, or point WORKSHOP_DATA_DIR / --data-dir at your copy."
        )
    level = [path]
    for _depth in range(5):
        for folder in sorted(level):
            if _is_dataset_root(folder):
                return folder
        level = [
            child
            for folder in level
            for child in folder.iterdir()
            if child.is_dir() and child.name != "__MACOSX" and not child.name.startswith(".")
        ]
    raise DatasetNotFoundError(
        f"No chest X-ray dataset under {path}: expected a folder with train/NORMAL, train/PNEUMONIA, "
        "test/NORMAL and test/PNEUMONIA. Download it with `python -m workshop_utils download` "
        "or point WORKSHOP_DATA_DIR / --data-dir at the unpacked copy."
    )


def list_images(root: str | Path, split: str, warn: bool = True) -> ImageList:
    """List the images of one split, sorted by class then file name.

    Non-image files (``.DS_Store``, ``Thumbs.db``, text files) are ignored and counted in a warning.
    A split that does not exist (Mendeley has no ``val/``) gives an empty list.
    """
    if split not in SPLITS:
        raise ValueError(f"Unknown split {split!r}: use one of {SPLITS}.")
    root = Path(root)
    paths: list[str] = []
    labels: list[int] = []
    ignored: list[str] = []
    for label, cls in enumerate(CLASSES):
        folder = root / split / cls
        if not folder.is_dir():
            continue
        with os.scandir(folder) as entries:
            found = sorted((e.name, e.is_file()) for e in entries)
        for name, is_file in found:
            suffix = os.path.splitext(name)[1].lower()
            if is_file and suffix in IMAGE_SUFFIXES and not name.startswith("._"):
                paths.append(os.path.join(folder, name))
                labels.append(label)
            else:
                ignored.append(os.path.join(folder, name))
    if ignored and warn:
        names = ", ".join(os.path.basename(p) for p in ignored[:5]) + (" ..." if len(ignored) > 5 else "")
        warnings.warn(f"{split}: ignored {len(ignored)} non-image entries ({names})", stacklevel=2)
    return ImageList(paths, labels, ignored)


def count_images(root: str | Path) -> dict[str, dict[str, int]]:
    """Count images per split and class: ``{split: {class: n}}`` (splits that are absent are left out)."""
    counts: dict[str, dict[str, int]] = {}
    for split in SPLITS:
        if (Path(root) / split).is_dir():
            labels = list_images(root, split, warn=False).labels
            counts[split] = {cls: labels.count(i) for i, cls in enumerate(CLASSES)}
    return counts


def verify_dataset(root: str | Path, expected: dict[str, dict[str, int]] | None = None) -> dict:
    """Check the counts per split and class against ``expected`` (default: the official counts).

    A missing ``val/`` split is accepted (Mendeley's archive has none). Raises DatasetIncompleteError
    listing every difference. Returns the counts.
    """
    expected = OFFICIAL_COUNTS if expected is None else expected
    counts = count_images(root)
    problems = []
    for split, per_class in expected.items():
        if split == "val" and split not in counts:
            continue
        for cls, n in per_class.items():
            got = counts.get(split, {}).get(cls, 0)
            if got != n:
                problems.append(f"{split}/{cls}: {got} images, expected {n}")
    if problems:
        raise DatasetIncompleteError(
            f"The dataset at {root} is incomplete or not the expected one: " + "; ".join(problems)
            + ". Delete it and run `python -m workshop_utils download` again."
        )
    return counts


_PERSON = re.compile(r"^(person\d+)_", re.IGNORECASE)
_NORMAL = re.compile(r"^(?:NORMAL2-)?(IM-\d+)-\d+", re.IGNORECASE)


def patient_id(filename: str) -> str:
    """Patient group of an image, parsed from its file name.

    ``person1234_bacteria_5678.jpeg`` and ``person1234_virus_99.jpeg`` -> ``person1234`` (the bare person
    number, the conservative choice: both pathogens of one number stay together);
    ``IM-0115-0001.jpeg`` -> ``im-0115``; ``NORMAL2-IM-1427-0001.jpeg`` -> ``im-1427`` (merged with
    ``IM-1427-*``: whether the two series share patients is unknown, so they are kept together).
    A name that fits no rule is its own group (``file:<stem>``).
    """
    name = os.path.basename(filename)
    for rule in (_PERSON, _NORMAL):
        m = rule.match(name)
        if m:
            return m.group(1).lower()
    return "file:" + os.path.splitext(name)[0].lower()
