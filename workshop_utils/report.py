"""The measured tables of README.md and docs/instructor.md, generated from a run folder, never typed.

A generated block sits between ``<!-- generated: NAME -->`` and ``<!-- end: NAME -->`` in a Markdown file;
``python -m workshop_utils report RUN_DIR --write README.md docs/instructor.md`` rewrites every block it finds
from ``RUN_DIR/summary.json`` (what the runner wrote: settings, machine, date, commit, time per notebook, the
lessons' records). The committed reference run is ``benchmarks/reference/``; a test checks that the blocks in
the repository equal what that run generates.
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


def results_block(summary: dict) -> str:
    """Each lesson's test metrics with 95% CIs and what it used (weights, image size, epochs run)."""
    entries = summary["results"]
    test_n = sorted({e.get("test_n", e["metrics"]["n"]) for e in entries})
    lines = [provenance(summary), "",
             "| lesson | " + " | ".join(METRICS) + " | weights | image size | epochs run | train s |",
             "|---" * (len(METRICS) + 5) + "|"]
    for e in entries:
        epochs = e.get("epochs_run") if e.get("epochs_run") is not None else "-"
        if e.get("epochs") is not None and e.get("epochs_run") is not None:
            epochs = f"{e['epochs_run']} of {e['epochs']}"
        cells = [_ci(e["metrics"][m]) for m in METRICS]
        lines.append(f"| {e['lesson']} | " + " | ".join(cells)
                     + f" | {e.get('weights') or '-'} | {e.get('image_size', '-')} | {epochs} | "
                     f"{e['train_seconds']:.0f} |")
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


BLOCKS: dict[str, Callable[[dict], str]] = {"results": results_block, "timings": timings_block}


def render(text: str, summary: dict) -> str:
    """``text`` with every generated block rewritten from ``summary``; unknown block names are an error."""
    def replace(match: re.Match) -> str:
        name = match.group("name")
        if name not in BLOCKS:
            raise ValueError(f"Unknown generated block {name!r}: known ones are {sorted(BLOCKS)}.")
        return f"{match.group(1)}{BLOCKS[name](summary)}\n{match.group(4)}"

    return _BLOCK.sub(replace, text)


def blocks_in(text: str) -> dict[str, str]:
    """The generated blocks of ``text``: name -> body."""
    return {m.group("name"): m.group("body") for m in _BLOCK.finditer(text)}


def add_report_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of the ``report`` sub-command."""
    parser.add_argument("run_dir", type=Path, nargs="?", default=REFERENCE_RUN,
                        help="a finished run folder (default: the committed reference run, benchmarks/reference)")
    parser.add_argument("--write", type=Path, nargs="*", default=[], metavar="FILE",
                        help="Markdown files whose generated blocks to rewrite (e.g. README.md docs/instructor.md); "
                             "without it, print the blocks")


def main_report(args: argparse.Namespace) -> int:
    """Run the ``report`` sub-command."""
    try:
        summary = load_summary(args.run_dir)
    except FileNotFoundError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if not args.write:
        for name, make in BLOCKS.items():
            print(f"<!-- generated: {name} -->\n{make(summary)}\n<!-- end: {name} -->\n")
        return 0
    for path in args.write:
        text = path.read_text(encoding="utf-8")
        found = blocks_in(text)
        if not found:
            print(f"error: {path} has no '<!-- generated: NAME -->' block", file=sys.stderr)
            return 1
        path.write_text(render(text, summary), encoding="utf-8")
        print(f"{path}: rewrote {', '.join(found)}")
    return 0
