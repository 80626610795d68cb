"""Run `python -m riskserve.<room>` from another checkout (e.g. the commit before a
change), so that before and after are measured in one sitting.

`PYTHONPATH=<checkout>` alone does not do it: the venv installs riskserve editable
(setup.py maps the top-level folders to `riskserve.<room>`), and that install's import
hook answers for `riskserve.serving` whenever the path finder does not. A checkout has
a `riskserve/` folder (the CLI) but no `riskserve/serving/`, so `riskserve` came from
the checkout and `riskserve.serving` from the installed tree: the "before" predictor
was this working tree's. `importable()` builds the installed shape instead, a folder of
links (`riskserve/serving -> <checkout>/serving`, ...), as `make typecheck` does for
mypy; run with it as the working directory and PYTHONPATH, and every `riskserve.<room>`
is the checkout's. `check()` says which file a module really came from.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tomllib
from pathlib import Path

# The folders setup.py installs as riskserve.<room>, for a checkout from before
# pyproject.toml's [tool.riskserve] listed them.
ROOMS = (
    "model",
    "training",
    "serving",
    "localplatform",
    "rollout",
    "app",
    "monitoring",
)


def importable(source: Path, workdir: Path) -> Path:
    """A folder under `workdir` from which `riskserve.<room>` imports `source`'s
    (`source` itself when it already has the installed shape)."""
    source = source.resolve()
    if (source / "riskserve" / "serving" / "__init__.py").exists():
        return source
    digest = hashlib.sha1(str(source).encode()).hexdigest()[:10]
    root = workdir / f"checkout-{source.name}-{digest}"
    package = root / "riskserve"
    package.mkdir(parents=True, exist_ok=True)
    for entry in (source / "riskserve").iterdir():
        if entry.name != "__pycache__":
            _link(package / entry.name, entry)
    for room in rooms(source):
        if (source / room / "__init__.py").exists():
            _link(package / room, source / room)
    return root


def rooms(source: Path) -> list[str]:
    """The rooms `source` installs: pyproject.toml's [tool.riskserve] list, as
    setup.py reads it."""
    try:
        config = tomllib.loads((source / "pyproject.toml").read_text())
        return list(config["tool"]["riskserve"]["rooms"])
    except (OSError, KeyError, tomllib.TOMLDecodeError):
        return list(ROOMS)


def environment(root: Path) -> dict[str, str]:
    """The environment variables that make a process import from `root`."""
    return {"PYTHONPATH": str(root)}


def check(root: Path, module: str = "riskserve.serving") -> Path:
    """The real file `module` imports from when run from `root` (links resolved)."""
    done = subprocess.run(
        [sys.executable, "-c", f"import {module} as m; print(m.__file__)"],
        cwd=root,
        env={**os.environ, **environment(root)},
        capture_output=True,
        text=True,
        check=True,
    )
    return Path(done.stdout.strip()).resolve()


def _link(path: Path, target: Path) -> None:
    if path.is_symlink() or path.exists():
        path.unlink()
    path.symlink_to(target)
