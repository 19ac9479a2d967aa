"""Download, unpack and verify the chest X-ray pneumonia dataset (Kermany et al. 2018).

Two sources:

* ``"mendeley"`` (default): the original ``ChestXRay2017.zip`` over plain HTTP, with a
  progress bar, retries and resume of an interrupted transfer (a ``.part`` file and an HTTP ``Range``
  request).
* ``"kaggle"``: the Kaggle copy through ``kagglehub`` (needs Kaggle credentials; kagglehub keeps its own
  cache), linked into the data folder as ``chest_xray``.

A copy that is already complete is never downloaded again, and an archive placed in the data folder by
hand is unpacked without touching the network. Completeness is checked with
:func:`workshop_utils.dataset.verify_dataset` (image counts per split and class).
"""
from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import sys
import tarfile
import time
import zipfile
import zlib
from pathlib import Path

import requests
from tqdm import tqdm

from . import dataset, paths

MENDELEY_URL = ("https://data.mendeley.com/public-files/datasets/rscbjbr9sj/files/"
                "f12eaf6d-6023-432f-acc9-80c9d7393433/file_downloaded")
MENDELEY_PAGE = "https://data.mendeley.com/datasets/rscbjbr9sj/2"
KAGGLE_HANDLE = "paultimothymooney/chest-xray-pneumonia"
KAGGLE_PAGE = "https://www.kaggle.com/datasets/paultimothymooney/chest-xray-pneumonia"
ARCHIVE_NAME = "ChestXRay2017.zip"
SOURCES = ("mendeley", "kaggle")
#: Seconds to wait before the first retry; doubled for each further one.
RETRY_BACKOFF = 1.0
#: Bytes read and written at a time; a dropped connection loses at most the chunk in flight.
CHUNK_SIZE = 64 * 1024

_TRANSIENT = (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError)
_ARCHIVE_SUFFIXES = (".zip", ".tar.gz", ".tgz", ".tar")
# Python >= 3.11.4 can sanitise tar members itself (and warns from 3.12 when not asked to).
_TAR_FILTER = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}


class DownloadError(RuntimeError):
    """A download or an unpack failed; the message says what to do next."""


# --------------------------------------------------------------------------- resumable HTTP download

def _check_hash(path: Path, known_hash: str) -> bool:
    """True if ``path`` matches ``known_hash`` (``"md5:..."``, ``"sha256:..."``; bare hex means sha256)."""
    algorithm, _, digest = known_hash.rpartition(":")
    h = hashlib.new(algorithm or "sha256")
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest() == digest.lower()


def _transfer(url: str, part: Path, progress: bool, timeout: float) -> None:
    """One attempt: append the rest of ``url`` to ``part`` (resuming with a Range request if it exists)."""
    have = part.stat().st_size if part.exists() else 0
    headers = {"Accept-Encoding": "identity"}  # byte counts must match Content-Length
    if have:
        headers["Range"] = f"bytes={have}-"
    with requests.get(url, headers=headers, stream=True, timeout=timeout) as r:
        if r.status_code == 416:  # Range not satisfiable: the .part is already whole, or is junk
            size = r.headers.get("Content-Range", "").rpartition("/")[2]
            if size.isdigit() and int(size) == have:
                return
            part.unlink()
            raise requests.ConnectionError(f"could not resume {part.name}; starting again")
        if r.status_code >= 500:  # server trouble is worth a retry, unlike 404 or 403
            raise requests.ConnectionError(f"server error {r.status_code} {r.reason}")
        r.raise_for_status()
        if r.status_code == 206 and not r.headers.get("Content-Range", "").startswith(f"bytes {have}-"):
            part.unlink()
            raise requests.ConnectionError("the server resumed at the wrong offset; starting again")
        if r.status_code != 206:
            have = 0  # no Range asked, or the server ignored it and sends everything: start from zero
        length = int(r.headers.get("Content-Length", 0))
        total = have + length if length else None
        with part.open("ab" if have else "wb") as f, tqdm(
            total=total, initial=have, unit="B", unit_scale=True, unit_divisor=1024,
            desc=part.name.removesuffix(".part"), disable=not progress,
        ) as bar:
            for chunk in r.iter_content(chunk_size=CHUNK_SIZE):
                f.write(chunk)
                bar.update(len(chunk))
    if total is not None and part.stat().st_size < total:
        raise requests.ConnectionError(f"transfer ended at {part.stat().st_size} of {total} bytes")


