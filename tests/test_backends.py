"""The lessons on every Keras backend Colab offers: TensorFlow (the rest of the suite), JAX and PyTorch.

Every lesson (and, on PyTorch, every student copy) runs in quick mode under the runner with TensorFlow made
unimportable, as on a machine without it; the models each run saves give `predict` the lesson's own
probabilities; and the model every lesson saves on TensorFlow loads with `predict` on JAX and on PyTorch and gives
the same probabilities to 1e-4 and Grad-CAM maps to 1e-3. Each backend's checks skip where it is not installed
(the test extra installs both; `pip install torch==2.13.0` takes the CPU build on these machines)."""
from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from workshop_utils import runner

ROOT = Path(__file__).resolve().parents[1]
LESSONS = [nb.stem for nb in runner.lesson_notebooks()]


def installed(backend: str):
    return pytest.param(backend, marks=pytest.mark.skipif(importlib.util.find_spec(backend) is None,
                                                          reason=f"{backend} is not installed"))


def without_tensorflow(tmp_path: Path, backend: str) -> dict:
    """The environment of a run on ``backend`` whose kernels find a `tensorflow` that refuses to import, so any
    use of TensorFlow anywhere in the lessons fails the run."""
    shim = tmp_path / "no_tensorflow" / "tensorflow"
    shim.mkdir(parents=True, exist_ok=True)
    (shim / "__init__.py").write_text('raise ImportError("TensorFlow is blocked in this test")\n')
    return dict(os.environ, KERAS_BACKEND=backend, JAX_PLATFORMS="cpu", PYTHONPATH=str(shim.parent),
                WORKSHOP_CACHE_DIR=str(tmp_path / "cache"), KERAS_HOME=str(tmp_path / "keras"))


def run_lessons(out: Path, env: dict, *options: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "workshop_utils", "run", "--data-dir", "synthetic", "--quick",
                           "--weights", "none", "--out", str(out), *options], env=env, capture_output=True,
                          text=True, timeout=1200, cwd=ROOT)


