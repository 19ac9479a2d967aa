"""Find, download and unpack the chest X-ray pneumonia dataset (Kermany et al. 2018).

:func:`locate_dataset` is the one way every command and lesson finds the data:

* ``"synthetic"``: a small generated dataset (made once under the cache folder);
* a folder you point at (``data_dir``: ``--data-dir`` or a notebook's ``DATA_DIR``; else
  ``$WORKSHOP_DATA_DIR``): your copy, used whatever its counts and never downloaded into; a path that
  does not exist or holds no dataset is an error naming where it came from;
* else the default data folder (:func:`workshop_utils.paths.default_data_dir`): a copy there is used;
  else an archive placed there is unpacked (no network); else the archive is downloaded, with a progress
  bar, retries and resume of an interrupted transfer (a ``.part`` file and an HTTP ``Range`` request),
  from ``$WORKSHOP_DATA_URL`` (tests, mirrors) or Mendeley's ``ChestXRay2017.zip``. ``source="kaggle"``
  gets the Kaggle copy through ``kagglehub`` instead.

Every copy goes through :func:`workshop_utils.dataset.inspect_dataset`: it says which release it is, or
warns with the differences (the sources may re-publish), and refuses only a class without images. A
damaged archive is refused; an archive is unpacked into a hidden folder and moved into place only when
complete, so an interrupted unpack never leaves a half copy behind.
"""
from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import sys
import tarfile
import tempfile
import time
import zipfile
import zlib
from pathlib import Path, PurePosixPath, PureWindowsPath

import requests
from tqdm import tqdm

from . import dataset, paths

MENDELEY_URL = ("https://data.mendeley.com/public-files/datasets/rscbjbr9sj/files/"
                "f12eaf6d-6023-432f-acc9-80c9d7393433/file_downloaded")
MENDELEY_PAGE = "https://data.mendeley.com/datasets/rscbjbr9sj/2"
KAGGLE_HANDLE = "paultimothymooney/chest-xray-pneumonia"
KAGGLE_PAGE = "https://www.kaggle.com/datasets/paultimothymooney/chest-xray-pneumonia"
ARCHIVE_NAME = "ChestXRay2017.zip"
#: The folder both published archives unpack to (and the Kaggle copy's link is named).
UNPACKED_NAME = "chest_xray"
#: Environment variable: download the archive from this URL instead of Mendeley's (a mirror, or tests).
DATA_URL_ENV = "WORKSHOP_DATA_URL"
SOURCES = ("mendeley", "kaggle")
#: Seconds to wait before the first retry; doubled for each further one.
RETRY_BACKOFF = 1.0
#: Bytes read and written at a time; a dropped connection loses at most the chunk in flight.
CHUNK_SIZE = 64 * 1024

_TRANSIENT = (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError)
_ARCHIVE_SUFFIXES = (".zip", ".tar.gz", ".tgz", ".tar")
# Python >= 3.11.4 can sanitise tar members itself (and warns from 3.12 when not asked to).
_TAR_FILTER = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
# How each way of choosing a folder is shown in messages, and how to undo it.
_SETTINGS = {
    "DATA_DIR": ('DATA_DIR = "{path}"', "set DATA_DIR = None"),
    "--data-dir": ("--data-dir {path}", "leave out --data-dir"),
    paths.DATA_DIR_ENV: (paths.DATA_DIR_ENV + "={path}", "unset " + paths.DATA_DIR_ENV),
}


class DownloadError(RuntimeError):
    """A download or an unpack failed; the message says what to do next."""


class ArchiveError(DownloadError):
    """The archive itself is unusable: damaged, truncated, unsafe, or not the complete dataset."""


# --------------------------------------------------------------------------- resumable HTTP download

def file_digest(path: str | Path, algorithm: str = "sha256") -> str:
    """The hex digest of a file (``algorithm``: any name hashlib knows, e.g. ``"md5"``, ``"sha256"``)."""
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def md5_of(path: str | Path) -> str:
    """The md5 hex digest of a file."""
    return file_digest(path, "md5")


def sha256_of(path: str | Path) -> str:
    """The SHA-256 hex digest of a file."""
    return file_digest(path, "sha256")


def matches_hash(path: Path, known_hash: str) -> bool:
    """True if ``path`` matches ``known_hash`` (``"md5:..."``, ``"sha256:..."``; bare hex means sha256)."""
    algorithm, _, digest = known_hash.rpartition(":")
    return file_digest(path, algorithm or "sha256") == digest.lower()


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


