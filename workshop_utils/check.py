"""Is this machine ready for the workshop? ``python -m workshop_utils check [--data-dir DIR] [--weights FILE]``

One line per item, OK / WARN / FAIL, and what to do about each item that is not OK. Exit code 0 when
nothing FAILs.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from . import dataset, download, paths, weights

#: Size in bytes of Keras' VGG16 ImageNet weights without the classifier (VGG16_NOTOP_FILE).
VGG16_NOTOP_SIZE = 58_889_256
GB = 1024 ** 3

@dataclass
class Item:
    """One checked item: status "OK", "WARN" or "FAIL", what was found, and what to do if not OK."""

    status: str
    name: str
    detail: str
    fix: str = ""


def _version_tuple(version: str) -> tuple[int, ...]:
    return tuple(int(m.group()) for part in version.split(".")[:3] if (m := re.match(r"\d+", part)))


def check_python() -> Item:
    """Python at least the package's declared minimum (its Requires-Python)."""
    version = platform.python_version()
    minimum = python_minimum() or "3.10"
    if _version_tuple(version) >= _version_tuple(minimum):
        return Item("OK", "Python", version)
    return Item("FAIL", "Python", f"{version} is too old",
                f"install Python {minimum} or newer (e.g. via conda or python.org)")


def keras_backend() -> str:
    """The Keras backend that will be used (KERAS_BACKEND, else keras.json, else tensorflow), without
    importing Keras."""
    if os.environ.get("KERAS_BACKEND"):
        return os.environ["KERAS_BACKEND"]
    config = Path(os.environ.get("KERAS_HOME", Path.home() / ".keras")) / "keras.json"
    try:
        return json.loads(config.read_text()).get("backend", "tensorflow")
    except (OSError, ValueError, AttributeError):
        return "tensorflow"


#: This package's distribution: its requirements and their minimum versions are read from its installed
#: metadata (written from pyproject.toml, the one copy of them).
DISTRIBUTION = "pneumonia-xray-workshop"
#: Distributions that also provide a requirement (TensorFlow's platform builds).
ALTERNATIVES: dict[str, tuple[str, ...]] = {
    "tensorflow": ("tensorflow", "tensorflow-cpu", "tensorflow-macos", "tensorflow-intel", "tf-nightly"),
}
#: The distribution each Keras backend needs (its minimum, if any, is the one a requirement declares).
BACKEND_PACKAGES = {"tensorflow": "tensorflow", "jax": "jax", "torch": "torch"}
#: Extras needed for one job only (a missing one is a WARN): extra -> the job.
OPTIONAL_EXTRAS = {"lab": "JupyterLab (or open the lessons in Colab or your own Jupyter)",
                   "run": "python -m workshop_utils run"}


def requirements(extra: str | None = None) -> dict[str, str | None]:
    """{distribution: minimum version, or None} of the installed package's core requirements (``extra=None``)
    or of one extra, from its metadata. Raises ``metadata.PackageNotFoundError`` when it is not installed."""
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    found: dict[str, str | None] = {}
    for line in metadata.requires(DISTRIBUTION) or []:
        req = Requirement(line)
        if canonicalize_name(req.name) == DISTRIBUTION:
            continue  # an extra that includes another one ("test" includes "run")
        core = req.marker is None or req.marker.evaluate({"extra": ""})
        wanted = core if extra is None else (not core and req.marker.evaluate({"extra": extra}))
        if wanted:
            found[req.name] = next((s.version for s in req.specifier if s.operator in (">=", "==", "~=")), None)
    return found


def declared_minimum(name: str) -> str | None:
    """The minimum version of ``name`` that any requirement of the package declares (core or extra)."""
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    for line in metadata.requires(DISTRIBUTION) or []:
        req = Requirement(line)
        if canonicalize_name(req.name) == canonicalize_name(name):
            return next((s.version for s in req.specifier if s.operator in (">=", "==", "~=")), None)
    return None


def python_minimum() -> str | None:
    """The oldest Python the installed package declares (its Requires-Python), e.g. "3.11"; None when the
    package is not installed or declares none."""
    from packaging.specifiers import SpecifierSet

    try:
        declared = metadata.metadata(DISTRIBUTION).get("Requires-Python") or ""
    except metadata.PackageNotFoundError:
        return None
    return next((s.version for s in SpecifierSet(declared) if s.operator == ">="), None)


