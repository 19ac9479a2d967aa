"""Versions: pyproject.toml declares exactly what the package and the lessons import, `check` reads its minimums
from the installed package's metadata, the lock file pins every requirement at a version that meets them, and
CI installs with it. The code's licence and the data's attribution are there."""
import ast
import json
import re
import sys
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from workshop_utils import check

tomllib = pytest.importorskip("tomllib")  # Python 3.11+

ROOT = Path(__file__).resolve().parents[1]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
#: Import name -> distribution, where they differ.
DISTRIBUTION_OF = {"PIL": "pillow", "sklearn": "scikit-learn"}
#: Third-party modules imported only on one Keras backend or by one optional job: module -> (the extra that
#: brings it, its distribution). PyTorch (KERAS_BACKEND=torch) is the user's to install (the test extra brings it
#: for tests/test_backends.py); google.colab exists only on Colab.
OPTIONAL_IMPORTS = {"jax": ("test", "jax"), "torch": ("test", "torch"), "google": (None, "google-colab"),
                    "kagglehub": ("kaggle", "kagglehub"),
                    "papermill": ("run", "papermill"), "nbformat": ("run", "papermill"),
                    "nbclient": ("run", "papermill"), "jupyter_client": ("run", "papermill"),
                    "myst_nb": ("book", "myst-nb"), "sphinx_book_theme": ("book", "sphinx-book-theme")}


def _minimums(requirements: list[str]) -> dict[str, str | None]:
    found = {}
    for line in requirements:
        req = Requirement(line)
        if canonicalize_name(req.name) != check.DISTRIBUTION:
            found[canonicalize_name(req.name)] = next((s.version for s in req.specifier if s.operator == ">="), None)
    return found


CORE = _minimums(PROJECT["dependencies"])
EXTRAS = {extra: _minimums(reqs) for extra, reqs in PROJECT["optional-dependencies"].items()}


def _imports(source: str) -> set[str]:
    """Top-level names of the absolute imports in ``source`` (IPython magics and shell lines skipped)."""
    code = "\n".join(line for line in source.splitlines() if not line.lstrip().startswith(("%", "!")))
    try:
        tree = ast.parse(code)
    except SyntaxError:  # an exercise's blank: read its import lines
        return set(re.findall(r"^\s*(?:import|from)\s+([A-Za-z_]\w*)", code, re.MULTILINE))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and not node.level:
            names.add(node.module.split(".")[0])
    return names


def _third_party(names: set[str]) -> set[str]:
    return {n for n in names if n not in sys.stdlib_module_names and n not in ("workshop_utils", "__future__")}


