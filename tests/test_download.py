"""Tests for workshop_utils.download: every way to the data, against a local HTTP server (no real network).

The two published archives are built in their real layouts with their exact counts (helpers_data), then
fetched the ways a user fetches them: pre-placed in the data folder, or served from 127.0.0.1 through
WORKSHOP_DATA_URL.
"""
from __future__ import annotations

import argparse
import hashlib
import io
import os
import random
import signal
import socket
import subprocess
import sys
import tarfile
import threading
import time
import types
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from helpers_data import (KAGGLE, MENDELEY, no_network, read_only, release_members, tree_members,  # noqa: F401
                          unreadable, zip_bytes)
from helpers_processes import ctrl_c_as_in_a_terminal

from workshop_utils import cli, dataset, download, paths, runner
from workshop_utils.dataset import DatasetIncompleteError, DatasetNotFoundError
from workshop_utils.download import DownloadError, download_dataset, fetch_file, locate_dataset

# A tiny dataset: the same tree as the real one, a handful of images per folder (a "re-published" release).
COUNTS = {
    "train": {"NORMAL": 2, "PNEUMONIA": 3},
    "val": {"NORMAL": 1, "PNEUMONIA": 1},
    "test": {"NORMAL": 1, "PNEUMONIA": 2},
}
#: The name each source gives its archive (Kaggle's website downloads archive.zip).
ARCHIVE_NAMES = {MENDELEY: "ChestXRay2017.zip", KAGGLE: "archive.zip"}


def _members() -> dict[str, bytes]:
    """Archive members in Kaggle's layout (chest_xray/, a duplicate chest_xray/chest_xray/, __MACOSX/) with
    the tiny counts, and enough padding for several download chunks."""
    files = {**tree_members(COUNTS), **tree_members(COUNTS, "chest_xray/chest_xray/")}
    files.update({f"__MACOSX/{n.rpartition('/')[0]}/._{n.rpartition('/')[2]}": b"fork" for n in list(files)
                  if not n.endswith("/")})
    files["chest_xray/padding.bin"] = random.Random(0).randbytes(256 * 1024)
    return files


@pytest.fixture(scope="session")
def small_zip() -> bytes:
    return zip_bytes(_members())


@pytest.fixture(scope="session")
def release_zips() -> dict[str, bytes]:
    """Both releases' zips, built once per session (5,864 and 29,305 members; about 1.5 s)."""
    return {name: zip_bytes(release_members(name)) for name in (MENDELEY, KAGGLE)}


