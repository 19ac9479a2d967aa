"""Faults that must lose no work, each met the way a user meets it: two real processes started together, real
files and folders (a real full disk where this machine allows mounting one)."""
from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import textwrap
import threading
import time
import warnings
from pathlib import Path

import numpy as np
import pytest

from workshop_utils import cachefiles, features, runner

REPO = Path(__file__).resolve().parents[1]


def _cli(*args: str, env: dict | None = None) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "workshop_utils", *args], cwd=REPO, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def test_two_runs_started_together_into_one_folder_one_runs_the_other_is_refused(tmp_path):
    env = dict(os.environ, WORKSHOP_CACHE_DIR=str(tmp_path / "cache"), KERAS_HOME=str(tmp_path / "keras"))
    out = tmp_path / "run"
    args = ("run", "--data-dir", "synthetic", "--quick", "--weights", "none", "--only", "02", "--out", str(out))
    first, second = _cli(*args, env=env), _cli(*args, env=env)  # started together: both find the folder new
    results = [(p.wait(timeout=900), *p.communicate()) for p in (first, second)]
    codes = sorted(code for code, _, _ in results)
    assert codes == [0, 2], [(code, err[-2000:]) for code, _, err in results]
    refused = next(err for code, _, err in results if code == 2)
    assert "Traceback" not in refused
    assert any(f"{out} {why}" in refused for why in (
        "is in use by another run (",  # refused by the lock (its pid, or "another process" before it wrote one)
        "holds notebooks (02_baseline_vgg16.ipynb)",  # the winner had begun writing when the loser looked
        "already holds a run")), refused  # the loser looked after the winner finished
    entries = json.loads((out / "results.json").read_text())
    assert [e["lesson"] for e in entries] == ["02_baseline_vgg16"]  # one run's results, complete
    assert (out / "models" / "02_baseline_vgg16.keras").is_file()
    assert not list((out / "models").glob("*partial*"))


