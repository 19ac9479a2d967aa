"""One results file shared by all lessons: each lesson records its test metrics there."""
from __future__ import annotations

import json
import time
from pathlib import Path

from .metrics import METRICS

#: A run folder (``RUN_DIR``): the lessons record their results in this file there, and save their models in
#: this folder there.
RESULTS_FILE = "results.json"
MODELS_DIR = "models"


def record_result(results_file: str | Path, lesson: str, metrics: dict, train_seconds: float,
                  **details) -> dict:
    """Add (or replace) ``lesson``'s entry in the JSON results file and return it.

    ``metrics`` is the output of :func:`workshop_utils.metrics.evaluate`; ``details`` are free-form
    settings worth keeping (image size, epochs, weights, quick mode ...).
    """
    path = Path(results_file)
    results = load_results(path)
    entry = {"lesson": lesson, "metrics": metrics, "train_seconds": round(float(train_seconds), 1),
             "recorded": time.strftime("%Y-%m-%d %H:%M:%S"), **details}
    same = [i for i, r in enumerate(results) if r["lesson"] == lesson]
    if same:
        results[same[0]] = entry
    else:
        results.append(entry)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2))
    return entry


def load_results(results_file: str | Path) -> list[dict]:
    """All recorded entries, in the order they were first recorded (an absent file gives [])."""
    path = Path(results_file)
    if not path.exists():
        return []
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"Results file {path} is not valid JSON ({exc}); delete it and re-run the lessons.") from exc


#: The settings a lesson records (``lesson.finish``) that the results table shows, in its column order.
SETTING_COLUMNS = ("weights", "quick", "image size", "epochs", "test n")


def lesson_settings(entry: dict) -> dict:
    """What a lesson recorded besides its metrics: the settings it actually used (image size, epochs and
    epochs run, quick mode and subset, weights loaded, test size ...)."""
    return {k: v for k, v in entry.items() if k not in ("lesson", "metrics", "train_seconds", "recorded")}


def _setting_cells(entry: dict) -> list[str]:
    quick = entry.get("quick")
    subset = entry.get("subset") or {}
    if quick is None:
        quick_cell = "-"
    else:
        quick_cell = "yes" if quick else "no"
        if subset:
            quick_cell += " (at most " + ", ".join(f"{n} {split}" for split, n in subset.items()) + " images)"
    epochs, run = entry.get("epochs"), entry.get("epochs_run")
    epochs_cell = f"{run} of {epochs}" if run is not None and epochs is not None else str(epochs or run or "-")
    test_n = entry.get("test_n", entry.get("metrics", {}).get("n"))
    return [str(entry.get("weights") or "-"), quick_cell, str(entry.get("image_size") or "-"), epochs_cell,
            "-" if test_n is None else str(test_n)]


def results_table(results: list[dict]) -> str:
    """A Markdown table, one row per lesson: the settings it used (weights, quick mode, image size, epochs run
    of the most, test images), each metric as ``value [low, high]`` (95% CI), training time."""
    head = "| lesson | " + " | ".join((*SETTING_COLUMNS, *METRICS)) + " | train s |"
    rule = "|---" * (len(SETTING_COLUMNS) + len(METRICS) + 2) + "|"
    rows = []
    for r in results:
        cells = [f"{r['metrics'][m]['value']:.3f} [{r['metrics'][m]['low']:.3f}, {r['metrics'][m]['high']:.3f}]"
                 for m in METRICS]
        rows.append(f"| {r['lesson']} | " + " | ".join([*_setting_cells(r), *cells]) + f" | {r['train_seconds']:.0f} |")
    return "\n".join([head, rule, *rows])
