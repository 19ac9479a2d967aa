"""Benchmark: lesson 6 (the CNN trained from scratch) over several seeds, on the shared real data.

Usage: python benchmarks/scratch_cnn.py [DATA_DIR] [--seeds 42 43 44] [--out DIR]
Runs the lesson itself with the runner, once per seed, at the lesson's own settings: its student copy
(notebooks/student/), whose exercises stay unanswered, so exercise 6.3's second network is not trained. The seed
drives the patient-level validation split, the initial weights, the augmentation and the order of batches. Then
prints each seed's validation loss per epoch, kept epoch, training time and test metrics (the lesson's one look at
the test split), and the mean and spread (max - min) over the seeds. Run it alone on the machine: anything else
sharing the CPU inflates the times.

How the lesson's recipe was chosen on validation only, with this script's earlier version (its candidate switches
--validation-only, --ema, --work-size; commit 2c8ed3d): records/scratch_cnn_recipe.md.
"""
import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

from workshop_utils import results, runner, student

LESSON = student.STUDENT_DIR / "06_from_scratch_cnn.ipynb"
METRICS = ("accuracy", "sensitivity", "specificity", "auc")


def run_seed(seed: int, data_dir: str, out: Path) -> dict:
    """Run lesson 6 with ``seed`` into the new run folder ``out``; return its recorded entry."""
    code = runner.run_series(out, data_dir, {"SEED": seed}, notebooks=[LESSON], notebook_dir=LESSON.parent)
    if code:
        sys.exit(f"lesson 6 failed with seed {seed} (exit code {code}); to keep its executed notebook, "
                 "run again with --out DIR")
    (entry,) = results.load_results(out / results.RESULTS_FILE)
    print(f"seed {seed}: validation loss per epoch " + " ".join(f"{v:.3f}" for v in entry["val_losses"]), flush=True)
    return entry


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("data_dir", nargs="?",
                        default=str(Path(__file__).resolve().parents[2] / "shared/data/chest_xray"))
    parser.add_argument("--seeds", type=int, nargs="+", default=[42, 43, 44])
    parser.add_argument("--out", type=Path, default=None,
                        help="keep the run folders (one per seed) here (default: a temporary folder)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        out = args.out or Path(tmp)
        runs = [run_seed(seed, args.data_dir, out / f"seed_{seed}") for seed in args.seeds]

    print(f"\n{'seed':>6}{'kept ep':>8}{'val_loss':>9}{'train s':>8}{'s/ep':>6}" + "".join(f"{m:>12}" for m in METRICS))
    for run in runs:
        print(f"{run['seed']:>6}{run['best_epoch']:>8}{min(run['val_losses']):>9.4f}{run['train_seconds']:>8.0f}"
              f"{run['train_seconds'] / run['epochs_run']:>6.1f}"
              + "".join(f"{run['metrics'][m]['value']:>12.3f}" for m in METRICS))
    for name, reduce in (("mean", np.mean), ("spread", np.ptp)):
        print(f"{name:>6}{'':>31}" + "".join(f"{reduce([run['metrics'][m]['value'] for run in runs]):>12.3f}"
                                             for m in METRICS))


if __name__ == "__main__":
    main()
