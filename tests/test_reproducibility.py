"""One seed controls splits, initialisation, dropout, augmentation and shuffling: two runs of every lesson (quick
mode on the synthetic data, each with its own empty cache) give identical numbers. The first run is the lessons'
nbval run of this test session (conftest.py runs this test after the notebooks, with the runner's parameters), so
every lesson is run once more here, by the runner, not twice; run alone, this test runs the runner twice. The
full-path version on the real data (lessons 2, 3 and 6 at 64 px) is tests/test_real_data_profile.py."""
import json
import os
from pathlib import Path

from workshop_utils import runner

#: What conftest.py passes to every lesson under nbval (the runner's quick synthetic run; seed: the lessons' default).
SETTINGS = {"QUICK": True, "WEIGHTS": None}


def _entries(run: Path) -> dict:
    path = run / "results.json"
    return {e["lesson"]: e for e in json.loads(path.read_text())} if path.is_file() else {}


def _run(tmp_path, monkeypatch, name: str) -> tuple[Path, Path]:
    # a separate cache: images are decoded and features computed again, not just read back
    cache = tmp_path / name / "cache"
    monkeypatch.setenv("WORKSHOP_CACHE_DIR", str(cache))
    out = tmp_path / name / "run"
    assert runner.run_series(out, "synthetic", SETTINGS) == 0
    return out, cache


def test_two_runs_of_every_lesson_give_identical_numbers(tmp_path, monkeypatch):
    trained = len(runner.lesson_notebooks(runner.NOTEBOOK_DIR)) - 1  # lesson 1 trains nothing
    nbval_run = Path(os.environ.get("WORKSHOP_TEST_LESSONS_RUN", tmp_path / "none"))
    if len(_entries(nbval_run)) == trained:  # the notebooks ran in this session: compare with their run
        first = (nbval_run, Path(os.environ["WORKSHOP_TEST_LESSONS_CACHE"]))
    else:
        first = _run(tmp_path, monkeypatch, "a")
    print(f"first run: {first[0]}")  # shown with pytest -rP: the nbval run, or a run of this test's own
    second = _run(tmp_path, monkeypatch, "b")
    entries = [_entries(run) for run, _cache in (first, second)]
    assert len(entries[1]) == trained
    assert list(entries[0]) == list(entries[1])
    for name, entry in entries[0].items():
        assert entry["metrics"] == entries[1][name]["metrics"], name
        assert entry["epochs_run"] == entries[1][name]["epochs_run"], name
        # the same test probabilities, image by image (the synthetic images live in each run's own cache folder)
        csv = f"models/{name}.test.csv"
        assert ((first[0] / csv).read_text().replace(str(first[1]), "")
                == (second[0] / csv).read_text().replace(str(second[1]), "")), name
