"""Pack the dataset compactly for the GPU machine: every image decoded once to grayscale at SIZE px (the lessons'
own decoder, images.decode_image) and re-encoded as JPEG in one .zip laid out as the dataset
(chest_xray/train/NORMAL/..., original file names, which carry the patient ids).

Usage: python benchmarks/gpu/pack_data.py [DATA_DIR] [--size 150] [--quality 90] [--limit N] [--out ZIP]

The zip is what the package unpacks itself when it lies in the data folder ($WORKSHOP_HOME/data), so on the
device the lessons reach it by their normal path (download.locate_dataset, then images.load_dataset). Prints
the size and how far the re-encoding moves the pixels: the mean absolute difference in grey levels between the
SIZE-px decode of each original and the decode of its packed JPEG (what a lesson at SIZE px reads).
A lesson at another size resizes the packed SIZE-px image instead of the original.
"""
from __future__ import annotations

import argparse
import io
import json
import os
import sys
import time
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

from workshop_utils import dataset, download, images

HERE = Path(__file__).resolve().parent
CHECKOUT = HERE.parents[1]
DEFAULT_DATA = CHECKOUT.parent / "shared/data/chest_xray"
#: Everything a device run needs besides the working tree; named in the device call's carry list.
CARRY_DIR = HERE / "carry"
#: The device tool's limit on what travels (working tree + carried paths).
TRAVEL_LIMIT_MIB = 64


def pack_one(path: str, size: int, quality: int) -> tuple[bytes, float, int]:
    """The JPEG bytes of ``path`` decoded at ``size`` px, and the mean and max absolute grey-level difference
    between that decode and the decode of the JPEG."""
    pixels = images.decode_image(path, size)
    buffer = io.BytesIO()
    Image.fromarray(pixels, mode="L").save(buffer, format="JPEG", quality=quality)
    data = buffer.getvalue()
    with Image.open(io.BytesIO(data)) as img:
        back = np.asarray(img.convert("L"), dtype=np.int16)
    diff = np.abs(back - pixels.astype(np.int16))
    return data, float(diff.mean()), int(diff.max())


def chosen_images(root: Path, limit: int | None, seed: int = 0) -> list[tuple[str, str, str]]:
    """(split, class, path) of every image, or of a seeded random ``limit`` per split and class."""
    rng = np.random.default_rng(seed)
    chosen = []
    for split in dataset.SPLITS:
        listing = dataset.list_images(root, split)
        for label, cls in enumerate(dataset.CLASSES):
            found = [p for p, lab in zip(listing.paths, listing.labels) if lab == label]
            if limit is not None and len(found) > limit:
                found = sorted(rng.choice(found, limit, replace=False).tolist())
            chosen += [(split, cls, p) for p in found]
    return chosen


def pack(root: Path, out: Path, size: int, quality: int, limit: int | None) -> dict:
    """Write the zip (atomically: a temporary file renamed into place) and return its statistics."""
    chosen = chosen_images(root, limit)
    names = [f"chest_xray/{split}/{cls}/{Path(p).stem}.jpeg" for split, cls, p in chosen]
    if len(set(names)) != len(names):
        raise SystemExit(f"error: two images in {root} differ only in their suffix: rename one, then pack again.")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".part")
    start = time.time()
    means, worst, counts = [], 0, {}
    with ThreadPoolExecutor(min(8, os.cpu_count() or 1)) as pool, zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED) as zf:
        for (split, cls, _), name, (data, mean, peak) in zip(
                chosen, names, pool.map(lambda c: pack_one(c[2], size, quality), chosen)):
            zf.writestr(name, data)  # stored: JPEG does not compress further
            means.append(mean)
            worst = max(worst, peak)
            counts.setdefault(split, {}).setdefault(cls, 0)
            counts[split][cls] += 1
    tmp.replace(out)
    stats = {"source": str(root), "size_px": size, "jpeg_quality": quality, "limit_per_split_and_class": limit,
             "counts": counts, "images": len(chosen), "bytes": out.stat().st_size,
             "mean_abs_diff_grey_levels": round(float(np.mean(means)), 3),
             "worst_image_mean_abs_diff": round(float(np.max(means)), 3), "max_abs_diff": worst,
             "seconds": round(time.time() - start, 1)}
    out.with_suffix(".json").write_text(json.dumps(stats, indent=2) + "\n")
    return stats


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("data_dir", nargs="?", default=str(DEFAULT_DATA),
                        help="the dataset folder (default: ../shared/data/chest_xray beside the checkout)")
    parser.add_argument("--size", type=int, default=150, help="pixels per side (the lessons' default, 150)")
    parser.add_argument("--quality", type=int, default=90, help="JPEG quality (1-95)")
    parser.add_argument("--limit", type=int, default=None, metavar="N",
                        help="at most N images per split and class (a seeded random subset, for tests)")
    parser.add_argument("--out", type=Path, default=None,
                        help=f"the zip (default: {CARRY_DIR.relative_to(CHECKOUT)}/chest_xray_SIZE.zip)")
    args = parser.parse_args(argv)
    if not 1 <= args.quality <= 95:
        parser.error(f"--quality {args.quality}: give 1 to 95")
    if args.limit is not None and args.limit < 1:
        parser.error(f"--limit {args.limit}: give 1 or more images per split and class")
    try:
        root = download.locate_dataset(args.data_dir, fetch=False, setting="DATA_DIR")
    except (dataset.DatasetNotFoundError, dataset.DatasetIncompleteError, download.DownloadError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    out = args.out or CARRY_DIR / f"chest_xray_{args.size}.zip"
    if out.parent == CARRY_DIR:  # one dataset travels: a zip of another size would be carried too
        for old in CARRY_DIR.glob("*.zip"):
            if old != out:
                old.unlink()
                old.with_suffix(".json").unlink(missing_ok=True)
    stats = pack(root, out, args.size, args.quality, args.limit)
    print(f"{out}: {stats['images']} images ({dataset.format_counts(stats['counts'])}), "
          f"{stats['bytes'] / 2 ** 20:.1f} MiB, in {stats['seconds']:.0f} s")
    print(f"re-encoding at {args.size} px, quality {args.quality}: mean absolute difference "
          f"{stats['mean_abs_diff_grey_levels']:.2f} grey levels (worst image {stats['worst_image_mean_abs_diff']:.2f}, "
          f"largest single pixel {stats['max_abs_diff']}) against the {args.size}-px decode of the originals")
    if stats["bytes"] > TRAVEL_LIMIT_MIB * 2 ** 20 * 0.75:
        print(f"warning: over 3/4 of the {TRAVEL_LIMIT_MIB} MiB the device tool carries: little room is left "
              "for the wheels (lower --quality or --size)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
