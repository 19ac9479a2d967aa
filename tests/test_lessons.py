"""The lessons as attendees read them: settings in one tagged cell, the frame's few calls, their own idea.

These tests read the notebooks as files (no kernel); the notebooks themselves run under nbval (see conftest.py).
"""
from __future__ import annotations

import ast
import json
import re
from collections import Counter
from pathlib import Path

import nbformat
import pytest

from workshop_utils import parameters, student
from workshop_utils.runner import lesson_notebooks

LESSONS = lesson_notebooks()
CAPS = re.compile(r"^[A-Z][A-Z0-9_]*$")
#: lesson.start's keyword for each runner parameter.
START_KEYWORDS = {"DATA_DIR": "data_dir", "QUICK": "quick", "IMAGE_SIZE": "image_size", "EPOCHS": "epochs",
                  "WEIGHTS": "weights", "PRECISION": "precision", "SEED": "seed", "RUN_DIR": "run_dir"}


def code_cells(nb) -> list:
    return [c for c in nb.cells if c.cell_type == "code"]


def python_of(source: str) -> str:
    """Cell source with IPython magics (``%pip ...``) replaced by ``pass``, so that ast can parse it."""
    return "\n".join(line[: len(line) - len(line.lstrip())] + "pass" if line.lstrip().startswith(("%", "!"))
                     else line for line in source.splitlines())


def assigned_names(source: str) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(python_of(source))):
        targets = node.targets if isinstance(node, ast.Assign) else [node.target] \
            if isinstance(node, (ast.AnnAssign, ast.AugAssign)) else []
        for target in targets:
            names |= {n.id for n in ast.walk(target) if isinstance(n, ast.Name)}
    return names


def test_start_keywords_cover_every_runner_parameter():
    assert set(START_KEYWORDS) == set(parameters.RUNNER_PARAMETERS)