class DownloadInterrupted(KeyboardInterrupt):
    """Ctrl-C during a download; its message says what was kept (the ``.part`` file) and that rerunning resumes."""


def _download(url: str, dest: Path, retries: int, progress: bool, timeout: float) -> None:
    """Download ``url`` to ``dest`` through ``dest.part``, retrying with exponential backoff.

    ``retries`` counts failures in a row: an attempt that received data resets the count.
    """
    part = dest.with_name(dest.name + ".part")
    try:
        _download_through(url, dest, part, retries, progress, timeout)
    except KeyboardInterrupt as exc:
        kept = part.stat().st_size if part.exists() else 0
        raise DownloadInterrupted(
            f"Interrupted: {part} keeps the {kept / 2 ** 20:.1f} MB received of {url}; run the same command "
            "again to resume from there.") from exc


def _download_through(url: str, dest: Path, part: Path, retries: int, progress: bool, timeout: float) -> None:
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


def fetch_file(url: str, dest: str | Path, retries: int = 3, progress: bool = True,
               timeout: float = 30.0, known_hash: str | None = None) -> Path:
    """Download ``url`` to ``dest`` unless it is already there; return ``dest``.

    The transfer goes to ``dest.part`` and resumes where it stopped (HTTP ``Range``) after a dropped
    connection, here or in a later call. With ``known_hash`` (``"md5:..."`` or ``"sha256:..."``) a file
    that does not match is deleted and downloaded once more; a second mismatch raises DownloadError.
    Any failure (HTTP error, bad URL, a folder that cannot be written) is a DownloadError saying so.
    """
    dest = Path(dest)
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        for _attempt in range(2):
            if not dest.exists():
                _download(url, dest, retries, progress, timeout)
            if known_hash is None or matches_hash(dest, known_hash):
                return dest
            print(f"{dest.name} does not match {known_hash}; downloading it again.", file=sys.stderr)
            dest.unlink()
    except requests.RequestException as exc:  # HTTP errors, malformed URLs: retrying will not help
        raise DownloadError(f"Could not download {url}: {exc}") from exc
    except OSError as exc:
        raise DownloadError(f"Cannot write {dest} ({exc.strerror or exc}): make {dest.parent} writable, or "
                            "choose another folder.") from exc
    raise DownloadError(f"{url} does not match the expected hash {known_hash}, even after a fresh "
                        "download: the file on the server has changed or is damaged.")


def unwritable_reason(folder: str | Path) -> str | None:
    """Why no file can be created in ``folder`` (or, if it does not exist yet, in its nearest existing
    parent, where it would be created), or None when it is writable."""
    probe = Path(folder).expanduser().absolute()
    while not os.path.exists(probe) and probe != probe.parent:
        probe = probe.parent
    if not os.path.isdir(probe):
        return f"{probe} is not a folder"
    try:
        with tempfile.NamedTemporaryFile(dir=probe, prefix=".write-test-"):
            pass
    except OSError as exc:
        return exc.strerror or str(exc)
    return None


# --------------------------------------------------------------------------- unpacking

def _check_member(dest: Path, name: str) -> None:
    """ArchiveError if the member ``name`` would land outside ``dest`` (an absolute path, a drive, ``..``).
    A check on the name alone: resolving every path on disk would cost several system calls per file."""
    posix = name.replace("\\", "/")
    if posix.startswith("/") or PureWindowsPath(name).drive or ".." in PurePosixPath(posix).parts:
        raise ArchiveError(f"Refusing to unpack: the archive member {name!r} points outside {dest}.")


def _is_macos_metadata(name: str) -> bool:
    return "__MACOSX" in PurePosixPath(name).parts