class _State:
    """What the test server serves and what it saw."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.hits: list[tuple[str, str | None]] = []  # (path, Range header) per request
        self.drop_after: int | None = None  # send only this many bytes, once, then hang up
        self.ignore_range = False
        self.seconds_per_4k: float = 0.0  # a slow link: a pause after every 4 KB sent
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
        if not state.seconds_per_4k:
            self.wfile.write(payload)
            return
        try:
            for i in range(0, len(payload), 4096):
                self.wfile.write(payload[i:i + 4096])
                self.wfile.flush()
                time.sleep(state.seconds_per_4k)
        except (BrokenPipeError, ConnectionResetError):  # the client went away (Ctrl-C)
            pass

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
def default_folder(tmp_path, monkeypatch) -> Path:
    """Each test has its own default data folder ($WORKSHOP_HOME/data), no user copy and no URL from the
    environment, and no waiting between retries. Returns the default data folder (not created)."""
    for name in (paths.DATA_DIR_ENV, download.DATA_URL_ENV, paths.CACHE_DIR_ENV):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv(paths.HOME_ENV, str(tmp_path / "home"))
    monkeypatch.setattr(download, "RETRY_BACKOFF", 0.0)
    assert paths.default_data_dir() == tmp_path / "home" / "data"
    return tmp_path / "home" / "data"


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


def _leftovers(folder: Path) -> list[str]:
    """Hidden staging folders or .part files left in ``folder``."""
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(".unpacking") or p.name.endswith(".part"))


# --------------------------------------------------------------------------- the two published releases

@pytest.mark.parametrize("route", ["pre-placed", "served"])
@pytest.mark.parametrize("release", [MENDELEY, KAGGLE])
def test_each_release_passes_download(release, route, release_zips, server, default_folder, monkeypatch,
                                      capsys):
    """`python -m workshop_utils download` with the archive as its source publishes it: pre-placed in the
    default data folder (no network), or served from 127.0.0.1 through WORKSHOP_DATA_URL."""
    name, data = ARCHIVE_NAMES[release], release_zips[release]
    if route == "pre-placed":
        default_folder.mkdir(parents=True)
        (default_folder / name).write_bytes(data)
        monkeypatch.setattr(download.requests, "get", lambda *a, **k: pytest.fail("the network was used"))
    else:
        monkeypatch.setenv(download.DATA_URL_ENV, _serve_archive(server, data, name))
    t0 = time.perf_counter()
    assert cli.main(["download"]) == 0
    seconds = time.perf_counter() - t0
    out, err = capsys.readouterr()
    root = default_folder / "chest_xray"
    assert f"Dataset ready at {root}" in out
    assert f"(NORMAL + PNEUMONIA): the {release}" in out
    assert ("found in the data folder: nothing is downloaded" in out) == (route == "pre-placed")
    assert "warning" not in err and "error" not in err
    assert dataset.count_images(root) == dataset.RELEASES[release]
    assert ("val" in dataset.count_images(root)) == (release == KAGGLE)
    assert (default_folder / name).read_bytes() == data  # the archive is kept
    assert not (default_folder / "__MACOSX").exists() and not (root / "__MACOSX").exists()
    assert _leftovers(default_folder) == []
    assert len(server.hits) == (route == "served")
    print(f"{release} {route}: {seconds:.1f} s")

    # The next command finds the copy: nothing downloaded or unpacked again, the same release named.
    assert cli.main(["download"]) == 0
    out, _ = capsys.readouterr()
    assert "Unpacking" not in out and f"the {release}" in out
    assert len(server.hits) == (route == "served")


def test_the_lessons_fetch_on_first_use(server, small_zip, default_folder, monkeypatch, capsys):
    """locate_dataset() (what every lesson calls): downloads into the default folder once, then finds it."""
    monkeypatch.setenv(download.DATA_URL_ENV, _serve_archive(server, small_zip))
    with pytest.raises(DatasetNotFoundError, match=r"No dataset in the data folder .*: run `python -m "
                                                   r"workshop_utils download`"):
        locate_dataset(fetch=False, progress=False)
    assert server.hits == []
    root = locate_dataset(progress=False)
    assert root == default_folder / "chest_xray" and len(server.hits) == 1
    assert locate_dataset(progress=False) == root and len(server.hits) == 1
    assert runner.prepare_data(None) == str(root) and len(server.hits) == 1


# --------------------------------------------------------------------------- a copy the user points at

def test_user_copy_with_other_counts_is_used_with_a_warning_and_no_network(tmp_path, make_tree, default_folder,
                                                                          monkeypatch, no_network, capsys):
    root = make_tree(tmp_path / "mine" / "chest_xray", COUNTS)
    monkeypatch.setenv(paths.DATA_DIR_ENV, str(tmp_path / "mine"))
    assert locate_dataset() == root
    out, err = capsys.readouterr()
    assert out == f"Dataset: {root}\n  train 2 + 3, val 1 + 1, test 1 + 2 (NORMAL + PNEUMONIA)\n"
    assert err.startswith(f"warning: the dataset at {root} matches no published release; closest: Kaggle "
                          "release (chest-xray-pneumonia), but train/NORMAL: 2 images (the release has 1341); ")
    assert "test/PNEUMONIA: 2 images (the release has 390). It is used as it is." in err
    # Every route takes it: the runner (run), the download command, a notebook's DATA_DIR, --data-dir.
    assert runner.prepare_data(None) == str(root)
    assert cli.main(["download"]) == 0
    assert "nothing was downloaded" in capsys.readouterr().out
    monkeypatch.delenv(paths.DATA_DIR_ENV)
    assert locate_dataset(str(tmp_path / "mine")) == root
    assert runner.prepare_data(str(tmp_path / "mine")) == str(root)
    assert no_network == [] and not default_folder.exists()


def test_relative_user_path_is_made_absolute(tmp_path, make_tree, monkeypatch, capsys):
    """The runner's notebooks run in the run folder: the root it passes them must not be relative."""
    root = make_tree(tmp_path / "mine", COUNTS)
    monkeypatch.chdir(tmp_path)
    assert locate_dataset("mine", progress=False) == root


