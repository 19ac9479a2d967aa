"""Executed lessons as they are published: a run folder's notebooks with their outputs, but without machine paths,
timing noise or the runner's metadata, and with images small enough to commit (``benchmarks/reference/notebooks/``,
which the book shows).

What is removed or rewritten, and nothing else: papermill's and nbclient's cell and notebook metadata (times,
paths); TensorFlow's C++ log lines and its retracing warnings; progress bars reduced to their last state, without
elapsed times and rates; Keras' seconds and milliseconds per step; memory addresses; the run's absolute paths
(data, run folder, cache, checkout, installed packages, home) replaced by the short names a reader knows.
"""
from __future__ import annotations

import base64
import io
import os
import re
import site
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # nbformat comes with the [run] and [book] extras, not with the package
    import nbformat


from .paths import CHECKOUT

#: Where published notebooks go inside a run folder that is saved as a reference (benchmarks/reference/notebooks).
FOLDER = "notebooks"
#: Budgets for what is committed: each notebook, and the whole set.
MAX_NOTEBOOK_BYTES = 2_000_000
MAX_TOTAL_BYTES = 10_000_000
#: Images above this size are re-encoded as 256-colour PNGs (lossless for the grayscale X-rays and most plots).
QUANTIZE_ABOVE_BYTES = 20_000

NOISE_LINE = re.compile(
    r"^(?:[IWEF]\d{4} [\d:.]+ +\d+ [\w.]+:\d+\]"  # TensorFlow/absl C++ log lines
    r"|WARNING: All log messages before absl::InitializeLog\(\)"
    r"|To enable the following instructions: .* rebuild TensorFlow"
    r"|WARNING:tensorflow:.*retracing)")
TQDM_TIMES = re.compile(r"\s*\[\d+:\d\d(?::\d\d)?<[^\]\n]*\]")  # [00:03<00:00, 1654.75it/s]
KERAS_STEP_TIMES = re.compile(r"(?: - |\s)\d+(?:\.\d+)?m?s(?:(?: - |\s)\d+(?:\.\d+)?[mu]?s/step)")  # - 1s - 76ms/step
ADDRESS = re.compile(r"\b0x[0-9a-f]{6,}\b")
#: Absolute paths left after the rewrites that would still name this machine.
MACHINE_PATH = re.compile(r"(?<![\w.~])/(?:work|root|home|tmp|usr|opt|var|content|Users|mnt|media)/[^\s'\"]*")


def replacements(data_dir: str | None, run_dir: Path | None) -> list[tuple[str, str]]:
    """The absolute paths of this machine and run, each with the short name shown instead, longest first."""
    pairs = {}
    if data_dir:
        pairs[str(Path(data_dir).resolve())] = "data/chest_xray"
        pairs[str(data_dir)] = "data/chest_xray"
    if run_dir is not None:
        pairs[str(Path(run_dir).resolve())] = "runs/reference"
    cache = os.environ.get("WORKSHOP_CACHE_DIR")
    if cache:
        pairs[str(Path(cache).resolve())] = "~/.cache/pneumonia-workshop"
    for packages in {*site.getsitepackages(), site.getusersitepackages()}:
        pairs[packages + os.sep] = ""
        pairs[packages] = "site-packages"
    pairs[str(CHECKOUT) + os.sep] = ""
    pairs[str(CHECKOUT)] = "."
    pairs[sys.prefix] = ".venv"
    pairs[str(Path.home())] = "~"
    return sorted(pairs.items(), key=lambda kv: -len(kv[0]))


def clean_text(text: str, paths: list[tuple[str, str]]) -> str:
    """``text`` with the machine's paths replaced and memory addresses masked."""
    for old, new in paths:
        text = text.replace(old, new)
    text = re.sub(r"/tmp/[^\s'\"/]+/cache\b", "~/.cache/pneumonia-workshop", text)  # a benchmark's own cache
    return ADDRESS.sub("0x...", text)


def clean_stream(text: str) -> str:
    """A stream's text as its last screen showed it: carriage returns applied, progress bars without times and
    rates, Keras' per-step times dropped, TensorFlow's log lines removed."""
    lines = []
    for line in text.split("\n"):
        line = line.rstrip("\r").split("\r")[-1]
        if NOISE_LINE.match(line):
            continue
        lines.append(KERAS_STEP_TIMES.sub("", TQDM_TIMES.sub("", line)))
    return "\n".join(lines)