def unpack_archive(archive: str | Path, dest: str | Path, progress: bool = True) -> None:
    """Unpack a ``.zip`` or ``.tar(.gz)`` archive into ``dest``, skipping ``__MACOSX`` metadata.

    A damaged or truncated archive raises ArchiveError (the archive is left in place: the caller decides);
    a folder that cannot be written, DownloadError.
    Members that would land outside ``dest`` (``../`` or absolute paths, links) are refused.
    """
    archive, dest = Path(archive), Path(dest)
    try:
        dest.mkdir(parents=True, exist_ok=True)
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as zf:
                members = [m for m in zf.infolist() if not _is_macos_metadata(m.filename)]
                for m in tqdm(members, desc=f"Unpacking {archive.name}", unit="file", disable=not progress):
                    _check_member(dest, m.filename)
                    zf.extract(m, dest)
        elif tarfile.is_tarfile(archive):
            # Stream through the members in order: seeking back in a .tar.gz means decompressing again.
            with tarfile.open(archive) as tf:
                for m in tqdm(tf, desc=f"Unpacking {archive.name}", unit="file", disable=not progress):
                    if _is_macos_metadata(m.name):
                        continue
                    _check_member(dest, m.name)
                    if not (m.isfile() or m.isdir()):
                        raise ArchiveError(f"Refusing to unpack: {m.name!r} is a link or device.")
                    tf.extract(m, dest, **_TAR_FILTER)
        else:
            raise zipfile.BadZipFile("neither a zip nor a tar archive")
    except (zipfile.BadZipFile, tarfile.TarError, zlib.error, EOFError) as exc:
        raise ArchiveError(f"The archive {archive} is damaged or truncated ({exc}).") from exc
    except OSError as exc:
        raise DownloadError(f"Cannot unpack {archive} into {dest} ({exc.strerror or exc}): free some disk "
                            "space, or choose a writable folder.") from exc


def install_archive(archive: str | Path, dest: str | Path, progress: bool = True) -> Path:
    """Unpack ``archive`` into ``dest`` and return the dataset root it holds.

    The archive is unpacked into a hidden folder in ``dest`` first and moved into place only when it holds
    a dataset that :func:`workshop_utils.dataset.inspect_dataset` accepts, so an interrupted or refused
    unpack leaves nothing behind. Raises ArchiveError (damaged archive, no dataset in it, a class without
    images) or DownloadError (a name in ``dest`` already taken, a folder that cannot be written); the
    archive itself is never deleted here.
    """
    archive, dest = Path(archive), Path(dest)
    staging = dest / f".unpacking-{archive.name}"
    shutil.rmtree(staging, ignore_errors=True)  # left by an interrupted run
    try:
        unpack_archive(archive, staging, progress)
        try:
            found = dataset.find_dataset_root(staging)
        except dataset.DatasetNotFoundError as exc:
            raise ArchiveError(f"The archive {archive} holds no chest X-ray dataset: "
                                f"{exc.reason.replace(str(staging), archive.name)}.") from exc
        try:
            dataset.inspect_dataset(found)
        except dataset.DatasetIncompleteError as exc:
            counts = dataset.count_images(found)
            empty = [f"{s}/{c}" for s in dataset.REQUIRED_SPLITS for c in dataset.CLASSES
                     if counts.get(s, {}).get(c, 0) == 0]
            raise ArchiveError(f"The archive {archive} holds no images in {', '.join(empty)} (it has "
                                f"{dataset.format_counts(counts)}, NORMAL + PNEUMONIA): it is not the "
                                "complete dataset.") from exc
        entries = sorted(staging.iterdir())
        taken = [dest / e.name for e in entries if (dest / e.name).exists() or (dest / e.name).is_symlink()]
        if taken:
            raise DownloadError(
                f"{taken[0]} already exists but holds no usable dataset: move or delete it, then run the "
                f"command again (the archive {archive} is kept and will be unpacked without downloading).")
        for entry in entries:
            entry.rename(dest / entry.name)
        return dest / found.relative_to(staging)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


# --------------------------------------------------------------------------- the dataset

def report(inspection: dataset.Inspection, progress: bool = True) -> None:
    """Print what was found: the root and counts, and the release (when ``progress``); then every warning
    (the differences from the closest release, extra class folders) on stderr, always."""
    if progress:
        release = "" if inspection.release.differences else f": the {inspection.release.release}"
        print(f"Dataset: {inspection.root}\n  {dataset.format_counts(inspection.counts)} "
              f"(NORMAL + PNEUMONIA){release}", flush=True)
    for warning in inspection.warnings():
        print(f"warning: {warning}", file=sys.stderr, flush=True)