@pytest.mark.parametrize("setting", ["WORKSHOP_DATA_DIR", "DATA_DIR", "--data-dir"])
def test_mistyped_user_folder_is_an_error_and_nothing_is_downloaded(setting, tmp_path, default_folder,
                                                                    monkeypatch, no_network, capsys):
    typo = tmp_path / "hom" / "me" / "xray"
    expected = {
        "WORKSHOP_DATA_DIR": f"WORKSHOP_DATA_DIR={typo} does not exist: fix the path, or unset "
                             f"WORKSHOP_DATA_DIR to download the dataset into {default_folder}.",
        "DATA_DIR": f'DATA_DIR = "{typo}" does not exist: fix the path, or set DATA_DIR = None to download '
                    f"the dataset into {default_folder}.",
        "--data-dir": f"--data-dir {typo} does not exist: fix the path, or leave out --data-dir to download "
                      f"the dataset into {default_folder}.",
    }[setting]
    with pytest.raises(DatasetNotFoundError) as info:
        if setting == "WORKSHOP_DATA_DIR":
            monkeypatch.setenv(paths.DATA_DIR_ENV, str(typo))
            locate_dataset()
        elif setting == "DATA_DIR":
            locate_dataset(str(typo))
        else:
            runner.prepare_data(str(typo))
    assert str(info.value) == expected
    if setting == "WORKSHOP_DATA_DIR":  # the download command says the same and exits 1
        assert cli.main(["download"]) == 1
        err = capsys.readouterr().err
        assert err == f"error: {expected}\n"
    assert no_network == [] and not typo.exists() and not default_folder.exists()


def test_user_folder_without_a_dataset(tmp_path, default_folder, small_zip, monkeypatch, no_network):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("hello")
    monkeypatch.setenv(paths.DATA_DIR_ENV, str(mine))
    with pytest.raises(DatasetNotFoundError) as info:
        locate_dataset()
    assert str(info.value) == (
        f"WORKSHOP_DATA_DIR={mine} holds no chest X-ray dataset: expected a folder with train/NORMAL, "
        "train/PNEUMONIA, test/NORMAL and test/PNEUMONIA (searched 4 levels down): fix the path, or unset "
        f"WORKSHOP_DATA_DIR to download the dataset into {default_folder}.")
    # An archive in it is not unpacked there (the user's folder is never written), but named.
    (mine / "ChestXRay2017.zip").write_bytes(small_zip)
    with pytest.raises(DatasetNotFoundError, match=r": unpack ChestXRay2017.zip there, fix the path, or unset"):
        locate_dataset()
    assert sorted(p.name for p in mine.iterdir()) == ["ChestXRay2017.zip", "notes.txt"]
    # Pointing at the archive itself.
    monkeypatch.setenv(paths.DATA_DIR_ENV, str(mine / "ChestXRay2017.zip"))
    with pytest.raises(DatasetNotFoundError, match=rf"is a file, not a folder: unpack it and point at that "
                                                   rf"folder, or put it in {default_folder}"):
        locate_dataset()
    assert no_network == [] and not default_folder.exists()


# --------------------------------------------------------------------------- class folders through the routes