def test_a_run_folder_held_by_a_live_process_is_refused_and_freed_when_it_ends(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import sys, time
        from pathlib import Path
        from workshop_utils import runner
        with runner.run_folder_lock(Path({str(out)!r})):
            print("held", flush=True)
            time.sleep(60)
    """)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(runner.RunError, match=rf"in use by another run \(process {holder.pid}, started "):
            with runner.run_folder_lock(out):
                pass
    finally:
        holder.kill()
        holder.wait()
    with runner.run_folder_lock(out):  # the operating system released it with the process
        pass


def test_two_processes_saving_one_model_at_once_both_leave_a_complete_file(tmp_path):
    """Each save writes its own temporary file: the model file is always whole, whoever renames last.

    Process A is held between writing its temporary file and renaming it (as a large model is, on a slow disk)
    while process B saves the same model file from start to end: with one temporary name for every process
    (8d06726) B moves A's file away and A fails."""
    target = tmp_path / "models" / "02_baseline_vgg16.keras"
    written, done = tmp_path / "a-wrote-its-temporary-file", tmp_path / "b-saved"
    script = textwrap.dedent(f"""
        import sys, time
        from pathlib import Path
        import keras
        from workshop_utils import saving
        keras.utils.set_random_seed(0)
        model = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Flatten(),
                                  keras.layers.Dense(2, activation="softmax")])
        written, done = Path({str(written)!r}), Path({str(done)!r})
        if sys.argv[1] == "A":
            save = keras.Model.save
            def held_save(self, filepath, *args, **kwargs):
                save(self, filepath, *args, **kwargs)
                written.touch()
                while not done.exists():
                    time.sleep(0.05)
            keras.Model.save = held_save
        else:
            while not written.exists():
                time.sleep(0.05)
        saving.save_lesson_model(model, {str(target)!r}, 8, lesson="02_baseline_vgg16")
        if sys.argv[1] == "B":
            done.touch()
        print("saved")
    """)
    procs = [subprocess.Popen([sys.executable, "-c", script, who], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for who in "AB"]
    outs = [(p.wait(timeout=300), *p.communicate()) for p in procs]
    assert all(code == 0 and "saved" in out for code, out, _ in outs), [err[-2000:] for _, _, err in outs]
    from workshop_utils import saving

    model, meta = saving.load_lesson_model(target)
    assert meta["image_size"] == 8 and model.output_shape == (None, 2)
    assert sorted(p.name for p in target.parent.iterdir()) == [target.name]  # no temporary file left behind


def test_cache_files_are_readable_by_the_group(tmp_path, monkeypatch):
    """An instructor's shared cache: the files get the mode open() gives (0666 less the umask), not 0600."""
    old = os.umask(0o022)
    try:
        path = cachefiles.save_array(tmp_path, "feats", np.arange(6, dtype=np.float16))
        cachefiles.write_atomic(tmp_path / "meta.json", lambda f: f.write(b"{}"))
    finally:
        os.umask(old)
    for file in (path, tmp_path / "meta.json"):
        mode = stat.S_IMODE(file.stat().st_mode)
        assert mode == 0o644, (file.name, oct(mode))
        assert mode & stat.S_IRGRP and mode & stat.S_IROTH


@pytest.fixture
def full_disk(tmp_path):
    """A real 1 MB tmpfs: what a full disk is (needs root, skips without)."""
    mount = tmp_path / "small"
    mount.mkdir()
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a small tmpfs needs root")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=False)


def test_a_full_disk_while_caching_says_so_in_words_and_keeps_the_result(full_disk):
    big = np.ones((2_000_000,), np.float16)  # 4 MB on a 1 MB disk
    with pytest.raises(OSError, match=f"No space left on the disk of {full_disk} to write feats-"):
        cachefiles.save_array(full_disk, "feats", big)
    assert list(full_disk.iterdir()) == []  # no partial file left to break the next run
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with cachefiles.tolerate_write_errors(full_disk):
            cachefiles.save_array(full_disk, "feats", big)
    [warning] = [str(w.message) for w in caught]
    assert warning.startswith(f"No space left on the disk of {full_disk}") and "requested and" not in warning.split(
        "(")[0]
    assert "set WORKSHOP_CACHE_DIR to a folder on a disk with room" in warning
    assert "Going on without caching this result" in warning


def test_frozen_features_on_a_full_cache_disk_are_computed_and_returned(full_disk):
    """The lessons' own route: the features come back, only uncached, with the warning in words."""
    import keras

    model = keras.Sequential([keras.Input((16, 16, 1)), keras.layers.Flatten(), keras.layers.RepeatVector(8)])
    images = np.random.default_rng(0).uniform(0, 255, (1200, 16, 16, 1)).astype(np.float32)  # 9.8 MB out
    with pytest.warns(UserWarning, match=f"No space left on the disk of {full_disk}"):
        got = features.extract_features(model, images, cache_dir=full_disk, progress=False, batch_size=400)
    assert got.shape == (1200, 8, 256)
    np.testing.assert_array_equal(got[0, 0], images[0].reshape(-1))
    assert list(full_disk.iterdir()) == []


def test_ctrl_c_during_predict_is_one_line_and_exit_130(tmp_path):
    """A real SIGINT to `predict` while it works through a folder: no traceback, the one line cli.INTERRUPTED."""
    import signal

    from helpers_models import small_cnn
    from helpers_processes import ctrl_c_as_in_a_terminal
    from PIL import Image

    from workshop_utils import cli, saving

    model = saving.save_lesson_model(small_cnn(24), tmp_path / "cnn.keras", 24, lesson="06_from_scratch_cnn")
    folder = tmp_path / "many"
    folder.mkdir()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (2500, 2500), dtype=np.uint8), "L").save(
        folder / "000.png", compress_level=1)
    for i in range(1, 4000):  # hard links: 4,000 large images, minutes of decoding, made at once
        os.link(folder / "000.png", folder / f"{i:04d}.png")
    proc = subprocess.Popen([sys.executable, "-m", "workshop_utils", "predict", str(model), str(folder)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=ctrl_c_as_in_a_terminal)
    seen: list[str] = []
    reader = threading.Thread(target=lambda: seen.extend(iter(lambda: proc.stderr.read(64), "")), daemon=True)
    reader.start()
    deadline = time.time() + 300
    while "Predicting:" not in "".join(seen) and proc.poll() is None and time.time() < deadline:
        time.sleep(0.1)  # until the progress bar shows: the model loaded, images being decoded and classified
    assert proc.poll() is None, "predict ended before it could be interrupted"
    proc.send_signal(signal.SIGINT)
    proc.wait(timeout=120)
    reader.join(timeout=30)
    out, err = proc.stdout.read(), "".join(seen)
    assert proc.returncode == 130, err[-2000:]
    assert "Traceback" not in err
    assert err.strip().splitlines()[-1] == cli.INTERRUPTED
