"""Predict NORMAL / PNEUMONIA for image files with a model saved by the lessons, optionally with Grad-CAM.

``python -m workshop_utils predict MODEL IMAGE_OR_FOLDER... [--gradcam DIR]``

Each image is decoded to grayscale at the model's size, exactly as the lessons decode the dataset
(:func:`workshop_utils.images.decode_image`), and given to the model as it is, (size, size, 1) values
0-255: the model holds its own preprocessing. Images go through in batches, so any number of files fits
in memory. The saved model is checked, not trusted: its input size, its two outputs, and that the
outputs are probabilities.
"""
from __future__ import annotations

import argparse
import os
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image, ImageFile
from tqdm import tqdm

from .images import decode_image, to_grayscale
from .saving import ModelFormatError, check_probabilities, load_lesson_model, not_softmax_message

#: Longest side of the Grad-CAM overlay pictures, in pixels.
OVERLAY_SIZE = 512
#: Images decoded and predicted together (memory stays bounded for any number of files).
BATCH_SIZE = 32
#: A progress bar is shown from this many images on (more than one batch).
PROGRESS_FROM = BATCH_SIZE + 1
_DECODE_ERRORS = (OSError, ValueError, SyntaxError, Image.DecompressionBombError)


def _display_image(path: str | Path, size: int = OVERLAY_SIZE) -> np.ndarray:
    """The image as 8-bit grayscale, its longest side at most ``size`` pixels, aspect ratio kept."""
    with Image.open(path) as img:
        if img.format == "JPEG":
            img.draft("L", (size, size))
        img.load()
        img = to_grayscale(img)
        img.thumbnail((size, size), Image.Resampling.BILINEAR)
        return np.asarray(img, dtype=np.uint8)


def readable_suffixes() -> set[str]:
    """File name endings of every image format Pillow can open here (``.jpeg``, ``.png``, ``.webp``, ``.gif``,
    ``.jpe``, ...): what ``predict`` takes from a folder."""
    Image.init()
    decodable = {fmt for fmt, (factory, _) in Image.OPEN.items()
                 if not (isinstance(factory, type) and issubclass(factory, ImageFile.StubImageFile))}
    return {ext.lower() for ext, fmt in Image.registered_extensions().items() if fmt in decodable}


def why_skipped(path: Path, suffixes: set[str], skip: Path | None) -> str | None:
    """Why a file found in a folder is not classified (None: it is)."""
    if skip is not None and Path(os.path.abspath(path)).is_relative_to(skip):
        return "a Grad-CAM overlay (in the --gradcam folder)"
    if path.name.startswith("._"):
        return "a macOS resource file (._name), not an image"
    if path.suffix.lower() not in suffixes:
        return f"not an image format Pillow reads ({path.suffix or 'no extension'})"
    return None


def expand_inputs(paths: list[str | Path], skip: str | Path | None = None,
                  skipped: list[tuple[Path, str]] | None = None) -> list[Path]:
    """The image files to classify: each file as given, each folder as its files in formats Pillow reads
    (recursively, sorted), leaving out those under the folder ``skip`` (the Grad-CAM overlays of an earlier run).
    Each file of a folder left out is appended to ``skipped`` as ``(path, why)``."""
    skip = Path(os.path.abspath(skip)) if skip is not None else None
    suffixes = readable_suffixes()
    files: list[Path] = []
    for path in map(Path, paths):
        if not path.is_dir():
            files.append(path)
            continue
        for p in sorted(q for q in path.rglob("*") if q.is_file()):
            why = why_skipped(p, suffixes, skip)
            if why is None:
                files.append(p)
            elif skipped is not None:
                skipped.append((p, why))
    return files


def skipped_summary(skipped: list[tuple[Path, str]]) -> str:
    """One line per reason: how many files of the folders were left out, why, and an example."""
    by_reason: dict[str, list[Path]] = {}
    for path, why in skipped:
        by_reason.setdefault(why, []).append(path)
    return "\n".join(f"skipped {len(found)} file(s) in the folders: {why}, e.g. {found[0]}"
                     for why, found in by_reason.items())