def test_extra_class_folder_is_named_in_a_warning(tmp_path, make_tree, capsys):
    root = make_tree(tmp_path / "mine", COUNTS)
    make_tree(tmp_path / "covid", {"train": {"COVID": 2}})
    (tmp_path / "covid" / "train" / "COVID").rename(root / "train" / "COVID")
    assert locate_dataset(str(root), progress=False) == root
    assert f"warning: train/COVID in {root} is not used: the lessons only use the classes NORMAL and " \
           "PNEUMONIA" in capsys.readouterr().err


def test_lowercase_class_folder_gets_its_own_message(tmp_path, make_tree, capsys):
    root = make_tree(tmp_path / "mine", COUNTS)
    (root / "train" / "NORMAL").rename(root / "train" / "normal")
    if (root / "train" / "NORMAL").is_dir():  # a case-insensitive file system finds it anyway: a warning
        locate_dataset(str(root), progress=False)
        message = capsys.readouterr().err
    else:
        with pytest.raises(DatasetNotFoundError) as info:
            locate_dataset(str(root), progress=False)
        message = str(info.value)
    assert ("found train/normal: the folders must be named NORMAL and PNEUMONIA (upper case); rename it "
            f"({root / 'train' / 'normal'} -> {root / 'train' / 'NORMAL'})") in message


def test_empty_class_folder_fails_early(tmp_path, make_tree, monkeypatch, default_folder):
    root = make_tree(tmp_path / "mine", COUNTS)
    for f in (root / "train" / "NORMAL").iterdir():
        f.unlink()
    (root / "train" / "NORMAL" / ".DS_Store").write_bytes(b"junk")
    monkeypatch.setenv(paths.DATA_DIR_ENV, str(root))
    with pytest.raises(DatasetIncompleteError) as info:
        runner.prepare_data(None)
    assert str(info.value) == (
        f"The dataset at {root} has no images in train/NORMAL: every class needs images in train and test "
        "(found train 0 + 3, val 1 + 1, test 1 + 2, NORMAL + PNEUMONIA). Complete the copy, or unset "
        f"WORKSHOP_DATA_DIR to download the dataset into {default_folder}.")


def test_unreadable_class_folder_is_a_clear_error(tmp_path, make_tree, unreadable):
    root = make_tree(tmp_path / "mine", COUNTS)
    folder = unreadable(root / "test" / "PNEUMONIA")
    with pytest.raises(DatasetIncompleteError) as info:
        locate_dataset(str(root), progress=False)
    assert str(info.value).startswith(f"Cannot read {folder} (Permission denied): make it readable")


# --------------------------------------------------------------------------- the default folder

def test_republished_archive_with_other_counts_is_kept_with_a_warning(server, small_zip, default_folder,
                                                                     monkeypatch, capsys):
    monkeypatch.setenv(download.DATA_URL_ENV, _serve_archive(server, small_zip))
    assert cli.main(["download"]) == 0
    out, err = capsys.readouterr()
    root = default_folder / "chest_xray"
    assert f"Dataset ready at {root}" in out
    assert f"warning: the dataset at {root} matches no published release; closest: Kaggle release " in err
    assert "test/NORMAL: 1 image (the release has 234)" in err
    assert dataset.count_images(root) == COUNTS
    assert (default_folder / "ChestXRay2017.zip").read_bytes() == small_zip
    assert locate_dataset(progress=False) == root and len(server.hits) == 1


