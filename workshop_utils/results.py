"""One results file shared by all lessons: each lesson records its test metrics there."""
from __future__ import annotations

import json
import time
from pathlib import Path

from .metrics import METRICS


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


def results_table(results: list[dict]) -> str:
    """A Markdown table: one row per lesson, each metric as ``value [low, high]``, training time."""
    head = "| lesson | " + " | ".join(METRICS) + " | train s |"
    rule = "|---" * (len(METRICS) + 2) + "|"
    rows = []
    for r in results:
        cells = [f"{r['metrics'][m]['value']:.3f} [{r['metrics'][m]['low']:.3f}, {r['metrics'][m]['high']:.3f}]"
                 for m in METRICS]
        rows.append(f"| {r['lesson']} | " + " | ".join(cells) + f" | {r['train_seconds']:.0f} |")
    return "\n".join([head, rule, *rows])
