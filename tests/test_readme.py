"""The measured tables in README.md, docs/instructor.md and benchmarks/README.md are generated from the committed reference runs
(benchmarks/reference/, pretrained weights, and benchmarks/reference-random/, the random-weights contrast:
results.json and summary.json, with the machine, date, commit and settings), never typed."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from workshop_utils import hed_vgg16, report, weights

ROOT = Path(__file__).resolve().parents[1]
DOCUMENTS = [ROOT / "README.md", ROOT / "docs" / "instructor.md", ROOT / "benchmarks" / "README.md"]


@pytest.fixture(scope="module")
def summary() -> dict:
    return report.load_summary(report.REFERENCE_RUN)


@pytest.fixture(scope="module")
def random_summary() -> dict:
    return report.load_summary(report.RANDOM_REFERENCE_RUN)


@pytest.mark.parametrize("folder", [report.REFERENCE_RUN, report.RANDOM_REFERENCE_RUN], ids=lambda p: p.name)
def test_the_reference_runs_say_where_they_come_from(folder):
    summary = report.load_summary(folder)
    for key in ("date", "commit", "machine", "versions", "settings_given", "notebooks", "total_seconds"):
        assert summary.get(key), key
    recorded = json.loads((folder / "results.json").read_text())
    assert summary["results"] == recorded  # summary.json and results.json are the same run
    assert not any(entry.get("quick") for entry in recorded)  # full settings, not a smoke test


def test_the_reference_run_is_pretrained_and_says_which_weights(summary, random_summary):
    vgg16_lessons = [e for e in summary["results"] if e.get("weights")]
    assert vgg16_lessons and all(e["weights"].startswith(hed_vgg16.DESCRIPTION) for e in vgg16_lessons)
    assert not any(e["weights"].startswith("imagenet") for e in vgg16_lessons)  # named for what it is
    assert all(e.get("weights") in (None, weights.RANDOM) for e in random_summary["results"])


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda p: p.name)
def test_tables_equal_what_the_reference_run_generates(document, summary, random_summary):
    text = document.read_text(encoding="utf-8")
    assert report.blocks_in(text), f"{document.name} has no generated block"
    assert text == report.render(text, summary, random_summary), (
        f"{document} differs from the reference run: run `python -m workshop_utils report --write "
        "README.md docs/instructor.md benchmarks/README.md`, or rerun the series (benchmarks/series.py --reference)")


def test_the_readme_is_a_front_page_with_one_results_table():
    """The README: at most 130 lines, one results table whose weights are named once above it (not per row, and
    without a machine's path); the timings and the random-weights contrast live in benchmarks/README.md."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(readme.splitlines()) <= 130, len(readme.splitlines())
    assert set(report.blocks_in(readme)) == {"results"}
    assert set(report.blocks_in((ROOT / "benchmarks" / "README.md").read_text(encoding="utf-8"))) == {"timings",
                                                                                                     "contrast"}
    block = report.blocks_in(readme)["results"]
    assert block.count(hed_vgg16.DESCRIPTION) == 1 and "/.keras/" not in block
    assert "weights" not in [c.strip() for c in block.splitlines()[4].split("|")]  # no weights column
    assert "[benchmarks/README.md](benchmarks/README.md)" in readme


def test_weights_are_named_once_per_kind_without_paths():
    entries = [{"lesson": "02_a", "weights": "stand-in (/root/.keras/models/x.h5)"},
               {"lesson": "03_b", "weights": "stand-in (/root/.keras/models/x.h5)"},
               {"lesson": "06_c", "weights": None}]
    assert report.weights_named(entries) == "VGG16 weights: stand-in. No pretrained weights: 06_c."
    entries[1]["weights"] = "random (Glorot uniform)"
    assert report.weights_named(entries) == "VGG16 weights: stand-in (02_a); random (Glorot uniform) (03_b). " \
                                            "No pretrained weights: 06_c."


def test_the_contrast_puts_each_vgg16_lesson_beside_its_random_run(summary, random_summary):
    block = report.contrast_block(summary, random_summary)
    rows = [line for line in block.splitlines() if line.startswith("| 0")]
    random = {e["lesson"]: e for e in random_summary["results"]}
    vgg16 = [e["lesson"] for e in summary["results"] if e.get("weights") not in (None, "-")]
    assert [r.split(" | ")[0][2:] for r in rows] == [name for name in vgg16 if name in random]
    missing = [name for name in vgg16 if name not in random]
    assert not missing or f"Not in the random-weights run (it has no row for them): {', '.join(missing)}." in block
    first = summary["results"][1] if not summary["results"][0].get("weights") else summary["results"][0]
    assert f"{first['metrics']['auc']['value']:.3f} | {random[first['lesson']]['metrics']['auc']['value']:.3f}" in rows[0]
    with pytest.raises(ValueError, match="reference-random"):
        report.contrast_block(summary, None)


def test_render_replaces_only_the_blocks(summary):
    text = "before\n<!-- generated: timings -->\nstale\n<!-- end: timings -->\nafter\n"
    rendered = report.render(text, summary)
    assert rendered.startswith("before\n<!-- generated: timings -->\n") and rendered.endswith("<!-- end: timings -->\nafter\n")
    assert "stale" not in rendered and f"{summary['total_seconds']:.0f}" in rendered
    with pytest.raises(ValueError, match="Unknown generated block"):
        report.render("<!-- generated: nonsense -->\n<!-- end: nonsense -->", summary)


def test_the_gpu_study_record_is_what_its_saved_rows_give():
    """benchmarks/records/gpu_transfer_study.md (which the README and lessons 5 and 7 quote) holds the report that
    ``transfer_study.py report`` computes from the saved rows: its tables and decisions were not typed."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("transfer_study", ROOT / "benchmarks" / "gpu" / "transfer_study.py")
    study = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(study)
    rows = json.loads((ROOT / "benchmarks" / "records" / "gpu_transfer_study.json").read_text())["rows"]
    record = (ROOT / "benchmarks" / "records" / "gpu_transfer_study.md").read_text(encoding="utf-8")
    lines = study.report_lines(rows, (150, 224), (42, 43, 44))
    assert any(line.startswith("R4 lowest mean validation loss") for line in lines)
    missing = [line for line in lines if line.strip() and line not in record.replace("### ", "## ")]
    assert not missing, missing
