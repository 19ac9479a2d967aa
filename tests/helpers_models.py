"""Tiny Keras models and files for the predict / Grad-CAM / kit tests. Keras is imported lazily."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def lesson_vgg16(size: int = 32, seed: int = 0):
    """Lessons 2-5 and 8's model with random weights: Sequential([Input (size, size, 1) grayscale 0-255,
    GrayToVGG16, frozen VGG16, head(Flatten, Dense(2, softmax))])."""
    import keras

    from workshop_utils.preprocessing import GrayToVGG16

    keras.utils.set_random_seed(seed)
    base = keras.applications.VGG16(weights=None, include_top=False, input_shape=(size, size, 3))
    base.trainable = False
    head = keras.Sequential([keras.Input(base.output.shape[1:]), keras.layers.Flatten(),
                             keras.layers.Dense(2, activation="softmax", dtype="float32")], name="head")
    return keras.Sequential([keras.Input((size, size, 1)), GrayToVGG16(), base, head], name="tiny_lesson_vgg16")


def fine_tuned_vgg16(size: int = 32, seed: int = 0):
    """Lesson 7's model: Sequential([Input (size, size, 1), blocks 1-4 with GrayToVGG16 first, block 5,
    head with BatchNormalization and Dropout]), built with ``features.split_vgg16`` as the lesson does."""
    import keras

    from workshop_utils.features import split_vgg16

    keras.utils.set_random_seed(seed)
    base = keras.applications.VGG16(weights=None, include_top=False, input_shape=(size, size, 3))
    lower, upper = split_vgg16(base)
    head = keras.Sequential([keras.Input(upper.output.shape[1:]), keras.layers.Flatten(),
                             keras.layers.Dense(4, activation="relu"), keras.layers.BatchNormalization(),
                             keras.layers.Dropout(0.5), keras.layers.Dense(2, activation="softmax")], name="head")
    return keras.Sequential([keras.Input((size, size, 1)), lower, upper, head], name="tiny_fine_tuned")


def small_cnn(size: int = 24, seed: int = 0):
    """Lesson 6's kind of CNN: grayscale 0-255 in, augmentation (a no-op when predicting), Rescaling(1/255)
    inside, conv / batch-norm / ReLU blocks, global pooling, Dense(2, softmax)."""
    import keras
    from keras import layers

    keras.utils.set_random_seed(seed)
    return keras.Sequential([
        keras.Input((size, size, 1)),
        layers.RandomContrast(0.2, value_range=(0, 255)),
        layers.Rescaling(1 / 255),
        layers.Conv2D(4, 3, use_bias=False, name="conv_a"), layers.BatchNormalization(), layers.ReLU(),
        layers.MaxPooling2D(2),
        layers.Conv2D(4, 3, use_bias=False, name="conv_b"), layers.BatchNormalization(), layers.ReLU(),
        layers.GlobalAveragePooling2D(),
        layers.Dense(2, activation="softmax", dtype="float32"),
    ], name="small_cnn")


def brightness_model(size: int = 8, strength: float = 2.0, activation: str | None = "softmax",
                     bias: tuple[float, float] | None = None, classes: int = 2):
    """A hand-computable lesson-style model: p(PNEUMONIA) = sigmoid(2 * strength * (m - 0.5)), m being the
    image's mean gray value / 255. ``activation=None`` with ``bias`` gives the constant outputs ``bias``
    (not probabilities); ``classes=3`` a model with a third output."""
    import keras
    from keras import layers

    model = keras.Sequential([keras.Input((size, size, 1)), layers.Rescaling(1 / 255),
                              layers.GlobalAveragePooling2D(),
                              layers.Dense(classes, activation=activation, name="classifier")], name="brightness")
    kernel = np.zeros((1, classes), np.float32)
    offsets = np.zeros(classes, np.float32)
    if bias is None:
        kernel[0, :2] = [-strength, strength]
        offsets[:2] = [strength / 2, -strength / 2]
    else:
        offsets[:] = bias
    model.get_layer("classifier").set_weights([kernel, offsets])
    return model


def brightness_p(mean_gray: float, strength: float = 2.0) -> float:
    """p(PNEUMONIA) that :func:`brightness_model` gives an image of mean gray value ``mean_gray`` (0-255)."""
    return float(1 / (1 + np.exp(-2 * strength * (mean_gray / 255 - 0.5))))


def patch_detector(size: int = 16):
    """A CNN with fixed weights: its PNEUMONIA score counts bright pixels, its NORMAL score dark ones.

    Input (size, size, 1) with background 0, bright > 0, dark < 0. The last conv layer has one channel
    for bright and one for dark patches, so Grad-CAM for a class should light up that class's patch.
    """
    import keras
    from keras import layers

    model = keras.Sequential([
        keras.Input((size, size, 1)),
        layers.Conv2D(1, 1, use_bias=False, name="identity"),
        layers.Conv2D(2, 3, padding="same", activation="relu", use_bias=False, name="detector"),
        layers.Flatten(),
        layers.Dense(2, activation="softmax", name="classifier"),
    ], name="patch_detector")
    model.get_layer("identity").set_weights([np.ones((1, 1, 1, 1), np.float32)])
    kernel = np.zeros((3, 3, 1, 2), np.float32)
    kernel[..., 0, 0], kernel[..., 0, 1] = 1 / 9, -1 / 9  # channel 0: bright, channel 1: dark
    model.get_layer("detector").set_weights([kernel])
    dense = np.zeros((size * size * 2, 2), np.float32)
    dense[0::2, 1] = 10.0 / (size * size)  # bright channel -> PNEUMONIA (index 1)
    dense[1::2, 0] = 10.0 / (size * size)  # dark channel -> NORMAL (index 0)
    model.get_layer("classifier").set_weights([dense, np.zeros(2, np.float32)])
    return model


def patch_image(size: int = 16, bright: str | None = "left", dark: str | None = None) -> np.ndarray:
    """(size, size, 1) float32: a bright (+1) and/or a dark (-1) 4x4 square in the left or right half."""
    img = np.zeros((size, size, 1), np.float32)
    columns = {"left": slice(2, 6), "right": slice(size - 6, size - 2)}
    if bright:
        img[6:10, columns[bright]] = 1.0
    if dark:
        img[6:10, columns[dark]] = -1.0
    return img


def save_fake_vgg16_weights(path: str | Path) -> Path:
    """A loadable stand-in for Keras' VGG16 ImageNet weights file (random weights, same h5 layout)."""
    import h5py
    import keras
    from keras.src.legacy.saving import legacy_h5_format

    keras.utils.set_random_seed(0)
    model = keras.applications.VGG16(weights=None, include_top=False, input_shape=(32, 32, 3))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as f:
        legacy_h5_format.save_weights_to_hdf5_group(f, model)
    return path
