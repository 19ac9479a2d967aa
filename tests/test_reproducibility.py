"""One seed controls splits, initialisation, dropout, augmentation and shuffling: two runs of every lesson (the
runner in quick mode on the synthetic data, each run with its own empty cache) give identical numbers. The
full-path version on the real data (lessons 2, 3 and 6 at 64 px) is tests/test_real_data_profile.py."""
import json

from workshop_utils import runner


def _run(tmp_path, monkeypatch, name: str):
    # separate caches: images are decoded and features computed again, not just read back
    monkeypatch.setenv("WORKSHOP_CACHE_DIR", str(tmp_path / name / "cache"))
    out = tmp_path / name / "run"
    assert runner.run_series(out, "synthetic", {"QUICK": True, "WEIGHTS": None, "SEED": 7}) == 0
    return out


def test_two_runs_of_every_lesson_give_identical_numbers(tmp_path, monkeypatch):
    first, second = (_run(tmp_path, monkeypatch, name) for name in ("a", "b"))
    entries = [{e["lesson"]: e for e in json.loads((run / "results.json").read_text())} for run in (first, second)]
    assert len(entries[0]) == len(runner.lesson_notebooks(runner.NOTEBOOK_DIR)) - 1  # lesson 1 trains nothing
    assert list(entries[0]) == list(entries[1])
    for name, entry in entries[0].items():
        assert entry["metrics"] == entries[1][name]["metrics"], name
        assert entry["epochs_run"] == entries[1][name]["epochs_run"], name
        # the same test probabilities, image by image (the synthetic images live in each run's own cache folder)
        csv = f"models/{name}.test.csv"
        assert ((first / csv).read_text().replace(str(tmp_path / "a"), "")
                == (second / csv).read_text().replace(str(tmp_path / "b"), "")), name
