"""Where the workshop keeps its files: the dataset folder and the caches. Every command and lesson asks here.

Environment variables (all optional):

* ``WORKSHOP_DATA_DIR``: a dataset copy you already have. It is used as it is, never downloaded into.
* ``WORKSHOP_HOME``: one folder for the downloaded dataset (``data/``) and the caches (``cache/``). On Colab,
  with Google Drive mounted (Files panel > Mount Drive), it defaults to ``MyDrive/pneumonia-workshop``, so the
  next lesson, in its own runtime, finds the data and caches the previous one made.
* ``WORKSHOP_CACHE_DIR``: the cache folder alone (decoded images, frozen features, the synthetic dataset).
"""
from __future__ import annotations

import os
import sys
import warnings
from pathlib import Path

DATA_DIR_ENV = "WORKSHOP_DATA_DIR"
HOME_ENV = "WORKSHOP_HOME"
CACHE_DIR_ENV = "WORKSHOP_CACHE_DIR"
#: Where Colab mounts the user's Google Drive.
COLAB_DRIVE = Path("/content/drive/MyDrive")
#: The repository checkout this package runs from, if it runs from one (an editable install).
CHECKOUT = Path(__file__).resolve().parents[1]


def workshop_home() -> Path | None:
    """``$WORKSHOP_HOME``; else, on Colab with Google Drive mounted, ``MyDrive/pneumonia-workshop``; else None."""
    home = os.environ.get(HOME_ENV)
    if home:
        return Path(home).expanduser()
    if "google.colab" in sys.modules and COLAB_DRIVE.is_dir():
        return COLAB_DRIVE / "pneumonia-workshop"
    return None


def mount_colab_drive() -> Path | None:
    """On Colab, mount the user's Google Drive (Colab asks for permission once per runtime), so that the dataset,
    the caches and the results stay there for the next lesson; return the workshop folder on it. Elsewhere, or
    when the user declines, return None (with a warning on Colab: every lesson would fetch the data again)."""
    if "google.colab" not in sys.modules:
        return None
    if not COLAB_DRIVE.is_dir():
        try:
            from google.colab import drive

            drive.mount(str(COLAB_DRIVE.parent))
        except Exception as exc:  # declined, timed out, no Drive: go on in this runtime only
            warnings.warn(f"Google Drive is not mounted ({exc}): the dataset, caches and results stay in this "
                          "runtime only, and the next lesson fetches the dataset again. Mount it (Files panel > "
                          "Mount Drive) and run this cell again to keep them.", stacklevel=2)
            return None
    return workshop_home()


def user_data_dir() -> Path | None:
    """``$WORKSHOP_DATA_DIR`` (a copy the user points at), or None when it is not set."""
    value = os.environ.get(DATA_DIR_ENV)
    return Path(value).expanduser() if value and value != "synthetic" else None


def default_data_dir() -> Path:
    """Where the dataset is downloaded to: ``$WORKSHOP_HOME/data``, else ``<checkout>/data`` when running
    from a checkout of the repository, else ``~/pneumonia-workshop-data``."""
    home = workshop_home()
    if home is not None:
        return home / "data"
    if (CHECKOUT / "pyproject.toml").is_file():
        return CHECKOUT / "data"
    return Path.home() / "pneumonia-workshop-data"


def cache_dir() -> Path:
    """``$WORKSHOP_CACHE_DIR``, else ``$WORKSHOP_HOME/cache``, else ``~/.cache/pneumonia-workshop``."""
    explicit = os.environ.get(CACHE_DIR_ENV)
    if explicit:
        return Path(explicit).expanduser()
    home = workshop_home()
    return home / "cache" if home is not None else Path.home() / ".cache" / "pneumonia-workshop"


def keras_models_dir() -> Path:
    """Keras' own weights cache: ``$KERAS_HOME/models`` (default ``~/.keras/models``)."""
    return Path(os.environ.get("KERAS_HOME", Path.home() / ".keras")) / "models"
