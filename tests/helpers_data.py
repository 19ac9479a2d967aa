"""Test helpers for the data routes: the two published archives' layouts, denied access, no network.

``release_zip(name)`` builds a zip in a release's layout with its exact counts (tiny JPEGs, the real file
name patterns). The fixtures ``unreadable``, ``read_only`` and ``no_network`` are imported by the test
modules that use them. None of this imports TensorFlow or Keras.
"""
from __future__ import annotations

import errno
import io
import os
import socket
import tempfile
import zipfile
from pathlib import Path

import pytest
import requests
from PIL import Image

from workshop_utils import dataset

MENDELEY = "Mendeley release (ChestXRay2017.zip)"
KAGGLE = "Kaggle release (chest-xray-pneumonia)"


def tiny_jpeg(shade: int = 128) -> bytes:
    """An 8 x 8 grayscale JPEG (a few hundred bytes)."""
    buf = io.BytesIO()
    Image.new("L", (8, 8), color=shade).save(buf, "JPEG")
    return buf.getvalue()


def image_name(cls: str, split: str, i: int) -> str:
    """A file name in the real patterns: ``IM-0007-0001.jpeg``, ``NORMAL2-IM-1003-0002.jpeg`` (NORMAL);
    ``person12_bacteria_23.jpeg``, ``person12_virus_24.jpeg`` (PNEUMONIA). Unique within a split."""
    base = {"train": 0, "val": 5000, "test": 6000}[split] + i // 2
    if cls == "NORMAL":
        return (f"NORMAL2-IM-{base:04d}-{i % 2 + 1:04d}.jpeg" if i % 3 == 2
                else f"IM-{base:04d}-{i % 2 + 1:04d}.jpeg")
    return f"person{base + 1}_{'virus' if i % 3 == 0 else 'bacteria'}_{i}.jpeg"


def tree_members(counts: dict[str, dict[str, int]], prefix: str = "chest_xray/") -> dict[str, bytes]:
    """``{member name: bytes}`` for a tree with ``counts``: folder entries, images, a .DS_Store."""
    images = {cls: tiny_jpeg(40 if cls == "NORMAL" else 200) for cls in dataset.CLASSES}
    members = {prefix: b"", f"{prefix}.DS_Store": b"\x00\x00\x00\x01Bud1"}
    for split, per_class in counts.items():
        members[f"{prefix}{split}/"] = b""
        for cls, n in per_class.items():
            members[f"{prefix}{split}/{cls}/"] = b""
            for i in range(n):
                members[f"{prefix}{split}/{cls}/{image_name(cls, split, i)}"] = images[cls]
    return members


def release_members(release: str) -> dict[str, bytes]:
    """The members of a release's archive. Mendeley: ``chest_xray/{train,test}`` (no val/). Kaggle: the tree
    twice (``chest_xray/`` and the nested ``chest_xray/chest_xray/``) with a ``val/``, and ``__MACOSX/``
    resource forks (``._<name>``) for every file, at the top and inside ``chest_xray/``."""
    counts = dataset.RELEASES[release]
    if release == MENDELEY:
        return tree_members(counts)
    members = {**tree_members(counts), **tree_members(counts, "chest_xray/chest_xray/")}
    for name in [m for m in members if not m.endswith("/")]:
        folder, _, base = name.rpartition("/")
        members[f"__MACOSX/{folder}/._{base}"] = b"\x00\x05\x16\x07resource fork"
        if name.startswith("chest_xray/chest_xray/"):
            members[f"chest_xray/__MACOSX/{folder.removeprefix('chest_xray/')}/._{base}"] = b"\x00\x05\x16\x07"
    return members


def zip_bytes(members: dict[str, bytes]) -> bytes:
    """A zip (stored, not deflated: a flipped byte then hits image data) holding ``members``."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def _denied(path: str | os.PathLike, folder: Path, below: bool) -> bool:
    try:
        p = Path(os.fsdecode(path)).absolute()
    except TypeError:  # a file descriptor
        return False
    return p == folder or (below and folder in p.parents)


@pytest.fixture
def unreadable(monkeypatch):
    """``unreadable(folder)``: chmod 000, so listing it and reaching anything inside fail with "Permission
    denied". Where this process can read it anyway (root), os.scandir / os.listdir on it and os.stat below it
    raise the same error."""
    changed: list[Path] = []

    def deny(folder: Path) -> Path:
        folder = Path(folder).absolute()
        folder.chmod(0)
        changed.append(folder)
        try:
            os.listdir(folder)
        except PermissionError:
            return folder
        for name in ("scandir", "listdir"):
            real = getattr(os, name)

            def refuse(path=".", _real=real):
                if _denied(path, folder, below=False):
                    raise PermissionError(errno.EACCES, "Permission denied", os.fsdecode(path))
                return _real(path)

            monkeypatch.setattr(os, name, refuse)
        real_stat = os.stat

        def refuse_stat(path, *args, **kwargs):
            if _denied(path, folder, below=True) and Path(os.fsdecode(path)).absolute() != folder:
                raise PermissionError(errno.EACCES, "Permission denied", os.fsdecode(path))
            return real_stat(path, *args, **kwargs)

        monkeypatch.setattr(os, "stat", refuse_stat)
        return folder

    yield deny
    for folder in changed:
        folder.chmod(0o755)


@pytest.fixture
def read_only(monkeypatch):
    """``read_only(folder)``: nothing can be created in it (chmod 555; where this process can write anyway,
    as root does, os.open / os.mkdir below it raise "Permission denied")."""
    changed: list[Path] = []

    def deny(folder: Path) -> Path:
        folder = Path(folder).absolute()
        folder.mkdir(parents=True, exist_ok=True)
        folder.chmod(0o555)
        changed.append(folder)
        try:
            tempfile.TemporaryFile(dir=folder).close()
        except PermissionError:
            return folder
        real_open, real_mkdir = os.open, os.mkdir

        def refuse_open(path, flags, *args, **kwargs):
            if flags & os.O_CREAT and _denied(path, folder, below=True):
                raise PermissionError(errno.EACCES, "Permission denied", os.fsdecode(path))
            return real_open(path, flags, *args, **kwargs)

        def refuse_mkdir(path, *args, **kwargs):
            if _denied(path, folder, below=True):
                raise PermissionError(errno.EACCES, "Permission denied", os.fsdecode(path))
            return real_mkdir(path, *args, **kwargs)

        monkeypatch.setattr(os, "open", refuse_open)
        monkeypatch.setattr(os, "mkdir", refuse_mkdir)
        return folder

    yield deny
    for folder in changed:
        folder.chmod(0o755)


@pytest.fixture
def no_network(monkeypatch) -> list[str]:
    """Every way out (requests, sockets, name lookups) raises; returns the list of attempts."""
    attempts: list[str] = []

    def refuse(what):
        def raiser(*args, **kwargs):
            attempts.append(what)
            raise requests.ConnectionError(f"network disabled in this test ({what})")
        return raiser

    monkeypatch.setattr(requests, "get", refuse("requests.get"))
    monkeypatch.setattr(socket.socket, "connect", refuse("socket.connect"))
    monkeypatch.setattr(socket, "create_connection", refuse("socket.create_connection"))
    monkeypatch.setattr(socket, "getaddrinfo", refuse("socket.getaddrinfo"))
    return attempts
