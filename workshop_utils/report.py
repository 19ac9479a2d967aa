"""The measured tables of README.md, docs/instructor.md and benchmarks/README.md, generated from a run folder, never typed.

A generated block sits between ``<!-- generated: NAME -->`` and ``<!-- end: NAME -->`` in a Markdown file;
``python -m workshop_utils report RUN_DIR --write README.md docs/instructor.md benchmarks/README.md`` rewrites every block it finds
from ``RUN_DIR/summary.json`` (what the runner wrote: settings, machine, date, commit, time per notebook, the
lessons' records). The committed reference run is ``benchmarks/reference/`` (pretrained VGG16 weights); the
random-weights run kept as the contrast is ``benchmarks/reference-random/``. A test checks that the blocks in the
repository equal what those runs generate.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable
from pathlib import Path

from .metrics import METRICS

REFERENCE_RUN = Path(__file__).resolve().parents[1] / "benchmarks" / "reference"
#: The reference run with random VGG16 weights (``--weights none``): the contrast block compares it with REFERENCE_RUN.
RANDOM_REFERENCE_RUN = REFERENCE_RUN.with_name("reference-random")
_BLOCK = re.compile(r"(<!-- generated: (?P<name>[\w-]+) -->\n)(?P<body>.*?)(<!-- end: (?P=name) -->)", re.S)


def load_summary(run_dir: str | Path) -> dict:
    """``RUN_DIR/summary.json``; a clear error when the folder is not a finished run."""
    path = Path(run_dir) / "summary.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: give the folder of a finished run "
                                "(python -m workshop_utils run writes summary.json at the end).")
    return json.loads(path.read_text())


def _ci(metric: dict) -> str:
    return f"{metric['value']:.3f} [{metric['low']:.3f}, {metric['high']:.3f}]"


def provenance(summary: dict) -> str:
    """One line: the command, data, date, commit, machine and versions the numbers come from."""
    from .runner import as_options

    command = f"python -m workshop_utils run {as_options(summary.get('settings_given') or {})}".strip()
    versions = ", ".join(f"{k} {v}" for k, v in (summary.get("versions") or {}).items())
    return (f"`{command}` on `{summary.get('data', '?')}`, {summary.get('date', 'date not recorded')}, commit "
            f"`{summary.get('commit', 'not recorded')}`; {summary.get('machine', 'machine not recorded')}"
            + (f"; {versions}" if versions else "") + ".")


def weights_named(entries: list[dict]) -> str:
    """The VGG16 weights the lessons used, each named once (without the machine's path to the file)."""
    used = {}
    for e in entries:
        if e.get("weights") not in (None, "-"):
            used.setdefault(re.sub(r" \((/|~|[A-Za-z]:\\)[^()]*\)$", "", e["weights"]), []).append(e["lesson"])
    without = [e["lesson"] for e in entries if e.get("weights") in (None, "-")]
    named = [f"{w} ({', '.join(lessons)})" if len(used) > 1 else w for w, lessons in used.items()]
    return ("VGG16 weights: " + "; ".join(named or ["none"]) + "."
            + (f" No pretrained weights: {', '.join(without)}." if without else ""))


def results_block(summary: dict) -> str:
    """Each lesson's test metrics with 95% CIs and what it used (image size, epochs run); the weights named once."""
    entries = summary["results"]
    test_n = sorted({e.get("test_n", e["metrics"]["n"]) for e in entries})
    lines = [provenance(summary), "", weights_named(entries), "",
             "| lesson | " + " | ".join(METRICS) + " | image size | epochs run | train s |",
             "|---" * (len(METRICS) + 4) + "|"]
    for e in entries:
        epochs = e.get("epochs_run") if e.get("epochs_run") is not None else "-"
        if e.get("epochs") is not None and e.get("epochs_run") is not None:
            epochs = f"{e['epochs_run']} of {e['epochs']}"
        cells = [_ci(e["metrics"][m]) for m in METRICS]
        lines.append(f"| {e['lesson']} | " + " | ".join(cells)
                     + f" | {e.get('image_size', '-')} | {epochs} | {e['train_seconds']:.0f} |")
    lines += ["", f"Test images: {', '.join(map(str, test_n))} (95% bootstrap confidence intervals in brackets)."]
    return "\n".join(lines)


def timings_block(summary: dict) -> str:
    """Seconds per notebook, the total and the peak memory of a notebook kernel."""
    notebooks = summary["notebooks"]
    total = summary["total_seconds"]
    memory = summary.get("peak_kernel_memory_mb")
    lines = [provenance(summary), "", "| notebook | seconds | minutes |", "|---|---|---|"]
    lines += [f"| {name} | {run['seconds']:.0f} | {run['seconds'] / 60:.1f} |" for name, run in notebooks.items()]
    lines += [f"| **total** | **{total:.0f}** | **{total / 60:.1f}** |", "",
              "Peak memory of a notebook kernel: " + (f"{memory:,} MB." if memory is not None else "not measured.")]
    return "\n".join(lines)


def contrast_block(summary: dict, random_summary: dict | None) -> str:
    """The lessons of ``summary`` beside the same lessons run with random VGG16 weights (``random_summary``)."""
    if random_summary is None:
        raise ValueError("The contrast block needs the random-weights run (benchmarks/reference-random).")
    random = {e["lesson"]: e for e in random_summary["results"]}
    shown = ("accuracy", "specificity", "auc")
    lines = [f"Pretrained: {provenance(summary)}", "", f"Random: {provenance(random_summary)}", "",
             "| lesson | " + " | ".join(f"{m}, pretrained | {m}, random" for m in shown) + " |",
             "|---" * (2 * len(shown) + 1) + "|"]
    missing = []
    for e in summary["results"]:
        if e.get("weights") in (None, "-"):
            continue  # a lesson without VGG16 (lesson 6) has nothing to contrast
        if e["lesson"] not in random:
            missing.append(e["lesson"])
            continue
        cells = [f"{e['metrics'][m]['value']:.3f} | {random[e['lesson']]['metrics'][m]['value']:.3f}" for m in shown]
        lines.append(f"| {e['lesson']} | " + " | ".join(cells) + " |")
    if missing:
        lines += ["", f"Not in the random-weights run (it has no row for them): {', '.join(missing)}."]
    return "\n".join(lines)


BLOCKS: dict[str, Callable[[dict, dict | None], str]] = {
    "results": lambda summary, _random: results_block(summary),
    "timings": lambda summary, _random: timings_block(summary),
    "contrast": contrast_block,
}


def render(text: str, summary: dict, random_summary: dict | None = None) -> str:
    """``text`` with every generated block rewritten from ``summary`` (and, for the contrast block, the
    random-weights run ``random_summary``); unknown block names are an error."""
    def replace(match: re.Match) -> str:
        name = match.group("name")
        if name not in BLOCKS:
            raise ValueError(f"Unknown generated block {name!r}: known ones are {sorted(BLOCKS)}.")
        return f"{match.group(1)}{BLOCKS[name](summary, random_summary)}\n{match.group(4)}"

    return _BLOCK.sub(replace, text)


def blocks_in(text: str) -> dict[str, str]:
    """The generated blocks of ``text``: name -> body."""
    return {m.group("name"): m.group("body") for m in _BLOCK.finditer(text)}


def add_report_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of the ``report`` sub-command."""
    parser.add_argument("run_dir", type=Path, nargs="?", default=REFERENCE_RUN,
                        help="a finished run folder (default: the committed reference run, benchmarks/reference)")
    parser.add_argument("--random", type=Path, default=RANDOM_REFERENCE_RUN, metavar="RUN_DIR",
                        help="the run with random VGG16 weights for the contrast block (default: "
                             "benchmarks/reference-random)")
    parser.add_argument("--write", type=Path, nargs="*", default=[], metavar="FILE",
                        help="Markdown files whose generated blocks to rewrite (e.g. README.md docs/instructor.md benchmarks/README.md); "
                             "without it, print the blocks")


def main_report(args: argparse.Namespace) -> int:
    """Run the ``report`` sub-command."""
    try:
        summary = load_summary(args.run_dir)
        random_summary = load_summary(args.random) if (Path(args.random) / "summary.json").is_file() else None
    except FileNotFoundError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if not args.write:
        for name, make in BLOCKS.items():
            if name != "contrast" or random_summary is not None:
                print(f"<!-- generated: {name} -->\n{make(summary, random_summary)}\n<!-- end: {name} -->\n")
        return 0
    for path in args.write:
        text = path.read_text(encoding="utf-8")
        found = blocks_in(text)
        if not found:
            print(f"error: {path} has no '<!-- generated: NAME -->' block", file=sys.stderr)
            return 1
        try:
            path.write_text(render(text, summary, random_summary), encoding="utf-8")
        except ValueError as exc:
            print(f"error: {path}: {exc}", file=sys.stderr)
            return 1
        print(f"{path}: rewrote {', '.join(found)}")
    return 0
