"""The environment check run_on_device.sh runs before the series: fails fast, saying what to do.

Usage: python benchmarks/gpu/device_check.py CPU_OK(0|1) PRECISION ANSWER_FILE
Imports what the series needs and prints the versions; exits 1 where JAX sees no GPU (unless CPU_OK is 1).
Then tries PRECISION on what has broken under mixed_bfloat16 after minutes of a series on the CPU here:
  - a random VGG16 behind GrayToVGG16 through predict_on_batch (the lessons' feature pass) at 64 and 150 px:
    NaN/inf with jax 0.11.2 and 0.12 on the CPU (not with jax 0.10.2), which fails lesson 2;
  - wu.gradcam.gradcam on such a model (lesson 8): "TypeError: invalid data type for einsum" (NumPy's einsum on
    bfloat16 arrays), which fails lesson 8.
Writes the precision the series should use to ANSWER_FILE: PRECISION, or float32 (with a WARNING naming the
failure) where PRECISION fails; exits 1 where float32 itself fails.
"""
import platform
import sys


def precision_failure(precision: str) -> str | None:
    """What fails under ``precision`` (None: nothing)."""
    import keras
    import numpy as np
    from workshop_utils import gradcam, preprocessing

    keras.config.set_dtype_policy(precision)
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    for size in (64, 150):  # the quick preset's size and the lessons' default
        base = keras.applications.VGG16(weights=None, include_top=False, input_shape=(size, size, 3))
        features = keras.Sequential([keras.Input((size, size, 1)), preprocessing.GrayToVGG16(), base])
        gray = rng.uniform(0, 255, (32, size, size, 1)).astype("float32")
        out = np.asarray(features.predict_on_batch(gray), dtype=np.float32)
        if not np.isfinite(out).all():
            return f"{int((~np.isfinite(out)).sum())} of {out.size} outputs of a random VGG16 at {size} px are NaN/inf"
    classifier = keras.Sequential([features, keras.layers.GlobalAveragePooling2D(),
                                   keras.layers.Dense(2, activation="softmax", dtype="float32")])
    try:
        gradcam.gradcam(classifier, gray[:2], class_index=1)
    except Exception as exc:  # what lesson 8 would meet
        return f"wu.gradcam.gradcam raised {type(exc).__name__}: {exc}"
    return None


def main(cpu_ok: bool, precision: str, answer: str) -> int:
    try:
        import ipykernel
        import jax
        import keras
        import numpy as np
        import papermill
        import workshop_utils
        from workshop_utils import runner
    except ImportError as exc:
        print(f"run_on_device: cannot import {exc.name} ({exc}): add it to the carried wheels (wheels.py)")
        return 1
    print(f"python {platform.python_version()} {sys.executable}; keras {keras.__version__} (backend "
          f"{keras.backend.backend()}); jax {jax.__version__}; numpy {np.__version__}; papermill "
          f"{papermill.__version__}; ipykernel {ipykernel.__version__}; workshop_utils from {workshop_utils.__file__}")
    print(f"jax devices: {jax.devices()}")
    if keras.backend.backend() != "jax":
        print("run_on_device: Keras is not on JAX: export KERAS_BACKEND=jax")
        return 1
    if not any(d.platform == "gpu" for d in jax.devices()) and not cpu_ok:
        print("run_on_device: JAX sees no GPU (is its CUDA plugin installed?); give --cpu-ok to run on the CPU")
        return 1
    if precision not in runner.PRECISIONS:
        print(f"run_on_device: --precision {precision}: give one of {', '.join(runner.PRECISIONS)}")
        return 1
    failure = precision_failure(precision)
    if failure is None:
        print(f"{precision}: a random VGG16's outputs are finite and Grad-CAM runs")
    elif precision == "float32":
        print(f"run_on_device: in float32, {failure}: the series would fail")
        return 1
    else:
        print(f"WARNING: under {precision}, {failure}: the series runs in float32 instead")
        precision = "float32"
    with open(answer, "w") as f:
        f.write(precision)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] == "1", sys.argv[2], sys.argv[3]))
