"""Colab, as a user opens it: a lesson's badge, its setup cell's install line, and the lesson run alone.

* Every Colab badge and every install line (lessons, student copies, README, docs) uses the repository named once
  in ``pyproject.toml`` (``[project.urls] Repository``), pinned to the tag ``v<version>`` of the one version
  (``workshop_utils.__version__``), and each badge opens its own notebook.
* On Colab with Google Drive mounted, data and caches go to ``MyDrive/pneumonia-workshop``, so the next lesson
  (in its own runtime) finds them.
* The route itself, with no network but the package registries (several minutes, most
  of them installing TensorFlow): the package built as a wheel and installed with its dependencies into a fresh
  venv (plus papermill and ipykernel, which Colab brings), one lesson copied alone into an empty folder and run in
  that venv's kernel in quick mode, the dataset served from 127.0.0.1 in the Mendeley release's layout; then the
  next lesson, in a new kernel and another empty folder, finds the data and the caches without fetching again.
"""
from __future__ import annotations

import functools
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
import types
import zipfile
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from helpers_data import tree_members, zip_bytes

import workshop_utils
from workshop_utils import download, paths

ROOT = Path(__file__).resolve().parents[1]
tomllib = pytest.importorskip("tomllib")  # Python 3.11+ (the lock file's Python)
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
REPOSITORY = PYPROJECT["project"]["urls"]["Repository"]
TAG = f"v{workshop_utils.__version__}"
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb")) + sorted((ROOT / "notebooks" / "student").glob("*.ipynb"))
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md")), *sorted((ROOT / "docs").rglob("*.ipynb"))]

BADGE = re.compile(r"https://colab\.research\.google\.com/github/(?P<repo>[^/\s]+/[^/\s]+)/blob/(?P<ref>[^/\s]+)/"
                   r"(?P<path>[^)\s\"']+)")
ANY_COLAB_LINK = re.compile(r"colab\.research\.google\.com/[^)\s\"']*")
GIT_INSTALL = re.compile(r"git\+(?P<url>[^\s\"'@]+?)(?:\.git)?(?:@(?P<ref>[^\s\"'#]+))?(?=[\s\"'#]|$)")
PACKAGE = PYPROJECT["project"]["name"]

#: The route test installs TensorFlow into a fresh venv (several minutes); WORKSHOP_TEST_COLAB=0 skips it.
ROUTE_ENV = "WORKSHOP_TEST_COLAB"
#: The lessons the route runs: the first fetches the data and fills the caches, the second reads them.
FIRST, SECOND = "02_baseline_vgg16.ipynb", "03_class_weights.ipynb"
#: The archive in the Mendeley release's layout (chest_xray/{train,test}, no val/), a few images per class.
SMALL_MENDELEY = {"train": {"NORMAL": 20, "PNEUMONIA": 40}, "test": {"NORMAL": 8, "PNEUMONIA": 12}}


def texts(path: Path) -> list[str]:
    """The text a user reads in ``path``: every cell's source of a notebook, or the whole file."""
    if path.suffix == ".ipynb":
        return ["".join(cell["source"]) for cell in json.loads(path.read_text())["cells"]]
    return [path.read_text()]


def install_lines(text: str) -> list[str]:
    """The lines that install this package: a ``pip install`` naming it or a ``git+`` URL."""
    return [line.strip() for line in text.splitlines()
            if "pip install" in line and (PACKAGE in line or "git+" in line)]


# --------------------------------------------------------------------------- one URL, one version, pinned

