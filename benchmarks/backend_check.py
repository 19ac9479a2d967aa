"""Check: the lesson pipeline runs on the active Keras backend (e.g. KERAS_BACKEND=jax without TensorFlow).

Decodes images, runs a frozen VGG16 (weights=None) once, trains the baseline head with class weights and an
early-stopping validation split, evaluates on test, and prints timings and whether TensorFlow was imported.

Usage: KERAS_BACKEND=jax python benchmarks/backend_check.py [DATA_DIR|synthetic] [--size 64] [--limit 200]
       [--mixed-precision]
"""
import argparse
import sys
import time

import keras
import numpy as np

import workshop_utils as wu
from workshop_utils import download, features

parser = argparse.ArgumentParser()
parser.add_argument("data_dir", nargs="?", default="synthetic")
parser.add_argument("--size", type=int, default=64)
parser.add_argument("--limit", type=int, default=200, help="images per split, whole patients, class ratio kept (0: all)")
parser.add_argument("--epochs", type=int, default=5)
parser.add_argument("--batch-size", type=int, default=32)
parser.add_argument("--mixed-precision", action="store_true")
args = parser.parse_args()
if args.mixed_precision:
    keras.config.set_dtype_policy("mixed_bfloat16")

keras.utils.set_random_seed(0)
t0 = time.perf_counter()
data = wu.load_dataset(download.locate_dataset(args.data_dir), args.size,
                       subset={"train": args.limit, "test": args.limit} if args.limit else None, progress=False)
tr, va = wu.patient_split(data["train"].labels, data["train"].groups, 0.2, seed=0)
train, val, test = data["train"].subset(tr), data["train"].subset(va), data["test"]
t_data = time.perf_counter() - t0

base = keras.applications.VGG16(weights=None, include_top=False, input_shape=(args.size, args.size, 3))
base.trainable = False
t0 = time.perf_counter()
all_feats = features.frozen_vgg16_features(base, data["train"].images, batch_size=args.batch_size, progress=False)
test_feats = features.frozen_vgg16_features(base, test.images, batch_size=args.batch_size, progress=False)
t_feat = time.perf_counter() - t0
n_train = len(tr) // args.batch_size * args.batch_size  # drop the last partial batch: no recompilation under JAX
x_train, y_train = all_feats[tr][:n_train], train.labels[:n_train]

head = keras.Sequential([keras.Input(base.output.shape[1:]), keras.layers.Flatten(),
                         keras.layers.Dense(2, activation="softmax", dtype="float32")])
head.compile(optimizer=keras.optimizers.Adam(1e-4), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
t0 = time.perf_counter()
head.fit(x_train, y_train, validation_data=(all_feats[va], val.labels), epochs=args.epochs,
         batch_size=args.batch_size, class_weight=wu.class_weights(y_train), verbose=0,
         callbacks=[keras.callbacks.EarlyStopping(monitor="val_loss", patience=3, restore_best_weights=True)])
t_fit = time.perf_counter() - t0
result = wu.evaluate(test.labels, head.predict(test_feats, verbose=0)[:, 1])
print(f"backend {keras.backend.backend()}, Keras {keras.__version__}, policy {keras.config.dtype_policy().name}; "
      f"TensorFlow imported: {'tensorflow' in sys.modules}")
print(f"{len(train)} train / {len(val)} val / {len(test)} test images at {args.size} px")
print(f"decode {t_data:.1f} s, features {t_feat:.1f} s, head fit {t_fit:.1f} s")
print(wu.format_metrics(result))
