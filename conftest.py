"""Test-session settings, and the notebooks as nbval tests.

The notebooks under notebooks/ (the lessons and their student copies) are collected by nbval, each given the
parameters the runner would give it for a quick run on the synthetic dataset: papermill inserts them after the
notebook's cell tagged ``parameters``, exactly as ``python -m workshop_utils run`` does, so the notebooks carry no
test plumbing. nbval runs in lax mode (outputs are not compared); a cell tagged ``raises-exception`` (a student
copy's blank answer) may raise, any other error fails the test. The kernels inherit the environment set here.
"""
import os
import tempfile
from pathlib import Path

import nbformat
from nbval.plugin import IPyNbFile
from papermill.iorw import load_notebook_node
from papermill.parameterize import parameterize_notebook

from workshop_utils.runner import notebook_parameters

_scratch = Path(tempfile.mkdtemp(prefix="workshop-tests-"))
os.environ["WORKSHOP_CACHE_DIR"] = str(_scratch / "cache")
os.environ["KERAS_HOME"] = str(_scratch / "keras")
os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

NOTEBOOKS = Path(__file__).resolve().parent / "notebooks"
#: Where the lessons' nbval run records its results and keeps its cache: tests/test_reproducibility.py compares a
#: second run with it instead of running every lesson twice (it runs after the notebooks; see below).
os.environ["WORKSHOP_TEST_LESSONS_RUN"] = str(_scratch / "run")
os.environ["WORKSHOP_TEST_LESSONS_CACHE"] = os.environ["WORKSHOP_CACHE_DIR"]
#: What the tests pass to every notebook that declares these parameters (the lessons share one run folder, so
#: that a lesson that compares itself with an earlier one finds its record; the student copies have their own).
QUICK_PARAMETERS = {"DATA_DIR": "synthetic", "QUICK": True, "WEIGHTS": None}


class QuickNotebook(IPyNbFile):
    """nbval's notebook collector, run on a copy of the notebook with the quick-run parameters injected."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.compare_outputs = False  # lax: run every cell, compare no outputs

    def collect(self):
        source = Path(self.path)
        run_dir = _scratch / ("student-run" if source.parent.name == "student" else "run")
        parameters = notebook_parameters(source, {**QUICK_PARAMETERS, "RUN_DIR": str(run_dir)})  # as the runner does
        copy = _scratch / "notebooks" / source.parent.name / source.name
        copy.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(parameterize_notebook(load_notebook_node(str(source)), parameters), copy)  # as papermill does
        self.path = copy  # nbval reads the notebook, and starts the kernel, from here; the test keeps its name
        yield from super().collect()


#: Tests that compare their runs with the lessons' nbval run, so they run after the notebooks.
AFTER_THE_NOTEBOOKS = ("tests/test_backends.py", "tests/test_dataset_shift.py", "tests/test_reproducibility.py")


def pytest_collection_modifyitems(session, config, items):
    """The tests that compare with the lessons' nbval run last: that run must have finished."""
    items.sort(key=lambda item: item.nodeid.startswith(AFTER_THE_NOTEBOOKS))


def pytest_collect_file(file_path, parent):
    if file_path.suffix == ".ipynb" and NOTEBOOKS in file_path.parents:
        return QuickNotebook.from_parent(parent, path=file_path)
    return None
