"""What the notebooks' setup cell prints: versions, Keras backend, and whether a GPU is there."""
from __future__ import annotations

import platform
import warnings

from .check import check_packages, gpu_devices, python_minimum


def report() -> dict:
    """Print Python, Keras, backend and NumPy versions and the GPUs; warn when a required package is missing or
    older than the package's declared minimum, and when there is no GPU."""
    import keras
    import numpy as np

    info = {"python": platform.python_version(), "keras": keras.__version__,
            "backend": keras.backend.backend(), "numpy": np.__version__, "gpus": gpu_devices()}
    if info["backend"] == "tensorflow":
        import tensorflow as tf

        info["tensorflow"] = tf.__version__
    for key, value in info.items():
        print(f"{key:<11}{value}")
    from packaging.version import Version

    minimum = python_minimum()
    if minimum and Version(info["python"]) < Version(minimum):
        warnings.warn(f"This workshop needs Python {minimum} or newer.", stacklevel=2)
    for item in check_packages():
        if item.status == "FAIL":
            warnings.warn(f"{item.name}: {item.detail}; fix: {item.fix}", stacklevel=2)
    if not info["gpus"]:
        warnings.warn("No GPU found: lessons run on the CPU, slowly. On Colab choose Runtime > Change runtime "
                      "type > GPU; on a laptop keep QUICK = True or a small IMAGE_SIZE.", stacklevel=2)
    return info
