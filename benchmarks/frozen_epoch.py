"""Benchmark: one epoch of the baseline head on cached features vs the usual Keras pipeline.

The usual way: keras.utils.image_dataset_from_directory feeding the frozen VGG16 + head every epoch.
Ours: VGG16 runs once (features cached); an epoch trains only Flatten + Dense(2) on the cached features.
Both on the same images, same machine, same run. VGG16 with weights=None (speed does not depend on the weights).

Usage: python benchmarks/frozen_epoch.py [DATA_DIR] [--size 150] [--limit 640]
--limit N uses the first N training images (per class, in file order) for both, to keep the usual way short.
"""
import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import keras  # noqa: E402
import numpy as np  # noqa: E402

import workshop_utils as wu  # noqa: E402
from workshop_utils import features  # noqa: E402

parser = argparse.ArgumentParser()
parser.add_argument("data_dir", nargs="?", default=str(Path(__file__).resolve().parents[2] / "shared/data/chest_xray"))
parser.add_argument("--size", type=int, default=150)
parser.add_argument("--limit", type=int, default=320, help="training images per class (0: all)")
args = parser.parse_args()
root = wu.find_dataset_root(args.data_dir)
S = args.size

with tempfile.TemporaryDirectory() as tmp:
    # The same images for both: a folder of links for image_dataset_from_directory, the decoded arrays for ours.
    subset = Path(tmp) / "train"
    listing = wu.list_images(root, "train")
    for label, cls in enumerate(wu.CLASSES):
        paths = [p for p, lab in zip(listing.paths, listing.labels) if lab == label]
        (subset / cls).mkdir(parents=True)
        for p in paths[: args.limit or None]:
            os.symlink(p, subset / cls / os.path.basename(p))
    n = sum(1 for _ in subset.glob("*/*"))

    keras.utils.set_random_seed(0)
    base = keras.applications.VGG16(weights=None, include_top=False, input_shape=(S, S, 3))
    base.trainable = False

    def head():
        return keras.Sequential([keras.Input(base.output.shape[1:]), keras.layers.Flatten(),
                                 keras.layers.Dense(2, activation="softmax")])

    # The usual way: decode + resize + VGG16 forward + head, every epoch.
    ds = keras.utils.image_dataset_from_directory(subset, image_size=(S, S), batch_size=32, label_mode="int",
                                                  shuffle=True, seed=0, verbose=False)
    ds = ds.map(lambda x, y: (keras.applications.vgg16.preprocess_input(x), y))
    usual = keras.Sequential([keras.Input((S, S, 3)), base, head()])
    usual.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    usual.fit(ds.take(1), epochs=1, verbose=0)  # build and compile outside the timing
    start = time.perf_counter()
    usual.fit(ds, epochs=1, verbose=0)
    usual_epoch = time.perf_counter() - start

    # Ours: decode once (cached), VGG16 once (cached), then epochs on the features.
    start = time.perf_counter()
    data = wu.load_split(subset.parent, "train", S, cache_dir=Path(tmp) / "cache", progress=False)
    feats = features.frozen_vgg16_features(base, data.images, cache_dir=Path(tmp) / "cache", progress=False)
    once = time.perf_counter() - start
    ours = head()
    ours.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    ours.fit(feats[:32], data.labels[:32], epochs=1, verbose=0)
    start = time.perf_counter()
    ours.fit(feats, data.labels, batch_size=32, epochs=1, verbose=0)
    our_epoch = time.perf_counter() - start

print(f"machine: {platform.machine()}, {os.cpu_count()} cores; Keras {keras.__version__} "
      f"({keras.backend.backend()}); {n} training images at {S}x{S}")
print(f"usual pipeline (image_dataset_from_directory -> frozen VGG16 -> head), one epoch: {usual_epoch:.1f} s")
print(f"cached features, one epoch of the head:                                   {our_epoch:.3f} s")
print(f"  (one-time cost: decode + VGG16 over the images: {once:.1f} s, paid once per image size and weights)")
print(f"speed-up per epoch: {usual_epoch / our_epoch:.0f}x")
