"""The input every saved lesson model takes: the grayscale image itself, (size, size, 1), values 0-255.

What a network needs on top of that is a layer inside the model, so that a saved model file takes what
``predict`` gives it and nothing needs to be remembered beside it. The CNN of lesson 6 uses Keras'
``Rescaling(1 / 255)``; the VGG16 models use :class:`GrayToVGG16`. Importing this module imports Keras.
"""
from __future__ import annotations

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="workshop_utils")
class GrayToVGG16(keras.layers.Layer):
    """(N, H, W, 1) grayscale 0-255 -> VGG16's input: the gray channel copied into R, G and B, then
    ``keras.applications.vgg16.preprocess_input`` ("caffe": RGB to BGR, ImageNet channel means subtracted)."""

    def call(self, gray):
        gray = ops.cast(gray, self.compute_dtype)
        return keras.applications.vgg16.preprocess_input(ops.concatenate([gray, gray, gray], axis=-1))

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], 3)
