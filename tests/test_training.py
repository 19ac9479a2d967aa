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


def _gray_to_rgb(gray: np.ndarray) -> np.ndarray:
    """(N, H, W) grayscale -> (N, H, W, 3) float32, the channel copied: written out here, independently of
    GrayToVGG16, to check the package against."""
    return np.repeat(np.asarray(gray, np.float32)[..., None], 3, axis=-1)


def _conv_model():
    keras.utils.set_random_seed(0)
    return keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Conv2D(2, 3), keras.layers.GlobalAveragePooling2D()])


def test_extract_features_caches_and_pads(tmp_path):
    model = _conv_model()
    images = np.random.default_rng(0).integers(0, 256, (10, 8, 8), dtype=np.uint8)
    shapes = []

    def prep(batch):
        shapes.append(batch.shape)
        return _gray_to_rgb(batch) / 255.0

    first = features.extract_features(model, images, prep, batch_size=4, cache_dir=tmp_path, progress=False)
    assert first.shape == (10, 2)
    assert shapes == [(4, 8, 8)] * 3  # the last batch of 2 was padded to 4
    expected = model.predict(_gray_to_rgb(images) / 255.0, verbose=0)
    np.testing.assert_allclose(first, expected, rtol=1e-5, atol=1e-6)
    again = features.extract_features(model, images, prep, batch_size=4, cache_dir=tmp_path, progress=False)
    assert len(shapes) == 3  # read from the cache, no new batch
    np.testing.assert_array_equal(first, again)
    model.layers[0].kernel.assign(model.layers[0].kernel * 2)  # new weights: the cache must miss
    features.extract_features(model, images, prep, batch_size=4, cache_dir=tmp_path, progress=False)
    assert len(shapes) == 6
    features.extract_features(model, images, prep, batch_size=4, cache_dir=tmp_path, progress=False, cache=False)
    assert len(shapes) == 9
    assert len(list(tmp_path.iterdir())) == 2  # one file per cached entry, nothing left over


def _cached_once(tmp_path):
    """A model, its images, a counting preprocess, the features and the one cache file they were stored in."""
    model = _conv_model()
    images = np.random.default_rng(0).integers(0, 256, (6, 8, 8), dtype=np.uint8)
    calls = []

    def prep(batch):
        calls.append(len(batch))
        return _gray_to_rgb(batch)

    first = features.extract_features(model, images, prep, batch_size=4, cache_dir=tmp_path, name="feats",
                                      progress=False)
    (cache_file,) = tmp_path.iterdir()
    return model, images, prep, calls, first, cache_file


@pytest.mark.parametrize("damage", ["truncate", "flip", "empty"])
def test_damaged_feature_cache_is_named_and_computed_again(tmp_path, damage):
    model, images, prep, calls, first, cache_file = _cached_once(tmp_path)
    data = bytearray(cache_file.read_bytes())
    if damage == "flip":
        data[-3] ^= 0x40  # same size, one value changed: only the checksum notices
    cache_file.write_bytes({"truncate": bytes(data[:-10]), "flip": bytes(data), "empty": b""}[damage])
    with pytest.warns(UserWarning, match="Computing feats again") as record:
        again = features.extract_features(model, images, prep, batch_size=4, cache_dir=tmp_path, name="feats",
                                          progress=False)
    message = str(record[0].message)
    assert str(cache_file) in message
    assert ("does not match its checksum" if damage == "flip" else "truncated or unreadable") in message
    assert len(calls) == 4  # computed again
    np.testing.assert_array_equal(again, first)
    assert [p.name for p in tmp_path.iterdir()] == [cache_file.name]  # rewritten in place, nothing left over
    features.extract_features(model, images, prep, batch_size=4, cache_dir=tmp_path, name="feats", progress=False)
    assert len(calls) == 4  # and used next time


def test_unwritable_feature_cache_warns_and_keeps_the_result(tmp_path):
    model = _conv_model()
    images = np.random.default_rng(0).integers(0, 256, (6, 8, 8), dtype=np.uint8)
    blocker = tmp_path / "file"
    blocker.write_text("a file where the cache folder should be")
    with pytest.warns(UserWarning, match="not writable") as record:
        out = features.extract_features(model, images, _gray_to_rgb, batch_size=4, cache_dir=blocker / "cache",
                                        progress=False)
    assert str(blocker / "cache") in str(record[0].message) and "WORKSHOP_CACHE_DIR" in str(record[0].message)
    np.testing.assert_allclose(out, model.predict(_gray_to_rgb(images), verbose=0), rtol=1e-5, atol=1e-6)


def test_with_channel_axis():
    gray = np.array([[[0, 128], [255, 7]]], dtype=np.uint8)
    x = features.with_channel_axis(gray)
    assert x.shape == (1, 2, 2, 1) and x.dtype == np.float32
    np.testing.assert_array_equal(x[..., 0], gray.astype(np.float32))


def _tiny_vgg16():
    keras.utils.set_random_seed(0)
    return keras.applications.VGG16(weights=None, include_top=False, input_shape=(32, 32, 3))


def _vgg_input(gray):
    """What VGG16 expects from grayscale images, computed by hand: gray copied to RGB, then Keras' preprocess_input."""
    return keras.applications.vgg16.preprocess_input(_gray_to_rgb(gray))


def test_split_vgg16_recomposes_the_base():
    base = _tiny_vgg16()
    lower, upper = features.split_vgg16(base)
    assert lower.input.shape[1:] == (32, 32, 1)  # grayscale in: the VGG16 preprocessing is inside
    assert lower.output.shape[1:] == (2, 2, 512) and upper.output.shape[1:] == base.output.shape[1:]
    assert [w.name for w in upper.weights] == [w.name for w in base.get_layer("block5_conv1").weights
                                               + base.get_layer("block5_conv2").weights
                                               + base.get_layer("block5_conv3").weights]
    gray = np.random.default_rng(1).integers(0, 256, (3, 32, 32), dtype=np.uint8)
    np.testing.assert_allclose(upper.predict(lower.predict(features.with_channel_axis(gray), verbose=0), verbose=0),
                               base.predict(_vgg_input(gray), verbose=0), rtol=1e-5, atol=1e-5)


def test_frozen_vgg16_features_match_the_base_and_share_blocks_1_to_4(tmp_path):
    base = _tiny_vgg16()
    images = np.random.default_rng(2).integers(0, 256, (5, 32, 32), dtype=np.uint8)
    out = features.frozen_vgg16_features(base, images, batch_size=4, cache_dir=tmp_path, progress=False)
    full = base.predict(_vgg_input(images), verbose=0)
    assert out.dtype == np.float32 and out.shape == full.shape
    np.testing.assert_allclose(out, full, rtol=2e-3, atol=2e-3 * np.abs(full).max())  # float16 in between
    cached = sorted(p.name.split("-")[1] for p in tmp_path.glob("*.npy"))
    assert cached == ["block4", "block5"]
    # Lesson 7 builds blocks 1-4 itself; with the same name and dtype it reads the same file.
    lower, _ = features.split_vgg16(base)
    calls = []
    block4 = features.extract_features(lower, images, lambda b: calls.append(b) or features.with_channel_axis(b),
                                       batch_size=4, cache_dir=tmp_path, name=features.BLOCK4, dtype="float16",
                                       progress=False)
    assert calls == [] and block4.dtype == np.float16
    # float32 is another cache entry, not the float16 one
    features.extract_features(lower, images, lambda b: calls.append(b) or features.with_channel_axis(b),
                              batch_size=4, cache_dir=tmp_path, name=features.BLOCK4, progress=False)
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