def test_core_dependencies_are_what_the_package_and_the_lessons_import():
    package = set().union(*(_imports(p.read_text()) for p in (ROOT / "workshop_utils").glob("*.py")))
    lessons = set()
    for path in (ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"):
        lessons |= set().union(*(_imports("".join(c["source"])) for c in json.loads(path.read_text())["cells"]
                                 if c["cell_type"] == "code"))
    imported = _third_party(package | lessons)
    required = {canonicalize_name(DISTRIBUTION_OF.get(n, n)) for n in imported - set(OPTIONAL_IMPORTS)}
    assert required == set(CORE)  # nothing imported is missing, nothing declared is unused (pooch was)
    for module in imported & set(OPTIONAL_IMPORTS):
        extra, distribution = OPTIONAL_IMPORTS[module]
        assert extra is None or distribution in EXTRAS[extra], (module, extra)


def test_extras_split_the_jobs():
    assert "pooch" not in CORE and not {"jupyterlab", "papermill", "ipykernel", "nbval", "pytest"} & set(CORE)
    assert set(EXTRAS["lab"]) == {"jupyterlab"}
    assert set(EXTRAS["run"]) == {"papermill", "ipykernel"}
    assert "pneumonia-xray-workshop[run]" in PROJECT["optional-dependencies"]["test"]  # the runner is tested
    assert {"pytest", "nbval", "jax"} <= set(EXTRAS["test"])


def test_keras_minimum_accepts_the_lessons_random_contrast():
    """Lessons pass value_range to RandomContrast: Keras 3.7 rejects it, 3.8 accepts it."""
    assert Version(CORE["keras"]) >= Version("3.8")
    keras = pytest.importorskip("keras")
    layer = keras.layers.RandomContrast(0.2, value_range=(0, 255))
    assert layer.value_range == (0, 255)


def test_check_reads_the_minimums_from_the_installed_metadata():
    """What `check` compares with is what pyproject.toml declares (the installed copy of it), core and extras."""
    assert {canonicalize_name(k): v for k, v in check.requirements().items()} == CORE
    for extra in ("run", "lab"):
        assert {canonicalize_name(k): v for k, v in check.requirements(extra).items()} == EXTRAS[extra]
    assert check.python_minimum() == re.search(r">=\s*([\d.]+)", PROJECT["requires-python"]).group(1)


def _fake_install(monkeypatch, requires: list[str], versions: dict[str, str | None]):
    """Pretend the package declares ``requires`` and ``versions`` are installed (None: not installed)."""
    real_version = metadata.version

    def version(dist):
        if dist in versions:
            if versions[dist] is None:
                raise metadata.PackageNotFoundError(dist)
            return versions[dist]
        return real_version(dist)

    monkeypatch.setattr(metadata, "requires", lambda dist: list(requires))
    monkeypatch.setattr(metadata, "version", version)


REQUIRES = ["tensorflow>=2.16", "keras>=3.8", "numpy>=1.26", "seaborn>=0.13", 'papermill>=2.5; extra == "run"',
            'ipykernel>=6.29; extra == "run"', 'jupyterlab>=4.0; extra == "lab"', "pneumonia-xray-workshop[run]; "
            'extra == "test"', 'jax>=0.4.30; extra == "test"']


def test_check_names_what_is_missing_or_too_old_and_what_to_run(monkeypatch):
    monkeypatch.setenv("KERAS_BACKEND", "tensorflow")
    _fake_install(monkeypatch, REQUIRES, {"keras": "3.7.0", "seaborn": None, "numpy": "2.1.0", "tensorflow": "2.21.0",
                                          "papermill": None, "ipykernel": "6.28.0", "jupyterlab": "4.2.0"})
    items = {item.name: item for item in check.check_packages()}
    assert list(items) == ["keras", "tensorflow (Keras backend tensorflow)", "numpy", "seaborn", "jupyterlab",
                           "papermill", "ipykernel"]
    assert (items["keras"].status, items["keras"].detail, items["keras"].fix) == (
        "FAIL", "3.7.0 is older than 3.8", 'pip install -U "keras>=3.8"')
    assert (items["seaborn"].status, items["seaborn"].detail, items["seaborn"].fix) == (
        "FAIL", "not installed", 'pip install "seaborn>=0.13"')
    assert items["numpy"].status == items["jupyterlab"].status == "OK"
    assert (items["papermill"].status, items["papermill"].detail, items["papermill"].fix) == (
        "WARN", "not installed (needed for python -m workshop_utils run)",
        'pip install "pneumonia-xray-workshop[run]"')
    assert (items["ipykernel"].status, items["ipykernel"].detail) == (
        "WARN", "6.28.0 is older than 6.29 (needed for python -m workshop_utils run)")


def test_check_follows_the_metadata_not_a_copy(monkeypatch):
    _fake_install(monkeypatch, ["keras>=99.1", "numpy"], {"keras": "3.15.0", "numpy": "2.0.0"})
    items = {item.name: item for item in check.check_packages()}
    assert items["keras"].detail == "3.15.0 is older than 99.1" and items["keras"].fix == 'pip install -U "keras>=99.1"'
    assert items["numpy"].status == "OK" and items["numpy"].detail == "2.0.0 (no minimum declared)"


def test_backend_package_follows_keras_backend(monkeypatch):
    monkeypatch.setenv("KERAS_BACKEND", "jax")
    _fake_install(monkeypatch, REQUIRES, {"jax": "0.4.29"})
    item = check.check_packages()[1]
    assert (item.name, item.status, item.detail) == ("jax (Keras backend jax)", "FAIL", "0.4.29 is older than 0.4.30")
    monkeypatch.setenv("KERAS_BACKEND", "torch")
    _fake_install(monkeypatch, REQUIRES, {"torch": "2.5.0"})
    assert check.check_packages()[1].detail == "2.5.0 (no minimum declared)"
    monkeypatch.setenv("KERAS_BACKEND", "mxnet")
    item = check.check_packages()[1]
    assert (item.status, item.detail) == ("FAIL", "unknown backend 'mxnet'")


def test_tensorflow_builds_count_as_tensorflow(monkeypatch):
    monkeypatch.setenv("KERAS_BACKEND", "tensorflow")
    _fake_install(monkeypatch, REQUIRES, {"tensorflow": None, "tensorflow-cpu": None, "tensorflow-macos": "2.16.2"})
    item = check.check_packages()[1]
    assert (item.status, item.detail) == ("OK", "2.16.2")


def test_check_without_the_package_installed(monkeypatch):
    def requires(dist):
        raise metadata.PackageNotFoundError(dist)

    monkeypatch.setattr(metadata, "requires", requires)
    [item] = check.check_packages()
    assert (item.status, item.name, item.fix) == ("FAIL", "pneumonia-xray-workshop", 'pip install -e ".[lab]"   '
                                                  "(in the checkout)")


def _lock() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "requirements-lock.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, version = line.split("==")
            assert canonicalize_name(name) not in pins, f"{name} is pinned twice in requirements-lock.txt"
            pins[canonicalize_name(name)] = version.strip()
    return pins


def test_the_lock_file_pins_every_requirement_at_a_version_that_meets_it():
    text = (ROOT / "requirements-lock.txt").read_text()
    header = [line for line in text.splitlines() if line.startswith("#")]
    assert any("pip freeze" in line for line in header) and any("regenerate" in line.lower() for line in header)
    assert all(re.fullmatch(r"[A-Za-z0-9._-]+==[\w.+!-]+", line) for line in text.splitlines()
               if line.strip() and not line.startswith("#"))  # pins only: no -e, no URLs, no local paths
    pins = _lock()
    assert check.DISTRIBUTION not in pins
    wanted = {**CORE, **{name: m for extra in ("lab", "run", "test") for name, m in EXTRAS[extra].items()}}
    for name, minimum in wanted.items():
        assert name in pins, f"{name} is not in requirements-lock.txt"
        assert minimum is None or Version(pins[name]) >= Version(minimum), (name, pins[name], minimum)


def _readme_test_command() -> str:
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("**Run the tests**"):]
    return re.search(r"```bash\n(.+?)\n```", section, re.DOTALL).group(1).strip()


def test_ci_runs_exactly_the_readme_test_command_with_the_lock_file():
    command = _readme_test_command()
    assert "-c requirements-lock.txt" in command and '-e ".[test]"' in command
    ci = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    assert command in ci


def test_licences():
    licence = (ROOT / "LICENSE").read_text()
    assert licence.startswith("MIT License") and "Permission is hereby granted, free of charge" in licence
    assert PROJECT["license"] == {"text": "MIT"}
    assert "CC BY 4.0" in (ROOT / "data" / "README.md").read_text()  # the dataset keeps its own licence
