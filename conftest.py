"""Test-session settings. The notebooks collected by nbval (``pytest --nbval-lax``) run in quick mode on the
synthetic dataset; their kernels inherit these environment variables."""
import os
import tempfile

_scratch = tempfile.mkdtemp(prefix="workshop-tests-")
os.environ["WORKSHOP_QUICK"] = "1"
os.environ["WORKSHOP_DATA_DIR"] = "synthetic"
os.environ["WORKSHOP_CACHE_DIR"] = os.path.join(_scratch, "cache")
os.environ["WORKSHOP_RESULTS"] = os.path.join(_scratch, "results.json")
os.environ["WORKSHOP_MODELS"] = os.path.join(_scratch, "models")
os.environ["KERAS_HOME"] = os.path.join(_scratch, "keras")
os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
