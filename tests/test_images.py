"""Tests for workshop_utils.images: decoding every image mode, skipping bad files, the on-disk cache."""
from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from workshop_utils import images
from workshop_utils.images import ImageSet, decode_image, load_dataset, load_split

SIZES = [32, 150]
COUNTS = {
    "train": {"NORMAL": 4, "PNEUMONIA": 6},
    "val": {"NORMAL": 1, "PNEUMONIA": 2},
    "test": {"NORMAL": 2, "PNEUMONIA": 3},
}


def _save(arr: np.ndarray, path: Path, mode: str | None = None, **kwargs) -> Path:
    img = Image.fromarray(arr) if mode is None else Image.fromarray(arr).convert(mode)
    img.save(path, **kwargs)
    return path


def _check(out: np.ndarray, size: int) -> None:
    assert isinstance(out, np.ndarray)
    assert out.shape == (size, size)
    assert out.dtype == np.uint8


@pytest.fixture
def decode_calls(monkeypatch):
    """Count calls to images.decode_image (thread-safe); the real decoder still runs."""
    calls: list[str] = []
    lock = threading.Lock()
    real = images.decode_image

    def counting(path, size):
        with lock:
            calls.append(str(path))
        return real(path, size)

    monkeypatch.setattr(images, "decode_image", counting)
    return calls


@pytest.fixture
def dataset_root(tmp_path, make_tree):
    return make_tree(tmp_path / "data", COUNTS)


@pytest.fixture
def real_jpeg_bytes(tmp_path) -> bytes:
    """Bytes of a real JPEG: one from the shared dataset if present, else a 96x96 noisy photo-like JPEG."""
    real = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "chest_xray" / "test" / "NORMAL"
    if real.is_dir():
        files = sorted(p for p in real.iterdir() if p.suffix == ".jpeg")
        if files:
            return files[0].read_bytes()
    rng = np.random.default_rng(1)
    arr = np.clip(np.linspace(0, 255, 96)[None, :] + rng.normal(0, 30, (96, 96)), 0, 255).astype(np.uint8)
    path = _save(arr, tmp_path / "photo.jpeg", quality=95)
    return path.read_bytes()


# ---------------------------------------------------------------------------------------------
# decode_image


