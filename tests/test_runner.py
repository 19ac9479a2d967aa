"""The runner: executes the lessons in order, passes only the settings given (to the lessons that declare them),
shows the notebooks' warnings, writes a report of what each lesson actually used, and refuses bad input."""
import json
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from workshop_utils import hed_vgg16, lesson, parameters, results, runner
from workshop_utils.predict import predict_files

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "chest_xray"


def _notebook(path: Path, *sources: str, tag_first: bool = True) -> Path:
    nb = new_notebook(cells=[new_code_cell(s) for s in sources])
    if tag_first:
        nb.cells[0].metadata["tags"] = ["parameters"]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)
    return path


def _metrics(value: float) -> dict:
    metric = {"value": value, "low": max(0.0, value - 0.1), "high": min(1.0, value + 0.1)}
    return {**{m: dict(metric) for m in results.METRICS}, "n": 20}


#: A lesson cell that records what it used, as the lessons do (results.record_result with the settings).
RECORD = ("from workshop_utils import results\n"
          "results.record_result(RUN_DIR + '/results.json', NAME, {metrics!r}, 1.5, image_size=IMAGE_SIZE, "
          "epochs=EPOCHS, epochs_run=min(EPOCHS, 2), quick=False, subset=None, weights='none (random weights)', "
          "test_n=20)")


def test_runner_stops_at_the_failing_notebook_and_shows_the_cell(tmp_path, capsys):
    nbs = tmp_path / "nbs"
    nbs.mkdir()
    params = "IMAGE_SIZE = 150\nPRECISION = 'float32'"
    _notebook(nbs / "01_ok.ipynb", params, "open('ran-01', 'w').write(f'{IMAGE_SIZE} {PRECISION}')")
    _notebook(nbs / "02_fails.ipynb", params, "x = 1\nraise ValueError('boom in lesson two')")
    _notebook(nbs / "03_never.ipynb", params, "open('ran-03', 'w').write('x')")
    out = tmp_path / "run"
    code = runner.run_series(out, "synthetic", {"IMAGE_SIZE": 32, "PRECISION": "mixed_bfloat16"}, notebook_dir=nbs)
    err = capsys.readouterr().err
    assert code == 1
    assert "02_fails.ipynb failed" in err and "boom in lesson two" in err and "raise ValueError" in err
    assert (out / "ran-01").read_text() == "32 mixed_bfloat16"  # parameters were injected
    assert not (out / "ran-03").exists()
    assert (out / "02_fails.ipynb").exists()  # the executed notebook, with its error, is kept


def _student_notebook(path: Path, *cells: tuple[str, list[str]]) -> Path:
    """A notebook whose cells are (source, tags): a parameters cell first, as in a lesson."""
    nb = new_notebook(cells=[new_code_cell("SEED = 1", metadata={"tags": ["parameters"]})]
                      + [new_code_cell(source, metadata={"tags": tags}) for source, tags in cells])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)
    return path


BLANK = ('import workshop_utils as wu\nmy_answer = None\nraise wu.exercises.YourTurn("{}")', ["raises-exception"])


def test_a_student_copy_runs_through_with_its_exercises_left_to_the_attendee(tmp_path, capsys):
    """A student copy's blank answer cells raise YourTurn (tagged raises-exception): the runner runs every other
    cell, names the exercises left, and counts the notebook as run (an instructor trying the student copies, and
    benchmarks/scratch_cnn.py, run them); any other error still fails it."""
    nbs = tmp_path / "nbs"
    nbs.mkdir()
    _student_notebook(nbs / "01_student.ipynb", (BLANK[0].format("1.1"), BLANK[1]), ("open('after', 'w')", []),
                      (BLANK[0].format("1.2"), BLANK[1]))
    out = tmp_path / "run"
    assert runner.run_series(out, "synthetic", {"SEED": 3}, notebook_dir=nbs) == 0
    assert "exercises left to you: 1.1, 1.2" in capsys.readouterr().out
    assert (out / "after").exists()  # the cell between the blank answers ran
    executed = nbformat.read(out / "01_student.ipynb", as_version=4)
    assert all(c.cell_type == "code" for c in executed.cells)  # no "An Exception was encountered" banner
    assert [o.ename for c in executed.cells for o in c.get("outputs", []) if o.output_type == "error"] == [
        "YourTurn", "YourTurn"]

    broken = tmp_path / "broken"
    broken.mkdir()
    _student_notebook(broken / "01_student.ipynb", (BLANK[0].format("1.1"), BLANK[1]),
                      ("raise ValueError('a real bug')", []))
    assert runner.run_series(tmp_path / "run2", "synthetic", notebook_dir=broken) == 1
    assert "a real bug" in capsys.readouterr().err

    untagged = tmp_path / "untagged"  # YourTurn outside a blank answer cell is an error too
    untagged.mkdir()
    _student_notebook(untagged / "01_student.ipynb", (BLANK[0].format("1.1"), []))
    assert runner.run_series(tmp_path / "run3", "synthetic", notebook_dir=untagged) == 1


