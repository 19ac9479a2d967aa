"""Cache files that are written atomically and checked when read: the decoded images and the frozen features.

Every file is written under a unique temporary name in its own folder and renamed into place, so a reader
never sees half a file and two processes filling the same cache do not collide. An array file's name ends in
a checksum of its contents (SHA-1, 16 hex digits), checked on every read: a truncated or corrupted file is
named in a warning and computed again, never loaded as wrong pixels. NumPy and the standard library only.
"""
from __future__ import annotations

import contextlib
import glob
import hashlib
import os
import re
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import IO

import numpy as np

from .paths import CACHE_DIR_ENV

CHECKSUM_CHARS = 16


class CacheFileError(ValueError):
    """A cache file is truncated, corrupt or does not match what refers to it."""


def checksum(array: np.ndarray) -> str:
    """SHA-1 of the array's dtype, shape and bytes, 16 hex digits (about 0.3 s per 434 MB; SHA-1 runs in hardware on most CPUs)."""
    array = np.ascontiguousarray(array)
    h = hashlib.sha1(f"{array.dtype.str}{array.shape}".encode())
    h.update(array.reshape(-1).view(np.uint8))
    return h.hexdigest()[:CHECKSUM_CHARS]


def write_atomic(path: Path, write: Callable[[IO[bytes]], None]) -> None:
    """Call ``write`` on a unique temporary file next to ``path``, then rename it to ``path`` in one step.

    Raises OSError when the folder cannot take the file; the temporary file is removed in every case.
    """
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def save_array(folder: Path, stem: str, array: np.ndarray) -> Path:
    """Write ``array`` atomically as ``folder/<stem>-<checksum>.npy`` and return that path."""
    path = folder / f"{stem}-{checksum(array)}.npy"
    write_atomic(path, lambda f: np.save(f, array, allow_pickle=False))
    return path


def load_array(path: Path) -> np.ndarray:
    """Read an array written by :func:`save_array`; CacheFileError naming the file when it is truncated,
    unreadable or its contents do not match the checksum in its name."""
    try:
        array = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as err:
        raise CacheFileError(f"Cache file {path} is truncated or unreadable ({err})") from err
    if checksum(array) != path.stem.rsplit("-", 1)[-1]:
        raise CacheFileError(f"Cache file {path} does not match its checksum (corrupted on disk)")
    return array


def find_array(folder: Path, stem: str, redo: str) -> np.ndarray | None:
    """The array saved under ``stem`` in ``folder``, or None. A damaged file is named in a warning saying
    ``redo`` (what the caller does instead) and removed."""
    pattern = re.compile(re.escape(stem) + rf"-[0-9a-f]{{{CHECKSUM_CHARS}}}\.npy")
    for path in sorted(folder.glob(glob.escape(stem) + "-*.npy")):
        if pattern.fullmatch(path.name):
            try:
                return load_array(path)
            except CacheFileError as err:
                discard(path, err, redo)
    return None


def discard(path: Path, reason: Exception, redo: str) -> None:
    """Warn that the cache file ``path`` is damaged (``reason``) and that the caller will ``redo`` its work;
    remove the file where the folder allows."""
    warnings.warn(f"{reason}. {redo}.", stacklevel=3)
    with contextlib.suppress(OSError):
        path.unlink()


@contextlib.contextmanager
def tolerate_write_errors(folder: Path):
    """Turn an OSError while writing cache files into a warning: what was computed is kept, only not cached."""
    try:
        yield
    except OSError as err:
        warnings.warn(f"Could not write to the cache folder {folder} ({err}). Going on without caching this "
                      f"result; free some space or set {CACHE_DIR_ENV} to another folder.", stacklevel=3)


_warned_unwritable: set[str] = set()


def writable(folder: Path) -> bool:
    """Whether files can be created in ``folder`` (created if missing). When not, warns once per folder that
    nothing will be cached and how to choose another folder; the caller goes on without caching."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
        return True
    except OSError as err:
        if str(folder) not in _warned_unwritable:
            _warned_unwritable.add(str(folder))
            warnings.warn(f"Cache folder {folder} is not writable ({err}). Going on without a cache: decoded "
                          f"images and features are kept in memory only and computed again next run. Set "
                          f"{CACHE_DIR_ENV} to a writable folder to cache them.", stacklevel=3)
        return False
