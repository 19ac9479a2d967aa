"""Cache files that are written atomically and checked when read: the decoded images and the frozen features.

Every file is written under a unique temporary name in its own folder and renamed into place, so a reader
never sees half a file and two processes filling the same cache do not collide. An array file's name ends in
a checksum of its contents (SHA-1, 16 hex digits), checked on every read: a truncated or corrupted file is
named in a warning and computed again, never loaded as wrong pixels. NumPy and the standard library only.
"""
from __future__ import annotations

import contextlib
import errno
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


def current_umask() -> int:
    """The process's umask (read by setting it and setting it back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def unique_temporary(path: Path, suffix: str = ".tmp") -> Path:
    """A new, empty file beside ``path`` whose name no other process or thread gets (``.<name>.<random><suffix>``),
    to be written and then renamed onto ``path``. Its mode is what ``open`` would give (0666 less the umask,
    so group-readable by default), not tempfile's 0600: an instructor's shared cache stays readable."""
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=suffix)
    try:
        if hasattr(os, "fchmod"):  # not on Windows, where the mode bits do not apply
            os.fchmod(fd, 0o666 & ~current_umask())
    finally:
        os.close(fd)
    return Path(name)


def is_disk_full(err: OSError) -> bool:
    """Whether ``err`` says the disk is full: ENOSPC, or NumPy's short write ("N requested and M written")."""
    return err.errno in (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)) or bool(
        re.search(r"\d+ requested and \d+ written", str(err)))


def write_atomic(path: Path, write: Callable[[IO[bytes]], None]) -> None:
    """Call ``write`` on a unique temporary file next to ``path``, then rename it to ``path`` in one step.

    Raises OSError when the folder cannot take the file (a full disk: ENOSPC, saying so in words); the
    temporary file is removed in every case.
    """
    tmp = unique_temporary(path)
    try:
        with open(tmp, "wb") as f:
            write(f)
        os.replace(tmp, path)
    except OSError as err:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if is_disk_full(err):
            raise OSError(errno.ENOSPC, f"No space left on the disk of {path.parent} to write {path.name} ({err}); "
                                        f"free some space, or set {CACHE_DIR_ENV} to a folder on a disk with "
                                        "room") from err
        raise
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
        if is_disk_full(err):
            warnings.warn(f"{err.strerror if err.errno == errno.ENOSPC else err}. Going on without caching this "
                          "result: it is computed again next time.", stacklevel=3)
        else:
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