def test_the_repository_and_the_version_are_defined_once():
    project = PYPROJECT["project"]
    assert REPOSITORY == "https://github.com/pneumonia-workshop/pneumonia-xray-workshop"
    assert project["urls"]["Issues"] == f"{REPOSITORY}/issues"
    assert "version" not in project and "version" in project["dynamic"]
    assert PYPROJECT["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "workshop_utils.__version__"}
    assert re.fullmatch(r"\d+\.\d+\.\d+", workshop_utils.__version__)


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: str(p.relative_to(ROOT / "notebooks")))
def test_each_notebook_has_its_own_badge_and_a_pinned_install(notebook):
    """The badge opens this notebook at this release's tag; the setup cell installs this release, on Colab only."""
    cells = texts(notebook)
    own_path = notebook.relative_to(ROOT).as_posix()
    badges = [m for cell in cells for m in BADGE.finditer(cell)]
    assert badges, f"{own_path} has no Colab badge"
    for m in badges:
        assert (f"https://github.com/{m['repo']}", m["ref"], m["path"]) == (REPOSITORY, TAG, own_path), m[0]
    links = [m[0] for cell in cells for m in ANY_COLAB_LINK.finditer(cell) if "/assets/" not in m[0]]
    assert len(links) == len(badges), f"{own_path}: Colab links not in the badge form: {links}"

    setup = [cell for cell in cells if install_lines(cell)]
    assert len(setup) == 1, f"{own_path}: expected one setup cell that installs the package, found {len(setup)}"
    lines = install_lines(setup[0])
    assert lines == [f'%pip install -q "{PACKAGE} @ git+{REPOSITORY}@{TAG}"'], lines
    assert re.search(r'^if "google\.colab" in (str\(get_ipython\(\)\)|sys\.modules):', setup[0], re.M), \
        f"{own_path}: the install must run on Colab only:\n{setup[0]}"


def test_readme_and_docs_use_the_same_url_and_tag():
    """Badges and install lines outside the notebooks (none today) follow the same rule."""
    for document in [d for d in DOCUMENTS if d.is_file()]:
        for text in texts(document):
            for m in BADGE.finditer(text):
                assert (f"https://github.com/{m['repo']}", m["ref"]) == (REPOSITORY, TAG), f"{document}: {m[0]}"
                assert (ROOT / m["path"]).is_file(), f"{document}: the badge opens {m['path']}, which does not exist"
            for line in install_lines(text):
                found = list(GIT_INSTALL.finditer(line))
                assert found, f"{document}: installs {PACKAGE} from elsewhere than {REPOSITORY}: {line}"
                assert all((g["url"], g["ref"]) == (REPOSITORY, TAG) for g in found), f"{document}: {line}"


def test_the_install_line_pattern_catches_what_drifts():
    """The checks above see an unpinned install, another repository, another tag."""
    good = f'%pip install -q "{PACKAGE} @ git+{REPOSITORY}@{TAG}"'
    assert [(g["url"], g["ref"]) for g in GIT_INSTALL.finditer(good)] == [(REPOSITORY, TAG)]
    assert [(g["url"], g["ref"]) for g in GIT_INSTALL.finditer(f"pip install git+{REPOSITORY}.git")] == \
        [(REPOSITORY, None)]
    other = "%pip install git+https://github.com/your-org/pneumonia-xray-workshop@main"
    assert [(g["url"], g["ref"]) for g in GIT_INSTALL.finditer(other)] == \
        [("https://github.com/your-org/pneumonia-xray-workshop", "main")]
    assert install_lines(f"!pip install {PACKAGE}") == [f"!pip install {PACKAGE}"]
    assert install_lines('pip install -e ".[test]"') == []
    badge = "(https://colab.research.google.com/github/x/y/blob/main/notebooks/01_a.ipynb)"
    assert BADGE.search(badge).group("repo", "ref", "path") == ("x/y", "main", "notebooks/01_a.ipynb")


# --------------------------------------------------------------------------- Colab's Drive