def test_only_the_given_settings_reach_only_the_lessons_that_declare_them(tmp_path, capsys):
    """`run --epochs 5` reaches every lesson with EPOCHS (whatever its own default); a setting not given keeps
    each lesson's default; a lesson without EPOCHS gets no EPOCHS; the report shows what each lesson used."""
    nbs = tmp_path / "nbs"
    nbs.mkdir()
    dump = "import json\njson.dump({k: v for k, v in globals().items() if k.isupper()}, open(NAME + '.json', 'w'))"
    _notebook(nbs / "01_explore.ipynb", "DATA_DIR = None\nNAME = '01'", dump)
    _notebook(nbs / "02_head.ipynb", "DATA_DIR = None\nIMAGE_SIZE = 150\nEPOCHS = 30\nRUN_DIR = 'r'\n"
              "NAME = '02'", dump, RECORD.format(metrics=_metrics(0.8)))
    _notebook(nbs / "06_scratch.ipynb", "IMAGE_SIZE = 150\nEPOCHS = 10\nSEED = 7\nRUN_DIR = 'r'\n"
              "NAME = '06'", dump, RECORD.format(metrics=_metrics(0.0)))
    out = tmp_path / "run"
    assert runner.run_series(out, "synthetic", {"EPOCHS": 5}, notebook_dir=nbs) == 0
    seen = {n: json.loads((out / f"{n}.json").read_text()) for n in ("01", "02", "06")}
    assert "EPOCHS" not in seen["01"] and "RUN_DIR" not in seen["01"]
    assert seen["02"]["EPOCHS"] == 5 and seen["02"]["IMAGE_SIZE"] == 150  # given / the lesson's own default
    assert seen["06"]["EPOCHS"] == 5 and seen["06"]["SEED"] == 7
    assert seen["02"]["RUN_DIR"] == seen["06"]["RUN_DIR"] == str(out.resolve())
    assert "DATA_DIR" not in seen["06"]  # not declared there, so not passed
    console = capsys.readouterr().out
    assert "Your settings: --epochs 5;" in console
    assert "[1/3] 01_explore.ipynb  (its own defaults)" in console
    assert "[3/3] 06_scratch.ipynb  (--epochs 5; own defaults otherwise)" in console

    summary = json.loads((out / "summary.json").read_text())
    assert summary["settings_given"] == {"EPOCHS": 5}
    assert summary["lesson_settings"]["06"] == {"image_size": 150, "epochs": 5, "epochs_run": 2, "quick": False,
                                                "subset": None, "weights": "none (random weights)", "test_n": 20}
    assert summary["notebooks"]["02_head.ipynb"]["parameters"]["EPOCHS"] == 5
    report = (out / "results.md").read_text()
    assert "| lesson | weights | quick | image size | epochs | test n | accuracy |" in report
    assert "| 06 | none (random weights) | no | 150 | 2 of 5 | 20 | 0.000 [0.000, 0.100] |" in report
    assert "Settings given: `--epochs 5`" in report
    assert (out / "comparison.png").stat().st_size > 10_000


def test_epochs_reaches_every_lesson_that_declares_it_lesson_6_included():
    """The real lessons (not run): `--epochs 5` goes to each one whose parameters cell has EPOCHS."""
    import papermill

    given = {"EPOCHS": 5, "DATA_DIR": "/data", "RUN_DIR": "/run"}
    reached = []
    for notebook in runner.lesson_notebooks():
        declared = papermill.inspect_notebook(str(notebook))
        passed = runner.notebook_parameters(notebook, given)
        assert passed == {name: value for name, value in given.items() if name in declared}, notebook.name
        reached += [notebook.name[:2]] if passed.get("EPOCHS") == 5 else []
    assert "06" in reached and len(reached) >= 6


