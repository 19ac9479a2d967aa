"""Find the chest X-ray dataset on disk, list its images, and the one rule for accepting a copy.

The dataset comes in two published releases (:data:`RELEASES`): Mendeley's ``ChestXRay2017.zip`` (no
``val/``) and the Kaggle copy (a ``val/`` of 8 + 8 taken from train, a duplicated ``chest_xray/chest_xray``
tree and ``__MACOSX`` metadata in its zip). :func:`inspect_dataset` is the rule every command and lesson
applies: a copy is refused only when train or test has no images of a class (or a folder cannot be read);
anything else is used, with its counts compared to the closest release and every difference named.
Everything here works on file names only (no decoding, no TensorFlow). Folders are tested with
``os.path.isdir``, which says False where ``Path.is_dir`` raises (a parent that cannot be searched).
"""
from __future__ import annotations

import os
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

CLASSES: tuple[str, ...] = ("NORMAL", "PNEUMONIA")
SPLITS: tuple[str, ...] = ("train", "val", "test")
#: Splits that must hold images of every class (``val/`` is optional: Mendeley's release has none).
REQUIRED_SPLITS: tuple[str, ...] = ("train", "test")
IMAGE_SUFFIXES = {".jpeg", ".jpg", ".png", ".bmp", ".tif", ".tiff"}

#: The published releases and their image counts per split and class (Kermany et al. 2018).
RELEASES: dict[str, dict[str, dict[str, int]]] = {
    "Mendeley release (ChestXRay2017.zip)": {
        "train": {"NORMAL": 1349, "PNEUMONIA": 3883},
        "test": {"NORMAL": 234, "PNEUMONIA": 390},
    },
    "Kaggle release (chest-xray-pneumonia)": {
        "train": {"NORMAL": 1341, "PNEUMONIA": 3875},
        "val": {"NORMAL": 8, "PNEUMONIA": 8},
        "test": {"NORMAL": 234, "PNEUMONIA": 390},
    },
}


class DatasetNotFoundError(FileNotFoundError):
    """No folder with train/ and test/ class folders was found.

    ``path``: where it was looked for; ``reason``: what is wrong, and ``advice``: what to do (the message
    holds both), so a caller can give advice that fits how the folder was chosen; ``near_miss``: a folder
    that almost is a dataset (wrongly named or missing class folders), or None.
    """

    def __init__(self, message: str, path: Path | None = None, reason: str = "",
                 near_miss: Path | None = None, advice: str = "") -> None:
        super().__init__(message)
        self.path, self.reason, self.near_miss, self.advice = path, reason or message, near_miss, advice


class DatasetIncompleteError(ValueError):
    """The copy cannot be used as it is: a class without images, an unreadable folder, or counts that
    differ from the ones asked for."""


@dataclass
class ImageList:
    """The image files of one split: paths, integer labels (index into CLASSES) and what was ignored."""

    paths: list[str]
    labels: list[int]
    ignored: list[str] = field(default_factory=list)


class ReleaseMatch(NamedTuple):
    """The release closest to a copy's counts, and how the copy differs from it (empty: it is that release)."""

    release: str
    differences: list[str]

    def describe(self) -> str:
        """``Mendeley release (ChestXRay2017.zip)``, or the closest release and every difference."""
        if not self.differences:
            return self.release
        return f"matches no published release; closest: {self.release}, but " + "; ".join(self.differences)


@dataclass
class Inspection:
    """What :func:`inspect_dataset` found: counts per split and class, the release, warnings about folders."""

    root: Path
    counts: dict[str, dict[str, int]]
    release: ReleaseMatch
    notes: list[str] = field(default_factory=list)

    def warnings(self) -> list[str]:
        """Every warning: the differences from the closest release, then the folder notes."""
        found = ([f"the dataset at {self.root} {self.release.describe()}. It is used as it is."]
                 if self.release.differences else [])
        return found + self.notes


_DATASET_LAYOUT = "expected a folder with train/NORMAL, train/PNEUMONIA, test/NORMAL and test/PNEUMONIA"


def _is_dataset_root(path: Path) -> bool:
    return all(os.path.isdir(path / split / cls) for split in REQUIRED_SPLITS for cls in CLASSES)


