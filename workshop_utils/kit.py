"""The offline workshop kit: the dataset and the VGG16 ImageNet weights in one folder, fetched once.

``python -m workshop_utils kit DIR [--source mendeley|kaggle] [--dataset-archive FILE] [--weights-file FILE]``

Layout: ``DIR/data/`` (the unpacked dataset), ``DIR/keras/models/<weights file>`` (where Keras looks
when ``KERAS_HOME=DIR/keras``) and ``DIR/README.txt`` (how attendees use it with no network).
"""
from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

from . import dataset, download, weights
from .download import DownloadError

README = """\
Offline kit for the pneumonia chest X-ray workshop
===================================================

This folder holds everything the lessons download, so attendees need no network:

  data/                 the chest X-ray dataset (Kermany et al. 2018, CC BY 4.0), unpacked
  keras/models/{weights_file}
                        VGG16's ImageNet weights (md5 {md5})

Below, KIT stands for the full path of this folder on the attendee's machine (it was built at
{built_at}).

1. Copy this whole folder to the machine (or run it from the USB stick).
2. Before starting Python or Jupyter (Keras reads KERAS_HOME when it is imported), set:

     Linux / macOS:       export WORKSHOP_DATA_DIR=KIT/data
                          export KERAS_HOME=KIT/keras
     Windows PowerShell:  $env:WORKSHOP_DATA_DIR = "KIT\\data"
                          $env:KERAS_HOME = "KIT\\keras"
     Windows cmd:         set WORKSHOP_DATA_DIR=KIT\\data
                          set KERAS_HOME=KIT\\keras

   keras.applications.VGG16(weights="imagenet") and workshop_utils.weights.vgg16_weights() then find
   the weights in KIT/keras/models/ without downloading, and the lessons find the dataset in KIT/data.
   (Keras also keeps its settings file keras.json in KERAS_HOME. Instead of setting KERAS_HOME you may
   copy the weights file into ~/.keras/models/.)
3. Check that everything is in place:

     python -m workshop_utils check

   Every line should say OK (a WARN about the GPU only means training runs slowly on the CPU).

The Python packages are not in the kit: install them while online (pip install -e . in the workshop
repository) before the workshop.

Rebuild or complete the kit with: python -m workshop_utils kit KIT   (a complete kit downloads nothing).
"""


def _materialise(data_dir: Path) -> None:
    """Replace the ``chest_xray`` symlink made for the Kaggle source by a real copy (the kit must travel)."""
    link = data_dir / "chest_xray"
    if not link.is_symlink():
        return
    tmp = data_dir / ".chest_xray.copy"
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(link.resolve(), tmp)
    link.unlink()
    tmp.rename(link)


def kit_dataset(data_dir: Path, source: str = "mendeley", dataset_archive: str | Path | None = None,
                progress: bool = True) -> Path:
    """The dataset in ``data_dir``, by the rule every command uses (download.download_dataset): a copy
    there is kept; else ``dataset_archive`` (a local zip or tar, never moved or deleted) is unpacked; else
    the dataset is downloaded from ``source``. A Kaggle symlink becomes a real copy, and archives are
    removed from the kit once unpacked (they would double its size)."""
    data_dir = Path(data_dir)
    if dataset_archive is not None and download.find_copy(data_dir) is None:
        archive = Path(dataset_archive).expanduser()
        if not archive.is_file():
            raise FileNotFoundError(f"Dataset archive {archive} not found.")
        download.install_archive(archive, data_dir, progress)
    root = download.download_dataset(data_dir, source=source, progress=progress)
    _materialise(data_dir)
    for archive in download.archives_in(data_dir):
        archive.unlink()
    return root