@pytest.mark.parametrize("damage", ["truncated", "flipped byte"])
def test_damaged_archive_is_refused_and_deleted(damage, server, small_zip, default_folder, monkeypatch,
                                                capsys):
    if damage == "truncated":
        bad = small_zip[: len(small_zip) // 2]
    else:  # inside the first image: the zip opens but fails its CRC check
        bad = bytearray(small_zip)
        bad[200] ^= 0xFF
        bad = bytes(bad)
    monkeypatch.setenv(download.DATA_URL_ENV, _serve_archive(server, bad))
    assert cli.main(["download"]) == 1
    err = capsys.readouterr().err
    err = err[err.index("error: "):]  # after the download's progress bar
    archive = default_folder / "ChestXRay2017.zip"
    assert err.startswith(f"error: The archive {archive} is damaged or truncated (")
    assert "It has been deleted: run `python -m workshop_utils download` again to fetch a fresh copy." in err
    assert "Traceback" not in err
    assert sorted(p.name for p in default_folder.iterdir()) == []  # no archive, no half copy, no staging


def test_archive_without_images_of_a_class_is_refused(server, default_folder, monkeypatch, capsys):
    members = tree_members({**COUNTS, "test": {"NORMAL": 0, "PNEUMONIA": 2}})
    monkeypatch.setenv(download.DATA_URL_ENV, _serve_archive(server, zip_bytes(members)))
    assert cli.main(["download"]) == 1
    err = capsys.readouterr().err
    assert (f"error: The archive {default_folder / 'ChestXRay2017.zip'} holds no images in test/NORMAL (it has "
            "train 2 + 3, val 1 + 1, test 0 + 2, NORMAL + PNEUMONIA): it is not the complete dataset. It has been "
            "deleted") in err
    assert sorted(p.name for p in default_folder.iterdir()) == []


def test_interrupted_unpack_leaves_no_half_copy(small_zip, default_folder, monkeypatch, no_network):
    default_folder.mkdir(parents=True)
    (default_folder / "ChestXRay2017.zip").write_bytes(small_zip)
    real_extract, calls = zipfile.ZipFile.extract, []

    def extract(self, member, path=None, pwd=None):
        calls.append(member)
        if len(calls) == 10:
            raise KeyboardInterrupt
        return real_extract(self, member, path, pwd)

    monkeypatch.setattr(zipfile.ZipFile, "extract", extract)
    with pytest.raises(KeyboardInterrupt):
        locate_dataset(progress=False)
    assert download.find_copy(default_folder) is None  # only the hidden staging folder, never a half copy
    monkeypatch.setattr(zipfile.ZipFile, "extract", real_extract)
    root = locate_dataset(progress=False)
    assert dataset.count_images(root) == COUNTS and _leftovers(default_folder) == [] and no_network == []


def test_a_name_already_taken_keeps_the_archive(small_zip, default_folder, no_network):
    (default_folder / "chest_xray").mkdir(parents=True)
    (default_folder / "chest_xray" / "notes.txt").write_text("not a dataset")
    (default_folder / "ChestXRay2017.zip").write_bytes(small_zip)
    with pytest.raises(DownloadError) as info:
        locate_dataset(progress=False)
    assert str(info.value).startswith(f"{default_folder / 'chest_xray'} already exists but holds no usable "
                                      "dataset: move or delete it")
    assert (default_folder / "ChestXRay2017.zip").is_file() and _leftovers(default_folder) == []


@pytest.mark.parametrize("partial", ["empty", "half unpacked", "a file"])
def test_a_partial_chest_xray_folder_is_refused_before_anything_is_fetched(partial, server, small_zip, default_folder,
                                                                            make_tree, capsys):
    """The archive unpacks to chest_xray/: a name already taken is named before the download, not after it."""
    url = _serve_archive(server, small_zip)
    taken = default_folder / "chest_xray"
    default_folder.mkdir(parents=True)
    if partial == "empty":
        taken.mkdir()
    elif partial == "half unpacked":
        make_tree(taken, {"test": {"NORMAL": 1}})
    else:
        taken.write_text("not a folder")
    code = cli.main(["download", "--url", url])
    err = capsys.readouterr().err
    assert code == 1 and server.hits == []  # nothing fetched
    assert (f"{taken} already exists but holds no usable dataset" in err
            or f"holds a copy that cannot be used" in err), err
    assert "Nothing was downloaded" in err or "To use it, fix it, or delete" in err
    assert not (default_folder / "ChestXRay2017.zip").exists() and _leftovers(default_folder) == []


def test_a_misnamed_copy_in_the_default_folder_is_not_downloaded_over(tmp_path, make_tree, default_folder,
                                                                      no_network):
    make_tree(default_folder / "chest_xray", COUNTS)
    (default_folder / "chest_xray" / "test" / "PNEUMONIA").rename(default_folder / "chest_xray" / "test" / "pneu")
    with pytest.raises(DatasetNotFoundError, match=r"holds a copy that cannot be used: .*test/PNEUMONIA.* To use "
                                                   r"it, fix it, or delete"):
        locate_dataset(progress=False)
    assert no_network == []


@pytest.mark.parametrize("how", ["--data-dir", "WORKSHOP_HOME"])
def test_read_only_data_folder_is_a_clear_message(how, tmp_path, server, small_zip, default_folder, monkeypatch,
                                                  read_only, capsys):
    monkeypatch.setenv(download.DATA_URL_ENV, _serve_archive(server, small_zip))
    folder = read_only(tmp_path / "readonly" if how == "--data-dir" else default_folder)
    argv = ["download", "--data-dir", str(folder)] if how == "--data-dir" else ["download"]
    assert cli.main(argv) == 1
    err = capsys.readouterr().err
    assert err == (f"error: Cannot write to the data folder {folder} (Permission denied). Make it writable, or put "
                   "the dataset elsewhere: `python -m workshop_utils download --data-dir DIR`, or set "
                   "WORKSHOP_HOME=DIR (the dataset then goes to DIR/data).\n")
    assert server.hits == []


def test_download_data_dir_downloads_there(tmp_path, server, small_zip, monkeypatch, capsys):
    """`download --data-dir DIR` downloads into DIR (what the user asked), even with WORKSHOP_DATA_DIR set."""
    monkeypatch.setenv(paths.DATA_DIR_ENV, str(tmp_path / "elsewhere"))
    url = _serve_archive(server, small_zip)
    assert cli.main(["download", "--data-dir", str(tmp_path / "new"), "--url", url]) == 0
    assert f"Dataset ready at {tmp_path / 'new' / 'chest_xray'}" in capsys.readouterr().out
    assert len(server.hits) == 1


def test_bad_data_url_is_a_clear_error(monkeypatch, capsys):
    monkeypatch.setenv(download.DATA_URL_ENV, "not a url")
    assert cli.main(["download"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: Could not download not a url: ") and "Traceback" not in err
    assert "Get the archive by hand instead" in err


# --------------------------------------------------------------------------- download_dataset and the transfer

def test_download_unpack_and_use(server, small_zip, tmp_path):
    url = _serve_archive(server, small_zip)
    data = tmp_path / "data"
    root = download_dataset(data, url=url, progress=False)
    assert root == data / "chest_xray"  # the shallow copy, not chest_xray/chest_xray
    assert dataset.count_images(root) == COUNTS
    assert not (data / "__MACOSX").exists()
    assert (data / "ChestXRay2017.zip").read_bytes() == small_zip
    assert _leftovers(data) == []
    assert len(server.hits) == 1


def test_tar_gz_archive(server, tmp_path):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for name, data in _members().items():
            if name.endswith("/"):
                continue  # folders are made as their files are unpacked
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    url = _serve_archive(server, buf.getvalue(), "chest_xray.tar.gz")
    root = download_dataset(tmp_path, url=url, progress=False)
    assert root == tmp_path / "chest_xray"
    assert (tmp_path / "chest_xray.tar.gz").exists()


def test_interrupted_transfer_resumes(server, small_zip, tmp_path):
    url = _serve_archive(server, small_zip)
    cut = len(small_zip) // 3
    server.drop_after = cut
    root = download_dataset(tmp_path, url=url, progress=False)
    assert root == tmp_path / "chest_xray"
    (_, range1), (_, range2) = server.hits
    assert range1 is None
    # the second request asks for the rest: from the last whole chunk written before the drop
    resumed_at = int(range2.removeprefix("bytes=").removesuffix("-"))
    assert 0 < resumed_at <= cut
    assert (tmp_path / "ChestXRay2017.zip").read_bytes() == small_zip


@pytest.mark.parametrize("ignore_range", [False, True])
def test_part_file_from_an_earlier_run(server, small_zip, tmp_path, ignore_range):
    """A .part left by a killed run is resumed; if the server ignores Range it starts from zero."""
    url = _serve_archive(server, small_zip)
    server.ignore_range = ignore_range
    cut = len(small_zip) // 2
    part = tmp_path / "ChestXRay2017.zip.part"
    part.write_bytes(b"x" * cut if ignore_range else small_zip[:cut])
    dest = fetch_file(url, tmp_path / "ChestXRay2017.zip", progress=False)
    assert dest.read_bytes() == small_zip
    assert server.hits == [("/ChestXRay2017.zip", f"bytes={cut}-")]
    assert not part.exists()


def test_complete_part_file_is_just_renamed(server, small_zip, tmp_path):
    url = _serve_archive(server, small_zip)
    (tmp_path / "a.zip.part").write_bytes(small_zip)
    assert fetch_file(url, tmp_path / "a.zip", progress=False).read_bytes() == small_zip
    assert server.hits == [("/ChestXRay2017.zip", f"bytes={len(small_zip)}-")]  # answered 416


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
    assert f"Save it in\n       {tmp_path / 'data'}\n" in msg
    assert "WORKSHOP_DATA_DIR" in msg and "--data-dir" in msg


def test_complete_copy_is_never_downloaded_again(server, small_zip, tmp_path):
    url = _serve_archive(server, small_zip)
    root = download_dataset(tmp_path, url=url, progress=False)
    (tmp_path / "ChestXRay2017.zip").unlink()  # so only the unpacked copy can satisfy the next call
    assert download_dataset(tmp_path, url=url, progress=False) == root
    assert len(server.hits) == 1


def test_any_archive_placed_by_hand_is_used_offline(small_zip, tmp_path, no_network):
    (tmp_path / "chest-xray-pneumonia.zip").write_bytes(small_zip)
    root = download_dataset(tmp_path, progress=False)  # default (Mendeley) URL, never asked
    assert root == tmp_path / "chest_xray" and no_network == []


def test_path_traversal_is_refused(tmp_path):
    archive = tmp_path / "evil.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("../evil.txt", b"gotcha")
    with pytest.raises(DownloadError, match="outside"):
        download.unpack_archive(archive, tmp_path / "out", progress=False)
    assert not (tmp_path / "evil.txt").exists()


# --------------------------------------------------------------------------- kaggle source

@pytest.mark.parametrize("symlinks", [True, False])
def test_kaggle_source_links_the_kagglehub_copy(small_zip, tmp_path, monkeypatch, symlinks):
    cache = tmp_path / "kagglehub" / "versions" / "2"
    with zipfile.ZipFile(io.BytesIO(small_zip)) as zf:
        zf.extractall(cache)
    fake = types.ModuleType("kagglehub")
    fake.dataset_download = lambda handle: str(cache) if handle == download.KAGGLE_HANDLE else None
    monkeypatch.setitem(sys.modules, "kagglehub", fake)
    if not symlinks:
        def refuse(self, *args, **kwargs):
            raise OSError("symlinks not allowed")
        monkeypatch.setattr(Path, "symlink_to", refuse)

    data = tmp_path / "data"
    root = download_dataset(data, source="kaggle", progress=False)
    assert root == data / "chest_xray"
    assert root.is_symlink() == symlinks
    if symlinks:
        assert root.resolve() == (cache / "chest_xray").resolve()
    assert dataset.count_images(root) == COUNTS


def test_kaggle_failure_is_a_download_error(tmp_path, monkeypatch):
    fake = types.ModuleType("kagglehub")

    def fail(handle):
        raise RuntimeError("401 Unauthorized")

    fake.dataset_download = fail
    monkeypatch.setitem(sys.modules, "kagglehub", fake)
    with pytest.raises(DownloadError, match="credentials"):
        download_dataset(tmp_path, source="kaggle", progress=False)


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


# --------------------------------------------------------------------------- CLI and synthetic data

def _cli_args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    download.add_download_arguments(parser)
    return parser.parse_args(argv)


def test_cli_unreachable_exits_1_without_traceback(closed_url, tmp_path, capsys):
    assert download.main_download(_cli_args("--data-dir", str(tmp_path), "--url", closed_url)) == 1
    err = capsys.readouterr().err
    assert "error: " in err and "Traceback" not in err and "rscbjbr9sj/2" in err


def test_cli_rejects_url_with_kaggle(tmp_path, capsys):
    args = _cli_args("--data-dir", str(tmp_path), "--source", "kaggle", "--url", "http://example.invalid/a.zip")
    assert download.main_download(args) == 1
    assert "mendeley" in capsys.readouterr().err


def test_locate_dataset_synthetic_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("WORKSHOP_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("WORKSHOP_DATA_DIR", "synthetic")
    root = locate_dataset(None)
    assert root == tmp_path / "cache" / "synthetic" / "chest_xray"
    assert (root / "train" / "NORMAL").is_dir()


def test_interrupted_synthetic_generation_is_made_again(tmp_path, monkeypatch):
    from workshop_utils.synthetic import DEFAULT_COUNTS

    monkeypatch.setenv("WORKSHOP_CACHE_DIR", str(tmp_path / "cache"))
    half = tmp_path / "cache" / "synthetic" / "chest_xray"
    (half / "train" / "NORMAL").mkdir(parents=True)  # what an interrupted generation left: no test/
    root = locate_dataset("synthetic")
    assert root == half and dataset.count_images(root) == DEFAULT_COUNTS
    assert [p.name for p in (tmp_path / "cache").iterdir()] == ["synthetic"]  # no staging folder left


def test_ctrl_c_during_download_says_in_one_line_what_was_kept_and_the_rerun_resumes(server, small_zip, tmp_path):
    """A real SIGINT to the command mid-transfer: no traceback, one line naming the .part file; then resume."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(small_zip)) as src, zipfile.ZipFile(buffer, "w") as dst:
        for item in src.infolist():
            dst.writestr(item, src.read(item.filename))
        dst.writestr("__MACOSX/padding", random.Random(0).randbytes(400_000))  # skipped when unpacked
    payload = buffer.getvalue()
    url = _serve_archive(server, payload)
    server.seconds_per_4k = 0.02  # about 2 s for the whole file
    folder = tmp_path / "data"
    env = {k: v for k, v in os.environ.items() if k not in (paths.DATA_DIR_ENV, download.DATA_URL_ENV)}
    proc = subprocess.Popen([sys.executable, "-m", "workshop_utils", "download", "--url", url, "--data-dir",
                             str(folder)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            preexec_fn=ctrl_c_as_in_a_terminal)
    part = folder / "ChestXRay2017.zip.part"
    deadline = time.time() + 60
    while not (part.exists() and part.stat().st_size > 40_000) and time.time() < deadline and proc.poll() is None:
        time.sleep(0.01)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    last = err.strip().splitlines()[-1]
    assert last.startswith(f"Interrupted: {part} keeps the ") and last.endswith(
        f"MB received of {url}; run the same command again to resume from there."), err
    kept = part.stat().st_size
    assert 0 < kept < len(payload)
    server.seconds_per_4k = 0.0
    assert cli.main(["download", "--url", url, "--data-dir", str(folder)]) == 0
    assert server.hits[-1] == ("/ChestXRay2017.zip", f"bytes={kept}-")  # resumed, not started over
    assert dataset.find_dataset_root(folder).is_dir() and not part.exists()


def test_ctrl_c_in_any_command_is_one_line(monkeypatch, capsys):
    def interrupted(_args):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "dispatch", interrupted)
    assert cli.main(["check"]) == 130
    err = capsys.readouterr().err
    assert err.strip() == cli.INTERRUPTED
