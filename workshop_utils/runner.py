"""Run every lesson notebook in order with papermill, then write a results table and a comparison plot."""
from __future__ import annotations

import argparse
import json
import platform
import resource
import sys
import time
from pathlib import Path

from . import dataset, download, results

NOTEBOOK_DIR = Path(__file__).resolve().parents[1] / "notebooks"


def lesson_notebooks(folder: Path = NOTEBOOK_DIR) -> list[Path]:
    """The numbered lesson notebooks (``01_*.ipynb`` ...) in order."""
    found = sorted(p for p in folder.glob("[0-9][0-9]_*.ipynb"))
    if not found:
        raise FileNotFoundError(f"No lesson notebooks (NN_name.ipynb) in {folder}.")
    return found


def prepare_data(data_dir: str | None) -> str:
    """Make sure the data is there (downloading it into the default folder if needed); return its root."""
    if data_dir == "synthetic":
        return "synthetic"
    if data_dir is None:
        return str(download.download_dataset())
    root = dataset.find_dataset_root(Path(data_dir).expanduser().resolve())
    counts = dataset.count_images(root)
    print(f"Data: {root}  " + "  ".join(f"{s} {sum(c.values())}" for s, c in counts.items()))
    return str(root)


def run_series(out_dir: Path, data_dir: str | None = None, quick: bool = False, image_size: int = 150,
               epochs: int = 30, weights: str | None = "imagenet", seed: int = 42,
               only: list[str] | None = None, notebook_dir: Path = NOTEBOOK_DIR, precision: str = "float32") -> int:
    """Execute the lessons into ``out_dir``; stop at the first failing notebook. Returns an exit code."""
    import papermill
    from papermill.exceptions import PapermillExecutionError

    out_dir = Path(out_dir).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    root = prepare_data(data_dir)
    notebooks = [p for p in lesson_notebooks(notebook_dir) if not only or any(p.name.startswith(o) for o in only)]
    params = {"DATA_DIR": root, "QUICK": quick, "IMAGE_SIZE": image_size, "EPOCHS": epochs,
              "WEIGHTS": weights, "PRECISION": precision, "SEED": seed,
              "RESULTS_FILE": str(out_dir / "results.json"),
              "MODEL_DIR": str(out_dir / "models")}
    print(f"Running {len(notebooks)} notebooks into {out_dir} with {params}")
    timings = {}
    start = time.time()
    for i, nb in enumerate(notebooks, 1):
        print(f"[{i}/{len(notebooks)}] {nb.name}", flush=True)
        t0 = time.time()
        try:
            papermill.execute_notebook(str(nb), str(out_dir / nb.name), parameters=params, cwd=str(out_dir),
                                       progress_bar=True, kernel_name="python3")
        except PapermillExecutionError as err:
            print(f"\n{nb.name} failed in cell {err.exec_count} ({err.ename}: {err.evalue}).\n"
                  f"--- the failing cell ---\n{err.source}\n--- traceback ---\n" + "".join(err.traceback[-5:]),
                  file=sys.stderr)
            print(f"The executed notebook with the error is {out_dir / nb.name}", file=sys.stderr)
            return 1
        timings[nb.name] = round(time.time() - t0, 1)
        print(f"    done in {timings[nb.name]:.0f} s", flush=True)
    total = time.time() - start
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    write_report(out_dir, params, timings, total, peak_mb)
    print(f"All {len(notebooks)} notebooks ran in {total / 60:.1f} min; peak kernel memory {peak_mb:.0f} MB. "
          f"Report: {out_dir / 'results.md'}")
    return 0


def write_report(out_dir: Path, params: dict, timings: dict, total: float, peak_mb: float) -> None:
    """results.md, summary.json and comparison.png from the lessons' results.json."""
    entries = results.load_results(out_dir / "results.json")
    summary = {"params": params, "notebook_seconds": timings, "total_seconds": round(total, 1),
               "peak_kernel_memory_mb": round(peak_mb), "machine": f"{platform.node()} {platform.machine()} "
               f"{platform.processor() or ''}".strip(), "results": entries}
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    lines = ["# Workshop run", "", f"Settings: `{json.dumps(params)}`", "",
             "## Test metrics (95% bootstrap CIs)", "", results.results_table(entries), "",
             "## Time per notebook", "", "| notebook | seconds |", "|---|---|",
             *[f"| {k} | {v:.0f} |" for k, v in timings.items()],
             f"| **total** | **{total:.0f}** |", "", f"Peak memory of a notebook kernel: {peak_mb:.0f} MB."]
    (out_dir / "results.md").write_text("\n".join(lines) + "\n")
    if entries:
        import matplotlib

        matplotlib.use("Agg")
        from .plots import plot_comparison

        plot_comparison(entries).savefig(out_dir / "comparison.png", dpi=120)


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of the ``run`` sub-command."""
    parser.add_argument("--data-dir", default=None,
                        help="dataset folder (default: download into the default data folder); "
                             "'synthetic' for a generated toy dataset")
    parser.add_argument("--out", type=Path, default=None, help="run folder (default: runs/<date-time>)")
    parser.add_argument("--quick", action="store_true", help="tiny subset, 64-px images, 2 epochs")
    parser.add_argument("--image-size", type=int, default=150)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--weights", default="imagenet", help="'imagenet', a local .h5 file, or 'none'")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--precision", default="float32", choices=["float32", "mixed_float16", "mixed_bfloat16"],
                        help="Keras dtype policy; the mixed ones are meant for GPUs (slower on a CPU)")
    parser.add_argument("--only", nargs="*", default=None, help="notebook number prefixes to run, e.g. 01 02")


def main_run(args: argparse.Namespace) -> int:
    """Run the ``run`` sub-command."""
    out = args.out or Path("runs") / time.strftime("%Y%m%d-%H%M%S")
    weights = None if str(args.weights).lower() == "none" else args.weights
    try:
        return run_series(out, args.data_dir, args.quick, args.image_size, args.epochs, weights, args.seed, args.only,
                          precision=args.precision)
    except (download.DownloadError, dataset.DatasetNotFoundError, dataset.DatasetIncompleteError,
            FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