def _misnamed(path: Path) -> list[str]:
    """What keeps ``path`` from being a dataset root although it nearly is one (``train/normal``, a missing
    class folder), as messages; empty when ``path`` is not a near miss."""
    try:
        splits = {entry.name: entry for entry in path.iterdir() if os.path.isdir(entry)}
    except OSError:
        return []
    by_lower = {name.lower(): name for name in splits}
    present = [by_lower[split] for split in REQUIRED_SPLITS if split in by_lower]
    if not present:
        return []
    problems = []
    for split in REQUIRED_SPLITS:
        if split not in by_lower:
            problems.append(f"{path} holds {'/ and '.join(present)}/ but no {split}/ folder: "
                            + " and ".join(f"{split}/{cls}" for cls in CLASSES) + " are missing")
            continue
        name = by_lower[split]
        if name != split:
            problems.append(f"found {name}: the split folders must be named train, val and test (lower case); "
                            f"rename {path / name} to {path / split}")
            continue
        try:
            classes = {entry.name for entry in splits[name].iterdir() if os.path.isdir(entry)}
        except OSError as exc:
            problems.append(f"cannot read {path / name} ({exc.strerror or exc})")
            continue
        for cls in CLASSES:
            if cls in classes:
                continue
            wrong = [c for c in classes if c.lower() == cls.lower()]
            if wrong:
                problems.append(f"found {split}/{wrong[0]}: the folders must be named NORMAL and PNEUMONIA "
                                f"(upper case); rename it ({path / split / wrong[0]} -> {path / split / cls})")
            else:
                problems.append(f"{path / split} has no {cls} folder")
    return problems


def find_dataset_root(path: str | Path) -> Path:
    """Return the folder holding ``train/`` and ``test/`` (each with NORMAL/PNEUMONIA) under ``path``.

    Searches ``path`` itself, then its sub-folders breadth-first (shallowest wins, so Kaggle's
    duplicated ``chest_xray/chest_xray`` tree is not picked over ``chest_xray``), skipping ``__MACOSX`` and
    hidden folders. The error names what was nearly right (``train/normal`` in lower case, a missing class
    folder) and the folders that could not be read.
    """
    path = Path(path).expanduser()
    advice = ("download it with `python -m workshop_utils download`, or point WORKSHOP_DATA_DIR / --data-dir "
              "at the unpacked copy")
    if not os.path.isdir(path):
        what = "is a file, not a folder" if os.path.exists(path) else "does not exist"
        raise DatasetNotFoundError(f"Data folder {path} {what}: {advice}.", path, f"{path} {what}", advice=advice)
    level, unreadable, near = [path], [], []
    for _depth in range(5):
        for folder in sorted(level):
            if _is_dataset_root(folder):
                return folder
            problems = _misnamed(folder)
            if problems and not near:
                near = [folder, problems]
        children = []
        for folder in level:
            try:
                children += [c for c in folder.iterdir()
                             if os.path.isdir(c) and c.name != "__MACOSX" and not c.name.startswith(".")]
            except OSError as exc:
                unreadable.append(f"cannot read {folder} ({exc.strerror or exc})")
        level = children
    reason = "; ".join([_DATASET_LAYOUT + (f", but {near[1][0]}" if near else " (searched 4 levels down)"),
                        *(near[1][1:] if near else []), *unreadable])
    raise DatasetNotFoundError(f"No chest X-ray dataset under {path}: {reason}. To get it, {advice}.", path,
                               reason, near[0] if near else None, advice)


def list_images(root: str | Path, split: str, warn: bool = True) -> ImageList:
    """List the images of one split, sorted by class then file name.

    Non-image files (``.DS_Store``, ``Thumbs.db``, text files) are ignored and counted in a warning.
    A split that does not exist (Mendeley has no ``val/``) gives an empty list. A class folder that
    cannot be read raises DatasetIncompleteError naming it.
    """
    if split not in SPLITS:
        raise ValueError(f"Unknown split {split!r}: use one of {SPLITS}.")
    root = Path(root)
    paths: list[str] = []
    labels: list[int] = []
    ignored: list[str] = []
    for label, cls in enumerate(CLASSES):
        folder = root / split / cls
        if not os.path.isdir(folder):
            continue
        try:
            with os.scandir(folder) as entries:
                found = sorted((e.name, e.is_file()) for e in entries)
        except OSError as exc:
            raise DatasetIncompleteError(
                f"Cannot read {folder} ({exc.strerror or exc}): make it readable (e.g. chmod -R u+rX "
                f"{folder}), or copy the dataset to a folder you own.") from exc
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
        if os.path.isdir(Path(root) / split):
            labels = list_images(root, split, warn=False).labels
            counts[split] = {cls: labels.count(i) for i, cls in enumerate(CLASSES)}
    return counts


