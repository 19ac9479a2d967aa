"""Benchmark: Pillow's reduced-size JPEG decoding (``draft``) on full-size X-ray-sized JPEGs.

The shared copy of the dataset holds downsized images, so this writes N grayscale JPEGs at a full-resolution
X-ray size (default 2000 x 1600) from a smooth random pattern plus noise, then decodes them to 150 x 150 both ways:
  plain: Image.open -> load at full size -> convert("L") -> resize
  draft: workshop_utils.images.decode_image (JPEG decoded at 1/2, 1/4 or 1/8 scale, then resized)
Usage: python benchmarks/draft_decode.py [--n 100] [--width 2000] [--height 1600] [--size 150] [--noise 12]
"""
import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from workshop_utils.images import decode_image

parser = argparse.ArgumentParser()
parser.add_argument("--n", type=int, default=100)
parser.add_argument("--width", type=int, default=2000)
parser.add_argument("--height", type=int, default=1600)
parser.add_argument("--size", type=int, default=150)
parser.add_argument("--noise", type=int, default=12, help="uniform noise amplitude, grey levels (more: larger files)")
args = parser.parse_args()


def plain_decode(path: Path, size: int) -> np.ndarray:
    with Image.open(path) as img:
        img = img.convert("L")
        return np.asarray(img.resize((size, size), Image.Resampling.BILINEAR, reducing_gap=2.0), dtype=np.uint8)


rng = np.random.default_rng(0)
with tempfile.TemporaryDirectory() as folder:
    paths = []
    for i in range(args.n):
        coarse = rng.integers(0, 256, (args.height // 50 + 1, args.width // 50 + 1), dtype=np.uint8)
        smooth = np.asarray(Image.fromarray(coarse).resize((args.width, args.height), Image.Resampling.BICUBIC))
        noise = rng.integers(-args.noise, args.noise + 1, smooth.shape)
        noisy = np.clip(smooth.astype(np.int16) + noise, 0, 255).astype(np.uint8)
        paths.append(Path(folder) / f"x{i:04d}.jpeg")
        Image.fromarray(noisy).save(paths[-1], quality=90)
    mb = sum(p.stat().st_size for p in paths) / 1e6
    timings, outputs = {}, {}
    for name, fn in (("plain", plain_decode), ("draft", decode_image), ("plain again", plain_decode)):
        start = time.perf_counter()
        outputs[name] = np.stack([fn(p, args.size) for p in paths])
        timings[name] = time.perf_counter() - start

plain = min(timings["plain"], timings["plain again"])  # the better of two runs, before and after
diff = np.abs(outputs["plain"].astype(int) - outputs["draft"].astype(int))
print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
      f"Pillow {Image.__version__}")
print(f"{args.n} JPEGs of {args.width}x{args.height} ({mb:.1f} MB) -> {args.size}x{args.size} grayscale, one process")
print(f"plain decode: {plain:.2f} s ({args.n / plain:.0f} images/s)")
print(f"draft decode: {timings['draft']:.2f} s ({args.n / timings['draft']:.0f} images/s)")
print(f"speed-up:     {plain / timings['draft']:.1f}x; "
      f"mean |difference| {diff.mean():.2f} grey levels (max {diff.max()})")