def archives_in(folder: str | Path) -> list[Path]:
    """The archive files (``.zip``, ``.tar.gz``, ``.tgz``, ``.tar``) in ``folder``, ``ChestXRay2017.zip``
    first; hidden files and ``.part`` downloads are left out."""
    folder = Path(folder)
    if not os.path.isdir(folder):
        return []
    found = sorted(p for p in folder.iterdir()
                   if os.path.isfile(p) and p.name.endswith(_ARCHIVE_SUFFIXES) and not p.name.startswith("."))
    return sorted(found, key=lambda p: p.name != ARCHIVE_NAME)


def find_copy(folder: str | Path) -> Path | None:
    """The dataset root under ``folder``, or None when there is none. A copy that nearly is one (a class
    folder in lower case, one missing) raises DatasetNotFoundError: it is not downloaded over."""
    folder = Path(folder)
    if not os.path.isdir(folder):
        return None
    try:
        return dataset.find_dataset_root(folder)
    except dataset.DatasetNotFoundError as exc:
        if exc.near_miss is None:
            return None
        advice = f"fix it, or delete {exc.near_miss} to download the dataset again"
        raise dataset.DatasetNotFoundError(
            f"The data folder {folder} holds a copy that cannot be used: {exc.reason}. To use it, {advice}.",
            folder, exc.reason, exc.near_miss, advice) from exc


def _archive_path(data_dir: Path, url: str | None) -> Path:
    """Where the archive is stored: the URL's file name if it looks like an archive, else ARCHIVE_NAME."""
    name = (url or "").split("?")[0].rstrip("/").rpartition("/")[2]
    return data_dir / (name if name.endswith(_ARCHIVE_SUFFIXES) else ARCHIVE_NAME)