@pytest.mark.parametrize("size", SIZES)
def test_grayscale_jpeg(tmp_path, size):
    arr = np.full((40, 60), 100, np.uint8)
    arr[:, 30:] = 220  # left dark, right bright
    path = _save(arr, tmp_path / "g.jpeg", quality=95)
    out = decode_image(path, size)
    _check(out, size)
    left, right = out[:, : size // 3], out[:, -size // 3:]
    assert abs(float(left.mean()) - 100) < 4
    assert abs(float(right.mean()) - 220) < 4


@pytest.mark.parametrize("size", SIZES)
def test_rgb_jpeg_becomes_luminance(tmp_path, size):
    arr = np.zeros((50, 50, 3), np.uint8)
    arr[..., 0] = 255  # pure red: ITU-R 601 luma 0.299 * 255 = 76
    path = _save(arr, tmp_path / "rgb.jpeg", quality=95)
    assert Image.open(path).mode == "RGB"
    out = decode_image(path, size)
    _check(out, size)
    assert abs(float(out.mean()) - 76) < 5


@pytest.mark.parametrize("size", SIZES)
def test_rgba_png_is_composited_on_black(tmp_path, size):
    rgba = np.full((40, 40, 4), 255, np.uint8)  # white everywhere
    rgba[:, :20, 3] = 0  # left half fully transparent
    path = _save(rgba, tmp_path / "rgba.png")
    assert Image.open(path).mode == "RGBA"
    out = decode_image(path, size)
    _check(out, size)
    assert out[:, : size // 3].max() == 0  # transparent white -> black, not white
    assert out[:, -size // 3:].min() == 255
    # Half-transparent white lands half-way.
    rgba[:, :20, 3] = 128
    out = decode_image(_save(rgba, tmp_path / "half.png"), 40)
    assert abs(int(out[0, 0]) - 128) <= 1


@pytest.mark.parametrize("size", SIZES)
def test_palette_png(tmp_path, size):
    img = Image.new("P", (30, 30))
    img.putpalette([0, 0, 0, 255, 255, 255] + [0] * 762)
    img.paste(1, (0, 0, 15, 30))  # left half white
    path = tmp_path / "pal.png"
    img.save(path)
    assert Image.open(path).mode == "P"
    out = decode_image(path, size)
    _check(out, size)
    assert out[:, : size // 3].min() == 255
    assert out[:, -size // 3:].max() == 0


def test_palette_png_with_transparency(tmp_path):
    img = Image.new("P", (20, 20), 1)
    img.putpalette([0, 0, 0, 255, 255, 255] + [0] * 762)
    img.paste(0, (0, 0, 10, 20))
    path = tmp_path / "pal_t.png"
    img.save(path, transparency=1)  # the white entry is transparent -> black
    out = decode_image(path, 20)
    _check(out, 20)
    assert out.max() == 0


def test_16bit_gradient_fills_the_8bit_range(tmp_path):
    size = 64
    grad = np.tile(np.linspace(0, 65535, size), (size, 1)).astype(np.uint16)
    path = tmp_path / "g16.png"
    Image.fromarray(grad).save(path)
    assert Image.open(path).mode.startswith("I")
    out = decode_image(path, size)
    _check(out, size)
    assert out.min() == 0 and out.max() == 255
    row = out[0].astype(int)
    assert (np.diff(row) >= 0).all()  # still a gradient
    assert len(np.unique(row)) > 50  # not clipped to a few values
    assert (out == 255).mean() < 0.05  # not saturated: only the last column is white
    np.testing.assert_allclose(row, grad[0] / 257, atol=1.5)


def test_16bit_image_with_12bit_values_is_stretched(tmp_path):
    grad = np.tile(np.linspace(0, 4095, 32), (32, 1)).astype(np.uint16)
    path = tmp_path / "g12.png"
    Image.fromarray(grad).save(path)
    out = decode_image(path, 32)
    _check(out, 32)
    assert out.min() == 0 and out.max() == 255
    assert len(np.unique(out)) > 25


@pytest.mark.parametrize("size", SIZES)
def test_16bit_png_resized(tmp_path, size):
    grad = np.tile(np.linspace(0, 65535, 200), (100, 1)).astype(np.uint16)
    path = tmp_path / "w16.png"
    Image.fromarray(grad).save(path)
    out = decode_image(path, size)
    _check(out, size)
    assert out[:, 0].max() <= 5 and out[:, -1].min() >= 250


def test_1bit_image(tmp_path):
    arr = np.zeros((32, 32), bool)
    arr[:, 16:] = True
    path = tmp_path / "bw.png"
    Image.fromarray(arr).save(path)
    assert Image.open(path).mode == "1"
    out = decode_image(path, 32)
    _check(out, 32)
    assert set(np.unique(out)) == {0, 255}
    assert out[:, :16].max() == 0 and out[:, 16:].min() == 255
    _check(decode_image(path, 150), 150)


@pytest.mark.parametrize("w, h", [(2000, 12), (12, 1500), (1, 1), (3, 2), (150, 150)])
@pytest.mark.parametrize("size", SIZES)
def test_any_shape_becomes_square(tmp_path, w, h, size):
    arr = np.full((h, w), 123, np.uint8)
    path = _save(arr, tmp_path / "s.png")
    out = decode_image(path, size)
    _check(out, size)
    assert (out == 123).all()  # squashed, not cropped or padded


def test_large_jpeg_uses_draft_but_keeps_content(tmp_path):
    arr = np.full((1200, 1000), 30, np.uint8)
    arr[:600] = 200  # top bright, bottom dark
    path = _save(arr, tmp_path / "big.jpeg", quality=95)
    out = decode_image(path, 64)
    _check(out, 64)
    assert abs(float(out[:20].mean()) - 200) < 4 and abs(float(out[-20:].mean()) - 30) < 4


def test_corrupt_file_raises_oserror(tmp_path, real_jpeg_bytes):
    bad = tmp_path / "bad.jpeg"
    bad.write_bytes(np.random.default_rng(0).bytes(3000))
    with pytest.raises(OSError):
        decode_image(bad, 32)
    truncated = tmp_path / "trunc.jpeg"
    truncated.write_bytes(real_jpeg_bytes[: len(real_jpeg_bytes) // 2])
    with pytest.raises(OSError):
        decode_image(truncated, 32)


# ---------------------------------------------------------------------------------------------
# load_split: bad files


def _add_bad_files(root: Path, real_jpeg_bytes: bytes) -> tuple[str, str]:
    corrupt = root / "train" / "NORMAL" / "IM-0500-0001.jpeg"
    corrupt.write_bytes(np.random.default_rng(0).bytes(4000))
    truncated = root / "train" / "PNEUMONIA" / "person1_bacteria_1.jpeg"
    truncated.write_bytes(real_jpeg_bytes[: len(real_jpeg_bytes) // 2])
    return "train/NORMAL/IM-0500-0001.jpeg", "train/PNEUMONIA/person1_bacteria_1.jpeg"


def _messages(record) -> str:
    return "\n".join(str(w.message) for w in record)


def test_bad_files_are_named_skipped_and_the_rest_load(dataset_root, real_jpeg_bytes, tmp_path):
    corrupt, truncated = _add_bad_files(dataset_root, real_jpeg_bytes)
    cache = tmp_path / "cache"
    with pytest.warns(UserWarning) as record:
        ims = load_split(dataset_root, "train", 32, cache_dir=cache, progress=False)
    text = _messages(record)
    assert "IM-0500-0001.jpeg" in text and "person1_bacteria_1.jpeg" in text
    assert "skipped 2 unreadable images of 12" in text
    assert sorted(ims.skipped) == sorted([corrupt, truncated])
    assert len(ims) == 10 and ims.images.shape == (10, 32, 32)
    assert ims.class_counts() == {"NORMAL": 4, "PNEUMONIA": 6}
    assert corrupt not in ims.names and truncated not in ims.names
    assert len(ims.names) == len(ims.labels) == len(ims.groups) == 10
    # Labels still line up with the images: NORMAL tiles are dark, PNEUMONIA bright.
    means = ims.images.reshape(len(ims), -1).mean(1)
    assert (means[ims.labels == 0] < 80).all() and (means[ims.labels == 1] > 160).all()

    # The cache remembers what was skipped, and says so again.
    with pytest.warns(UserWarning) as record:
        again = load_split(dataset_root, "train", 32, cache_dir=cache, progress=False)
    text = _messages(record)
    assert "2 unreadable images were skipped" in text
    assert corrupt in text and truncated in text
    assert again.skipped == ims.skipped
    assert again.names == ims.names
    np.testing.assert_array_equal(again.images, ims.images)
    np.testing.assert_array_equal(again.labels, ims.labels)


def test_all_files_bad_gives_an_empty_set(tmp_path):
    folder = tmp_path / "data" / "test" / "NORMAL"
    folder.mkdir(parents=True)
    (folder / "IM-0001-0001.jpeg").write_bytes(b"not a jpeg at all")
    (tmp_path / "data" / "test" / "PNEUMONIA").mkdir()
    with pytest.warns(UserWarning, match="IM-0001-0001.jpeg"):
        ims = load_split(tmp_path / "data", "test", 16, cache_dir=tmp_path / "c", progress=False)
    assert ims.images.shape == (0, 16, 16) and ims.images.dtype == np.uint8
    assert len(ims) == 0 and ims.skipped == ["test/NORMAL/IM-0001-0001.jpeg"]


# ---------------------------------------------------------------------------------------------
# load_split: cache


def test_cache_hit_does_not_decode(dataset_root, tmp_path, decode_calls):
    cache = tmp_path / "cache"
    first = load_split(dataset_root, "train", 32, cache_dir=cache, progress=False)
    assert len(decode_calls) == 10
    assert sorted(p.suffix for p in cache.iterdir()) == [".json", ".npy"]
    second = load_split(dataset_root, "train", 32, cache_dir=cache, progress=False)
    assert len(decode_calls) == 10  # nothing decoded again
    np.testing.assert_array_equal(second.images, first.images)
    np.testing.assert_array_equal(second.labels, first.labels)
    np.testing.assert_array_equal(second.groups, first.groups)
    assert second.names == first.names and second.skipped == first.skipped == []
    assert second.labels.dtype == np.int64 and second.images.dtype == np.uint8


def test_cache_hit_works_with_a_failing_decoder(dataset_root, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    first = load_split(dataset_root, "test", 32, cache_dir=cache, progress=False)

    def fail(*args, **kwargs):
        raise AssertionError("decoded although cached")

    monkeypatch.setattr(images, "_try_decode", fail)
    monkeypatch.setattr(images, "decode_image", fail)
    second = load_split(dataset_root, "test", 32, cache_dir=cache, progress=False)
    np.testing.assert_array_equal(second.images, first.images)


def test_cache_miss_on_other_image_size(dataset_root, tmp_path, decode_calls):
    cache = tmp_path / "cache"
    load_split(dataset_root, "test", 32, cache_dir=cache, progress=False)
    other = load_split(dataset_root, "test", 48, cache_dir=cache, progress=False)
    assert len(decode_calls) == 10  # 5 + 5
    assert other.images.shape == (5, 48, 48)
    assert len(list(cache.glob("*.npy"))) == 2
    load_split(dataset_root, "test", 32, cache_dir=cache, progress=False)
    load_split(dataset_root, "test", 48, cache_dir=cache, progress=False)
    assert len(decode_calls) == 10  # both sizes are cached side by side


def test_cache_miss_when_a_file_is_touched(dataset_root, tmp_path, decode_calls):
    cache = tmp_path / "cache"
    load_split(dataset_root, "test", 32, cache_dir=cache, progress=False)
    assert len(decode_calls) == 5
    target = dataset_root / "test" / "NORMAL" / "IM-3000-0001.jpeg"
    st = target.stat()
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000_000))
    load_split(dataset_root, "test", 32, cache_dir=cache, progress=False)
    assert len(decode_calls) == 10


def test_cache_miss_when_a_file_is_replaced(dataset_root, tmp_path, decode_calls, write_jpeg):
    cache = tmp_path / "cache"
    before = load_split(dataset_root, "test", 32, cache_dir=cache, progress=False)
    name = "test/NORMAL/IM-3000-0001.jpeg"
    i = before.names.index(name)
    assert before.images[i].mean() < 80  # dark NORMAL tile
    write_jpeg(dataset_root / name, shade=250, size=(20, 20))  # replaced by a bright one
    after = load_split(dataset_root, "test", 32, cache_dir=cache, progress=False)
    assert len(decode_calls) == 10
    assert after.images[after.names.index(name)].mean() > 230


def test_cache_miss_when_a_file_is_added_or_removed(dataset_root, tmp_path, decode_calls, write_jpeg):
    cache = tmp_path / "cache"
    load_split(dataset_root, "test", 32, cache_dir=cache, progress=False)
    write_jpeg(dataset_root / "test" / "PNEUMONIA" / "person999_virus_1.jpeg", shade=200)
    added = load_split(dataset_root, "test", 32, cache_dir=cache, progress=False)
    assert len(added) == 6 and len(decode_calls) == 11
    (dataset_root / "test" / "NORMAL" / "IM-3000-0001.jpeg").unlink()
    removed = load_split(dataset_root, "test", 32, cache_dir=cache, progress=False)
    assert len(removed) == 5 and len(decode_calls) == 16
    assert "test/NORMAL/IM-3000-0001.jpeg" not in removed.names


def test_default_cache_dir_follows_the_environment(dataset_root, tmp_path, monkeypatch):
    monkeypatch.setenv("WORKSHOP_CACHE_DIR", str(tmp_path / "envcache"))
    load_split(dataset_root, "test", 16, progress=False)
    files = sorted((p.name for p in (tmp_path / "envcache").iterdir()), key=lambda n: n.endswith(".npy"))
    assert len(files) == 2 and all(f.startswith("test-16px-") for f in files)
    assert files[0].endswith(".json") and files[1].endswith(".npy")
    meta = json.loads((tmp_path / "envcache" / files[0]).read_text())
    assert meta["labels"] == [0, 0, 1, 1, 1] and meta["skipped"] == []


def _cache_files(cache: Path) -> tuple[Path, Path]:
    """The one (metadata, array) pair in ``cache``; fails on leftovers such as temporary files."""
    files = sorted(cache.iterdir(), key=lambda p: p.suffix)
    assert [p.suffix for p in files] == [".json", ".npy"], files
    return files[0], files[1]


def test_truncated_cache_file_is_named_and_rebuilt(dataset_root, tmp_path, decode_calls):
    cache = tmp_path / "cache"
    first = load_split(dataset_root, "test", 32, cache_dir=cache, progress=False)
    _, array = _cache_files(cache)
    array.write_bytes(array.read_bytes()[:-1000])  # an interrupted copy, a full disk
    with pytest.warns(UserWarning) as record:
        again = load_split(dataset_root, "test", 32, cache_dir=cache, progress=False)
    text = _messages(record)
    assert str(array) in text and "truncated or unreadable" in text and "Decoding the images again" in text
    assert len(decode_calls) == 10  # rebuilt once
    np.testing.assert_array_equal(again.images, first.images)
    _cache_files(cache)  # the bad file was replaced, nothing left over
    third = load_split(dataset_root, "test", 32, cache_dir=cache, progress=False)
    assert len(decode_calls) == 10  # and the rebuilt cache is used
    np.testing.assert_array_equal(third.images, first.images)


def test_corrupt_cache_of_the_same_size_is_caught_by_its_checksum(dataset_root, tmp_path, decode_calls):
    cache = tmp_path / "cache"
    first = load_split(dataset_root, "test", 32, cache_dir=cache, progress=False)
    _, array = _cache_files(cache)
    data = bytearray(array.read_bytes())
    data[-100] ^= 0xFF  # one pixel flipped, size unchanged: np.load alone would not notice
    array.write_bytes(bytes(data))
    with pytest.warns(UserWarning, match="does not match its checksum") as record:
        again = load_split(dataset_root, "test", 32, cache_dir=cache, progress=False)
    assert str(array) in _messages(record)
    assert len(decode_calls) == 10
    np.testing.assert_array_equal(again.images, first.images)


@pytest.mark.parametrize("damage", ["truncate", "garbage", "empty"])
def test_damaged_cache_metadata_is_named_and_rebuilt(dataset_root, tmp_path, decode_calls, damage):
    cache = tmp_path / "cache"
    first = load_split(dataset_root, "test", 32, cache_dir=cache, progress=False)
    meta, _ = _cache_files(cache)
    text = meta.read_text()
    meta.write_text({"truncate": text[: len(text) // 2], "garbage": '{"names": 3}', "empty": ""}[damage])
    with pytest.warns(UserWarning, match="Decoding the images again") as record:
        again = load_split(dataset_root, "test", 32, cache_dir=cache, progress=False)
    assert str(meta) in _messages(record)
    assert len(decode_calls) == 10
    assert again.names == first.names
    np.testing.assert_array_equal(again.images, first.images)


def test_unwritable_cache_folder_warns_once_and_keeps_the_work(dataset_root, tmp_path, decode_calls):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the cache folder should be")
    cache = blocker / "cache"
    with pytest.warns(UserWarning) as record:
        data = load_dataset(dataset_root, 32, cache_dir=cache, progress=False)
    cache_warnings = [str(w.message) for w in record if "not writable" in str(w.message)]
    assert len(cache_warnings) == 1, cache_warnings  # once, not once per split
    assert str(cache) in cache_warnings[0] and "WORKSHOP_CACHE_DIR" in cache_warnings[0]
    assert data["train"].class_counts() == {"NORMAL": 5, "PNEUMONIA": 8}
    assert data["test"].images.shape == (5, 32, 32)
    assert len(decode_calls) == 18


def test_cache_write_failure_keeps_the_decoded_images(dataset_root, tmp_path, monkeypatch):
    cache = tmp_path / "cache"

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(np, "save", disk_full)
    with pytest.warns(UserWarning, match="No space left on device") as record:
        ims = load_split(dataset_root, "test", 32, cache_dir=cache, progress=False)
    assert str(cache) in _messages(record)
    assert ims.class_counts() == {"NORMAL": 2, "PNEUMONIA": 3}
    assert list(cache.iterdir()) == []  # no partial file left behind


RACE = r"""
import sys, time
from pathlib import Path
from workshop_utils import features, images

root, cache, sync, me, rounds = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]), sys.argv[4], int(sys.argv[5])


class Mean:  # a stand-in model (no Keras needed): extract_features calls only predict_on_batch
    weights = []

    def predict_on_batch(self, batch):
        return batch.reshape(len(batch), -1).mean(1, keepdims=True)


def barrier(name):
    (sync / f"{name}-{me}").touch()
    deadline = time.monotonic() + 60
    while len(list(sync.glob(f"{name}-*"))) < 2:
        if time.monotonic() > deadline:
            sys.exit(f"the other process never reached {name}")
        time.sleep(0.001)


for r in range(rounds):
    barrier(f"images{r}")
    ims = images.load_split(root, ("train", "test"), 24, cache_dir=cache / str(r), progress=False)
    barrier(f"features{r}")
    out = features.extract_features(Mean(), ims.images, cache_dir=cache / str(r), progress=False)
    print(r, len(ims), float(out.sum()))
"""


def test_two_processes_decoding_into_one_cache_both_succeed(dataset_root, tmp_path):
    """Two lessons started at once on an empty cache: both decode, both write, neither fails."""
    import subprocess
    import sys

    cache, sync, rounds = tmp_path / "cache", tmp_path / "sync", 8
    sync.mkdir()
    script = tmp_path / "race.py"
    script.write_text(RACE)
    procs = [subprocess.Popen([sys.executable, str(script), str(dataset_root), str(cache), str(sync), str(i),
                               str(rounds)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for i in range(2)]
    outputs = [p.communicate(timeout=300) for p in procs]
    errors = [err for p, (out, err) in zip(procs, outputs) if p.returncode != 0]
    assert not errors, "\n".join(errors)
    assert outputs[0][0] == outputs[1][0] and len(outputs[0][0].splitlines()) == rounds
    for r in range(rounds):  # one entry per cache, no temporary files left over
        assert sorted(p.suffix for p in (cache / str(r)).iterdir()) == [".json", ".npy", ".npy"]
    ims = load_split(dataset_root, ("train", "test"), 24, cache_dir=cache / "0", progress=False)
    assert len(ims) == 15


# ---------------------------------------------------------------------------------------------
# load_split: subset (quick mode), names, groups


def test_names_labels_and_groups(dataset_root, tmp_path):
    ims = load_split(dataset_root, "test", 32, cache_dir=tmp_path / "c", progress=False)
    assert ims.names == sorted(ims.names, key=lambda n: (n.split("/")[1], n))
    assert all(not os.path.isabs(n) and n.startswith("test/") for n in ims.names)
    assert ims.labels.tolist() == [0, 0, 1, 1, 1]
    assert ims.groups.tolist() == ["im-3000", "im-3001", "person2100", "person2101", "person2102"]
    sub = ims.subset(ims.labels == 1)
    assert len(sub) == 3 and sub.class_counts() == {"NORMAL": 0, "PNEUMONIA": 3}
    assert sub.names == ims.names[2:]
    np.testing.assert_array_equal(sub.images, ims.images[2:])
    sub = ims.subset(np.array([4, 0]))
    assert sub.labels.tolist() == [1, 0] and sub.names == [ims.names[4], ims.names[0]]


@pytest.fixture
def patients_root(tmp_path, write_jpeg) -> Path:
    """train: 30 NORMAL patients with 1 or 2 images (45) and 90 PNEUMONIA patients with 1 or 2 (135), a 1:3
    ratio; val: 2 + 2; test: 20 NORMAL and 40 PNEUMONIA patients, one image each."""
    root = tmp_path / "patients"
    for p in range(30):
        for k in range(1 + p % 2):
            write_jpeg(root / "train" / "NORMAL" / f"IM-{p:04d}-{k + 1:04d}.jpeg", shade=40, seed=p)
    for p in range(90):
        for k in range(1 + p % 2):
            write_jpeg(root / "train" / "PNEUMONIA" / f"person{p}_bacteria_{2 * p + k}.jpeg", shade=200, seed=p)
    for i in range(2):
        write_jpeg(root / "val" / "NORMAL" / f"NORMAL2-IM-{900 + i:04d}-0001.jpeg", shade=40)
        write_jpeg(root / "val" / "PNEUMONIA" / f"person{900 + i}_virus_1.jpeg", shade=200)
    for p in range(60):
        cls = "NORMAL" if p < 20 else "PNEUMONIA"
        name = f"IM-{500 + p:04d}-0001.jpeg" if p < 20 else f"person{500 + p}_virus_1.jpeg"
        write_jpeg(root / "test" / cls / name, shade=40 if p < 20 else 200)
    return root


def test_quick_subset_keeps_the_class_ratio_and_whole_patients(patients_root, tmp_path):
    from workshop_utils.splits import class_weights

    full = load_dataset(patients_root, 16, cache_dir=tmp_path / "cache", progress=False)
    quick = load_dataset(patients_root, 16, cache_dir=tmp_path / "cache", subset={"train": 60, "test": 30},
                         progress=False)
    assert full["train"].class_counts() == {"NORMAL": 47, "PNEUMONIA": 137}
    for split, n in (("train", 60), ("test", 30)):
        part, whole = quick[split], full[split]
        assert 0.8 * n <= len(part) <= n
        assert abs(part.labels.mean() - whole.labels.mean()) < 0.03  # the full split's ratio, within 3 points
        assert set(part.names) <= set(whole.names)
        for g in set(part.groups):  # every image of a chosen patient
            assert (part.groups == g).sum() == (whole.groups == g).sum()
        # Lesson 3 sees the imbalance: the subset's class weights are the full split's, not 1.0.
        assert class_weights(part.labels)[0] == pytest.approx(class_weights(whole.labels)[0], rel=0.1)
        assert class_weights(part.labels)[0] > 1.2
        # Decoded from the same files: the subset's images are the full split's.
        index = [whole.names.index(n) for n in part.names]
        np.testing.assert_array_equal(part.images, whole.images[index])


def test_quick_subset_is_reproducible_by_seed_and_cached(patients_root, tmp_path, decode_calls):
    cache = tmp_path / "cache"

    def names(seed):
        return load_split(patients_root, "train", 16, cache_dir=cache, subset=60, seed=seed, progress=False).names

    a = names(0)
    decoded = len(decode_calls)
    assert decoded == len(a)  # only the subset is decoded
    assert names(0) == a and len(decode_calls) == decoded  # same seed: same subset, from the cache
    assert names(1) != a
    assert a == sorted(a, key=lambda n: (n.split("/")[1], n))  # kept in listing order


def test_split_smaller_than_its_subset_is_kept_whole(dataset_root, tmp_path):
    data = load_dataset(dataset_root, 16, cache_dir=tmp_path / "c", subset={"train": 1000, "test": 5},
                        progress=False)
    assert data["train"].class_counts() == {"NORMAL": 5, "PNEUMONIA": 8}
    assert data["test"].class_counts() == {"NORMAL": 2, "PNEUMONIA": 3}
    only_train = load_dataset(dataset_root, 16, cache_dir=tmp_path / "c", subset={"train": 1000}, progress=False)
    assert len(only_train["test"]) == 5


@pytest.mark.parametrize("subset, message", [({"val": 10}, "'val'"), ({"train": 0}, "at least 1 image")])
def test_bad_subset_is_a_value_error(dataset_root, tmp_path, subset, message):
    with pytest.raises(ValueError, match=message):
        load_dataset(dataset_root, 16, cache_dir=tmp_path / "c", subset=subset, progress=False)


# ---------------------------------------------------------------------------------------------
# original_sizes


def test_original_sizes_reads_headers(dataset_root):
    sizes = images.original_sizes(dataset_root, "train")
    assert sizes.shape == (10, 2) and (sizes == [12, 10]).all()


def test_original_sizes_warns_and_skips_unreadable_files(dataset_root):
    folder = dataset_root / "train" / "NORMAL"
    (folder / "IM-0600-0001.jpeg").write_bytes(b"")  # zero bytes
    (folder / "IM-0601-0001.jpeg").write_text("not an image, just text with an image's name")
    with pytest.warns(UserWarning) as record:
        sizes = images.original_sizes(dataset_root, "train")
    text = _messages(record)
    assert "train: skipped 2 unreadable images of 12" in text
    assert "train/NORMAL/IM-0600-0001.jpeg" in text and "train/NORMAL/IM-0601-0001.jpeg" in text
    assert sizes.shape == (10, 2)


# ---------------------------------------------------------------------------------------------
# load_dataset


def test_load_dataset_folds_val_into_train(dataset_root, tmp_path):
    data = load_dataset(dataset_root, 32, cache_dir=tmp_path / "cache", progress=False)
    assert set(data) == {"train", "test"}
    assert all(isinstance(v, ImageSet) for v in data.values())
    assert data["train"].class_counts() == {"NORMAL": 4 + 1, "PNEUMONIA": 6 + 2}
    assert data["test"].class_counts() == {"NORMAL": 2, "PNEUMONIA": 3}
    assert data["train"].images.shape == (13, 32, 32)
    assert sum(n.startswith("val/") for n in data["train"].names) == 3
    assert sum(n.startswith("train/") for n in data["train"].names) == 10
    assert not set(data["train"].names) & set(data["test"].names)


def test_load_dataset_without_val(tmp_path, make_tree):
    root = make_tree(tmp_path / "data", {"train": COUNTS["train"], "test": COUNTS["test"]})
    data = load_dataset(root, 32, cache_dir=tmp_path / "cache", progress=False)
    assert data["train"].class_counts() == {"NORMAL": 4, "PNEUMONIA": 6}


# ---------------------------------------------------------------------------------------------
# Real data


@pytest.fixture(scope="module")
def real_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("real_cache")


def test_real_dataset_at_150px(real_data_root, real_cache, recwarn):
    data = load_dataset(real_data_root, 150, cache_dir=real_cache, progress=False)
    train, test = data["train"], data["test"]
    assert train.class_counts() == {"NORMAL": 1341 + 8, "PNEUMONIA": 3875 + 8}
    assert test.class_counts() == {"NORMAL": 113, "PNEUMONIA": 182}
    assert train.images.shape == (5232, 150, 150) and test.images.shape == (295, 150, 150)
    assert train.images.dtype == np.uint8 and test.images.dtype == np.uint8
    assert train.skipped == [] and test.skipped == []
    assert not [w for w in recwarn if "unreadable" in str(w.message)]
    assert len(train.names) == len(train.groups) == 5232
    assert not any(g.startswith("file:") for g in train.groups)
    # Real pictures: neither blank nor saturated.
    assert 60 < train.images.mean() < 200 and train.images.std() > 30


def test_real_dataset_second_load_is_identical_and_cached(real_data_root, real_cache, monkeypatch):
    first = load_dataset(real_data_root, 150, cache_dir=real_cache, progress=False)  # cached by the test above

    def fail(*args, **kwargs):
        raise AssertionError("decoded although cached")

    monkeypatch.setattr(images, "_try_decode", fail)
    second = load_dataset(real_data_root, 150, cache_dir=real_cache, progress=False)
    for split in ("train", "test"):
        np.testing.assert_array_equal(second[split].images, first[split].images)
        np.testing.assert_array_equal(second[split].labels, first[split].labels)
        assert second[split].names == first[split].names
