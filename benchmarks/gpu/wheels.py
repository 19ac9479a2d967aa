"""Download the wheels the GPU machine lacks, for its Python, into benchmarks/gpu/carry/wheels.

Usage: python benchmarks/gpu/wheels.py [--python-version 3.12] [--only PACKAGE ...]

What is carried: this package's own wheel (built from the checkout: its metadata, read by `check`; the code
itself runs from the working tree) and every package its requirements (the core ones, without TensorFlow,
which the JAX run does not use, and the [run] extra: papermill, ipykernel) pull in, down to the packages the
device already has (device_packages.txt). Each is pinned to the version installed here where there is one
(the versions tested here), else the newest. Binary wheels are chosen for the device (CPython, manylinux,
x86-64). The folder is replaced only when everything downloaded, so an interrupted run leaves the last good
set. Prints each wheel and the total that travels (working tree + carry folder) against the 64 MiB limit.
``--only keras``: keras and what it needs there, nothing else (for transfer_study.py, which needs no Jupyter).
"""
from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import zipfile
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name, parse_wheel_filename

HERE = Path(__file__).resolve().parent
CHECKOUT = HERE.parents[1]
CARRY_DIR = HERE / "carry"
WHEELS_DIR = CARRY_DIR / "wheels"
DISTRIBUTION = "pneumonia-xray-workshop"
#: The extras of this package the device run needs.
EXTRAS = ("run",)
#: Requirements the device run does not need: it runs Keras on JAX (already on the device).
NOT_NEEDED = {"tensorflow"}
#: What the device's pip accepts for binary wheels (the device docs' recipe).
PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64",
             "manylinux1_x86_64")
TRAVEL_LIMIT_MIB = 64
#: What building this package's wheel reads from the checkout.
PACKAGE_FILES = ("pyproject.toml", "README.md", "workshop_utils")


def device_packages() -> set[str]:
    """The packages already on the device (canonical names)."""
    lines = (HERE / "device_packages.txt").read_text().splitlines()
    return {canonicalize_name(line.strip()) for line in lines if line.strip() and not line.startswith("#")}


def requirements(wheel: Path, python_version: str, extras: tuple[str, ...] = ()) -> list[Requirement]:
    """The requirements a wheel declares that apply on the device (Linux x86-64, this Python, ``extras``)."""
    with zipfile.ZipFile(wheel) as zf:
        name = next(n for n in zf.namelist() if n.endswith(".dist-info/METADATA"))
        text = zf.read(name).decode("utf-8")
    env = {"python_version": python_version, "python_full_version": python_version + ".0", "sys_platform": "linux",
           "platform_system": "Linux", "platform_machine": "x86_64", "os_name": "posix",
           "implementation_name": "cpython", "platform_python_implementation": "CPython"}
    found = []
    for line in text.splitlines():
        if not line.startswith("Requires-Dist:"):
            continue
        req = Requirement(line.split(":", 1)[1].strip())
        if req.marker is None or any(req.marker.evaluate({**env, "extra": e}) for e in ("", *extras)):
            found.append(req)
    return found


def pinned(name: str) -> str:
    """``name==version`` installed here (the version tested here), else ``name`` (the newest)."""
    try:
        return f"{name}=={metadata.version(name)}"
    except metadata.PackageNotFoundError:
        return name


def download(specs: list[str], dest: Path, python_version: str) -> None:
    """pip download the wheels of ``specs`` (no dependencies) for the device into ``dest``."""
    command = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:",
               "--python-version", python_version, "--implementation", "cp", "-d", str(dest)]
    for platform in PLATFORMS:
        command += ["--platform", platform]
    subprocess.run(command + specs, check=True)


def wheel_names(folder: Path) -> dict[str, Path]:
    """Canonical project name -> wheel file."""
    return {canonicalize_name(parse_wheel_filename(p.name)[0]): p for p in folder.glob("*.whl")}