def overlay_names(files: list[Path]) -> list[Path]:
    """A distinct relative path ``<folder>/<stem>_gradcam.png`` for each file's Grad-CAM overlay.

    Folders mirror the inputs' folders below their common parent, so ``a/x.jpeg`` and ``b/x.jpeg`` get
    ``a/x_gradcam.png`` and ``b/x_gradcam.png``; files in one folder get flat names. Where two different
    files would still share a name (``x.jpeg`` and ``x.png``), the full file name is used, then a number.
    """
    absolute = [Path(os.path.abspath(f)) for f in files]
    try:
        common = Path(os.path.commonpath([p.parent for p in absolute])) if absolute else Path()
        folders = [p.parent.relative_to(common) for p in absolute]
    except ValueError:  # different drives (Windows)
        folders = [Path() for _ in absolute]
    names: list[Path] = []
    owner: dict[Path, Path] = {}
    for source, folder in zip(absolute, folders):
        for candidate in (folder / f"{source.stem}_gradcam.png", folder / f"{source.name}_gradcam.png",
                          *(folder / f"{source.name}-{i}_gradcam.png" for i in range(2, len(files) + 2))):
            if owner.setdefault(candidate, source) == source:
                names.append(candidate)
                break
    return names


def _decode(path: Path, size: int) -> np.ndarray | str:
    """The decoded image, or why it cannot be read."""
    if not path.exists():
        return "file not found"
    if not path.is_file():
        return "not a file"
    try:
        return decode_image(path, size)
    except _DECODE_ERRORS as exc:
        return f"not a readable image ({exc})"


def _predict_batch(model, model_path: Path, gray: np.ndarray, files: list[Path]) -> np.ndarray:
    """(n, 2) probabilities for (n, size, size) grayscale images, checked to be probabilities."""
    x = gray.astype(np.float32)[..., None]
    n = len(x)
    if n < BATCH_SIZE:  # one input shape for every batch: no retracing (TensorFlow) or recompiling (JAX)
        x = np.concatenate([x, np.repeat(x[-1:], BATCH_SIZE - n, axis=0)])
    try:
        out = np.asarray(model.predict_on_batch(x), dtype=np.float64)[:n]
    except Exception as exc:  # a model that cannot run on its own described input
        raise ModelFormatError(f"{model_path}: the model failed on the images ({type(exc).__name__}: {exc}).") from exc
    bad = check_probabilities(out)
    if bad is not None:
        raise ModelFormatError(f"{model_path}: {not_softmax_message(out[bad])} (image {files[bad]})")
    return out


def _write_overlays(model, gray: np.ndarray, entries: list[dict], targets: list[Path]) -> None:
    """Grad-CAM overlays of one batch; any failure is recorded as ``gradcam_error``."""
    from .gradcam import gradcam, overlay

    try:
        heatmaps = gradcam(model, gray.astype(np.float32)[..., None])
    except (ValueError, NotImplementedError) as exc:  # a model Grad-CAM cannot split, another backend
        for entry in entries:
            entry["gradcam_error"] = str(exc)
        return
    for entry, heatmap, target in zip(entries, heatmaps, targets, strict=True):
        try:
            picture = overlay(_display_image(entry["file"]), heatmap)
            target.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(picture).save(target)
            entry["gradcam"] = str(target)
        except (*_DECODE_ERRORS, OSError) as exc:
            entry["gradcam_error"] = f"cannot write {target}: {exc}"


