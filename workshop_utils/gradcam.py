"""Grad-CAM heatmaps: which parts of an image drove the model's score for a class (Selvaraju et al. 2017).

The model is split at a convolutional layer into "up to the conv layer" and "the rest"; the gradient of
the class score (before the final softmax) with respect to the conv layer's output, averaged over the
image, weights that output's channels. Works for the lessons' models (a Sequential holding a frozen
VGG16 and a head) and for plain CNNs, on the TensorFlow and JAX backends.
"""
from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import numpy as np


def _keras():
    import keras

    return keras


def _is_model(layer) -> bool:
    return isinstance(layer, _keras().Model)


def _linear_chain(model) -> list | None:
    """The layers of ``model`` in call order if it is a simple chain (one input, each layer fed by the
    previous one), else None. Sequential models always are. The chain is read from this model's own graph
    (the symbolic output back to the input), so layers also called in another model (lesson 7's block 5,
    re-used from VGG16) are followed correctly."""
    keras = _keras()
    if isinstance(model, keras.Sequential):
        return list(model.layers)
    if len(model.inputs) != 1 or len(model.outputs) != 1:
        return None
    chain = []
    tensor, start = model.outputs[0], model.inputs[0]
    while tensor is not start:
        history = getattr(tensor, "_keras_history", None)  # (operation, node index, tensor index)
        layer = getattr(history, "operation", None)
        if not isinstance(layer, keras.layers.Layer) or isinstance(layer, keras.layers.InputLayer):
            return None
        inputs = keras.tree.flatten(layer._inbound_nodes[history.node_index].input_tensors)
        if len(inputs) != 1:
            return None
        chain.append(layer)
        tensor = inputs[0]
    return chain[::-1] or None


def _all_layers(model) -> Iterator:
    """Every layer of ``model``, nested models' layers included, in order."""
    for layer in model.layers:
        yield layer
        if _is_model(layer):
            yield from _all_layers(layer)


def find_conv_layer(model, layer_name: str | None = None):
    """The layer called ``layer_name`` (searched in nested models too), or the last Conv2D."""
    keras = _keras()
    layers = list(_all_layers(model))
    if layer_name is not None:
        for layer in layers:
            if layer.name == layer_name:
                return layer
        raise ValueError(f"No layer named {layer_name!r} in model {model.name!r}.")
    convs = [layer for layer in layers if isinstance(layer, keras.layers.Conv2D)]
    if not convs:
        raise ValueError(f"Model {model.name!r} has no Conv2D layer: pass layer_name.")
    return convs[-1]


def _flatten(model, target) -> list:
    """``model`` as a list of steps (layers called one after the other), nested chains expanded."""
    chain = _linear_chain(model)
    if chain is None:
        raise ValueError(f"Grad-CAM needs {model.name!r} to be a simple chain of layers (like Sequential or "
                         "VGG16); this one branches.")
    steps = []
    for layer in chain:
        if _is_model(layer) and (any(sub is target for sub in _all_layers(layer))
                                 or _linear_chain(layer) is not None):
            steps += _flatten(layer, target)
        else:
            steps.append(layer)
    return steps


@contextlib.contextmanager
def _without_final_activation(steps: list):
    """Make the last step output scores before softmax/sigmoid (Grad-CAM's class score) for a while."""
    keras = _keras()
    last = steps[-1]
    if isinstance(last, keras.layers.Softmax):
        yield steps[:-1]
        return
    activation = getattr(last, "activation", None)
    if activation not in (keras.activations.softmax, keras.activations.sigmoid):
        yield steps
        return
    last.activation = keras.activations.linear
    try:
        yield steps
    finally:
        last.activation = activation


def _run(steps: list, x):
    for step in steps:
        x = step(x, training=False)
    return x


def _class_scores(out, class_index: np.ndarray):
    """Score of ``class_index[i]`` for each image: a logit column, or +/- the single sigmoid logit."""
    ops = _keras().ops
    if out.shape[-1] == 1:
        sign = ops.convert_to_tensor(np.where(class_index == 1, 1.0, -1.0).astype("float32"))
        return out[:, 0] * sign
    onehot = ops.one_hot(ops.convert_to_tensor(class_index.astype("int32")), out.shape[-1])
    return ops.sum(out * ops.cast(onehot, out.dtype), axis=-1)