def small_png(data: str) -> str:
    """A base64 PNG re-encoded with 256 colours when that makes it smaller (and it is worth it)."""
    raw = base64.b64decode(data)
    if len(raw) <= QUANTIZE_ABOVE_BYTES:
        return data
    from PIL import Image

    image = Image.open(io.BytesIO(raw))
    method = Image.Quantize.FASTOCTREE if image.mode == "RGBA" else Image.Quantize.MEDIANCUT
    rgb = image if image.mode in ("RGB", "RGBA") else image.convert("RGB")
    out = io.BytesIO()
    rgb.quantize(colors=256, method=method).save(out, format="PNG", optimize=True)
    return base64.b64encode(out.getvalue()).decode("ascii") + "\n" if out.tell() < len(raw) else data


def clean_outputs(outputs: list, paths: list[tuple[str, str]]) -> list:
    """A code cell's outputs, published: consecutive streams merged and cleaned, texts without paths, images
    smaller; a stream left empty is dropped."""
    merged: list = []
    for output in outputs:
        if output.output_type == "stream" and merged and merged[-1].output_type == "stream" \
                and merged[-1].name == output.name:
            merged[-1].text += output.text
        else:
            merged.append(output)
    kept = []
    for output in merged:
        if output.output_type == "stream":
            output.text = clean_text(clean_stream(output.text), paths)
            if not output.text.strip():
                continue
        elif output.output_type in ("display_data", "execute_result"):
            for mime, value in output.data.items():
                if mime == "image/png":
                    output.data[mime] = small_png(value)
                elif mime.startswith("text/") or mime.endswith("json"):
                    output.data[mime] = clean_text(value, paths) if isinstance(value, str) else value
            output.metadata = {k: v for k, v in output.get("metadata", {}).items() if k != "papermill"}
        elif output.output_type == "error":
            output.traceback = [clean_text(line, paths) for line in output.traceback]
            output.evalue = clean_text(output.evalue, paths)
        kept.append(output)
    return kept


def clean_notebook(nb: nbformat.NotebookNode, paths: list[tuple[str, str]]) -> nbformat.NotebookNode:
    """The executed notebook ``nb`` as it is published (changed in place and returned)."""
    nb.metadata.pop("papermill", None)
    nb.metadata.pop("widgets", None)
    for cell in nb.cells:
        cell.metadata.pop("execution", None)
        cell.metadata.pop("papermill", None)
        cell.source = clean_text(cell.source, paths)
        if cell.cell_type == "code":
            cell.outputs = clean_outputs(cell.outputs, paths)
    return nb


def machine_paths(nb: nbformat.NotebookNode) -> list[str]:
    """Absolute paths of a machine still in a notebook's sources and text outputs (none in a published one)."""
    found = []
    for cell in nb.cells:
        texts = [cell.source]
        for output in cell.get("outputs", []):
            texts.append(output.get("text", ""))
            texts += [v for k, v in output.get("data", {}).items() if k.startswith("text/") and isinstance(v, str)]
            texts += output.get("traceback", [])
        found += [m.group(0) for text in texts for m in MACHINE_PATH.finditer(text)]
    return found


def publish(run_dir: Path, dest: Path, data_dir: str | None, notebooks: list[str]) -> list[Path]:
    """Write the published copies of ``notebooks`` (names of executed notebooks in ``run_dir``) into ``dest``,
    replacing what it held; returns their paths. Raises ValueError, writing nothing, when a notebook would keep a
    machine path or the set would exceed its size budget."""
    import nbformat

    paths = replacements(data_dir, run_dir)
    cleaned = {}
    for name in notebooks:
        nb = clean_notebook(nbformat.read(str(Path(run_dir) / name), as_version=4), paths)
        left = machine_paths(nb)
        if left:
            raise ValueError(f"{name} would be published with machine paths {sorted(set(left))[:5]}: add their "
                             "short names to workshop_utils.executed.replacements.")
        cleaned[name] = nbformat.writes(nb) + "\n"
    sizes = {name: len(text.encode()) for name, text in cleaned.items()}
    too_big = [f"{n} ({s / 1e6:.1f} MB)" for n, s in sizes.items() if s > MAX_NOTEBOOK_BYTES]
    if too_big or sum(sizes.values()) > MAX_TOTAL_BYTES:
        raise ValueError(f"The published notebooks exceed their budget (each {MAX_NOTEBOOK_BYTES / 1e6:.0f} MB, "
                         f"all {MAX_TOTAL_BYTES / 1e6:.0f} MB): {', '.join(too_big) or 'the set'}, "
                         f"{sum(sizes.values()) / 1e6:.1f} MB in all; make the lesson's figures smaller.")
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in cleaned.items():
        fd, tmp = tempfile.mkstemp(dir=dest, prefix=f".{name}.", suffix=".partial")
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, dest / name)
        written.append(dest / name)
    for stale in set(dest.glob("*.ipynb")) - set(written):
        stale.unlink()
    return written
