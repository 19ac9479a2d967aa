"""Where the ImageNet VGG16 weights come from: Keras' download, a local file, or none (offline tests)."""
from __future__ import annotations

import os
import warnings
from pathlib import Path

from .download import DownloadError, fetch_file

VGG16_NOTOP_FILE = "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5"
VGG16_NOTOP_URL = ("https://storage.googleapis.com/tensorflow/keras-applications/vgg16/" + VGG16_NOTOP_FILE)
VGG16_NOTOP_MD5 = "6d6bbae143d832006294945121d1f1fc"


def keras_models_dir() -> Path:
    """Keras' own weights cache: ``$KERAS_HOME/models`` (default ``~/.keras/models``)."""
    return Path(os.environ.get("KERAS_HOME", Path.home() / ".keras")) / "models"


def vgg16_weights(weights: str | None = "imagenet", allow_random: bool = False) -> str | None:
    """Resolve the ``weights=`` argument for ``keras.applications.VGG16(include_top=False)``.

    ``"imagenet"``: the file in Keras' cache (``$KERAS_HOME/models``), downloaded there with resume and
    an md5 check if missing; returns its path, which Keras loads without any network access.
    A path: that local ``.h5`` file (e.g. from the offline kit). ``None``/``"none"``: random weights.
    If the ImageNet weights cannot be had, raises DownloadError saying what to do, or with
    ``allow_random=True`` (quick runs, CI) warns loudly and returns None.
    """
    if weights is None or str(weights).lower() in ("none", "random"):
        return None
    if weights != "imagenet":
        path = Path(weights).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"VGG16 weights file {path} not found. Use the file "
                                    f"{VGG16_NOTOP_FILE} from the offline kit, or weights='imagenet'.")
        return str(path)
    target = keras_models_dir() / VGG16_NOTOP_FILE
    try:
        return str(fetch_file(VGG16_NOTOP_URL, target, retries=1, timeout=20, known_hash=f"md5:{VGG16_NOTOP_MD5}"))
    except DownloadError as exc:
        message = (f"The ImageNet weights for VGG16 are not available ({exc}). Connect to the internet, or "
                   f"copy {VGG16_NOTOP_FILE} (from the offline kit) to {target} or pass its path as WEIGHTS.")
        if not allow_random:
            raise DownloadError(message) from exc
        warnings.warn(message + " Continuing with RANDOM weights: the results say nothing about transfer "
                      "learning from ImageNet.", stacklevel=2)
        return None
