"""Packaging: every room installs under the one import name `riskserve`.

The repository keeps its rooms as top-level folders (`model/`, `training/`,
`serving/`, ...), the layout the project agreed on; the wheel maps each folder to a
subpackage (`serving/` -> `riskserve.serving`) with setuptools' `package_dir`, so
`pip install` puts `riskserve` and nothing else into site-packages, and an image that
copies only some rooms (the serving image ships `serving/` and the model contract it
needs) gets only those. pyproject.toml holds everything else.
"""

import tomllib
from pathlib import Path

from setuptools import find_packages, setup

ROOT = Path(__file__).parent
# The one list of rooms, in pyproject.toml's [tool.riskserve].
ROOMS = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["riskserve"][
    "rooms"
]

package_dir = {"riskserve": "riskserve"}
packages = ["riskserve"] if (ROOT / "riskserve" / "__init__.py").exists() else []
for room in ROOMS:
    if not (ROOT / room / "__init__.py").exists():
        continue  # an image that does not ship this room
    package_dir[f"riskserve.{room}"] = room
    packages.append(f"riskserve.{room}")
    packages += [f"riskserve.{room}.{sub}" for sub in find_packages(str(ROOT / room))]

setup(packages=packages, package_dir=package_dir)