@pytest.mark.parametrize("path", LESSONS, ids=lambda p: p.name)
def test_settings_live_in_the_tagged_cell_only_and_are_used(path):
    nb = nbformat.read(path, as_version=4)
    tagged = [c for c in code_cells(nb) if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1, f"{path.name}: exactly one cell tagged 'parameters'"
    settings = assigned_names(tagged[0].source)
    assert settings and all(CAPS.match(n) for n in settings), settings
    rest = [c for c in code_cells(nb) if c is not tagged[0]]
    for cell in rest:
        caps = {n for n in assigned_names(cell.source) if CAPS.match(n)}
        assert not caps, f"{path.name}: {sorted(caps)} assigned outside the parameters cell:\n{cell.source[:200]}"
    used = "\n".join(c.source for c in rest)
    for name in settings:
        assert re.search(rf"\b{name}\b", used), f"{path.name}: setting {name} is declared but never used"


@pytest.mark.parametrize("path", LESSONS, ids=lambda p: p.name)
def test_papermill_reads_every_setting_of_the_parameters_cell(path, caplog):
    """papermill parses the tagged cell (for --help-notebook and for typing injected values); a comment it cannot
    read (e.g. one holding '=') is logged as "Unable to parse line", and the setting is missing from its list."""
    import papermill
    nb = nbformat.read(path, as_version=4)
    tagged = next(c for c in code_cells(nb) if "parameters" in c.metadata.get("tags", []))
    with caplog.at_level("WARNING", logger="papermill"):
        found = papermill.inspect_notebook(str(path))
    assert not [r for r in caplog.records if "Unable to parse" in r.getMessage()], caplog.text
    assert set(found) == assigned_names(tagged.source)


@pytest.mark.parametrize("path", LESSONS, ids=lambda p: p.name)
def test_runner_parameters_reach_lesson_start(path):
    nb = nbformat.read(path, as_version=4)
    tagged = next(c for c in code_cells(nb) if "parameters" in c.metadata.get("tags", []))
    runner_names = assigned_names(tagged.source) & set(parameters.RUNNER_PARAMETERS)
    assert {"DATA_DIR", "QUICK", "SEED"} <= runner_names, path.name
    start = next(c.source for c in code_cells(nb) if "wu.lesson.start(" in c.source)
    call = start[start.index("wu.lesson.start("):]
    call = call[: call.index(")") + 1]
    for name in runner_names:
        assert f"{START_KEYWORDS[name]}={name}" in call, f"{path.name}: {name} does not reach lesson.start"
    assert f'"{path.stem}"' in call, f"{path.name}: lesson.start should be given the notebook's name"


def test_every_lesson_keeps_to_the_runner_declaration_defaults():
    # The shared settings have the same default everywhere, except EPOCHS (lesson 6 trains its own recipe).
    values: dict[str, set[str]] = {}
    for path in LESSONS:
        tagged = next(c for c in code_cells(nbformat.read(path, as_version=4))
                      if "parameters" in c.metadata.get("tags", []))
        for node in ast.parse(tagged.source).body:
            if isinstance(node, ast.Assign) and node.targets[0].id in parameters.RUNNER_PARAMETERS:
                values.setdefault(node.targets[0].id, set()).add(ast.unparse(node.value))
    assert {k: v for k, v in values.items() if len(v) > 1 and k != "EPOCHS"} == {}


def repeated_share(paths: list[Path]) -> float:
    """The share of code lines (stripped, comments left out) that appear verbatim in 3 or more of ``paths``."""
    per = []
    for path in paths:
        lines = [line.strip() for c in json.loads(path.read_text())["cells"] if c["cell_type"] == "code"
                 for line in "".join(c["source"]).splitlines() if line.strip() and not line.strip().startswith("#")]
        per.append(lines)
    seen = Counter(line for lines in per for line in set(lines))
    return sum(1 for lines in per for line in lines if seen[line] >= 3) / sum(map(len, per))


def test_lessons_are_mostly_their_own_code():
    share = repeated_share(LESSONS)
    assert share <= 0.25, f"{share:.0%} of the lessons' code lines repeat in 3+ lessons (goal: at most 25%)"


def test_exercises_are_headed_and_checked():
    for path in LESSONS[1:]:  # lessons 2-9 end with exercises
        nb = nbformat.read(path, as_version=4)
        number = int(path.name[:2])
        headings = re.findall(r"^### Exercise (\d+)\.(\d+)$", "\n".join(c.source for c in nb.cells), re.M)
        assert 2 <= len(headings) <= 4 and all(int(n) == number for n, _ in headings), (path.name, headings)
        cells = nb.cells
        answers = [i for i, c in enumerate(cells) if "solution" in c.metadata.get("tags", [])]
        assert len(answers) == len(headings), path.name
        for i in answers:
            assert student.BEGIN in cells[i].source and student.END in cells[i].source, path.name
            check = cells[i + 1]
            assert check.cell_type == "code" and "wu.exercises.check_" in check.source, (path.name, i)


def test_student_copies_are_up_to_date():
    stale = student.outdated()
    assert not stale, f"out of date: {stale}; run `python -m workshop_utils student`"


def test_student_copy_blanks_the_solution_and_keeps_the_rest():
    lesson = nbformat.read(LESSONS[1], as_version=4)
    copy = student.student_copy(lesson, LESSONS[1].name)
    answers = [c for c in copy.cells if "raises-exception" in c.metadata.get("tags", [])]
    assert answers and all('raise wu.exercises.YourTurn("2.' in c.source for c in answers)
    assert all(student.BEGIN not in c.source for c in copy.cells)
    assert "my_head = None" in answers[0].source  # the check cell below gets None, not a NameError
    assert any("notebooks/student/02_baseline_vgg16.ipynb" in c.source for c in copy.cells)  # its own badge
    assert len(copy.cells) == len(lesson.cells) + 1  # plus the note saying what a student copy is
    assert any(student.BEGIN in c.source for c in lesson.cells)  # the lesson itself is untouched


def test_blank_solution_keeps_indentation_and_rejects_missing_markers():
    source = "answer = None\nif True:\n    ### BEGIN SOLUTION\n    answer = 42\n    ### END SOLUTION\nprint(answer)"
    assert student.blank_solution(source, "9.1").splitlines() == [
        "answer = None", "if True:",
        '    raise wu.exercises.YourTurn("9.1")  # your answer here, instead of this line', "print(answer)"]
    with pytest.raises(ValueError, match="BEGIN SOLUTION"):
        student.blank_solution("answer = 42", "9.2")


def test_lesson_2_writes_out_the_head_that_later_lessons_call():
    keras = pytest.importorskip("keras")
    from workshop_utils import heads

    nb = nbformat.read(LESSONS[1], as_version=4)
    cell = next(c.source for c in code_cells(nb) if c.source.startswith("head = keras.Sequential("))
    namespace = {"keras": keras, "layers": keras.layers, "feats": type("F", (), {"train": __import__("numpy").zeros(
        (1, 4, 4, 512))})()}
    exec(cell.replace("head.summary()", ""), namespace)
    written, helper = namespace["head"], heads.flatten_dense((4, 4, 512))
    assert [type(layer).__name__ for layer in written.layers] == [type(layer).__name__ for layer in helper.layers]
    assert written.count_params() == helper.count_params() == 16_386



def test_lesson_7_unfreezes_block_5_layer_by_layer():
    """Lesson 7's split and unfreeze cells, run on a random VGG16: after its unfreeze cell every weight of block 5
    trains (7,079,424) beside the head. On TensorFlow, the line it replaced (``block_5.trainable = True``) leaves
    block 5 frozen, which is what its prose says and what its check cell catches."""
    keras = pytest.importorskip("keras")
    import numpy as np

    import workshop_utils as wu

    nb = nbformat.read(LESSONS[6], as_version=4)
    split = next(c.source for c in code_cells(nb) if c.source.startswith("gray = keras.Input(lesson.input_shape)"))
    unfreeze = next(c.source for c in code_cells(nb) if c.source.startswith("for layer in block_5.layers:"))

    def lesson_7_namespace() -> dict:
        base = keras.applications.VGG16(weights=None, include_top=False, input_shape=(64, 64, 3))
        base.trainable = False  # lesson.frozen_vgg16()
        namespace = {"keras": keras, "np": np, "wu": wu, "base": base, "FINE_TUNE_LR": 3e-5,
                     "lesson": type("L", (), {"input_shape": (64, 64, 1)})()}
        exec(split, namespace)
        namespace["head"] = wu.heads.regularised(namespace["block_5"].output.shape[1:])
        return namespace

    namespace = lesson_7_namespace()
    exec(unfreeze, namespace)
    block_5, model = namespace["block_5"], namespace["fine_tune_model"]
    assert namespace["block_5_trainable"] == block_5.count_params() == 7_079_424
    trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    assert trainable == 7_079_424 + sum(int(np.prod(w.shape)) for w in namespace["head"].trainable_weights)
    if keras.backend.backend() == "tensorflow":
        old = lesson_7_namespace()
        old["block_5"].trainable = True  # the line lesson 7 used to have
        assert not old["block_5"].trainable_weights
        with pytest.raises(AssertionError, match="block 5 is still frozen"):
            exec(unfreeze.replace("    layer.trainable = True", "    pass"), old)

def recorded_numbers(value) -> set[str]:
    """Every float inside a record (nested dicts and lists), as prose would quote it: three decimals."""
    if isinstance(value, float):
        return {f"{value:.3f}"}
    if isinstance(value, dict):
        value = list(value.values())
    if isinstance(value, list):
        return set().union(*(recorded_numbers(v) for v in value)) if value else set()
    return set()


def reference_values() -> set[str]:
    """Every number the reference runs recorded (metrics with their CI bounds, lesson 2's contrast, lesson 9's
    shift measures and remedies, the thresholds), as prose would quote it: three decimals."""
    from workshop_utils import report

    values = set()
    for entry in [e for run in (report.REFERENCE_RUN, report.RANDOM_REFERENCE_RUN)
                  for e in report.load_summary(run)["results"]]:
        values |= recorded_numbers([entry["metrics"], entry.get("random_contrast", {}), entry.get("shift", {}),
                                    entry.get("remedies", {}), entry.get("threshold")])
    return values


#: A metric as prose quotes it: three decimals.
QUOTED_NUMBER = re.compile(r"(?<![\d.])0\.\d{3}(?!\d)")
#: The GPU study's output (benchmarks/gpu/transfer_study.py), which "**In the GPU study**" paragraphs quote.
GPU_STUDY = Path(__file__).resolve().parents[1] / "benchmarks" / "records" / "gpu_transfer_study.md"


def quoted_numbers(prefix: str) -> dict[str, list[str]]:
    """The numbers of each paragraph starting with ``prefix`` in the lessons' prose, the README and
    benchmarks/README.md, by file."""
    texts = {path.name: [c.source for c in nbformat.read(path, as_version=4).cells if c.cell_type == "markdown"]
             for path in LESSONS}
    root = Path(__file__).resolve().parents[1]
    for document in ("README.md", "benchmarks/README.md"):
        texts[document] = [(root / document).read_text(encoding="utf-8")]
    return {name: [n for source in sources for p in source.split("\n\n") if p.startswith(prefix)
                   for n in QUOTED_NUMBER.findall(p)] for name, sources in texts.items()}


def test_numbers_a_lesson_quotes_from_the_reference_run_are_in_it():
    """A paragraph of lesson prose (or of the README) that starts with "**In the reference run**" quotes numbers
    from the reference runs: each must be one they recorded, so a rerun that changes them fails here."""
    known = reference_values()
    quoted = quoted_numbers("**In the reference run**")
    for name, numbers in quoted.items():
        assert set(numbers) <= known, (name, sorted(set(numbers) - known))
    counts = Counter({name: len(numbers) for name, numbers in quoted.items()})
    assert counts["README.md"] and sum(counts.values()) >= 30, counts  # the README and the lessons whose claims failed


def test_numbers_quoted_from_the_gpu_study_are_in_its_output():
    """A paragraph that starts with "**In the GPU study**" quotes the study's output (its tables and each
    candidate's line, benchmarks/records/gpu_transfer_study.md): a number that is not there was typed, not measured."""
    known = set(QUOTED_NUMBER.findall(GPU_STUDY.read_text(encoding="utf-8")))
    quoted = quoted_numbers("**In the GPU study**")
    for name, numbers in quoted.items():
        assert set(numbers) <= known, (name, sorted(set(numbers) - known))
    assert {name for name, numbers in quoted.items() if numbers} >= {"benchmarks/README.md", "05_augmentation.ipynb",
                                                                      "07_fine_tuning.ipynb"}, quoted