def test_a_setting_no_lesson_takes_is_named(tmp_path, capsys):
    nbs = tmp_path / "nbs"
    nbs.mkdir()
    _notebook(nbs / "01_explore.ipynb", "IMAGE_SIZE = 150", "pass")
    assert runner.run_series(tmp_path / "run", "synthetic", {"SEED": 3}, notebook_dir=nbs) == 0
    assert "Note: no lesson run here takes SEED: --seed has no effect." in capsys.readouterr().out


def test_the_notebooks_warnings_reach_the_console_and_the_report(tmp_path, capsys):
    nbs = tmp_path / "nbs"
    nbs.mkdir()
    warn = ("import warnings\n"
            "warnings.warn('train: skipped 2 unreadable images of 50: a.jpeg, b.jpeg')\n"
            "warnings.warn('No GPU found: lessons run on the CPU, slowly.')\n"
            "import sys\nprint('progress 10/10', file=sys.stderr)")
    native = ("import sys\nprint('2026-11-29 04:19:{}.144442: W tensorflow/py_utils.cc:38] TF-TRT Warning: Could "
              "not find TensorRT', file=sys.stderr)")  # TensorFlow's C++ log: a new time stamp in each notebook
    _notebook(nbs / "01_one.ipynb", "X = 1", warn, native.format(11))
    _notebook(nbs / "02_two.ipynb", "X = 1", "import warnings\n"
              "warnings.warn('No GPU found: lessons run on the CPU, slowly.')", native.format(22))
    out = tmp_path / "run"
    assert runner.run_series(out, "synthetic", notebook_dir=nbs) == 0
    console = capsys.readouterr().out
    assert "    warning: UserWarning: train: skipped 2 unreadable images of 50: a.jpeg, b.jpeg" in console
    assert console.count("warning: UserWarning: No GPU found") == 1  # once, then "as in an earlier notebook"
    assert "(2 warning(s) as in an earlier notebook)" in console
    assert console.count("    warning: TF-TRT Warning: Could not find TensorRT\n") == 1
    assert "warnings.warn(" not in console and "progress 10/10" not in console
    report = (out / "results.md").read_text()
    assert "## Warnings the notebooks printed" in report
    assert "  - UserWarning: train: skipped 2 unreadable images of 50: a.jpeg, b.jpeg" in report
    assert report.count("No GPU found") == 2  # under each notebook


def test_warnings_of_a_failing_notebook_are_shown(tmp_path, capsys):
    nbs = tmp_path / "nbs"
    nbs.mkdir()
    _notebook(nbs / "01_fails.ipynb", "X = 1", "import warnings\nwarnings.warn('Skipped unreadable image x.jpeg')\n"
              "raise RuntimeError('no images left')")
    assert runner.run_series(tmp_path / "run", "synthetic", notebook_dir=nbs) == 1
    assert "warning: UserWarning: Skipped unreadable image x.jpeg" in capsys.readouterr().out


@pytest.mark.parametrize("only, expected", [
    (["2"], ["02_baseline_vgg16"]),
    (["02"], ["02_baseline_vgg16"]),
    (["3", "2"], ["02_baseline_vgg16", "03_class_weights"]),
    (["2,3"], ["02_baseline_vgg16", "03_class_weights"]),
    (["02_baseline"], ["02_baseline_vgg16"]),
    (["06_from_scratch_cnn.ipynb"], ["06_from_scratch_cnn"]),
    (None, ["01_data_exploration", "02_baseline_vgg16", "03_class_weights", "06_from_scratch_cnn"]),
])
def test_only_accepts_numbers_and_names(only, expected):
    notebooks = [Path(f"/x/{n}.ipynb") for n in ("01_data_exploration", "02_baseline_vgg16", "03_class_weights",
                                                 "06_from_scratch_cnn")]
    assert [p.stem for p in runner.select_lessons(notebooks, only)] == expected


@pytest.mark.parametrize("only", [["99"], ["2", "99"], ["baseline"], ["0"]])
def test_only_refuses_an_unknown_lesson_and_lists_them(only):
    notebooks = [Path(f"/x/{n}.ipynb") for n in ("01_data_exploration", "02_baseline_vgg16")]
    with pytest.raises(runner.RunError) as err:
        runner.select_lessons(notebooks, only)
    assert str(err.value).startswith(f"--only {only[-1]}: there is no such lesson in /x. The lessons are: "
                                     "01_data_exploration, 02_baseline_vgg16. Give their numbers, e.g. --only 2 3.")