def predict_gaps(models: Path, env: dict) -> dict[str, float]:
    """For each model a run saved: the largest difference between predict's probabilities on the test image
    files and the lesson's own (computed from cached float16 block-4 features: hence a tolerance)."""
    check = subprocess.run([sys.executable, "-c", textwrap.dedent(f"""
        import json, pathlib
        import numpy as np
        from workshop_utils import lesson
        from workshop_utils.predict import predict_files
        gaps = {{}}
        for model in sorted(pathlib.Path({str(models)!r}).glob("*.keras")):
            rows = lesson.read_predictions(model.with_suffix(".test.csv"))
            predicted = predict_files(model, [r["file"] for r in rows])
            gaps[model.stem] = float(np.max(np.abs(np.array([p["p_pneumonia"] for p in predicted])
                                                   - np.array([r["p_pneumonia"] for r in rows]))))
        print(json.dumps(gaps))
    """)], env=env, capture_output=True, text=True, timeout=600)
    assert check.returncode == 0, check.stderr[-3000:]
    return json.loads(check.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("backend", [installed("jax"), installed("torch")])
def test_every_lesson_runs_without_tensorflow(tmp_path, backend):
    env = without_tensorflow(tmp_path, backend)
    out = tmp_path / "run"
    proc = run_lessons(out, env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert sorted(summary["notebooks"]) == [f"{name}.ipynb" for name in LESSONS]
    assert {r["lesson"] for r in summary["results"]} >= set(LESSONS[1:])  # every lesson after 01 saves a model
    assert summary["versions"]["keras backend"] == backend
    report = (out / "02_baseline_vgg16.ipynb").read_text()
    assert re.search(rf"backend\s+{backend}", report), f"the setup cell did not report the {backend} backend"
    gaps = predict_gaps(out / "models", env)
    assert sorted(gaps) == LESSONS[1:] and max(gaps.values()) < 0.01, gaps


@pytest.mark.parametrize("backend", [installed("torch")])  # on JAX too it passes, in 186 s more of CI (2026-12-07)
def test_every_student_copy_runs_without_tensorflow(tmp_path, backend):
    """The attendee's route on Colab with the PyTorch backend: every cell but the blank answers runs."""
    env = without_tensorflow(tmp_path, backend)
    out = tmp_path / "run"
    proc = run_lessons(out, env, "--notebooks", str(ROOT / "notebooks" / "student"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "exercises left to you" in proc.stdout
    summary = json.loads((out / "summary.json").read_text())
    assert sorted(summary["notebooks"]) == [f"{name}.ipynb" for name in LESSONS]


@pytest.fixture(scope="module")
def tensorflow_models(tmp_path_factory) -> Path:
    """The models every lesson after 01 saves in quick mode on TensorFlow (synthetic data, no weights): the
    lessons' nbval run of this test session where it saved them all (conftest.py runs this file after the
    notebooks, with the runner's parameters), else a run of the runner's own."""
    nbval_models = Path(os.environ.get("WORKSHOP_TEST_LESSONS_RUN", tmp_path_factory.getbasetemp() / "none")) / "models"
    if all((nbval_models / f"{name}.keras").is_file() for name in LESSONS[1:]):
        return nbval_models
    tmp = tmp_path_factory.mktemp("tf-run")
    env = dict(os.environ, KERAS_BACKEND="tensorflow", WORKSHOP_CACHE_DIR=str(tmp / "cache"),
               KERAS_HOME=str(tmp / "keras"))
    proc = run_lessons(tmp / "run", env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return tmp / "run" / "models"


def predict_on(models: Path, images: list[str], backend: str) -> dict[str, dict]:
    """What `predict` (predict_files, the command's code) gives for each saved model on ``backend``, in a fresh
    interpreter: the probabilities, and the Grad-CAM heatmaps of the images."""
    env = dict(os.environ, KERAS_BACKEND=backend, JAX_PLATFORMS="cpu")
    code = textwrap.dedent(f"""
        import json, pathlib
        import numpy as np
        import keras
        from workshop_utils import gradcam, images, saving
        from workshop_utils.predict import predict_files
        found = {{}}
        for path in sorted(pathlib.Path({str(models)!r}).glob("*.keras")):
            model, meta = saving.load_lesson_model(path)
            gray = np.stack([images.decode_image(f, meta["image_size"]) for f in {images!r}])[..., None]
            found[path.stem] = {{"p": [r["p_pneumonia"] for r in predict_files(path, {images!r})],
                                "cam": gradcam.gradcam(model, gray.astype("float32")).tolist()}}
        print(json.dumps({{"backend": keras.backend.backend(), "models": found}}))
    """)
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["backend"] == backend
    return out["models"]


@pytest.fixture(scope="module")
def sample_images(tensorflow_models) -> list[str]:
    from workshop_utils import lesson

    return [r["file"] for r in lesson.read_predictions(tensorflow_models / "02_baseline_vgg16.test.csv")[:6]]


@pytest.fixture(scope="module")
def on_tensorflow(tensorflow_models, sample_images) -> dict[str, dict]:
    return predict_on(tensorflow_models, sample_images, "tensorflow")


@pytest.mark.parametrize("backend", [installed("jax"), installed("torch")])
def test_models_saved_on_tensorflow_predict_the_same_on(backend, tensorflow_models, sample_images, on_tensorflow):
    import numpy as np

    elsewhere = predict_on(tensorflow_models, sample_images, backend)
    assert sorted(on_tensorflow) == sorted(elsewhere) == LESSONS[1:]
    for model, found in on_tensorflow.items():
        np.testing.assert_allclose(elsewhere[model]["p"], found["p"], atol=1e-4, err_msg=model)
        np.testing.assert_allclose(elsewhere[model]["cam"], found["cam"], atol=1e-3, err_msg=model)


@pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="torch is not installed")
@pytest.mark.parametrize("precision", ["mixed_bfloat16", "mixed_float16"])
def test_a_head_trains_with_class_weights_in_mixed_precision_on_torch(tmp_path, precision):
    """What a lesson does on a GPU with PRECISION set, on the PyTorch backend: the head computes in half
    precision, its output stays float32, and fit takes the class-weight dict and the lessons' ArrayBatches."""
    code = textwrap.dedent(f"""
        import json
        import numpy as np
        import keras
        import workshop_utils as wu
        from workshop_utils import batches
        keras.utils.set_random_seed(0)
        keras.mixed_precision.set_global_policy("{precision}")
        x = np.random.default_rng(0).normal(size=(50, 4, 4, 8)).astype("float16")
        y = (x[:, 0, 0, 0] > 0.5).astype("int32")
        head = wu.heads.regularised(x.shape[1:])
        head.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
        history = head.fit(batches.ArrayBatches(x, y, batch_size=8), epochs=2, verbose=0,
                           class_weight=wu.class_weights(y))
        p = keras.ops.convert_to_numpy(head(x[:5], training=False))
        print(json.dumps({{"backend": keras.backend.backend(), "out": str(p.dtype),
                           "compute": head.layers[1].compute_dtype, "finite": bool(np.isfinite(p).all()),
                           "loss": [float(v) for v in history.history["loss"]]}}))
    """)
    proc = subprocess.run([sys.executable, "-c", code], env=without_tensorflow(tmp_path, "torch"),
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["backend"] == "torch" and out["out"] == "float32" and out["finite"], out
    assert out["compute"] == precision.removeprefix("mixed_"), out
    assert len(out["loss"]) == 2 and all(v == v for v in out["loss"]), out  # no NaN
