"""What `pip install riskserve` puts into site-packages: one import name, `riskserve`.

The rooms keep their folders in the repository (`model/`, `serving/`, ...); setup.py
maps each to `riskserve.<room>`, so a user's own `model.py` or `app.py` never collides
with ours. The wheel is built from this checkout and installed into a scratch venv."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.fixtures.rooms import ROOMS

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[1]


def test_the_wheel_installs_riskserve_and_nothing_else(tmp_path):
    # Built from a copy of the tracked files: setuptools writes build/ and egg-info
    # beside the sources, which must not land in the checkout.
    source = tmp_path / "source"
    tracked = (
        subprocess.run(
            ["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True
        )
        .stdout.decode()
        .split("\0")
    )
    for name in filter(None, tracked):
        if (REPO / name).is_file():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, source / name)
    wheelhouse = tmp_path / "wheels"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps"]
        + ["--no-build-isolation", "--wheel-dir", str(wheelhouse), str(source)],
        check=True,
        cwd=tmp_path,
        timeout=300,
    )
    (wheel,) = wheelhouse.glob("riskserve-*.whl")
    venv = tmp_path / "venv"
    subprocess.run(
        [sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True
    )
    python = venv / "bin" / "python"
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet"]
        + ["--no-deps", "--no-index", str(wheel)],
        check=True,
        timeout=300,
    )
    (site,) = (venv / "lib").glob("python3*/site-packages")
    names = sorted(
        p.name
        for p in site.iterdir()
        if not p.name.endswith((".dist-info", ".pth")) and p.name != "__pycache__"
    )
    assert names == ["riskserve"], names
    # Every room is there, under its installed name, with its data files.
    rooms = sorted(
        p.name for p in (site / "riskserve").iterdir() if (p / "__init__.py").exists()
    )
    assert rooms == sorted(ROOMS), rooms
    assert list((site / "riskserve" / "localplatform" / "schemas").glob("*.json.gz"))
    with zipfile.ZipFile(wheel) as archive:
        tops = {name.split("/", 1)[0] for name in archive.namelist()}
    assert {t for t in tops if not t.endswith(".dist-info")} == {"riskserve"}
    # It imports from the scratch venv, far from the checkout (third-party packages
    # come from this test's own venv, added behind the wheel's site-packages).
    import numpy

    deps = Path(numpy.__file__).parents[1]
    (site / "dev-deps.pth").write_text(f"{deps}\n")
    done = subprocess.run(
        [
            str(python),
            "-c",
            "import riskserve.model.specs as s, riskserve.serving.settings;"
            " print(s.__file__, s.FRAUD.name)",
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    where, name = done.stdout.split()
    assert Path(where).is_relative_to(site) and name == "fraud"