def test_a_run_folder_with_results_is_not_reused(tmp_path):
    runner.check_run_folder(tmp_path / "new")  # absent: fine
    (tmp_path / "empty").mkdir()
    runner.check_run_folder(tmp_path / "empty")  # empty: fine
    used = tmp_path / "used"
    (used / "models").mkdir(parents=True)
    (used / "results.json").write_text("[]")
    with pytest.raises(runner.RunError, match=r"already holds a run \(results.json, models\): its results would "
                                              r"mix with this run's. Give a new folder with --out"):
        runner.check_run_folder(used)
    lessons = tmp_path / "lessons"
    lessons.mkdir()
    _notebook(lessons / "01_a.ipynb", "X = 1")
    with pytest.raises(runner.RunError, match=r"holds notebooks \(01_a.ipynb\), which the run would overwrite"):
        runner.check_run_folder(lessons)
    (tmp_path / "file").write_text("x")
    with pytest.raises(runner.RunError, match="is a file, not a folder"):
        runner.check_run_folder(tmp_path / "file")


def test_a_reused_run_folder_is_refused_before_anything_runs(tmp_path):
    nbs = tmp_path / "nbs"
    nbs.mkdir()
    _notebook(nbs / "01_a.ipynb", "X = 1", "open('ran', 'w').write('x')")
    out = tmp_path / "run"
    assert runner.run_series(out, "synthetic", notebook_dir=nbs) == 0
    before = (out / "results.md").read_text()
    (out / "ran").unlink()
    with pytest.raises(runner.RunError, match="already holds a run"):
        runner.run_series(out, "synthetic", notebook_dir=nbs)
    assert not (out / "ran").exists() and (out / "results.md").read_text() == before


def test_peak_memory_is_not_measured_without_resource(tmp_path, monkeypatch):
    """Windows has no `resource` module: the run still completes and the report says so."""
    monkeypatch.setitem(__import__("sys").modules, "resource", None)
    assert runner.peak_kernel_memory_mb() is None
    nbs = tmp_path / "nbs"
    nbs.mkdir()
    _notebook(nbs / "01_a.ipynb", "X = 1", "pass")
    assert runner.run_series(tmp_path / "run", "synthetic", notebook_dir=nbs) == 0
    assert ("Peak memory of a notebook kernel: not measured on this platform (Python's resource module is "
            "Unix-only).") in (tmp_path / "run" / "results.md").read_text()
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["peak_kernel_memory_mb"] is None


def test_peak_memory_is_measured_on_unix():
    pytest.importorskip("resource")
    peak = runner.peak_kernel_memory_mb()
    assert peak is not None and peak >= 0


def test_every_runner_parameter_has_one_option():
    """The options are derived from parameters.RUNNER_PARAMETERS: each one is an option, or RUN_DIR (--out)."""
    import argparse

    parser = argparse.ArgumentParser()
    runner.add_run_arguments(parser)
    dests = {a.dest for a in parser._actions}
    for name in parameters.RUNNER_PARAMETERS:
        assert name == runner.RUN_FOLDER_PARAMETER or (name in runner.OPTIONS and name in dests), name
    assert set(runner.OPTIONS) | {runner.RUN_FOLDER_PARAMETER} == set(parameters.RUNNER_PARAMETERS)
    args = parser.parse_args(["--epochs", "5", "--weights", "none", "--quick"])
    assert {k: v for k, v in vars(args).items() if k.isupper()} == {"EPOCHS": 5, "WEIGHTS": None, "QUICK": True}
    assert runner.as_options({"EPOCHS": 5, "WEIGHTS": None, "QUICK": True}) == "--epochs 5 --weights none --quick"


def test_missing_notebooks_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="No lesson notebooks"):
        runner.lesson_notebooks(tmp_path)