def _check_package(name: str, minimum: str | None, extra: str | None = None) -> Item:
    """One requirement: installed and at least ``minimum``. A core one missing or too old is a FAIL; one of an
    optional ``extra`` is a WARN whose fix installs that extra."""
    from packaging.version import InvalidVersion, Version

    status = "WARN" if extra else "FAIL"
    needed_for = f" (needed for {OPTIONAL_EXTRAS[extra]})" if extra in OPTIONAL_EXTRAS else ""
    for dist in ALTERNATIVES.get(name, (name,)):
        try:
            version = metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
        if minimum is None:
            return Item("OK", name, f"{version} (no minimum declared)")
        try:
            new_enough = Version(version) >= Version(minimum)
        except InvalidVersion:
            new_enough = _version_tuple(version) >= _version_tuple(minimum)
        if new_enough:
            return Item("OK", name, version)
        fix = f'pip install -U "{DISTRIBUTION}[{extra}]"' if extra else f'pip install -U "{name}>={minimum}"'
        return Item(status, name, f"{version} is older than {minimum}{needed_for}", fix)
    wanted = f"{name}>={minimum}" if minimum else name
    fix = f'pip install "{DISTRIBUTION}[{extra}]"' if extra else f'pip install "{wanted}"'
    return Item(status, name, f"not installed{needed_for}", fix)


def check_packages() -> list[Item]:
    """The package's requirements with the minimum versions its metadata declares: keras, the active Keras
    backend's package, the other core requirements (FAIL when missing or too old), then the optional extras
    (JupyterLab, the runner's papermill and ipykernel: WARN)."""
    try:
        core = requirements()
    except metadata.PackageNotFoundError:
        return [Item("FAIL", DISTRIBUTION, "not installed, so its requirements cannot be checked",
                     'pip install -e ".[lab]"   (in the checkout)')]
    backend = keras_backend()
    items = [_check_package("keras", core.get("keras"))]
    if backend in BACKEND_PACKAGES:
        package = BACKEND_PACKAGES[backend]
        item = _check_package(package, core[package] if package in core else declared_minimum(package))
        item.name += f" (Keras backend {backend})"
        items.append(item)
    else:
        package = None
        items.append(Item("FAIL", "Keras backend", f"unknown backend {backend!r}",
                          "export KERAS_BACKEND=tensorflow   (or jax, torch)"))
    other_backends = set(BACKEND_PACKAGES.values()) - {package}  # TensorFlow is not needed on JAX
    items += [_check_package(name, minimum) for name, minimum in core.items()
              if name not in ("keras", package) and name not in other_backends]
    for extra in OPTIONAL_EXTRAS:
        items += [_check_package(name, minimum, extra) for name, minimum in requirements(extra).items()]
    return items


def image_opens(path: str | Path) -> bool:
    """True when Pillow reads ``path``'s header as an image (``Image.open`` + ``verify``) and a JPEG ends with
    its end-of-image marker; False for a zero-byte file, a text file named ``.jpeg``, a damaged header or a
    truncated JPEG. No pixels are decoded."""
    from PIL import Image

    try:
        with Image.open(path) as img:
            img.verify()
            if img.format == "JPEG":
                with open(path, "rb") as f:
                    f.seek(-2, os.SEEK_END)
                    return f.read(2) == b"\xff\xd9"
    except Exception:  # Pillow raises many kinds for broken files (OSError, SyntaxError, ValueError ...)
        return False
    return True


def _broken_files(broken: list[str], root: Path) -> list[str]:
    """``["3 file(s) are not readable images and are not counted (train/NORMAL/a.jpeg, ...)"]``, or []."""
    if not broken:
        return []
    names = ", ".join(os.path.relpath(p, root) for p in broken[:5]) + (" ..." if len(broken) > 5 else "")
    return [f"{len(broken)} file(s) are not readable images and are not counted ({names})"]


