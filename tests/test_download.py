"""Tests for workshop_utils.download against a local HTTP server (no real network)."""
from __future__ import annotations

import argparse
import hashlib
import io
import random
import socket
import sys
import tarfile
import threading
import types
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from PIL import Image

from workshop_utils import dataset, download
from workshop_utils.download import DownloadError, download_dataset, fetch_file

# A tiny dataset: the same tree as the real one, a handful of images per folder.
COUNTS = {
    "train": {"NORMAL": 2, "PNEUMONIA": 3},
    "val": {"NORMAL": 1, "PNEUMONIA": 1},
    "test": {"NORMAL": 1, "PNEUMONIA": 2},
}


def _jpeg(shade: int) -> bytes:
    buf = io.BytesIO()
    Image.new("L", (8, 8), color=shade).save(buf, "JPEG")
    return buf.getvalue()


def _members() -> dict[str, bytes]:
    """Archive members in Kaggle's layout: chest_xray/, a duplicate chest_xray/chest_xray/, __MACOSX/."""
    files = {}
    for prefix in ("chest_xray/", "chest_xray/chest_xray/"):
        for split, per_class in COUNTS.items():
            for cls, n in per_class.items():
                for i in range(n):
                    name = f"IM-{i:04d}-0001.jpeg" if cls == "NORMAL" else f"person{i}_bacteria_{i}.jpeg"
                    files[f"{prefix}{split}/{cls}/{name}"] = _jpeg(10 * i)
                    files[f"__MACOSX/{prefix}{split}/{cls}/._{name}"] = b"resource fork junk"
    files["chest_xray/.DS_Store"] = b"junk"
    files["chest_xray/padding.bin"] = random.Random(0).randbytes(256 * 1024)  # several download chunks
    return files


@pytest.fixture(scope="session")
def zip_bytes() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:  # stored, not deflated: a byte flip then hits image data
        for name, data in _members().items():
            zf.writestr(name, data)
    return buf.getvalue()


class _State:
    """What the test server serves and what it saw."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.hits: list[tuple[str, str | None]] = []  # (path, Range header) per request
        self.drop_after: int | None = None  # send only this many bytes, once, then hang up
        self.ignore_range = False
        self.url = ""


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        state: _State = self.server.state
        rng = self.headers.get("Range")
        state.hits.append((self.path, rng))
        body = state.files.get(self.path)
        if body is None:
            self.send_error(404)
            return
        start = 0
        if rng and not state.ignore_range:
            start = int(rng.removeprefix("bytes=").split("-")[0])
            if start >= len(body):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(body)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(len(body) - start))
        self.end_headers()
        payload = body[start:]
        if state.drop_after is not None:  # simulate a dropped connection: fewer bytes than announced
            payload, state.drop_after = payload[: state.drop_after], None
        self.wfile.write(payload)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.state = _State()
    httpd.state.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield httpd.state
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(autouse=True)
def no_backoff(monkeypatch):
    monkeypatch.setattr(download, "RETRY_BACKOFF", 0.0)


@pytest.fixture
def closed_url() -> str:
    """A URL on a local port that nothing listens on: connections are refused at once."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/ChestXRay2017.zip"


def _serve_archive(server: _State, data: bytes, name: str = "ChestXRay2017.zip") -> str:
    server.files[f"/{name}"] = data
    return f"{server.url}/{name}"


# --------------------------------------------------------------------------- download_dataset

def test_download_unpack_and_verify(server, zip_bytes, tmp_path):
    url = _serve_archive(server, zip_bytes)
    data = tmp_path / "data"
    root = download_dataset(data, url=url, expected=COUNTS, progress=False)
    assert root == data / "chest_xray"  # the shallow copy, not chest_xray/chest_xray
    assert dataset.verify_dataset(root, COUNTS) == COUNTS
    assert not (data / "__MACOSX").exists()
    assert (data / "ChestXRay2017.zip").read_bytes() == zip_bytes
    assert not (data / "ChestXRay2017.zip.part").exists()
    assert len(server.hits) == 1


def test_tar_gz_archive(server, tmp_path):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for name, data in _members().items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    url = _serve_archive(server, buf.getvalue(), "chest_xray.tar.gz")
    root = download_dataset(tmp_path, url=url, expected=COUNTS, progress=False)
    assert root == tmp_path / "chest_xray"
    assert (tmp_path / "chest_xray.tar.gz").exists()


def test_interrupted_transfer_resumes(server, zip_bytes, tmp_path):
    url = _serve_archive(server, zip_bytes)
    cut = len(zip_bytes) // 3
    server.drop_after = cut
    root = download_dataset(tmp_path, url=url, expected=COUNTS, progress=False)
    assert root == tmp_path / "chest_xray"
    (_, range1), (_, range2) = server.hits
    assert range1 is None
    # the second request asks for the rest: from the last whole chunk written before the drop
    resumed_at = int(range2.removeprefix("bytes=").removesuffix("-"))
    assert 0 < resumed_at <= cut
    assert (tmp_path / "ChestXRay2017.zip").read_bytes() == zip_bytes


