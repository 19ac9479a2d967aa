"""The measured tables in README.md and docs/instructor.md are generated from the committed reference run
(benchmarks/reference/: results.json and summary.json, with the machine, date, commit and settings), never typed."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from workshop_utils import report

ROOT = Path(__file__).resolve().parents[1]
DOCUMENTS = [ROOT / "README.md", ROOT / "docs" / "instructor.md"]


@pytest.fixture(scope="module")
def summary() -> dict:
    return report.load_summary(report.REFERENCE_RUN)


def test_the_reference_run_says_where_it_comes_from(summary):
    for key in ("date", "commit", "machine", "versions", "settings_given", "notebooks", "total_seconds"):
        assert summary.get(key), key
    recorded = json.loads((report.REFERENCE_RUN / "results.json").read_text())
    assert summary["results"] == recorded  # summary.json and results.json are the same run
    assert not any(entry.get("quick") for entry in recorded)  # full settings, not a smoke test


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda p: p.name)
def test_tables_equal_what_the_reference_run_generates(document, summary):
    text = document.read_text(encoding="utf-8")
    assert report.blocks_in(text), f"{document.name} has no generated block"
    assert text == report.render(text, summary), (
        f"{document.name} differs from the reference run: run `python -m workshop_utils report --write "
        "README.md docs/instructor.md`, or rerun the series (benchmarks/series.py --reference)")


def test_readme_shows_both_tables():
    assert set(report.blocks_in((ROOT / "README.md").read_text(encoding="utf-8"))) == {"results", "timings"}


def test_render_replaces_only_the_blocks(summary):
    text = "before\n<!-- generated: timings -->\nstale\n<!-- end: timings -->\nafter\n"
    rendered = report.render(text, summary)
    assert rendered.startswith("before\n<!-- generated: timings -->\n") and rendered.endswith("<!-- end: timings -->\nafter\n")
    assert "stale" not in rendered and f"{summary['total_seconds']:.0f}" in rendered
    with pytest.raises(ValueError, match="Unknown generated block"):
        report.render("<!-- generated: nonsense -->\n<!-- end: nonsense -->", summary)