def fetch(dest: Path, python_version: str, only: list[str] | None = None) -> None:
    """Build this package's wheel and download the closure of its requirements that the device lacks; with
    ``only``, the closure of those packages instead (the package's code runs from the working tree)."""
    if only:
        fetch_closure(dest, python_version, [Requirement(name) for name in only])
        return
    with tempfile.TemporaryDirectory() as source:  # a copy: building writes build/ and *.egg-info beside it
        for name in PACKAGE_FILES:
            if (CHECKOUT / name).is_dir():
                shutil.copytree(CHECKOUT / name, Path(source) / name, ignore=shutil.ignore_patterns("__pycache__"))
            else:
                shutil.copy2(CHECKOUT / name, Path(source) / name)
        subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(dest), source], check=True)
    fetch_closure(dest, python_version, requirements(wheel_names(dest)[DISTRIBUTION], python_version, EXTRAS))


def fetch_closure(dest: Path, python_version: str, todo: list[Requirement]) -> None:
    """Download ``todo`` and what they require, down to what is in ``dest`` or on the device."""
    on_device = device_packages()
    while todo:
        have = wheel_names(dest)
        wanted = sorted({canonicalize_name(r.name) for r in todo} - set(have) - on_device - NOT_NEEDED)
        if not wanted:
            break
        print(f"downloading {len(wanted)}: {', '.join(wanted)}", flush=True)
        download([pinned(name) for name in wanted], dest, python_version)
        new = wheel_names(dest)
        todo = [r for name in wanted for r in requirements(new[name], python_version)]


def travelling_mib() -> tuple[float, float]:
    """MiB of the working tree that travels (tracked and untracked files git does not ignore) and of the carry
    folder."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=CHECKOUT,
                            capture_output=True, check=True).stdout.decode().split("\0")
    tree = sum((CHECKOUT / p).stat().st_size for p in listed if p and (CHECKOUT / p).is_file())
    carried = sum(p.stat().st_size for p in CARRY_DIR.rglob("*") if p.is_file())
    return tree / 2 ** 20, carried / 2 ** 20


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--python-version", default="3.12", help="the device's Python (3.12: its python3 is 3.12.3)")
    parser.add_argument("--only", nargs="+", metavar="PACKAGE",
                        help="just these packages and what they need there (transfer_study.py: --only keras)")
    args = parser.parse_args(argv)
    CARRY_DIR.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=CARRY_DIR, prefix=".wheels-") as tmp:
        try:
            fetch(Path(tmp), args.python_version, args.only)
        except subprocess.CalledProcessError as exc:
            print(f"error: {' '.join(exc.cmd[:4])} ... failed (exit {exc.returncode}); the wheels in {WHEELS_DIR} "
                  "are left as they were. Is PyPI reachable?", file=sys.stderr)
            return 1
        shutil.rmtree(WHEELS_DIR, ignore_errors=True)
        Path(tmp).rename(WHEELS_DIR)
        WHEELS_DIR.chmod(0o755)
    for name, path in sorted(wheel_names(WHEELS_DIR).items()):
        print(f"  {path.stat().st_size / 2 ** 20:6.2f} MiB  {path.name}")
    tree, carried = travelling_mib()
    print(f"{len(wheel_names(WHEELS_DIR))} wheels in {WHEELS_DIR.relative_to(CHECKOUT)}; what travels: working tree "
          f"{tree:.1f} MiB + {CARRY_DIR.relative_to(CHECKOUT)} {carried:.1f} MiB = {tree + carried:.1f} MiB "
          f"(limit {TRAVEL_LIMIT_MIB} MiB)")
    if tree + carried > TRAVEL_LIMIT_MIB:
        print(f"error: over the device tool's {TRAVEL_LIMIT_MIB} MiB: pack the data smaller (pack_data.py --quality)",
              file=sys.stderr)
        return 1
    if not any(CARRY_DIR.glob("*.zip")):
        print("note: no packed data yet: run python benchmarks/gpu/pack_data.py", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
