"""Benchmark: the whole lesson series on the shared real data, from an empty cache, with a per-lesson breakdown.

Usage: python benchmarks/series.py [DATA_DIR] [--size 150] [--weights none] [--precision float32] [--out DIR]
Runs every notebook with the runner (default epochs, seed 42) into a temporary cache folder, so the decoding
and the VGG16 passes are paid for, then prints seconds per notebook, the total, the peak memory of a
notebook kernel and the machine. Run it alone on the machine: anything else sharing the CPU inflates the times.
"""
import argparse
import json
import os
import platform
import sys
import tempfile
from pathlib import Path

from workshop_utils import runner

parser = argparse.ArgumentParser()
parser.add_argument("data_dir", nargs="?", default=str(Path(__file__).resolve().parents[2] / "shared/data/chest_xray"))
parser.add_argument("--size", type=int, default=150)
parser.add_argument("--weights", default="none", help="'none' (random VGG16), 'imagenet' or a .h5 file")
parser.add_argument("--precision", default="float32")
parser.add_argument("--out", type=Path, default=None, help="run folder (default: a temporary one)")
args = parser.parse_args()

with tempfile.TemporaryDirectory() as tmp:
    os.environ["WORKSHOP_CACHE_DIR"] = str(Path(tmp) / "cache")  # the kernels inherit it: nothing cached yet
    out = args.out or Path(tmp) / "run"
    weights = None if args.weights.lower() == "none" else args.weights
    code = runner.run_series(out, args.data_dir, image_size=args.size, weights=weights, precision=args.precision)
    if code:
        sys.exit(code)
    summary = json.loads((out / "summary.json").read_text())

print(f"\nmachine: {platform.machine()}, {os.cpu_count()} CPUs, {platform.processor() or platform.platform()}")
print(f"{'notebook':<40}{'seconds':>8}")
for name, seconds in summary["notebook_seconds"].items():
    print(f"{name:<40}{seconds:>8.0f}")
total = summary["total_seconds"]
print(f"{'total':<40}{total:>8.0f}  ({total / 60:.1f} min)")
print(f"peak memory of a notebook kernel: {summary['peak_kernel_memory_mb']} MB")