def _gradients(before: Callable, after: Callable, x: np.ndarray,
               class_index: int | None) -> tuple[np.ndarray, np.ndarray]:
    """(conv output, d score / d conv output) as NumPy arrays, on the active backend."""
    keras = _keras()
    backend = keras.backend.backend()
    to_np = keras.ops.convert_to_numpy
    conv = before(keras.ops.convert_to_tensor(x))
    if class_index is None:
        logits = to_np(after(conv))
        index = (logits[:, 0] > 0).astype(int) if logits.shape[-1] == 1 else logits.argmax(axis=-1)
    else:
        index = np.full(len(x), int(class_index))
    if backend == "tensorflow":
        import tensorflow as tf

        with tf.GradientTape() as tape:
            tape.watch(conv)
            total = tf.reduce_sum(_class_scores(after(conv), index))
        grads = tape.gradient(total, conv)
    elif backend == "jax":
        import jax

        grads = jax.grad(lambda c: _class_scores(after(c), index).sum())(conv)
    elif backend == "torch":
        import torch

        conv = conv.detach().requires_grad_(True)
        grads = torch.autograd.grad(_class_scores(after(conv), index).sum(), conv)[0]
    else:
        raise NotImplementedError(f"gradcam supports the TensorFlow, JAX and PyTorch backends, not {backend!r}: "
                                  "set KERAS_BACKEND=tensorflow.")
    return to_np(conv), to_np(grads)


def gradcam(model, images_input: np.ndarray, class_index: int | None = None, layer_name: str | None = None,
            batch_size: int = 16) -> np.ndarray:
    """Grad-CAM heatmaps, shape (N, h, w) with values in [0, 1], h x w being the conv layer's grid.

    ``images_input``: the model's input (for the lesson models, the grayscale images (N, size, size, 1),
    values 0-255: their preprocessing is inside). ``class_index``: the class to explain
    (default: each image's predicted class). ``layer_name``: the conv layer (default: the last Conv2D,
    ``block5_conv3`` for VGG16; nested models are searched).
    """
    target = find_conv_layer(model, layer_name)
    steps = _flatten(model, target)
    k = next(i for i, step in enumerate(steps) if step is target)
    if k == len(steps) - 1:
        raise ValueError(f"{target.name!r} is the model's last layer: choose a conv layer before the classifier.")
    images_input = np.asarray(images_input, dtype=np.float32)
    heatmaps = []
    with _without_final_activation(steps[k + 1:]) as rest:
        for start in range(0, len(images_input), batch_size):
            conv, grads = _gradients(lambda t: _run(steps[:k + 1], t), lambda t: _run(rest, t),
                                     images_input[start:start + batch_size], class_index)
            if conv.ndim != 4:
                raise ValueError(f"{target.name!r} does not output a (N, h, w, channels) feature map.")
            conv, grads = conv.astype(np.float32), grads.astype(np.float32)  # bfloat16 under mixed precision
            cam = np.maximum(np.einsum("nhwc,nc->nhw", conv, grads.mean(axis=(1, 2))), 0.0)
            peak = cam.max(axis=(1, 2), keepdims=True)
            heatmaps.append(np.where(peak > 0, cam / np.where(peak > 0, peak, 1.0), 0.0))
    if not heatmaps:
        return np.zeros((0, 0, 0), np.float32)
    return np.concatenate(heatmaps).astype(np.float32)


def overlay(gray_image: np.ndarray, heatmap: np.ndarray, alpha: float = 0.4) -> np.ndarray:
    """The heatmap, resized to the image and coloured with matplotlib's "jet", blended over the
    grayscale image: (H, W, 3) uint8."""
    import matplotlib
    from PIL import Image

    gray = np.asarray(gray_image, dtype=np.uint8)
    if gray.ndim != 2:
        raise ValueError(f"Expected a (H, W) grayscale image, got shape {gray.shape}.")
    heat = Image.fromarray(np.asarray(heatmap, dtype=np.float32))
    heat = np.clip(np.asarray(heat.resize(gray.shape[::-1], Image.Resampling.BILINEAR)), 0.0, 1.0)
    colour = matplotlib.colormaps["jet"](heat)[..., :3] * 255.0
    blended = (1.0 - alpha) * gray[..., None].astype(np.float32) + alpha * colour
    return np.clip(np.round(blended), 0, 255).astype(np.uint8)
