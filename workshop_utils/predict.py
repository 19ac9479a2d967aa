"""Predict NORMAL / PNEUMONIA for image files with a model saved by the lessons, optionally with Grad-CAM.

``python -m workshop_utils predict MODEL IMAGE... [--gradcam DIR]``
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from .images import to_grayscale, decode_image
from .saving import ModelFormatError, load_lesson_model, prepare_images

#: Longest side of the Grad-CAM overlay pictures, in pixels.
OVERLAY_SIZE = 512
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


def _probabilities(model, x: np.ndarray) -> np.ndarray:
    """(N, n_classes) probabilities; a single sigmoid output p becomes (1 - p, p)."""
    out = np.asarray(model.predict(x, batch_size=32, verbose=0), dtype=np.float64)
    return np.concatenate([1.0 - out, out], axis=1) if out.shape[-1] == 1 else out


def predict_files(model_path: str | Path, image_paths: list[str | Path],
                  gradcam_dir: str | Path | None = None) -> list[dict]:
    """Classify image files (JPEG/PNG/..., any size, grayscale or colour) with a lesson model.

    Returns one dict per file, in order: ``file``, ``class`` (predicted class name), ``probability``
    (of that class), ``p_pneumonia`` and ``error`` (None, or why the file could not be read, in which
    case the other values are None). With ``gradcam_dir``, also writes ``<stem>_gradcam.png``
    overlays there and adds their path as ``gradcam`` (or why not as ``gradcam_error``).
    Raises FileNotFoundError or ModelFormatError for a missing or unsuitable model file.
    """
    model, meta = load_lesson_model(model_path)
    size, classes = meta["image_size"], list(meta["classes"])
    results: list[dict] = []
    decoded: list[np.ndarray] = []
    for path in image_paths:
        entry = {"file": str(path), "class": None, "probability": None, "p_pneumonia": None, "error": None}
        if not Path(path).is_file():
            entry["error"] = "file not found"
        else:
            try:
                decoded.append(decode_image(path, size))
            except _DECODE_ERRORS as exc:
                entry["error"] = f"not a readable image ({exc})"
        results.append(entry)
    good = [entry for entry in results if entry["error"] is None]
    if not good:
        return results
    x = prepare_images(np.stack(decoded), meta)
    probs = _probabilities(model, x)
    pneumonia = classes.index("PNEUMONIA")
    for entry, p in zip(good, probs, strict=True):
        best = int(np.argmax(p))
        entry.update({"class": classes[best], "probability": float(p[best]), "p_pneumonia": float(p[pneumonia])})
    if gradcam_dir is not None:
        from .gradcam import gradcam, overlay

        folder = Path(gradcam_dir)
        folder.mkdir(parents=True, exist_ok=True)
        try:
            heatmaps = gradcam(model, x)
        except (ValueError, NotImplementedError) as exc:  # a model Grad-CAM cannot split, another backend
            for entry in good:
                entry["gradcam_error"] = str(exc)
            return results
        for entry, heatmap in zip(good, heatmaps, strict=True):
            target = folder / f"{Path(entry['file']).stem}_gradcam.png"
            Image.fromarray(overlay(_display_image(entry["file"]), heatmap)).save(target)
            entry["gradcam"] = str(target)
    return results


def add_predict_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``predict`` sub-command's arguments to ``parser``."""
    parser.add_argument("model", type=Path, help="a .keras model saved by the lessons (save_lesson_model)")
    parser.add_argument("images", nargs="+", type=Path, help="image files (JPEG, PNG, ...)")
    parser.add_argument("--gradcam", type=Path, default=None, metavar="DIR",
                        help="also save a Grad-CAM overlay per image as DIR/<name>_gradcam.png")


def main_predict(args: argparse.Namespace) -> int:
    """Run the ``predict`` sub-command: one line per image; 1 if anything failed, else 0."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        results = predict_files(args.model, args.images, args.gradcam)
    except (FileNotFoundError, ModelFormatError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    width = max(len(r["file"]) for r in results)
    for r in results:
        if r["error"] is None:
            print(f"{r['file']:<{width}}  {r['class']:<9}  {r['probability']:.2f}", flush=True)
        else:
            print(f"error: {r['file']}: {r['error']}", file=sys.stderr)
    cam_error = next((r["gradcam_error"] for r in results if r.get("gradcam_error")), None)
    if cam_error:
        print(f"error: no Grad-CAM overlays: {cam_error}", file=sys.stderr)
    elif args.gradcam is not None and any(r["error"] is None for r in results):
        print(f"Grad-CAM overlays in {args.gradcam}")
    return 1 if cam_error or any(r["error"] for r in results) else 0
