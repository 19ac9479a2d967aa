"""Class weights change training, and frozen-base features are cached: behaviour the lessons rely on."""
import math

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from workshop_utils import class_weights, features  # noqa: E402


def _logistic_head(n_features: int):
    model = keras.Sequential([keras.Input((n_features,)),
                              keras.layers.Dense(2, activation="softmax", kernel_initializer="zeros")])
    return model


def test_class_weight_dict_is_applied_to_the_loss():
    # Zero weights predict 0.5/0.5, so every sample's loss is ln 2; with lr 0 nothing moves, and the
    # reported loss is the weighted mean: ln 2 * mean(sample weights).
    x = np.ones((8, 3), "float32")
    y = np.array([0, 0, 1, 1, 1, 1, 1, 1])
    losses = {}
    for name, weight in (("plain", None), ("weighted", {0: 10.0, 1: 1.0})):
        model = _logistic_head(3)
        model.compile(optimizer=keras.optimizers.SGD(0.0), loss="sparse_categorical_crossentropy")
        hist = model.fit(x, y, batch_size=8, epochs=1, verbose=0, shuffle=False, class_weight=weight)
        losses[name] = hist.history["loss"][0]
    assert losses["plain"] == pytest.approx(math.log(2), rel=1e-4)
    assert losses["weighted"] == pytest.approx(math.log(2) * (2 * 10 + 6 * 1) / 8, rel=1e-4)


def test_balanced_class_weights_raise_minority_recall():
    # Overlapping 1-D classes, 4 positives per negative: unweighted training favours the majority.
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(-0.5, 1, 200), rng.normal(0.5, 1, 800)]).astype("float32")[:, None]
    y = np.array([0] * 200 + [1] * 800)
    recall = {}
    for name, weight in (("plain", None), ("weighted", class_weights(y))):
        keras.utils.set_random_seed(0)
        model = _logistic_head(1)
        model.compile(optimizer=keras.optimizers.Adam(0.05), loss="sparse_categorical_crossentropy")
        model.fit(x, y, batch_size=100, epochs=30, verbose=0, class_weight=weight)
        pred = model.predict(x, verbose=0).argmax(1)
        recall[name] = ((pred == 0) & (y == 0)).sum() / 200
    assert recall["plain"] < 0.3
    assert recall["weighted"] > recall["plain"] + 0.3


def test_extract_features_caches_and_pads(tmp_path):
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Conv2D(2, 3), keras.layers.GlobalAveragePooling2D()])
    images = np.random.default_rng(0).integers(0, 256, (10, 8, 8), dtype=np.uint8)
    shapes = []

    def prep(batch):
        shapes.append(batch.shape)
        return features.gray_to_rgb(batch) / 255.0

    first = features.extract_features(model, images, prep, batch_size=4, cache_dir=tmp_path, progress=False)
    assert first.shape == (10, 2)
    assert shapes == [(4, 8, 8)] * 3  # the last batch of 2 was padded to 4
    expected = model.predict(features.gray_to_rgb(images) / 255.0, verbose=0)
    np.testing.assert_allclose(first, expected, rtol=1e-5, atol=1e-6)
    again = features.extract_features(model, images, prep, batch_size=4, cache_dir=tmp_path, progress=False)
    assert len(shapes) == 3  # read from the cache, no new batch
    np.testing.assert_array_equal(first, again)
    model.layers[0].kernel.assign(model.layers[0].kernel * 2)  # new weights: the cache must miss
    features.extract_features(model, images, prep, batch_size=4, cache_dir=tmp_path, progress=False)
    assert len(shapes) == 6
    features.extract_features(model, images, prep, batch_size=4, cache_dir=tmp_path, progress=False, cache=False)
    assert len(shapes) == 9


def test_gray_to_rgb_copies_the_channel():
    gray = np.array([[[0, 128], [255, 7]]], dtype=np.uint8)
    rgb = features.gray_to_rgb(gray)
    assert rgb.shape == (1, 2, 2, 3) and rgb.dtype == np.float32
    for c in range(3):
        np.testing.assert_array_equal(rgb[..., c], gray[0].astype(np.float32)[None])