class ArchiveServer:
    """Serves ``data`` as ``/ChestXRay2017.zip`` on 127.0.0.1 and lists the paths requested."""

    def __init__(self, folder: Path, data: bytes) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / download.ARCHIVE_NAME).write_bytes(data)
        self.requests: list[str] = []
        seen = self.requests

        class Handler(SimpleHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
                seen.append(self.path)
                super().do_GET()

            def log_message(self, *args) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=str(folder)))
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/{download.ARCHIVE_NAME}"

    def __enter__(self) -> ArchiveServer:
        threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def on_colab(tmp_path, monkeypatch) -> Path:
    """Pretend to be on Colab: ``google.colab`` imported, Drive's MyDrive at a temporary folder (not yet
    mounted: it does not exist), no workshop settings in the environment. Returns MyDrive."""
    for name in (paths.HOME_ENV, paths.DATA_DIR_ENV, paths.CACHE_DIR_ENV, download.DATA_URL_ENV):
        monkeypatch.delenv(name, raising=False)
    drive = tmp_path / "drive" / "MyDrive"
    monkeypatch.setattr(paths, "COLAB_DRIVE", drive)
    monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    return drive


def test_on_colab_data_and_caches_go_to_the_mounted_drive(on_colab, tmp_path, monkeypatch):
    assert paths.workshop_home() is None  # Drive not mounted: nothing on Drive
    on_colab.mkdir(parents=True)  # Files panel > Mount Drive
    home = on_colab / "pneumonia-workshop"
    assert paths.workshop_home() == home
    assert paths.default_data_dir() == home / "data"
    assert paths.cache_dir() == home / "cache"
    monkeypatch.setenv(paths.HOME_ENV, str(tmp_path / "mine"))  # WORKSHOP_HOME still wins
    assert paths.default_data_dir() == tmp_path / "mine" / "data"
    monkeypatch.delenv(paths.HOME_ENV)
    monkeypatch.delitem(sys.modules, "google.colab")  # not on Colab: a folder at that path means nothing
    assert paths.workshop_home() is None


def test_lesson_start_mounts_drive_on_colab_and_keeps_results_there(on_colab, tmp_path, monkeypatch):
    from workshop_utils import lesson

    mounted = []
    drive = types.ModuleType("google.colab.drive")
    drive.mount = lambda where: (mounted.append(where), on_colab.mkdir(parents=True))
    monkeypatch.setattr(sys.modules["google.colab"], "drive", drive, raising=False)
    monkeypatch.setitem(sys.modules, "google.colab.drive", drive)
    started = lesson.start("02_baseline_vgg16", quick=True, run_dir="results")
    assert mounted == [str(on_colab.parent)]  # Colab asks the user once per runtime
    assert Path(started.run_dir) == on_colab / "pneumonia-workshop" / "results"  # found by the next runtime
    assert lesson.start("03_class_weights", quick=True, run_dir=str(tmp_path / "run")).run_dir == str(tmp_path / "run")
    assert mounted == [str(on_colab.parent)]  # already mounted: not asked again


def test_declining_drive_on_colab_warns_and_keeps_things_in_the_runtime(on_colab, monkeypatch):
    from workshop_utils import lesson

    def decline(where):
        raise ValueError("mount failed")

    drive = types.ModuleType("google.colab.drive")
    drive.mount = decline
    monkeypatch.setattr(sys.modules["google.colab"], "drive", drive, raising=False)
    monkeypatch.setitem(sys.modules, "google.colab.drive", drive)
    with pytest.warns(UserWarning, match="Google Drive is not mounted .*next lesson fetches the dataset again"):
        started = lesson.start("02_baseline_vgg16", quick=True)
    assert started.run_dir == "results"


def test_on_colab_the_next_lesson_finds_the_data_on_drive(on_colab, tmp_path, monkeypatch, capsys):
    """A lesson's data() on Colab: fetched once into MyDrive/pneumonia-workshop/data; the next lesson's (its own
    runtime: only Drive is kept) finds it there without a request."""
    on_colab.mkdir(parents=True)
    with ArchiveServer(tmp_path / "served", zip_bytes(tree_members(SMALL_MENDELEY))) as server:
        monkeypatch.setenv(download.DATA_URL_ENV, server.url)
        root = download.locate_dataset(None)
        assert root == on_colab / "pneumonia-workshop" / "data" / "chest_xray"
        assert server.requests == ["/ChestXRay2017.zip"]
        assert download.locate_dataset(None) == root and server.requests == ["/ChestXRay2017.zip"]
    assert "Unpacking ChestXRay2017.zip" in capsys.readouterr().err


