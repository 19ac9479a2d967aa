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


def _tiny_vgg16():
    keras.utils.set_random_seed(0)
    return keras.applications.VGG16(weights=None, include_top=False, input_shape=(32, 32, 3))


def _vgg_prep(gray):
    return keras.applications.vgg16.preprocess_input(features.gray_to_rgb(gray))


def test_split_vgg16_recomposes_the_base():
    base = _tiny_vgg16()
    lower, upper = features.split_vgg16(base)
    assert lower.output.shape[1:] == (2, 2, 512) and upper.output.shape[1:] == base.output.shape[1:]
    assert [w.name for w in upper.weights] == [w.name for w in base.get_layer("block5_conv1").weights
                                               + base.get_layer("block5_conv2").weights
                                               + base.get_layer("block5_conv3").weights]
    x = _vgg_prep(np.random.default_rng(1).integers(0, 256, (3, 32, 32), dtype=np.uint8))
    np.testing.assert_allclose(upper.predict(lower.predict(x, verbose=0), verbose=0), base.predict(x, verbose=0),
                               rtol=1e-5, atol=1e-5)


def test_frozen_vgg16_features_match_the_base_and_share_blocks_1_to_4(tmp_path):
    base = _tiny_vgg16()
    images = np.random.default_rng(2).integers(0, 256, (5, 32, 32), dtype=np.uint8)
    out = features.frozen_vgg16_features(base, images, _vgg_prep, batch_size=4, cache_dir=tmp_path, progress=False)
    full = base.predict(_vgg_prep(images), verbose=0)
    assert out.dtype == np.float32 and out.shape == full.shape
    np.testing.assert_allclose(out, full, rtol=2e-3, atol=2e-3 * np.abs(full).max())  # float16 in between
    cached = sorted(p.name.split("-")[1] for p in tmp_path.glob("*.npy"))
    assert cached == ["block4", "block5"]
    # Lesson 7 builds blocks 1-4 itself; with the same name and dtype it reads the same file.
    lower = keras.Model(base.input, base.get_layer("block4_pool").output)
    calls = []
    block4 = features.extract_features(lower, images, lambda b: calls.append(b) or _vgg_prep(b), batch_size=4,
                                       cache_dir=tmp_path, name=features.BLOCK4, dtype="float16", progress=False)
    assert calls == [] and block4.dtype == np.float16
    # float32 is another cache entry, not the float16 one
    features.extract_features(lower, images, lambda b: calls.append(b) or _vgg_prep(b), batch_size=4,
                              cache_dir=tmp_path, name=features.BLOCK4, progress=False)
    assert len(calls) == 2


def test_float16_features_that_overflow_stay_float32_with_a_warning(tmp_path):
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1, kernel_initializer="ones")])
    x = np.array([[1e5, 1e5], [1.0, 2.0]], dtype=np.float32)
    with pytest.warns(UserWarning, match="do not fit float16"):
        out = features.extract_features(model, x, lambda b: b, cache_dir=tmp_path, dtype="float16", progress=False)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out[:, 0], [2e5, 3.0])


def test_array_batches_fixed_shape_float32_every_sample_each_epoch():
    from workshop_utils.batches import ArrayBatches

    x = np.arange(10, dtype=np.float16)[:, None]
    y = np.arange(10)
    data = ArrayBatches(x, y, batch_size=4, seed=0)
    assert len(data) == 3
    for _ in range(2):
        seen = []
        for i in range(len(data)):
            xb, yb = data[i]
            assert xb.shape == (4, 1) and xb.dtype == np.float32
            np.testing.assert_array_equal(xb[:, 0], yb)  # samples and labels stay paired
            seen.extend(yb.tolist())
        assert sorted(set(seen)) == list(range(10)) and len(seen) == 12  # 2 repeated to fill the last batch
        data.on_epoch_end()
    with pytest.raises(ValueError, match="x has 10 samples but y has 9"):
        ArrayBatches(x, y[:9])
    with pytest.raises(IndexError, match="out of range"):
        data[3]


def test_array_batches_train_with_class_weights():
    from workshop_utils.batches import ArrayBatches

    x = np.ones((8, 3), "float16")
    y = np.array([0, 0, 1, 1, 1, 1, 1, 1])
    model = _logistic_head(3)
    model.compile(optimizer=keras.optimizers.SGD(0.0), loss="sparse_categorical_crossentropy")
    hist = model.fit(ArrayBatches(x, y, batch_size=8), epochs=1, verbose=0, class_weight={0: 10.0, 1: 1.0})
    assert hist.history["loss"][0] == pytest.approx(math.log(2) * (2 * 10 + 6 * 1) / 8, rel=1e-4)
