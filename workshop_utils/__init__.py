"""Helpers for the pneumonia chest X-ray workshop: data, caching, the lesson frame, metrics, plots and the runner.

Importing this package does not import TensorFlow or Keras. Its modules are reachable as attributes
(``wu.lesson``, ``wu.plots``, ``wu.preprocessing`` ...) and are imported on first use; only the modules that
build or run models (``preprocessing``, ``heads``, ``batches``, ``features`` when it runs) import Keras, and they
work on any Keras backend.
"""
import importlib

from .dataset import CLASSES, find_dataset_root, list_images, patient_id, verify_dataset

__version__ = "0.2.0"

#: Submodules imported on first attribute access (``wu.plots`` imports matplotlib, ``wu.heads`` Keras).
SUBMODULES = ("batches", "check", "dataset", "download", "environment", "exercises", "features", "gradcam",
              "heads", "images", "kit", "lesson", "metrics", "parameters", "paths", "plots", "predict",
              "preprocessing", "results", "runner", "saving", "splits", "student", "synthetic", "weights")

__all__ = [
    "CLASSES", "ImageSet", "class_weights", "evaluate", "find_dataset_root", "format_metrics",
    "list_images", "load_dataset", "load_split", "patient_id", "patient_split", "verify_dataset",
]


#: Names the lessons use as ``wu.<name>``, imported on first use (scikit-learn and SciPy take seconds to import,
#: which commands such as ``--help`` should not pay).
SHORTCUTS = {"ImageSet": "images", "load_dataset": "images", "load_split": "images", "evaluate": "metrics",
             "format_metrics": "metrics", "class_weights": "splits", "patient_split": "splits"}


def __getattr__(name: str):
    if name in SUBMODULES:
        return importlib.import_module(f".{name}", __name__)
    if name in SHORTCUTS:
        return getattr(importlib.import_module(f".{SHORTCUTS[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
