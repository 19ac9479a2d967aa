"""Helpers for the pneumonia chest X-ray workshop: data, caching, metrics, plots and the runner.

Importing this package does not import TensorFlow or Keras; only the modules that run models
(`features`) touch Keras, and they work on any Keras backend.
"""
from .dataset import CLASSES, find_dataset_root, list_images, patient_id, verify_dataset
from .images import ImageSet, load_dataset, load_split
from .metrics import evaluate, format_metrics
from .splits import class_weights, patient_split

__version__ = "0.1.0"

__all__ = [
    "CLASSES", "ImageSet", "class_weights", "evaluate", "find_dataset_root", "format_metrics",
    "list_images", "load_dataset", "load_split", "patient_id", "patient_split", "verify_dataset",
]