# --------------------------------------------------------------------------- the route, from a wheel

def run(command: list, timeout: float, **kwargs) -> tuple[subprocess.CompletedProcess, float]:
    """Run ``command``; fail the test with its output if it fails. Returns the process and its seconds."""
    start = time.perf_counter()
    done = subprocess.run([str(c) for c in command], capture_output=True, text=True, timeout=timeout, **kwargs)
    seconds = time.perf_counter() - start
    assert done.returncode == 0, f"{' '.join(map(str, command))} failed:\n{done.stdout[-4000:]}\n{done.stderr[-8000:]}"
    return done, seconds


def notebook_text(path: Path) -> str:
    """Every output a user sees in an executed notebook (streams, results, errors), as one text."""
    parts = []
    for cell in json.loads(path.read_text())["cells"]:
        for out in cell.get("outputs", []):
            if out["output_type"] == "stream":
                parts.append("".join(out["text"]))
            elif out["output_type"] == "error":
                parts.append("\n".join(out["traceback"]))
            else:
                parts.append("".join(out.get("data", {}).get("text/plain", "")))
    return "\n".join(parts)


def files_under(folder: Path) -> dict[str, int]:
    """``{relative path: size}`` of every file under ``folder``."""
    return {p.relative_to(folder).as_posix(): p.stat().st_size for p in folder.rglob("*") if p.is_file()}


@pytest.mark.skipif(os.environ.get(ROUTE_ENV) == "0", reason="installs TensorFlow into a fresh venv from the package "
                    f"registry (3-6 min on 2 shared cores); {ROUTE_ENV}=0 skips it")
