"""The package's shape: no two modules import each other, directly or round a longer circle, counting the imports
made inside functions (a deferred import hides a circle; it does not remove it)."""
import ast
import graphlib
from pathlib import Path

import workshop_utils

PACKAGE = Path(workshop_utils.__file__).resolve().parent


def package_imports(source: str, modules: set[str]) -> set[str]:
    """The workshop_utils modules that ``source`` imports anywhere (relative or absolute, at any depth)."""
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom):
            absolute = (node.module or "").split(".")
            if node.level == 1:
                found.update([absolute[0]] if node.module else [a.name for a in node.names])
            elif node.level == 0 and absolute[0] == "workshop_utils":
                found.update(absolute[1:2] or [a.name for a in node.names])
        elif isinstance(node, ast.Import):
            found.update(a.name.split(".")[1] for a in node.names if a.name.startswith("workshop_utils."))
    return found & modules


def import_circle(graph: dict[str, set[str]]) -> list[str] | None:
    """One circle of imports in ``graph`` (module -> modules it imports), or None."""
    try:
        graphlib.TopologicalSorter(graph).prepare()
    except graphlib.CycleError as error:
        return error.args[1]
    return None


def test_the_scan_finds_relative_absolute_and_deferred_imports():
    source = ("from . import paths\nfrom .check import x\nimport workshop_utils.report\n"
              "def f():\n    from workshop_utils import runner\n    from workshop_utils.kit import y\n")
    modules = {"paths", "check", "report", "runner", "kit", "book"}
    assert package_imports(source, modules) == {"paths", "check", "report", "runner", "kit"}
    assert import_circle({"check": {"environment"}, "environment": {"check"}}) == ["check", "environment", "check"]


def test_no_module_imports_itself_round_a_circle():
    modules = {path.stem for path in PACKAGE.glob("*.py")}
    graph = {path.stem: package_imports(path.read_text(), modules - {path.stem}) for path in PACKAGE.glob("*.py")}
    assert import_circle(graph) is None