def _download(url: str, dest: Path, retries: int, progress: bool, timeout: float) -> None:
    """Download ``url`` to ``dest`` through ``dest.part``, retrying with exponential backoff.

    ``retries`` counts failures in a row: an attempt that received data resets the count.
    """
    part = dest.with_name(dest.name + ".part")
    failures = 0
    while True:
        size_before = part.stat().st_size if part.exists() else 0
        try:
            _transfer(url, part, progress, timeout)
            part.replace(dest)
            return
        except _TRANSIENT as exc:
            made_progress = part.exists() and part.stat().st_size > size_before
            failures = 0 if made_progress else failures + 1
            if failures > retries:
                raise DownloadError(f"Could not download {url} after {retries + 1} attempts: {exc}") from exc
            delay = RETRY_BACKOFF * 2 ** max(failures - 1, 0)
            print(f"Download failed ({exc}); retrying in {delay:.0f} s ...", file=sys.stderr)
            time.sleep(delay)
        except requests.HTTPError as exc:
            raise DownloadError(f"Could not download {url}: {exc}") from exc


def fetch_file(url: str, dest: str | Path, retries: int = 3, progress: bool = True,
               timeout: float = 30.0, known_hash: str | None = None) -> Path:
    """Download ``url`` to ``dest`` unless it is already there; return ``dest``.

    The transfer goes to ``dest.part`` and resumes where it stopped (HTTP ``Range``) after a dropped
    connection, here or in a later call. With ``known_hash`` (``"md5:..."`` or ``"sha256:..."``) a file
    that does not match is deleted and downloaded once more; a second mismatch raises DownloadError.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    for _attempt in range(2):
        if not dest.exists():
            _download(url, dest, retries, progress, timeout)
        if known_hash is None or _check_hash(dest, known_hash):
            return dest
        print(f"{dest.name} does not match {known_hash}; downloading it again.", file=sys.stderr)
        dest.unlink()
    raise DownloadError(f"{url} does not match the expected hash {known_hash}, even after a fresh "
                        "download: the file on the server has changed or is damaged.")


# --------------------------------------------------------------------------- unpacking

def _safe_target(dest: Path, name: str) -> Path:
    """The path ``name`` unpacks to under ``dest``; DownloadError if it would land outside ``dest``."""
    target = (dest / name).resolve()
    if not target.is_relative_to(dest.resolve()):
        raise DownloadError(f"Refusing to unpack: the archive member {name!r} points outside {dest}.")
    return target


def unpack_archive(archive: str | Path, dest: str | Path, progress: bool = True) -> None:
    """Unpack a ``.zip`` or ``.tar(.gz)`` archive into ``dest``, skipping ``__MACOSX`` metadata.

    A damaged archive is deleted and DownloadError raised (running the download again fetches a new
    one). Members that would land outside ``dest`` (``../`` or absolute paths, links) are refused.
    """
    archive, dest = Path(archive), Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    try:
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as zf:
                members = [m for m in zf.infolist() if not m.filename.startswith("__MACOSX")]
                for m in tqdm(members, desc=f"Unpacking {archive.name}", unit="file", disable=not progress):
                    _safe_target(dest, m.filename)
                    zf.extract(m, dest)
        elif tarfile.is_tarfile(archive):
            # Stream through the members in order: seeking back in a .tar.gz means decompressing again.
            with tarfile.open(archive) as tf:
                for m in tqdm(tf, desc=f"Unpacking {archive.name}", unit="file", disable=not progress):
                    if m.name.startswith("__MACOSX"):
                        continue
                    _safe_target(dest, m.name)
                    if not (m.isfile() or m.isdir()):
                        raise DownloadError(f"Refusing to unpack: {m.name!r} is a link or device.")
                    tf.extract(m, dest, **_TAR_FILTER)
        else:
            raise zipfile.BadZipFile("neither a zip nor a tar archive")
    except (zipfile.BadZipFile, tarfile.TarError, zlib.error, EOFError) as exc:
        archive.unlink(missing_ok=True)
        raise DownloadError(
            f"The archive {archive} was corrupt ({exc}) and has been deleted. "
            "Run the download command again to fetch a fresh copy."
        ) from exc


# --------------------------------------------------------------------------- the dataset

def complete_copy(data_dir: Path, expected: dict | None) -> Path | None:
    """The verified dataset root under ``data_dir``, or None if there is no complete copy."""
    try:
        root = dataset.find_dataset_root(data_dir)
        dataset.verify_dataset(root, expected)
    except (dataset.DatasetNotFoundError, dataset.DatasetIncompleteError):
        return None
    return root


def _archive_path(data_dir: Path, url: str | None) -> Path:
    """Where the archive is stored: the URL's file name if it looks like an archive, else ARCHIVE_NAME."""
    name = (url or "").split("?")[0].rstrip("/").rpartition("/")[2]
    return data_dir / (name if name.endswith(_ARCHIVE_SUFFIXES) else ARCHIVE_NAME)