def _manual_instructions(archive: Path) -> str:
    return (
        "Get the archive by hand instead:\n"
        f"  1. Download ChestXRay2017.zip from the Mendeley dataset page {MENDELEY_PAGE}\n"
        f"     (or the Kaggle copy's zip: {KAGGLE_PAGE}).\n"
        f"  2. Save it in\n       {archive.parent}\n"
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
    link = data_dir / UNPACKED_NAME
    if link.is_symlink():
        link.unlink()
    elif link.exists():
        raise DownloadError(f"{link} already exists but is not a usable dataset. "
                            "Delete it (or choose another --data-dir) and run the command again.")
    data_dir.mkdir(parents=True, exist_ok=True)
    try:
        link.symlink_to(found, target_is_directory=True)
    except OSError:  # e.g. Windows without developer mode
        shutil.copytree(found, link)
    return link


def _accept(root: Path, progress: bool, remedy: str) -> Path:
    """Apply the one rule (dataset.inspect_dataset) to ``root``, report it, and return it; a refusal gets
    ``remedy`` added."""
    try:
        inspection = dataset.inspect_dataset(root)
    except dataset.DatasetIncompleteError as exc:
        raise dataset.DatasetIncompleteError(f"{exc} {remedy}") from exc
    report(inspection, progress)
    return root


def download_dataset(data_dir: str | Path | None = None, source: str = "mendeley", url: str | None = None,
                     retries: int = 3, progress: bool = True, fetch: bool = True) -> Path:
    """Make sure the dataset is in ``data_dir`` (default :func:`workshop_utils.paths.default_data_dir`) and
    return its root.

    A copy already there is used, with no network access. Otherwise an archive already in ``data_dir``
    (``ChestXRay2017.zip``, else any zip/tar) is unpacked; failing that (and only with ``fetch``), the
    dataset is fetched from ``source``: ``"mendeley"`` downloads ``url`` (default ``$WORKSHOP_DATA_URL``,
    else Mendeley's archive), ``"kaggle"`` uses kagglehub. Every copy goes through
    :func:`workshop_utils.dataset.inspect_dataset` and is reported (release or differences).
    A damaged or refused archive is deleted. Raises DownloadError (with what to do),
    DatasetNotFoundError or DatasetIncompleteError.
    """
    if source not in SOURCES:
        raise ValueError(f"Unknown source {source!r}: use one of {SOURCES}.")
    if source == "kaggle" and url:
        raise ValueError("url only applies to the 'mendeley' (HTTP) source.")
    folder = Path(data_dir).expanduser() if data_dir is not None else paths.default_data_dir()
    again = "Delete {} and run `python -m workshop_utils download` to unpack or fetch a fresh copy."

    root = find_copy(folder)
    if root is not None:
        return _accept(root, progress, again.format(root))
    local = archives_in(folder)
    if not local and not fetch:
        advice = (f"run `python -m workshop_utils download` (or put {ARCHIVE_NAME} there), or set "
                  "WORKSHOP_DATA_DIR to your copy")
        raise dataset.DatasetNotFoundError(f"No dataset in the data folder {folder}: {advice}.", folder,
                                           f"no dataset in {folder}", advice=advice)
    reason = unwritable_reason(folder)
    if reason is not None:
        raise DownloadError(
            f"Cannot write to the data folder {folder} ({reason}). Make it writable, or put the dataset "
            "elsewhere: `python -m workshop_utils download --data-dir DIR`, or set WORKSHOP_HOME=DIR "
            "(the dataset then goes to DIR/data).")
    if local:
        archive = local[0]
        print(f"Unpacking {archive} (found in the data folder: nothing is downloaded)", flush=True)
    elif source == "kaggle":
        return _accept(dataset.find_dataset_root(_link_kaggle_copy(folder, progress)), progress,
                       again.format(folder / UNPACKED_NAME))
    else:
        url = url or os.environ.get(DATA_URL_ENV) or MENDELEY_URL
        archive = _archive_path(folder, url)
        taken = folder / UNPACKED_NAME
        if taken.exists() or taken.is_symlink():  # checked before fetching: the archive unpacks to this name
            raise DownloadError(
                f"{taken} already exists but holds no usable dataset (an interrupted unpack or copy?): move or "
                f"delete it, then run `python -m workshop_utils download` again. Nothing was downloaded.")
        try:
            fetch_file(url, archive, retries=retries, progress=progress)
        except DownloadError as exc:
            raise DownloadError(f"{exc}\n" + _manual_instructions(archive)) from exc
    try:
        root = install_archive(archive, folder, progress)
    except ArchiveError as exc:
        archive.unlink(missing_ok=True)
        raise DownloadError(f"{exc} It has been deleted: run `python -m workshop_utils download` again to "
                            f"fetch a fresh copy.\n" + _manual_instructions(archive)) from exc
    return _accept(root, progress, again.format(root))


def _synthetic_root() -> Path:
    """The generated dataset under the cache folder, made once; generated in a temporary folder and moved
    into place, so an interrupted generation is made again rather than reused."""
    from .synthetic import DEFAULT_COUNTS, make_synthetic_dataset

    target = paths.cache_dir() / "synthetic"
    root = target / UNPACKED_NAME

    def complete() -> bool:
        return root.is_dir() and dataset.count_images(root) == DEFAULT_COUNTS

    if complete():
        return root
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".synthetic-", dir=target.parent))
        try:
            make_synthetic_dataset(staging)
            try:
                staging.rename(target)
            except OSError:  # another process finished first, or a half-made copy is in the way
                if not complete():
                    shutil.rmtree(target, ignore_errors=True)
                    staging.rename(target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    except OSError as exc:
        raise DownloadError(f"Cannot write the synthetic dataset to {target} ({exc.strerror or exc}): set "
                            "WORKSHOP_CACHE_DIR to a writable folder.") from exc
    return root


def data_folder(data_dir: str | Path | None = None, setting: str = "DATA_DIR") -> tuple[Path, str | None]:
    """Where the dataset is looked for, and the setting that chose it: ``(data_dir, setting)`` when given,
    else ``($WORKSHOP_DATA_DIR, "WORKSHOP_DATA_DIR")`` when set, else ``(the default data folder, None)``."""
    if data_dir is not None:
        return Path(data_dir).expanduser(), setting
    user = paths.user_data_dir()
    if user is not None:
        return user, paths.DATA_DIR_ENV
    return paths.default_data_dir(), None


def find_own_copy(folder: Path, setting: str) -> Path:
    """The dataset root under a folder the user points at (``setting`` says how: "DATA_DIR", "--data-dir",
    "WORKSHOP_DATA_DIR"). Nothing is downloaded or unpacked: a folder that does not exist or holds no
    dataset is a DatasetNotFoundError naming the path, the setting, and what to do."""
    shown, unset = _SETTINGS.get(setting, (f"{setting}={{path}}", f"unset {setting}"))
    shown = shown.format(path=folder)
    fallback = f"{unset} to download the dataset into {paths.default_data_dir()}"

    def error(reason: str, advice: str, near_miss: Path | None = None) -> dataset.DatasetNotFoundError:
        return dataset.DatasetNotFoundError(f"{reason}: {advice}.", folder, reason, near_miss, advice)

    try:
        os.stat(folder)
    except (FileNotFoundError, NotADirectoryError):
        raise error(f"{shown} does not exist", f"fix the path, or {fallback}") from None
    except OSError as exc:  # a parent folder that cannot be searched
        raise error(f"{shown} cannot be read ({exc.strerror or exc})",
                    f"make it readable, or {fallback}") from None
    if not os.path.isdir(folder):
        if folder.name.endswith(_ARCHIVE_SUFFIXES):
            raise error(f"{shown} is a file, not a folder",
                        f"unpack it and point at that folder, or put it in {paths.default_data_dir()} and {unset} "
                        "(it is then unpacked without downloading)")
        raise error(f"{shown} is a file, not a folder", f"point it at the folder holding train/ and test/, or {fallback}")
    try:
        return dataset.find_dataset_root(folder).absolute()
    except dataset.DatasetNotFoundError as exc:
        archives = archives_in(folder)
        unpack = f"unpack {archives[0].name} there, " if archives else ""
        raise error(f"{shown} holds no chest X-ray dataset: {exc.reason}",
                    f"{unpack}fix the path, or {fallback}", exc.near_miss) from exc


def locate_dataset(data_dir: str | Path | None = None, fetch: bool = True, progress: bool = True,
                   setting: str = "DATA_DIR") -> Path:
    """The dataset root: THE one way every command and lesson finds the data.

    ``"synthetic"`` (or ``$WORKSHOP_DATA_DIR=synthetic``): a small generated dataset under the cache folder.
    ``data_dir`` (a notebook's ``DATA_DIR``, ``--data-dir``; ``setting`` names it in messages), else
    ``$WORKSHOP_DATA_DIR``: the user's copy, used whatever its counts (they are printed, with a warning
    where they differ from a release) and never downloaded into; a path that does not exist or holds no
    dataset is a DatasetNotFoundError naming it and where it came from. Otherwise the default data folder
    (:func:`download_dataset`: the copy there, else an archive there, else a download when ``fetch``).
    ``progress``: progress bars and the report of what was found (warnings are always printed).
    """
    if data_dir is None and os.environ.get(paths.DATA_DIR_ENV) == "synthetic":
        data_dir = "synthetic"
    if str(data_dir) == "synthetic":
        return _synthetic_root()
    folder, chosen_by = data_folder(data_dir, setting)
    if chosen_by is None:
        return download_dataset(folder, progress=progress, fetch=fetch).absolute()
    unset = _SETTINGS.get(chosen_by, ("", f"unset {chosen_by}"))[1]
    return _accept(find_own_copy(folder, chosen_by), progress,
                   f"Complete the copy, or {unset} to download the dataset into {paths.default_data_dir()}.")


# --------------------------------------------------------------------------- command line

def add_download_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``download`` sub-command's options to ``parser``."""
    parser.add_argument("--data-dir", type=Path, default=None,
                        help="download into this folder (default: $WORKSHOP_HOME/data, else ./data in a "
                             "checkout, else ~/pneumonia-workshop-data; with $WORKSHOP_DATA_DIR set, that copy "
                             "is used and nothing is downloaded)")
    parser.add_argument("--source", choices=SOURCES, default="mendeley",
                        help="where to get it: the original Mendeley archive (default) or Kaggle "
                             "(needs Kaggle credentials)")
    parser.add_argument("--url", default=None,
                        help=f"download this archive instead of Mendeley's (default: ${DATA_URL_ENV} if set)")


def main_download(args: argparse.Namespace) -> int:
    """Run the ``download`` sub-command: report the dataset and return 0, or print an error and return 1."""
    try:
        if args.data_dir is None and paths.user_data_dir() is not None:
            root = locate_dataset(None)
            print(f"{paths.DATA_DIR_ENV}={paths.user_data_dir()} is your own copy: it is used as it is and "
                  f"nothing was downloaded (unset {paths.DATA_DIR_ENV}, or pass --data-dir DIR, to download).")
        else:
            root = download_dataset(args.data_dir, source=args.source, url=args.url)
    except (DownloadError, dataset.DatasetNotFoundError, ValueError) as exc:  # incl. DatasetIncompleteError
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"Dataset ready at {root}")
    return 0