def format_counts(counts: dict[str, dict[str, int]]) -> str:
    """``train 1341 + 3875, val 8 + 8, test 234 + 390`` (NORMAL + PNEUMONIA per split)."""
    return ", ".join(f"{split} " + " + ".join(str(per_class.get(cls, 0)) for cls in CLASSES)
                     for split, per_class in counts.items())


def _images(n: int) -> str:
    return f"{n} image" if n == 1 else f"{n} images"


def match_release(counts: dict[str, dict[str, int]]) -> ReleaseMatch:
    """The release in :data:`RELEASES` whose counts are closest to ``counts`` (fewest images apart), with
    every split and class where they differ: ``test/NORMAL: 113 images (the release has 234)``."""
    best: tuple[int, str, list[str]] | None = None
    for name, release in RELEASES.items():
        distance, differences = 0, []
        for split in SPLITS:
            if split not in counts and split not in release:
                continue
            if split not in counts:
                differences.append(f"no {split}/ folder (the release has "
                                   f"{' + '.join(str(release[split][c]) for c in CLASSES)})")
                distance += sum(release[split].values())
                continue
            for cls in CLASSES:
                got, want = counts[split].get(cls, 0), release.get(split, {}).get(cls)
                if want is None:
                    differences.append(f"{split}/{cls}: {_images(got)} (the release has no {split}/ folder)")
                    distance += got
                elif got != want:
                    differences.append(f"{split}/{cls}: {_images(got)} (the release has {want})")
                    distance += abs(got - want)
        if best is None or distance < best[0]:
            best = (distance, name, differences)
    return ReleaseMatch(best[1], best[2])


def class_folder_notes(root: str | Path) -> list[str]:
    """Warnings about folders next to the class folders: an extra class (``train/COVID``, not used) or a
    class folder in the wrong case (``train/normal``, which only a case-insensitive file system finds)."""
    notes = []
    for split in SPLITS:
        folder = Path(root) / split
        if not os.path.isdir(folder):
            continue
        try:
            with os.scandir(folder) as entries:
                names = sorted(e.name for e in entries if e.is_dir())
        except OSError:
            continue  # count_images names unreadable folders
        for name in names:
            if name in CLASSES or name.startswith(".") or name == "__MACOSX":
                continue
            if name.upper() in CLASSES:
                notes.append(f"found {split}/{name}: the folders must be named NORMAL and PNEUMONIA (upper case); "
                             f"rename it ({folder / name} -> {folder / name.upper()})")
            else:
                notes.append(f"{split}/{name} in {root} is not used: the lessons only use the classes "
                             f"{' and '.join(CLASSES)}")
    return notes


def inspect_dataset(root: str | Path, counts: dict[str, dict[str, int]] | None = None) -> Inspection:
    """The one rule for accepting a dataset copy, whatever its origin.

    Refused (DatasetIncompleteError naming the folder) only when a class folder of train or test holds no
    images, or cannot be read. Otherwise the copy is accepted: the result names the release it is
    (:func:`match_release`) or how it differs from the closest one, and warns about extra or misnamed
    class folders. ``counts`` replaces the file-name count (``check`` passes the images that open).
    """
    root = Path(root)
    counts = count_images(root) if counts is None else counts
    empty = [f"{split}/{cls}" for split in REQUIRED_SPLITS for cls in CLASSES
             if counts.get(split, {}).get(cls, 0) == 0]
    if empty:
        raise DatasetIncompleteError(
            f"The dataset at {root} has no images in {', '.join(empty)}: every class needs images in train "
            f"and test (found {format_counts(counts)}, NORMAL + PNEUMONIA).")
    return Inspection(root, counts, match_release(counts), class_folder_notes(root))


def verify_dataset(root: str | Path, expected: dict[str, dict[str, int]] | None = None) -> dict:
    """The counts of the copy at ``root`` after :func:`inspect_dataset`'s refusals; with ``expected``,
    also DatasetIncompleteError listing every split and class whose count differs from it (a missing
    ``val/`` is accepted)."""
    counts = inspect_dataset(root).counts if expected is None else count_images(root)
    problems = []
    for split, per_class in (expected or {}).items():
        if split == "val" and split not in counts:
            continue
        for cls, n in per_class.items():
            got = counts.get(split, {}).get(cls, 0)
            if got != n:
                problems.append(f"{split}/{cls}: {got} images, expected {n}")
    if problems:
        raise DatasetIncompleteError(
            f"The dataset at {root} is incomplete or not the expected one: " + "; ".join(problems) + ".")
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
