"""The runner executes the lessons in order, writes the report, and stops at a failing notebook."""
import json
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from workshop_utils import runner

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "chest_xray"


def _notebook(path: Path, *sources: str, tag_first: bool = True) -> None:
    nb = new_notebook(cells=[new_code_cell(s) for s in sources])
    if tag_first:
        nb.cells[0].metadata["tags"] = ["parameters"]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)


def test_runner_stops_at_the_failing_notebook_and_shows_the_cell(tmp_path, capsys):
    nbs = tmp_path / "nbs"
    nbs.mkdir()
    params = ("DATA_DIR = None\nQUICK = False\nIMAGE_SIZE = 150\nEPOCHS = 30\nWEIGHTS = 'imagenet'\n"
              "PRECISION = 'float32'\nSEED = 42\nRESULTS_FILE = None\nMODEL_DIR = None")
    _notebook(nbs / "01_ok.ipynb", params, "open('ran-01', 'w').write(f'{IMAGE_SIZE} {PRECISION}')")
    _notebook(nbs / "02_fails.ipynb", params, "x = 1\nraise ValueError('boom in lesson two')")
    _notebook(nbs / "03_never.ipynb", params, "open('ran-03', 'w').write('x')")
    out = tmp_path / "run"
    code = runner.run_series(out, "synthetic", quick=True, image_size=32, notebook_dir=nbs, precision="mixed_bfloat16")
    err = capsys.readouterr().err
    assert code == 1
    assert "02_fails.ipynb failed" in err and "boom in lesson two" in err and "raise ValueError" in err
    assert (out / "ran-01").read_text() == "32 mixed_bfloat16"  # parameters were injected
    assert not (out / "ran-03").exists()
    assert (out / "02_fails.ipynb").exists()  # the executed notebook, with its error, is kept


def test_missing_notebooks_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="No lesson notebooks"):
        runner.lesson_notebooks(tmp_path)


@pytest.mark.skipif(not SHARED.is_dir(), reason="needs ../shared/data/chest_xray")
def test_runner_quick_on_the_real_data(tmp_path, monkeypatch):
    monkeypatch.setenv("WORKSHOP_CACHE_DIR", str(tmp_path / "cache"))
    out = tmp_path / "run"
    assert runner.run_series(out, str(SHARED), quick=True, weights=None) == 0
    entries = json.loads((out / "results.json").read_text())
    assert [e["lesson"] for e in entries] == ["02 baseline", "03 class weights", "04 dropout+batchnorm",
                                              "05 augmentation", "06 CNN from scratch", "07 fine-tuning",
                                              "08 threshold for 95% sensitivity"]
    for e in entries:
        assert e["metrics"]["n"] == 80  # quick mode: 40 test images per class
        m = e["metrics"]["accuracy"]
        assert m["low"] <= m["value"] <= m["high"]
    report = (out / "results.md").read_text()
    for nb in runner.lesson_notebooks():
        assert nb.name in report and (out / nb.name).exists()
    assert (out / "comparison.png").stat().st_size > 10_000
    assert json.loads((out / "summary.json").read_text())["params"]["QUICK"] is True
    models = sorted(p.name for p in (out / "models").glob("*.keras"))
    assert models[0] == "02_baseline.keras" and len(models) == 7  # every lesson saved a model for `predict`


def test_every_lesson_takes_and_applies_the_precision_parameter():
    for path in runner.lesson_notebooks():
        nb = nbformat.read(path, as_version=4)
        tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
        assert len(tagged) == 1 and 'PRECISION = "float32"' in tagged[0].source, path.name
        code = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
        if path.name.startswith("01"):
            continue  # data exploration trains nothing
        assert "keras.mixed_precision.set_global_policy(PRECISION)" in code, path.name
        assert 'activation="softmax", dtype="float32"' in code, path.name  # float32 outputs under mixed precision
