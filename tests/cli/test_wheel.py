"""catvec as another project gets it: the wheel, built from the source and installed without
the repository, runs `catvec --version` and `catvec pretrain` on the bundled sample (package
data) from another folder. Offline: the build uses this environment's setuptools (no build
isolation), the install takes no dependencies (this environment's are on the path)."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from catvec import __version__

from conftest import REPO

FAST = ["--no-tune", "--epochs", "2", "--dim", "8", "--quiet"]


def run(args, cwd, **kwargs) -> subprocess.CompletedProcess:
    proc = subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=300, **kwargs)
    assert proc.returncode == 0, (args, proc.stdout[-2000:], proc.stderr[-2000:])
    return proc


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """(site, bin/catvec, env): the wheel installed into a bare folder, and an environment
    that finds catvec there and nowhere else."""
    root = tmp_path_factory.mktemp("wheel")
    src = root / "src"   # a copy: the build writes build/ and *.egg-info beside the sources
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, src)
    shutil.copytree(REPO / "catvec", src / "catvec", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check"]
    run([*pip, "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q", "-w", str(root / "dist"), str(src)],
        cwd=root)
    wheel, = (root / "dist").glob("catvec-*.whl")
    site = root / "site"
    run([*pip, "install", "--no-deps", "--no-index", "-q", "--target", str(site), str(wheel)], cwd=root)
    # PYTHONPATH replaces any pointing at a checkout; the editable install's finder comes after it
    return site, site / "bin" / "catvec", {**os.environ, "PYTHONPATH": str(site)}


def test_the_installed_package_is_the_wheel_and_names_its_version(installed, tmp_path):
    site, catvec, env = installed
    probe = ("import catvec, importlib.metadata as m; "
             "print(catvec.__file__); print(catvec.__version__); print(m.version('catvec'))")
    file, version, metadata = run([sys.executable, "-c", probe], cwd=tmp_path, env=env).stdout.split()
    assert Path(file).is_relative_to(site) and not Path(file).is_relative_to(REPO)
    assert version == metadata == __version__   # one source: catvec.__version__ is the wheel's metadata version
    assert run([str(catvec), "--version"], cwd=tmp_path, env=env).stdout.strip() == f"catvec {__version__}"
    for name in ("events.csv", "labels.csv", "items.csv", "baskets.csv"):
        packaged = site / "catvec" / "data" / name
        assert packaged.read_bytes() == (REPO / "data" / name).read_bytes()


def test_pretrain_without_events_trains_on_the_bundled_sample(installed, tmp_path):
    site, catvec, env = installed
    elsewhere = tmp_path / "elsewhere"   # no data/ here: the sample must come from the package
    elsewhere.mkdir()
    out = run([str(catvec), "pretrain", "--out", "art", *FAST], cwd=elsewhere, env=env).stdout.strip().splitlines()
    version = elsewhere / out[-1]   # the version's path, as --out gave it
    assert version.parent == elsewhere / "art" and (elsewhere / "art" / "latest").resolve() == version.resolve()
    assert (version / "vectors.safetensors").is_file() and (version / "COMPLETE").is_file()
    manifest = json.loads((version / "manifest.json").read_text(encoding="utf-8"))
    assert Path(manifest["input"]["path"]) == site / "catvec" / "data" / "events.csv"
    assert len(json.loads((version / "keys.json").read_text(encoding="utf-8"))) > 0
