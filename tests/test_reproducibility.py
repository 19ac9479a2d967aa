"""One seed controls splits, initialisation and shuffling: two quick runs of a lesson give identical metrics."""
import json

import papermill
import pytest

from workshop_utils import runner


@pytest.mark.parametrize("lesson", ["03_class_weights.ipynb"])
def test_two_quick_runs_give_identical_metrics(tmp_path, monkeypatch, lesson):
    metrics = []
    for run in ("a", "b"):
        # separate caches: the features are recomputed too, not just read back
        monkeypatch.setenv("WORKSHOP_CACHE_DIR", str(tmp_path / run / "cache"))
        out = tmp_path / run
        out.mkdir(exist_ok=True)
        papermill.execute_notebook(str(runner.NOTEBOOK_DIR / lesson), str(out / lesson), cwd=str(out),
                                   kernel_name="python3", progress_bar=False,
                                   parameters={"DATA_DIR": "synthetic", "QUICK": True, "WEIGHTS": None, "SEED": 7,
                                               "RUN_DIR": str(out)})
        entry = json.loads((out / "results.json").read_text())[0]
        metrics.append(entry["metrics"])
    assert metrics[0] == metrics[1]