@pytest.mark.parametrize("ignore_range", [False, True])
def test_part_file_from_an_earlier_run(server, zip_bytes, tmp_path, ignore_range):
    """A .part left by a killed run is resumed; if the server ignores Range it starts from zero."""
    url = _serve_archive(server, zip_bytes)
    server.ignore_range = ignore_range
    cut = len(zip_bytes) // 2
    part = tmp_path / "ChestXRay2017.zip.part"
    part.write_bytes(b"x" * cut if ignore_range else zip_bytes[:cut])
    dest = fetch_file(url, tmp_path / "ChestXRay2017.zip", progress=False)
    assert dest.read_bytes() == zip_bytes
    assert server.hits == [("/ChestXRay2017.zip", f"bytes={cut}-")]
    assert not part.exists()


def test_complete_part_file_is_just_renamed(server, zip_bytes, tmp_path):
    url = _serve_archive(server, zip_bytes)
    (tmp_path / "a.zip.part").write_bytes(zip_bytes)
    assert fetch_file(url, tmp_path / "a.zip", progress=False).read_bytes() == zip_bytes
    assert server.hits == [("/ChestXRay2017.zip", f"bytes={len(zip_bytes)}-")]  # answered 416


@pytest.mark.parametrize("damage", ["truncated", "flipped byte"])
def test_corrupt_archive_is_deleted(server, zip_bytes, tmp_path, damage):
    if damage == "truncated":
        bad = zip_bytes[: len(zip_bytes) // 2]
    else:  # inside the first image: the zip opens but fails its CRC check
        bad = bytearray(zip_bytes)
        bad[200] ^= 0xFF
        bad = bytes(bad)
    url = _serve_archive(server, bad)
    with pytest.raises(DownloadError, match="corrupt") as info:
        download_dataset(tmp_path, url=url, expected=COUNTS, progress=False)
    archive = tmp_path / "ChestXRay2017.zip"
    assert str(archive) in str(info.value) and "again" in str(info.value)
    assert not archive.exists()


def test_unreachable_server_explains_manual_download(closed_url, tmp_path, monkeypatch):
    delays = []
    monkeypatch.setattr(download, "RETRY_BACKOFF", 1.0)
    monkeypatch.setattr(download.time, "sleep", delays.append)
    with pytest.raises(DownloadError) as info:
        download_dataset(tmp_path / "data", url=closed_url, retries=2, progress=False)
    msg = str(info.value)
    assert delays == [1.0, 2.0]  # two retries, exponential backoff
    assert "https://data.mendeley.com/datasets/rscbjbr9sj/2" in msg and "ChestXRay2017.zip" in msg
    assert "https://www.kaggle.com/datasets/paultimothymooney/chest-xray-pneumonia" in msg
    assert str(tmp_path / "data" / "ChestXRay2017.zip") in msg
    assert "WORKSHOP_DATA_DIR" in msg and "--data-dir" in msg


def test_complete_copy_is_never_downloaded_again(server, zip_bytes, tmp_path):
    url = _serve_archive(server, zip_bytes)
    root = download_dataset(tmp_path, url=url, expected=COUNTS, progress=False)
    (tmp_path / "ChestXRay2017.zip").unlink()  # so only the unpacked copy can satisfy the next call
    assert download_dataset(tmp_path, url=url, expected=COUNTS, progress=False) == root
    assert len(server.hits) == 1


def test_archive_placed_by_hand_is_used_offline(zip_bytes, tmp_path, monkeypatch):
    def no_network(*args, **kwargs):
        raise AssertionError("the network was used")

    monkeypatch.setattr(download.requests, "get", no_network)
    (tmp_path / "ChestXRay2017.zip").write_bytes(zip_bytes)
    root = download_dataset(tmp_path, expected=COUNTS, progress=False)  # default (Mendeley) URL
    assert root == tmp_path / "chest_xray"


def test_wrong_dataset_is_reported(server, zip_bytes, tmp_path):
    url = _serve_archive(server, zip_bytes)
    with pytest.raises(dataset.DatasetIncompleteError):
        download_dataset(tmp_path, url=url, expected={"train": {"NORMAL": 99}}, progress=False)


def test_path_traversal_is_refused(tmp_path):
    archive = tmp_path / "evil.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("../evil.txt", b"gotcha")
    with pytest.raises(DownloadError, match="outside"):
        download.unpack_archive(archive, tmp_path / "out", progress=False)
    assert not (tmp_path / "evil.txt").exists()


# --------------------------------------------------------------------------- kaggle source

@pytest.mark.parametrize("symlinks", [True, False])
def test_kaggle_source_links_the_kagglehub_copy(zip_bytes, tmp_path, monkeypatch, symlinks):
    cache = tmp_path / "kagglehub" / "versions" / "2"
    with zipfile.ZipFile(io.BytesIO(zip_bytes)) as zf:
        zf.extractall(cache)
    fake = types.ModuleType("kagglehub")
    fake.dataset_download = lambda handle: str(cache) if handle == download.KAGGLE_HANDLE else None
    monkeypatch.setitem(sys.modules, "kagglehub", fake)
    if not symlinks:
        def refuse(self, *args, **kwargs):
            raise OSError("symlinks not allowed")
        monkeypatch.setattr(Path, "symlink_to", refuse)

    data = tmp_path / "data"
    root = download_dataset(data, source="kaggle", expected=COUNTS, progress=False)
    assert root == data / "chest_xray"
    assert root.is_symlink() == symlinks
    if symlinks:
        assert root.resolve() == (cache / "chest_xray").resolve()
    assert dataset.verify_dataset(root, COUNTS) == COUNTS


def test_kaggle_failure_is_a_download_error(tmp_path, monkeypatch):
    fake = types.ModuleType("kagglehub")

    def fail(handle):
        raise RuntimeError("401 Unauthorized")

    fake.dataset_download = fail
    monkeypatch.setitem(sys.modules, "kagglehub", fake)
    with pytest.raises(DownloadError, match="credentials"):
        download_dataset(tmp_path, source="kaggle", expected=COUNTS, progress=False)


# --------------------------------------------------------------------------- fetch_file

def test_fetch_file_checks_the_hash(server, tmp_path):
    body = b"model weights"
    url = _serve_archive(server, body, "weights.bin")
    md5 = "md5:" + hashlib.md5(body).hexdigest()
    dest = tmp_path / "weights.bin"
    dest.write_bytes(b"stale")  # a wrong file already there is replaced
    assert fetch_file(url, dest, progress=False, known_hash=md5).read_bytes() == body
    assert len(server.hits) == 1
    assert fetch_file(url, dest, progress=False, known_hash=md5) == dest  # present and right: no request
    assert len(server.hits) == 1

    with pytest.raises(DownloadError, match="hash"):
        fetch_file(url, dest, progress=False, known_hash="sha256:" + "0" * 64)
    assert len(server.hits) == 2  # the existing file failed, one fresh download failed too
    assert not dest.exists()


def test_fetch_file_http_error_is_not_retried(server, tmp_path):
    with pytest.raises(DownloadError, match="404"):
        fetch_file(f"{server.url}/missing.zip", tmp_path / "missing.zip", progress=False)
    assert len(server.hits) == 1


# --------------------------------------------------------------------------- data dir and CLI

def test_default_data_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("WORKSHOP_DATA_DIR", str(tmp_path / "mine"))
    assert download.default_data_dir() == tmp_path / "mine"

    monkeypatch.delenv("WORKSHOP_DATA_DIR")
    checkout = tmp_path / "repo"
    (checkout / "workshop_utils").mkdir(parents=True)
    monkeypatch.setattr(download, "__file__", str(checkout / "workshop_utils" / "download.py"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert download.default_data_dir() == tmp_path / "home" / "pneumonia-workshop-data"
    (checkout / "pyproject.toml").write_text("[project]\n")
    assert download.default_data_dir() == checkout / "data"


def _cli_args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    download.add_download_arguments(parser)
    return parser.parse_args(argv)


def test_cli_success_prints_counts(server, zip_bytes, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(dataset, "OFFICIAL_COUNTS", COUNTS)  # the tiny archive is "complete"
    url = _serve_archive(server, zip_bytes)
    args = _cli_args("--data-dir", str(tmp_path), "--url", url)
    assert args.source == "mendeley"
    assert download.main_download(args) == 0
    out = capsys.readouterr().out
    assert str(tmp_path / "chest_xray") in out
    assert "train" in out and "PNEUMONIA     3" in out


@pytest.mark.parametrize("failure", ["unreachable", "incomplete"])
def test_cli_errors_exit_1_without_traceback(failure, server, zip_bytes, closed_url, tmp_path, capsys):
    # "incomplete": the tiny archive against the official counts
    url = closed_url if failure == "unreachable" else _serve_archive(server, zip_bytes)
    assert download.main_download(_cli_args("--data-dir", str(tmp_path), "--url", url)) == 1
    err = capsys.readouterr().err
    assert "error: " in err and "Traceback" not in err
    assert ("rscbjbr9sj/2" if failure == "unreachable" else "expected 1341") in err


def test_cli_rejects_url_with_kaggle(tmp_path, capsys):
    args = _cli_args("--data-dir", str(tmp_path), "--source", "kaggle", "--url", "http://example.invalid/a.zip")
    assert download.main_download(args) == 1
    assert "mendeley" in capsys.readouterr().err


def test_locate_dataset_synthetic_from_the_environment(tmp_path, monkeypatch):
    from workshop_utils.download import locate_dataset

    monkeypatch.setenv("WORKSHOP_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("WORKSHOP_DATA_DIR", "synthetic")
    root = locate_dataset(None)
    assert root == tmp_path / "cache" / "synthetic" / "chest_xray"
    assert (root / "train" / "NORMAL").is_dir()