def check_dataset(data_dir: str | Path | None = None) -> Item:
    """The dataset, by the rule every command uses (download.locate_dataset, dataset.inspect_dataset), with
    only the files that open as images counted.

    OK: one of the published releases. WARN: a copy that differs from them (named differences), extra or
    misnamed class folders, files that are not images (named; the lessons skip them), or an archive in the
    default folder not unpacked yet. FAIL: what would be refused (no dataset where it was pointed at, a
    class without images, an unreadable folder).
    """
    if str(data_dir) == "synthetic" or (data_dir is None and os.environ.get(paths.DATA_DIR_ENV) == "synthetic"):
        return Item("OK", "Dataset", "synthetic: the generated toy dataset (made on first use)")
    folder, chosen_by = download.data_folder(data_dir, "--data-dir")
    try:
        root = download.find_own_copy(folder, chosen_by) if chosen_by else download.find_copy(folder)
    except dataset.DatasetNotFoundError as exc:
        return Item("FAIL", "Dataset", exc.reason, exc.advice)
    if root is None:
        archives = download.archives_in(folder)
        if archives:
            return Item("WARN", "Dataset", f"{archives[0]} is not unpacked yet",
                        "python -m workshop_utils download   (unpacks it; no network needed)")
        return Item("FAIL", "Dataset", f"not found in {folder}",
                    "python -m workshop_utils download   (or point WORKSHOP_DATA_DIR / --data-dir at your copy)")
    broken: list[str] = []
    counts: dict[str, dict[str, int]] = {}
    try:
        for split in dataset.SPLITS:
            if os.path.isdir(root / split):
                listing = dataset.list_images(root, split, warn=False)
                good: list[int] = []
                for path, label in zip(listing.paths, listing.labels):
                    if image_opens(path):
                        good.append(label)
                    else:
                        broken.append(path)
                counts[split] = {cls: good.count(i) for i, cls in enumerate(dataset.CLASSES)}
        inspection = dataset.inspect_dataset(root, counts)
    except dataset.DatasetIncompleteError as exc:
        if str(exc).startswith("Cannot read"):
            return Item("FAIL", "Dataset", str(exc),
                        "make the folder readable, or point WORKSHOP_DATA_DIR / --data-dir at a copy you can read")
        return Item("FAIL", "Dataset", " ".join([str(exc), *_broken_files(broken, root)]),
                    "complete the copy, or get the dataset again: python -m workshop_utils download")
    found = f"{root}: {dataset.format_counts(counts)} (NORMAL + PNEUMONIA)"
    problems, fixes = [], []
    if inspection.release.differences:
        problems.append(inspection.release.describe())
        fixes.append("fine for the workshop (the copy is used as it is); scores on a test split that differs "
                     "are not comparable with published ones")
    else:
        found += f": the {inspection.release.release}"
    problems += inspection.notes
    if broken:
        problems += _broken_files(broken, root)
        fixes.append("the lessons skip them; delete or replace them")
    if problems:
        return Item("WARN", "Dataset", f"{found}; " + "; ".join(problems), "; ".join(fixes) or "see above")
    return Item("OK", "Dataset", found)


def check_cache() -> Item:
    """The cache folder (decoded images, features, the synthetic dataset) can be written."""
    folder = paths.cache_dir()
    reason = download.unwritable_reason(folder)
    if reason is not None:
        return Item("FAIL", "Cache folder", f"{folder} is not writable ({reason})",
                    f"export {paths.CACHE_DIR_ENV}=<a folder you can write to>   (or {paths.HOME_ENV}=<folder>: "
                    "the caches then go to <folder>/cache)")
    return Item("OK", "Cache folder", f"{folder} ({'writable' if os.path.isdir(folder) else 'will be created'})")


def check_weights(weights_file: str | Path | None = None) -> Item:
    """The VGG16 ImageNet weights file (Keras' cache, or ``weights_file``): present, complete, md5 right."""
    path = Path(weights_file).expanduser() if weights_file else paths.keras_models_dir() / weights.VGG16_NOTOP_FILE
    if not path.is_file():
        return Item("FAIL", "VGG16 weights", f"{path} not found",
                    'online: python -c "from workshop_utils import weights; weights.vgg16_weights()"; offline: '
                    "export KERAS_HOME=<kit>/keras (see the kit's README.txt)")
    size = path.stat().st_size
    if download.md5_of(path) == weights.VGG16_NOTOP_MD5:
        return Item("OK", "VGG16 weights", f"{path} ({size / 1e6:.1f} MB, md5 ok)")
    from . import hed_vgg16

    if hed_vgg16.is_hed_vgg16(path):
        return Item("WARN", "VGG16 weights", f"{path} is the development stand-in: {hed_vgg16.DESCRIPTION}",
                    "for the workshop, use the ImageNet file (online: WEIGHTS = 'imagenet'; offline: the kit)")
    what = (f"incomplete ({size / 1e6:.1f} of {VGG16_NOTOP_SIZE / 1e6:.1f} MB)" if size < VGG16_NOTOP_SIZE
            else "damaged (wrong md5)")
    return Item("FAIL", "VGG16 weights", f"{path} is {what}", f"delete {path} and get it again")