def _manual_instructions(archive: Path) -> str:
    return (
        "Get the archive by hand instead:\n"
        f"  1. Download ChestXRay2017.zip from the Mendeley dataset page {MENDELEY_PAGE}\n"
        f"     (or the Kaggle copy's zip: {KAGGLE_PAGE}).\n"
        f"  2. Save it as\n       {archive}\n"
        "     and run the command again: an archive found there is unpacked without downloading.\n"
        "Or unpack it anywhere and point the workshop at that folder with the environment variable "
        "WORKSHOP_DATA_DIR or the --data-dir option."
    )


def _link_kaggle_copy(data_dir: Path, progress: bool) -> Path:
    """Download with kagglehub and make ``data_dir/chest_xray`` a symlink to it (a copy if links fail)."""
    try:
        import kagglehub
    except ImportError as exc:
        raise DownloadError("The kaggle source needs kagglehub: pip install kagglehub") from exc
    try:
        cache = Path(kagglehub.dataset_download(KAGGLE_HANDLE))
    except Exception as exc:  # kagglehub raises many kinds: no credentials, HTTP errors, ...
        raise DownloadError(
            f"kagglehub could not download {KAGGLE_HANDLE}: {exc}\n"
            "Check your Kaggle credentials (~/.kaggle/kaggle.json or KAGGLE_USERNAME/KAGGLE_KEY), "
            "or use --source mendeley.\n" + _manual_instructions(_archive_path(data_dir, None))
        ) from exc
    if progress:
        print(f"kagglehub copy: {cache}")
    found = dataset.find_dataset_root(cache)
    link = data_dir / "chest_xray"
    if link.is_symlink():
        link.unlink()
    elif link.exists():
        raise DownloadError(f"{link} already exists but is not a complete dataset. "
                            "Delete it (or choose another --data-dir) and run the command again.")
    data_dir.mkdir(parents=True, exist_ok=True)
    try:
        link.symlink_to(found, target_is_directory=True)
    except OSError:  # e.g. Windows without developer mode
        shutil.copytree(found, link)
    return link