def predict_files(model_path: str | Path, image_paths: list[str | Path], gradcam_dir: str | Path | None = None,
                  progress: bool | None = None, skipped: list[tuple[Path, str]] | None = None) -> list[dict]:
    """Classify image files (JPEG/PNG/..., any size, grayscale or colour; folders: their image files).

    Returns one dict per file, in order: ``file``, ``class`` (PNEUMONIA when p(PNEUMONIA) >= the threshold
    saved with the model, else NORMAL), ``p_pneumonia``, ``threshold`` and ``error`` (None, or why the
    file could not be read, in which case ``class`` and ``p_pneumonia`` are None). With ``gradcam_dir``,
    also writes an overlay per image there (names from :func:`overlay_names`) and adds its path as
    ``gradcam``, or why not as ``gradcam_error``. ``progress``: a bar on stderr (default: from
    ``PROGRESS_FROM`` images on). ``skipped``: a list that receives ``(path, why)`` for each file of a folder
    that was not classified (see :func:`expand_inputs`). Raises FileNotFoundError or ModelFormatError (naming
    the model file) for a missing or unsuitable model.
    """
    model_path = Path(model_path)
    model, meta = load_lesson_model(model_path)
    size, threshold = meta["image_size"], float(meta["threshold"])
    pneumonia = list(meta["classes"]).index("PNEUMONIA")
    normal = 1 - pneumonia
    files = expand_inputs(image_paths, skip=gradcam_dir, skipped=skipped)
    results = [{"file": str(f), "class": None, "p_pneumonia": None, "threshold": threshold, "error": None}
               for f in files]
    targets: list[Path] | None = None
    if gradcam_dir is not None:
        folder = Path(gradcam_dir)
        try:
            folder.mkdir(parents=True, exist_ok=True)
            targets = [folder / name for name in overlay_names(files)]
        except OSError as exc:
            for entry in results:
                entry["gradcam_error"] = f"cannot write to {folder} ({exc}); choose another --gradcam folder."
    show = len(files) >= PROGRESS_FROM if progress is None else progress
    with ThreadPoolExecutor(min(4, os.cpu_count() or 1)) as pool, \
            tqdm(total=len(files), desc="Predicting", unit="image", file=sys.stderr, disable=not show) as bar:
        for start in range(0, len(files), BATCH_SIZE):
            batch = list(range(start, min(start + BATCH_SIZE, len(files))))
            decoded = list(pool.map(lambda i: _decode(files[i], size), batch))
            good = [i for i, d in zip(batch, decoded) if not isinstance(d, str)]
            for i, d in zip(batch, decoded):
                if isinstance(d, str):
                    results[i]["error"] = d
            if good:
                gray = np.stack([d for d in decoded if not isinstance(d, str)])
                probs = _predict_batch(model, model_path, gray, [files[i] for i in good])
                for i, p in zip(good, probs):
                    is_pneumonia = p[pneumonia] >= threshold
                    results[i].update({"class": meta["classes"][pneumonia if is_pneumonia else normal],
                                       "p_pneumonia": float(p[pneumonia])})
                if targets is not None:
                    _write_overlays(model, gray, [results[i] for i in good], [targets[i] for i in good])
            bar.update(len(batch))
    return results


def add_predict_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``predict`` sub-command's arguments to ``parser``."""
    parser.add_argument("model", type=Path, help="a .keras model saved by the lessons (save_lesson_model)")
    parser.add_argument("images", nargs="+", type=Path,
                        help="image files (JPEG, PNG, ...) or folders (all their images, recursively)")
    parser.add_argument("--gradcam", type=Path, default=None, metavar="DIR",
                        help="also save a Grad-CAM overlay per image as DIR/<name>_gradcam.png (inputs from "
                             "several folders: DIR/<folder>/<name>_gradcam.png)")


def main_predict(args: argparse.Namespace) -> int:
    """Run the ``predict`` sub-command: one line per image; 1 if anything failed, else 0."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    skipped: list[tuple[Path, str]] = []
    try:
        results = predict_files(args.model, args.images, args.gradcam, skipped=skipped)
    except (FileNotFoundError, ModelFormatError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if skipped:
        print(skipped_summary(skipped), file=sys.stderr)
    if not results:
        print(f"error: no image files in {', '.join(map(str, args.images))}.", file=sys.stderr)
        return 1
    threshold = results[0]["threshold"]
    if threshold != 0.5:
        print(f"PNEUMONIA when p(PNEUMONIA) >= {threshold:.3g}: the decision threshold saved with the model "
              "(not 0.5).")
    width = max(len(r["file"]) for r in results)
    for r in results:
        if r["error"] is None:
            print(f"{r['file']:<{width}}  {r['class']:<9}  p(PNEUMONIA) {r['p_pneumonia']:.2f}", flush=True)
        else:
            print(f"error: {r['file']}: {r['error']}", file=sys.stderr)
    cam_errors = [r["gradcam_error"] for r in results if r["error"] is None and r.get("gradcam_error")]
    if cam_errors:
        print(f"error: Grad-CAM overlays missing for {len(cam_errors)} image(s): {cam_errors[0]}",
              file=sys.stderr)
    elif args.gradcam is not None and any(r["error"] is None for r in results):
        print(f"Grad-CAM overlays in {args.gradcam}")
    return 1 if cam_errors or any(r["error"] for r in results) else 0