@pytest.mark.skipif(not SHARED.is_dir(), reason="needs ../shared/data/chest_xray")
def test_runner_quick_on_the_real_data(tmp_path, monkeypatch):
    monkeypatch.setenv("WORKSHOP_CACHE_DIR", str(tmp_path / "cache"))
    out = tmp_path / "run"
    assert runner.run_series(out, str(SHARED), {"QUICK": True, "WEIGHTS": "hed"}) == 0  # the pretrained stand-in
    entries = json.loads((out / "results.json").read_text())
    lessons = [nb.stem for nb in runner.lesson_notebooks()]
    assert [e["lesson"] for e in entries] == lessons[1:]  # every lesson after the data exploration records a result
    summary = json.loads((out / "summary.json").read_text())
    assert summary["settings_given"] == {"QUICK": True, "WEIGHTS": "hed"}
    for e in entries:
        used = summary["lesson_settings"][e["lesson"]]
        assert used["quick"] is True and used["image_size"] == parameters.QUICK_PRESET["IMAGE_SIZE"]
        assert used["weights"] is None or used["weights"].startswith(hed_vgg16.DESCRIPTION)  # None: lesson 6
        assert e["metrics"]["n"] == used["test_n"]
        m = e["metrics"]["accuracy"]
        assert m["low"] <= m["value"] <= m["high"]
    report = (out / "results.md").read_text()
    for nb in runner.lesson_notebooks():
        assert nb.name in report and (out / nb.name).exists()
    assert (out / "comparison.png").stat().st_size > 10_000
    models = sorted((out / "models").glob("*.keras"))
    assert [m.stem for m in models] == lessons[1:]  # every lesson saved a model for `predict`
    for model in models:  # ... which takes what predict gives it: predict reproduces the lesson's test probabilities
        rows = lesson.read_predictions(model.with_suffix(".test.csv"))
        predicted = predict_files(model, [r["file"] for r in rows])
        gap = max(abs(p["p_pneumonia"] - r["p_pneumonia"]) for p, r in zip(predicted, rows, strict=True))
        assert gap < 0.01, (model.name, gap)


def test_results_table_shows_what_each_lesson_used():
    quick = {"lesson": "02_baseline_vgg16", "metrics": _metrics(0.5), "train_seconds": 3.2, "quick": True,
             "subset": {"train": 320, "test": 160}, "image_size": 64, "epochs": 30, "epochs_run": 2,
             "weights": "none (random weights)", "test_n": 75}
    old = {"lesson": "an older record", "metrics": _metrics(0.9), "train_seconds": 10}
    assert results.results_table([quick, old]).splitlines() == [
        "| lesson | weights | quick | image size | epochs | test n | accuracy | sensitivity | specificity | precision "
        "| f1 | auc | train s |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
        "| 02_baseline_vgg16 | none (random weights) | yes (at most 320 train, 160 test images) | 64 | 2 of 30 | 75 | "
        + " | ".join(["0.500 [0.400, 0.600]"] * 6) + " | 3 |",
        "| an older record | - | - | - | - | 20 | " + " | ".join(["0.900 [0.800, 1.000]"] * 6) + " | 10 |"]


def test_comparison_legend_is_clear_of_the_bars_and_a_zero_shows():
    import matplotlib

    matplotlib.use("Agg")
    from workshop_utils.plots import plot_comparison

    entries = [{"lesson": f"0{i}_a_long_lesson_name", "metrics": _metrics(0.1 * i)} for i in range(2, 9)]
    entries[0]["metrics"]["specificity"] = {"value": 0.0, "low": 0.0, "high": 0.0}
    fig = plot_comparison(entries)
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    [legend] = fig.legends
    box = legend.get_window_extent(renderer)
    ax = fig.axes[0]
    bars = [p.get_window_extent(renderer) for p in ax.patches]
    assert len(bars) == 7 * 4 and not any(box.overlaps(bar) for bar in bars)
    assert fig.bbox.contains(box.x0, box.y0) and fig.bbox.contains(box.x1, box.y1)  # inside the saved image
    labels = [t.get_text() for t in ax.texts]
    assert labels.count("0.00") == 1 and "0.80" in labels  # every bar has its value; the zero is written too


def test_the_machine_names_its_processor(monkeypatch):
    # another CPU model gives other floating-point results: run records must say which one ran them
    described = runner.machine()
    if Path("/proc/cpuinfo").is_file():
        assert runner.processor() and runner.processor() in described
    monkeypatch.setattr(runner.platform, "processor", lambda: "Test CPU 9000")
    assert "Test CPU 9000" in runner.machine()
