"""What the notebooks' setup cell prints: versions, Keras backend, and whether a GPU is there."""
from __future__ import annotations

import platform
import warnings


def gpu_devices() -> list[str]:
    """Names of the GPUs the active Keras backend sees (empty on CPU-only machines)."""
    import keras

    backend = keras.backend.backend()
    try:
        if backend == "tensorflow":
            import tensorflow as tf

            return [d.name for d in tf.config.list_physical_devices("GPU")]
        if backend == "jax":
            import jax

            return [str(d) for d in jax.devices() if d.platform == "gpu"]
        if backend == "torch":
            import torch

            return [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    except Exception:  # a broken driver must not stop the lesson
        return []
    return []


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

    from .check import check_packages, python_minimum  # the minimums, as the installed package declares them

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
