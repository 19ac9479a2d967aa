"""Benchmark: decode the shared real dataset at 150 x 150 (first load), then load it again (cached).

Usage: python benchmarks/decode.py [DATA_DIR] [--size 150]
Prints both times, their ratio, and the patient overlap between the train and validation splits.
"""
import argparse
import gc
import os
import platform
import tempfile
import time
from pathlib import Path

import workshop_utils as wu

parser = argparse.ArgumentParser()
parser.add_argument("data_dir", nargs="?", default=str(Path(__file__).resolve().parents[2] / "shared/data/chest_xray"))
parser.add_argument("--size", type=int, default=150)
args = parser.parse_args()

root = wu.find_dataset_root(args.data_dir)
with tempfile.TemporaryDirectory() as cache:  # an empty cache: the first load decodes every image
    start = time.perf_counter()
    data = wu.load_dataset(root, args.size, cache_dir=cache, progress=False)
    first = time.perf_counter() - start
    n = sum(len(part) for part in data.values())
    del data
    gc.collect()
    start = time.perf_counter()
    data = wu.load_dataset(root, args.size, cache_dir=cache, progress=False)
    cached = time.perf_counter() - start

train = data["train"]
train_idx, val_idx = wu.patient_split(train.labels, train.groups, val_fraction=0.2, seed=42)
overlap = len(set(train.groups[train_idx]) & set(train.groups[val_idx]))
print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
print(f"{n} images at {args.size}x{args.size} from {root}")
print(f"first load (decode): {first:.2f} s ({n / first:.0f} images/s)")
print(f"cached load:         {cached:.3f} s")
print(f"speed-up:            {first / cached:.0f}x")
print(f"train/validation split: {len(train_idx)} / {len(val_idx)} images, "
      f"{len(set(train.groups[train_idx]))} / {len(set(train.groups[val_idx]))} patients, patient overlap: {overlap}")