def download_dataset(data_dir: str | Path | None = None, source: str = "mendeley",
                     url: str | None = None, expected: dict | None = None, retries: int = 3,
                     progress: bool = True) -> Path:
    """Make sure a complete copy of the dataset is in ``data_dir`` and return its verified root.

    ``data_dir`` defaults to :func:`default_data_dir`. A complete copy already there is returned at once,
    with no network access. Otherwise an archive already in ``data_dir`` (``ChestXRay2017.zip``) is
    unpacked; failing that, the dataset is fetched from ``source`` (``"mendeley"``: HTTP download of
    ``url``, default the Mendeley archive; ``"kaggle"``: kagglehub). ``expected`` overrides the image
    counts checked by :func:`workshop_utils.dataset.verify_dataset`.
    Raises DownloadError (with instructions for a manual download) or DatasetIncompleteError.
    """
    if source not in SOURCES:
        raise ValueError(f"Unknown source {source!r}: use one of {SOURCES}.")
    if source == "kaggle" and url:
        raise ValueError("url only applies to the 'mendeley' (HTTP) source.")
    data_dir = Path(data_dir).expanduser() if data_dir is not None else (paths.user_data_dir() or paths.default_data_dir())

    root = complete_copy(data_dir, expected)
    if root is not None:
        return root

    archive = _archive_path(data_dir, url)
    if not archive.exists():
        if source == "kaggle":
            root = dataset.find_dataset_root(_link_kaggle_copy(data_dir, progress))
            dataset.verify_dataset(root, expected)
            return root
        try:
            fetch_file(url or MENDELEY_URL, archive, retries=retries, progress=progress)
        except DownloadError as exc:
            raise DownloadError(f"{exc}\n" + _manual_instructions(archive)) from exc
    unpack_archive(archive, data_dir, progress=progress)
    root = dataset.find_dataset_root(data_dir)
    dataset.verify_dataset(root, expected)
    return root


# --------------------------------------------------------------------------- command line

def add_download_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``download`` sub-command's options to ``parser``."""
    parser.add_argument("--data-dir", type=Path, default=None,
                        help="folder for the dataset (default: $WORKSHOP_DATA_DIR, else ./data in a "
                             "checkout, else ~/pneumonia-workshop-data)")
    parser.add_argument("--source", choices=SOURCES, default="mendeley",
                        help="where to get it: the original Mendeley archive (default) or Kaggle "
                             "(needs Kaggle credentials)")
    parser.add_argument("--url", default=None, help="download this archive instead of Mendeley's")


def main_download(args: argparse.Namespace) -> int:
    """Run the ``download`` sub-command: print the image counts and return 0, or an error and 1."""
    try:
        root = download_dataset(args.data_dir, source=args.source, url=args.url)
        counts = dataset.verify_dataset(root)
    except (DownloadError, dataset.DatasetNotFoundError, ValueError) as exc:  # incl. DatasetIncompleteError
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"Dataset ready at {root}")
    for split, per_class in counts.items():
        print(f"  {split:<5}  " + "  ".join(f"{cls} {n:>5}" for cls, n in per_class.items()))
    return 0


def locate_dataset(data_dir: str | Path | None = None) -> Path:
    """The dataset root the lessons use.

    ``None``: ``$WORKSHOP_DATA_DIR``, else the default data folder (:func:`default_data_dir`); ``"synthetic"``: a small generated
    dataset (made once under the cache folder) for offline demos and tests; any other value: a folder
    holding the dataset at any nesting. Raises DatasetNotFoundError saying how to get the data.
    """
    data_dir = data_dir or os.environ.get("WORKSHOP_DATA_DIR")
    if data_dir == "synthetic":
        from .synthetic import make_synthetic_dataset

        target = paths.cache_dir() / "synthetic"
        if not (target / "chest_xray").is_dir():
            make_synthetic_dataset(target)
        return target / "chest_xray"
    return dataset.find_dataset_root(Path(data_dir).expanduser() if data_dir else (paths.user_data_dir() or paths.default_data_dir()))
