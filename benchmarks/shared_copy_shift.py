"""Does the shared copy's assembly add a shift between its folders that the official release would not have?

Usage: python benchmarks/shared_copy_shift.py [DATA_DIR] [--size 150] [--weights hed]

The shared copy (../shared/data/chest_xray) is assembled from public copies of the Mendeley release, listed per
image in ../shared/data/provenance.csv: every test image comes from one copy (stored 224 x 224, RGB), the training
folder from two (that one, and one stored about 256 px high, aspect kept, grayscale). Lesson 9's domain classifier
(cross-fitted logistic regression, C = 0.01, on the flattened frozen VGG16 features, 5 folds by patient) is run on
the whole training folder against the test folder, then on each source copy's part of the training folder against
the test folder, and within the training folder one copy against the other; then the stored size alone. Reads no
test labels (only which folder an image is in). Prints every AUC with its 95% bootstrap interval.
"""
from __future__ import annotations

import argparse
import csv
import tempfile
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedGroupKFold, cross_val_predict
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import workshop_utils as wu

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "chest_xray"

parser = argparse.ArgumentParser()
parser.add_argument("data_dir", nargs="?", type=Path, default=SHARED)
parser.add_argument("--size", type=int, default=150)
parser.add_argument("--weights", default="hed")
args = parser.parse_args()

provenance_file = args.data_dir.parent / "provenance.csv"
if not provenance_file.is_file():
    raise SystemExit(f"{provenance_file} not found: this study needs the shared copy's provenance list beside it.")
with provenance_file.open(newline="") as f:
    provenance = {(r["split"], r["filename"]): r for r in csv.DictReader(f)}

with tempfile.TemporaryDirectory() as tmp:
    lesson = wu.lesson.start("shared_copy_shift", data_dir=str(args.data_dir), image_size=args.size, epochs=1,
                             weights=args.weights, seed=42, run_dir=tmp)
    data = lesson.data()
    feats = lesson.frozen_vgg16_features(lesson.frozen_vgg16(), data)


def source_of(name: str) -> dict:
    parts = name.split("/")
    row = provenance.get((parts[0], parts[-1]))
    if row is None:
        raise SystemExit(f"{name} is not in {provenance_file}: is {args.data_dir} the shared copy?")
    return row


pool_rows = [source_of(n) for n in data.pool.names]
test_rows = [source_of(n) for n in data.test.names]
pool_source = np.array([r["source_repo"] for r in pool_rows])
x = np.concatenate([feats.pool, feats.test]).reshape(len(data.pool) + len(data.test), -1)
folder = np.r_[np.zeros(len(data.pool), int), np.ones(len(data.test), int)]
groups = np.r_[data.pool.groups, ["test:" + g for g in data.test.groups]]


def auc_text(y: np.ndarray, p: np.ndarray) -> str:
    auc = wu.evaluate(y, p)["auc"]
    return f"{auc['value']:.3f} [{auc['low']:.3f}, {auc['high']:.3f}]"


def cross_fitted_auc(rows: np.ndarray, y: np.ndarray) -> str:
    model = make_pipeline(StandardScaler(), LogisticRegression(C=0.01, max_iter=2000))
    p = cross_val_predict(model, x[rows], y, groups=groups[rows], cv=StratifiedGroupKFold(5),
                          method="predict_proba")[:, 1]
    return auc_text(y, p)


everything = np.ones(len(folder), bool)
print(f"test folder: {len(data.test)} images, sources {sorted(set(r['source_repo'] for r in test_rows))}, "
      f"stored sizes {sorted(set(r['source_size'] for r in test_rows))[:5]}")
print(f"training folder vs test folder, features: AUC {cross_fitted_auc(everything, folder)}")
for source in sorted(set(pool_source)):
    part = np.r_[pool_source == source, np.ones(len(data.test), bool)]
    sizes = {r["source_size"] for r, s in zip(pool_rows, pool_source) if s == source}
    print(f"training folder's {source} part ({np.sum(pool_source == source)} images, "
          f"{len(sizes)} stored sizes) vs test folder, features: AUC {cross_fitted_auc(part, folder[part])}")
big = [s for s, n in zip(*np.unique(pool_source, return_counts=True)) if n >= 100]  # the copies train comes from
if len(big) == 2:
    within = np.r_[np.isin(pool_source, big), np.zeros(len(data.test), bool)]
    print(f"within the training folder, {big[1]} vs {big[0]}, features: AUC "
          f"{cross_fitted_auc(within, (pool_source[np.isin(pool_source, big)] == big[1]).astype(int))}")
square = np.array([r["source_size"] == "224x224" for r in pool_rows + test_rows], float)
print(f"stored size alone (224 x 224 or not) as a score for the test folder: AUC {auc_text(folder, square)} "
      f"({square[folder == 0].mean():.0%} of the training folder, {square[folder == 1].mean():.0%} of the test "
      f"folder stored 224 x 224)")