def gpu_devices() -> list[str]:
    """Names of the GPUs the active Keras backend sees (empty on CPU-only machines)."""
    import keras

    backend = keras.backend.backend()
    try:
        if backend == "tensorflow":
            import tensorflow as tf

            return [d.name for d in tf.config.list_physical_devices("GPU")]
        if backend == "jax":
            import jax

            return [str(d) for d in jax.devices() if d.platform == "gpu"]
        if backend == "torch":
            import torch

            return [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    except Exception:  # a broken driver must not stop the lesson
        return []
    return []


def check_gpu() -> Item:
    """Whether the Keras backend starts and sees a GPU (imports Keras and its backend)."""
    try:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        import keras

        gpus, backend = gpu_devices(), keras.backend.backend()
    except Exception as exc:  # a broken install raises anything
        return Item("FAIL", "Keras", f"could not start: {exc}", "reinstall: pip install -U keras tensorflow")
    if gpus:
        return Item("OK", "GPU", f"{', '.join(gpus)} (Keras backend {backend})")
    return Item("WARN", "GPU", f"none found (Keras backend {backend}): training runs on the CPU, slowly",
                "keep QUICK = True or a small IMAGE_SIZE in the lessons, or use Colab with a GPU runtime")


def check_disk(data_dir: str | Path | None = None, dataset_present: bool = True) -> Item:
    """Free space where the data lives: about 1 GB for caches and models, 3 GB more to download the dataset."""
    folder = Path(data_dir).expanduser() if data_dir else (paths.user_data_dir() or paths.default_data_dir())
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    free = shutil.disk_usage(folder).free
    need = 1 * GB if dataset_present else 4 * GB
    detail = f"{free / GB:.1f} GB free in {folder}"
    if free < need:
        return Item("FAIL", "Disk space", f"{detail}, need about {need / GB:.0f} GB", "free some disk space")
    if free < 2 * need:
        return Item("WARN", "Disk space", f"{detail}, little room to spare", "free some disk space")
    return Item("OK", "Disk space", detail)


def run_checks(data_dir: str | Path | None = None, weights_file: str | Path | None = None,
               gpu: bool = True) -> list[Item]:
    """Every check, in order. ``gpu=False`` skips starting Keras."""
    items = [check_python(), *check_packages()]
    data = check_dataset(data_dir)
    items += [data, check_cache(), check_weights(weights_file)]
    if gpu:
        items.append(check_gpu())
    items.append(check_disk(data_dir, dataset_present=data.status != "FAIL"))
    return items


def format_item(item: Item) -> str:
    """``FAIL  Dataset: not found in ...`` plus an indented ``-> what to do`` line when not OK."""
    line = f"{item.status:<5} {item.name}: {item.detail}"
    return line + (f"\n      -> {item.fix}" if item.fix and item.status != "OK" else "")


def add_check_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``check`` sub-command's options to ``parser``."""
    parser.add_argument("--data-dir", type=Path, default=None,
                        help="your dataset folder (default: $WORKSHOP_DATA_DIR, else the default data folder: "
                             "$WORKSHOP_HOME/data, else ./data in a checkout)")
    parser.add_argument("--weights", type=Path, default=None, metavar="FILE",
                        help=f"the VGG16 weights file (default: $KERAS_HOME/models/{weights.VGG16_NOTOP_FILE})")


def main_check(args: argparse.Namespace) -> int:
    """Run the ``check`` sub-command: print every item; 0 when nothing FAILs, else 1."""
    items = run_checks(args.data_dir, args.weights)
    for item in items:
        print(format_item(item), flush=True)
    failed = [item.name for item in items if item.status == "FAIL"]
    warned = sum(item.status == "WARN" for item in items)
    if failed:
        print(f"\nNOT READY: fix {', '.join(failed)} (see the -> lines) and run the check again.")
        return 1
    print(f"\nREADY{f' ({warned} warning(s): see the -> lines)' if warned else ''}.")
    return 0