def kit_weights(models_dir: Path, weights_file: str | Path | None = None, progress: bool = True) -> Path:
    """``models_dir/<VGG16 weights file>``, md5-checked: kept if right, else copied from ``weights_file``
    or downloaded."""
    target = models_dir / weights.VGG16_NOTOP_FILE
    known = f"md5:{weights.VGG16_NOTOP_MD5}"
    if weights_file is None:
        return download.fetch_file(weights.VGG16_NOTOP_URL, target, known_hash=known, progress=progress)
    source = Path(weights_file).expanduser()
    if not source.is_file():
        raise FileNotFoundError(f"Weights file {source} not found.")
    if not download.matches_hash(source, known):
        raise DownloadError(f"{source} is not Keras' {weights.VGG16_NOTOP_FILE}: its md5 differs from "
                            f"{weights.VGG16_NOTOP_MD5} (damaged or a different file).")
    if target.is_file() and download.matches_hash(target, known):
        return target
    models_dir.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + ".part")
    shutil.copyfile(source, tmp)
    tmp.replace(target)
    return target


def build_kit(kit_dir: str | Path, source: str = "mendeley", dataset_archive: str | Path | None = None,
              weights_file: str | Path | None = None, progress: bool = True) -> dict[str, Path]:
    """Fill ``kit_dir`` with the dataset (``data/``), the VGG16 weights (``keras/models/``) and README.txt.

    What is already there is kept (the dataset by the rule every command uses, the weights if their md5 is
    right), so re-running a complete kit downloads nothing. Returns the paths of the kit's parts.
    """
    kit = Path(kit_dir).expanduser().resolve()
    reason = download.unwritable_reason(kit)
    if reason is not None:
        raise DownloadError(f"Cannot write to the kit folder {kit} ({reason}): choose a folder you can write to.")
    kit.mkdir(parents=True, exist_ok=True)
    root = kit_dataset(kit / "data", source, dataset_archive, progress)
    weights_path = kit_weights(kit / "keras" / "models", weights_file, progress)
    readme = kit / "README.txt"
    readme.write_text(README.format(weights_file=weights.VGG16_NOTOP_FILE, md5=weights.VGG16_NOTOP_MD5,
                                    built_at=kit))
    return {"dir": kit, "data": root, "weights": weights_path, "readme": readme}


def add_kit_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``kit`` sub-command's arguments to ``parser``."""
    parser.add_argument("dir", type=Path, help="the kit folder (created if needed)")
    parser.add_argument("--source", choices=download.SOURCES, default="mendeley",
                        help="where to download the dataset from (default: mendeley)")
    parser.add_argument("--dataset-archive", type=Path, default=None, metavar="FILE",
                        help="unpack this local dataset archive (zip or tar) instead of downloading")
    parser.add_argument("--weights-file", type=Path, default=None, metavar="FILE",
                        help=f"copy this local {weights.VGG16_NOTOP_FILE} instead of downloading it")


def main_kit(args: argparse.Namespace) -> int:
    """Run the ``kit`` sub-command: build the kit and say how to use it; 0, or 1 with an error."""
    try:
        parts = build_kit(args.dir, args.source, args.dataset_archive, args.weights_file)
    except (DownloadError, OSError, ValueError) as exc:  # incl. the dataset errors and FileNotFoundError
        print(f"error: {exc}", file=sys.stderr)
        return 1
    size = sum(f.stat().st_size for f in parts["dir"].rglob("*") if f.is_file())
    counts = dataset.count_images(parts["data"])
    match = dataset.match_release(counts)
    print(f"Offline kit ready in {parts['dir']} ({size / 1e9:.2f} GB)")
    print(f"  dataset  {parts['data']}  {dataset.format_counts(counts)} (NORMAL + PNEUMONIA): "
          + (f"the {match.release}" if not match.differences else "no published release (see the warning above)"))
    print(f"  weights  {parts['weights']}")
    print(f"  usage    {parts['readme']}: export WORKSHOP_DATA_DIR={parts['dir'] / 'data'} "
          f"KERAS_HOME={parts['dir'] / 'keras'}, then python -m workshop_utils check")
    return 0
