"""The classification heads that lessons 2 and 4 write out and teach; later lessons call these instead.

Both take the frozen base's outputs and end in a float32 2-unit softmax (float32 also under mixed precision).
Importing this module imports Keras.
"""
from __future__ import annotations

import keras
from keras import layers


def flatten_dense(feature_shape: tuple[int, ...]) -> keras.Sequential:
    """Lesson 2's head: Flatten + Dense(2, softmax), 16,386 parameters on VGG16's (4, 4, 512) at 150 px."""
    return keras.Sequential([
        keras.Input(feature_shape),
        layers.Flatten(),
        layers.Dense(2, activation="softmax", dtype="float32"),
    ], name="head")


def regularised(feature_shape: tuple[int, ...], hidden_units: int = 256, dropout: float = 0.5) -> keras.Sequential:
    """Lesson 4's head: Flatten, Dense(hidden_units, relu), BatchNormalization, Dropout, Dense(2, softmax)."""
    return keras.Sequential([
        keras.Input(feature_shape),
        layers.Flatten(),
        layers.Dense(hidden_units, activation="relu"),
        layers.BatchNormalization(),
        layers.Dropout(dropout),
        layers.Dense(2, activation="softmax", dtype="float32"),
    ], name="head")


def on_vgg16(base, head, image_size: int, name: str = "vgg16_classifier") -> keras.Sequential:
    """The model a user runs, as lesson 2 builds it: the grayscale image (image_size, image_size, 1), 0-255 in,
    :class:`~workshop_utils.preprocessing.GrayToVGG16`, the VGG16 ``base``, the ``head``."""
    from .preprocessing import GrayToVGG16

    return keras.Sequential([keras.Input((image_size, image_size, 1)), GrayToVGG16(), base, head], name=name)
