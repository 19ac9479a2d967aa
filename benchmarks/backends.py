"""Benchmark: the quick series (every lesson, `run --quick --weights none` on the synthetic data) on each Keras
backend Colab offers, one after the other in one run, each from an empty cache and with TensorFlow blocked on the
others (as on a machine without it), then seconds per lesson and each backend's total as a ratio of TensorFlow's.

Usage: python benchmarks/backends.py [--backends tensorflow jax torch]
Quick mode is CI's smoke test, not the workshop (64-px images, 2 epochs, a small subset): the times say little about
training speed at full settings. Run it alone on the machine: anything else sharing the CPU inflates the times.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

parser = argparse.ArgumentParser()
parser.add_argument("--backends", nargs="+", default=["tensorflow", "jax", "torch"])
args = parser.parse_args()

seconds: dict[str, dict[str, float]] = {}
with tempfile.TemporaryDirectory() as tmp:
    shim = Path(tmp) / "no_tensorflow" / "tensorflow"
    shim.mkdir(parents=True)
    (shim / "__init__.py").write_text('raise ImportError("TensorFlow is blocked in this benchmark")\n')
    for backend in args.backends:
        env = dict(os.environ, KERAS_BACKEND=backend, JAX_PLATFORMS="cpu",
                   WORKSHOP_CACHE_DIR=str(Path(tmp) / backend / "cache"), KERAS_HOME=str(Path(tmp) / "keras"))
        if backend != "tensorflow":
            env["PYTHONPATH"] = str(shim.parent)
        out = Path(tmp) / backend / "run"
        done = subprocess.run([sys.executable, "-m", "workshop_utils", "run", "--data-dir", "synthetic", "--quick",
                               "--weights", "none", "--out", str(out)], env=env, capture_output=True, text=True)
        if done.returncode:
            sys.exit(f"the quick series failed on {backend}:\n{done.stderr[-3000:]}")
        summary = json.loads((out / "summary.json").read_text())
        seconds[backend] = {name: run["seconds"] for name, run in summary["notebooks"].items()}
        machine, versions = summary["machine"], summary["versions"]

versions.pop("keras backend", None)  # each column is its own backend; TensorFlow is installed but blocked on the others
print(f"{machine}; installed: {', '.join(f'{k} {v}' for k, v in versions.items())}")
print(f"{'notebook (seconds)':<40}" + "".join(f"{b:>12}" for b in seconds))
for name in next(iter(seconds.values())):
    print(f"{name:<40}" + "".join(f"{s[name]:>12.0f}" for s in seconds.values()))
totals = {b: sum(s.values()) for b, s in seconds.items()}
print(f"{'total':<40}" + "".join(f"{t:>12.0f}" for t in totals.values()))
if "tensorflow" in totals:
    print(f"{'ratio to tensorflow':<40}" + "".join(f"{t / totals['tensorflow']:>12.2f}" for t in totals.values()))
