"""The training code on KERAS_BACKEND=jax with TensorFlow made unimportable, as on a GPU machine without it.

Each check runs in a fresh interpreter (the backend is chosen at import). Skipped where jax is not installed.
"""
from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.skipif(importlib.util.find_spec("jax") is None, reason="jax is not installed")

PRELUDE = """
import sys
sys.modules["tensorflow"] = None  # `import tensorflow` now raises ImportError, as where it is not installed
import json
import numpy as np
from jax import monitoring
import keras

compiles = []
def _count(event, duration_secs, **kwargs):
    if event == "/jax/core/compile/backend_compile_duration":
        compiles.append(event)
monitoring.register_event_duration_secs_listener(_count)
"""


def run_jax(body: str, tmp_path) -> dict:
    """Run PRELUDE + body under the JAX backend; body prints one JSON line last."""
    env = dict(os.environ, KERAS_BACKEND="jax", JAX_PLATFORMS="cpu", WORKSHOP_CACHE_DIR=str(tmp_path / "cache"))
    proc = subprocess.run([sys.executable, "-c", PRELUDE + textwrap.dedent(body)], env=env, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_lesson_pipeline_trains_under_jax_without_tensorflow(tmp_path):
    out = run_jax("""
        import workshop_utils as wu
        from workshop_utils import batches, download, features
        keras.utils.set_random_seed(0)
        data = wu.load_dataset(download.locate_dataset("synthetic"), 32, subset={"train": 48}, progress=False)
        tr, va = wu.patient_split(data["train"].labels, data["train"].groups, 0.2, seed=0)
        base = keras.applications.VGG16(weights=None, include_top=False, input_shape=(32, 32, 3))
        base.trainable = False
        feats = features.frozen_vgg16_features(base, data["train"].images, batch_size=8, progress=False)
        head = keras.Sequential([keras.Input(feats.shape[1:]), keras.layers.Flatten(),
                                 keras.layers.Dense(2, activation="softmax", dtype="float32")])
        head.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
        y = data["train"].labels
        history = head.fit(feats[tr], y[tr], validation_data=(feats[va], y[va]), epochs=2, batch_size=8,
                           class_weight=wu.class_weights(y[tr]), verbose=0)  # NumPy arrays in
        prob = head.predict(feats[va], verbose=0)[:, 1]
        print(json.dumps({"backend": keras.backend.backend(), "tf": "tensorflow" in sys.modules
                          and sys.modules["tensorflow"] is not None, "epochs": len(history.history["loss"]),
                          "finite": bool(np.isfinite(prob).all()), "n": len(prob), "n_val": len(va)}))
    """, tmp_path)
    assert out["backend"] == "jax" and out["tf"] is False
    assert out["epochs"] == 2 and out["finite"] and out["n"] == out["n_val"]


@pytest.mark.parametrize("precision", ["float32", "mixed_bfloat16"])
def test_array_batches_compile_the_train_step_once(tmp_path, precision):
    # 50 samples in batches of 8: fit() on arrays ends each epoch with a batch of 2, a second input shape
    # and a second compilation; ArrayBatches completes that batch, so the train step compiles once.
    # Neither recompiles at later epochs. (Counted after a warm-up, which compiles the one-off helpers.)
    out = run_jax(f"""
        from workshop_utils import batches
        keras.utils.set_random_seed(0)
        keras.mixed_precision.set_global_policy("{precision}")
        x = np.random.default_rng(0).normal(size=(50, 6)).astype("float16")
        y = (x[:, 0] > 0).astype("int32")

        def train(feed, epochs):
            model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(4, activation="relu"),
                                      keras.layers.Dense(2, activation="softmax", dtype="float32")])
            model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
            before = len(compiles)
            if feed == "batches":
                model.fit(batches.ArrayBatches(x, y, batch_size=8), epochs=epochs, verbose=0)
            else:
                model.fit(x, y, batch_size=8, epochs=epochs, verbose=0)
            return len(compiles) - before, model

        train("batches", 1), train("arrays", 1)  # warm-up
        counts = {{f"{{feed}}{{epochs}}": train(feed, epochs)[0]
                  for feed in ("batches", "arrays") for epochs in (1, 5)}}
        xb, yb = batches.ArrayBatches(x, y, batch_size=8)[6]
        print(json.dumps({{**counts, "last_batch": list(xb.shape), "dtype": str(xb.dtype),
                           "compute": train("batches", 1)[1].layers[0].compute_dtype}}))
    """, tmp_path)
    assert out["batches1"] == out["batches5"] == 1, out
    assert out["arrays1"] == out["arrays5"] == 2, out
    assert out["last_batch"] == [8, 6] and out["dtype"] == "float32"
    assert out["compute"] == ("bfloat16" if precision == "mixed_bfloat16" else "float32")