def test_a_lesson_opened_alone_runs_from_the_wheel(tmp_path):
    version = workshop_utils.__version__
    # 1. The package as the lessons' install line gets it: the line itself, with the repository replaced by a local
    #    git repository of the working tree tagged v<version> (pip clones it and checks out the tag), built into a
    #    wheel. Built from a copy, so that the checkout gets no build/ folder.
    source = tmp_path / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy2(ROOT / name, source / name)
    shutil.copytree(ROOT / "workshop_utils", source / "workshop_utils", ignore=shutil.ignore_patterns("__pycache__"))
    git = ["git", "-C", source, "-c", "user.name=test", "-c", "user.email=test@example.invalid"]
    for step in (["init", "-q"], ["add", "."], ["commit", "-q", "-m", "release"], ["tag", TAG]):
        run(git + step, 60)
    (line,) = next(found for cell in texts(ROOT / "notebooks" / FIRST) if (found := install_lines(cell)))
    local = "file://localhost" + source.as_uri().removeprefix("file://")  # pip wants a host in a URL
    requirement = line.split('"')[1].replace(REPOSITORY, local)
    assert requirement == f"{PACKAGE} @ git+{local}@{TAG}"
    wheels = tmp_path / "wheels"
    _, wheel_s = run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", requirement, "-w", wheels], 300)
    wheel = wheels / f"pneumonia_xray_workshop-{version}-py3-none-any.whl"
    assert sorted(p.name for p in wheels.iterdir()) == [wheel.name]
    with zipfile.ZipFile(wheel) as zf:
        metadata = zf.read(f"pneumonia_xray_workshop-{version}.dist-info/METADATA").decode()
    assert f"Project-URL: Repository, {REPOSITORY}" in metadata
    core = [line.split(": ", 1)[1] for line in metadata.splitlines()
            if line.startswith("Requires-Dist:") and "extra ==" not in line]
    # Colab brings and pins its own Jupyter: reinstalling it breaks the runtime.
    assert not [r for r in core if re.match(r"(jupyterlab|notebook|ipykernel|ipython|papermill|nbval)\b", r)], core

    # 2. A fresh venv: the wheel with its dependencies, and what Colab brings (papermill, ipykernel).
    venv = tmp_path / "venv"
    run([sys.executable, "-m", "venv", venv], 300)
    python = venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    _, install_s = run([python, "-m", "pip", "install", "-q", "--no-compile", wheel, "papermill", "ipykernel"], 1500)
    kernel = "workshop-colab-check"
    run([python, "-m", "ipykernel", "install", "--prefix", venv, "--name", kernel], 120)
    spec = json.loads((venv / "share" / "jupyter" / "kernels" / kernel / "kernel.json").read_text())
    assert Path(spec["argv"][0]) == python  # the lessons run in the venv, not in the checkout's environment

    # 3. A Colab user's runtime: a fresh home, WORKSHOP_HOME on "Drive", the archive served from 127.0.0.1.
    drive = tmp_path / "drive" / "pneumonia-workshop"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WORKSHOP_", "KERAS_", "JUPYTER", "PYTHONPATH",
                                                                    "PYTHONHOME", "VIRTUAL_ENV", "MPLBACKEND"))}
    env.update(HOME=str(tmp_path / "home"), USERPROFILE=str(tmp_path / "home"), WORKSHOP_HOME=str(drive))
    archive = zip_bytes(tree_members(SMALL_MENDELEY))

    def lesson(name: str) -> tuple[str, float, Path]:
        folder = tmp_path / f"runtime-{name.split('_')[0]}"  # each lesson alone in an empty folder
        folder.mkdir()
        shutil.copy2(ROOT / "notebooks" / name, folder / name)
        _, seconds = run([python, "-m", "papermill", name, f"executed-{name}", "-k", kernel, "--cwd", folder,
                          "-p", "QUICK", "True", "-p", "WEIGHTS", "None"], 900, cwd=folder, env=env)
        return notebook_text(folder / f"executed-{name}"), seconds, folder

    with ArchiveServer(tmp_path / "served", archive) as server:
        env["WORKSHOP_DATA_URL"] = server.url
        first, first_s, folder = lesson(FIRST)
        assert server.requests == ["/ChestXRay2017.zip"]
        assert re.search(rf"{download.ARCHIVE_NAME}: 100%\|█+\| {len(archive) / 1024:.1f}k/", first), first[:3000]
        assert "Unpacking ChestXRay2017.zip: 100%" in first
        assert f"Dataset: {drive / 'data' / 'chest_xray'}\n  train 20 + 40, test 8 + 12" in first, first[:3000]
        assert "Traceback" not in first
        record = json.loads((drive / "results" / "results.json").read_text())  # on "Drive", for the next runtime
        assert [(r["lesson"], r["quick"], r["weights"], r["test_n"]) for r in record] == \
            [(FIRST.removesuffix(".ipynb"), True, "none (random weights)", 20)]
        assert (drive / "results" / "models" / FIRST.replace(".ipynb", ".keras")).is_file()
        cache = files_under(drive / "cache")
        assert cache, "the first lesson left no cache on Drive"
        assert not (tmp_path / "home" / "pneumonia-workshop-data").exists()

        # 4. The next lesson, in its own runtime: the data and caches on Drive, nothing fetched or computed again.
        second, second_s, _ = lesson(SECOND)
        assert server.requests == ["/ChestXRay2017.zip"]
        assert "Unpacking" not in second and "100%" not in second.split("frozen VGG16 features")[0]
        assert f"Dataset: {drive / 'data' / 'chest_xray'}" in second
        assert files_under(drive / "cache") == cache  # decoded images and features read, not made again
        assert "02_baseline_vgg16   sensitivity" in second  # lesson 3 finds lesson 2's record on "Drive"
    print(f"\nColab route: wheel {wheel_s:.0f} s, fresh venv install {install_s:.0f} s, {FIRST} {first_s:.0f} s, "
          f"{SECOND} {second_s:.0f} s")
