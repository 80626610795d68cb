"""Run inside an image (stdlib only): what it must not hold.

    python image_scan.py ROOT SUFFIX...     prints one JSON object of findings

- tensorflow: a TensorFlow package anywhere (only the training image may have one);
- git: any .git file or folder;
- tests: this repository's test files (SUFFIX: their paths relative to the repository);
- credentials: credential files where tools look for them (.aws/credentials, .netrc,
  .pypirc, .git-credentials, .docker/config.json, .kube/config, SSH keys), a private
  key or an AWS access key id in a file of the image's own (outside third-party
  packages), and anything under /etc/ssl/private;
- first_party: the riskserve packages installed (a lean image ships only its own). A
  top-level `tests` package is not one of them: tf2onnx ships its own under that name;
  this repository's tests are found by their paths;
- broken_commands: a console script of riskserve's in the image's bin folder whose
  package the image does not ship (it would fail with ModuleNotFoundError).
"""

from __future__ import annotations

import configparser
import json
import os
import re
import sys
from pathlib import Path

SKIP = {"proc", "sys", "dev", "mnt", "run"}
CREDENTIAL_FILES = (
    ".aws/credentials",
    ".aws/config",
    ".netrc",
    ".pypirc",
    ".git-credentials",
    ".docker/config.json",
    ".kube/config",
    ".ssh/id_rsa",
    ".ssh/id_ed25519",
    ".ssh/id_ecdsa",
)
SECRET = re.compile(rb"-----BEGIN [A-Z ]*PRIVATE KEY-----|\b(AKIA|ASIA)[0-9A-Z]{16}\b")
FIRST_PARTY = (
    "model",
    "serving",
    "localplatform",
    "rollout",
    "training",
    "monitoring",
    "app",
    "features",
    "transformer",
    "governance",
    "riskserve",
    "bench",
)
GENERIC = {"tests/__init__.py", "tests/conftest.py"}


def site_packages_dirs(root: Path) -> list[Path]:
    return [p for p in root.glob("opt/venv/lib/python3*/site-packages") if p.is_dir()]


def scan(root: Path, test_suffixes: list[str]) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {
        "tensorflow": [],
        "git": [],
        "tests": [],
        "credentials": [],
        "first_party": [],
        "broken_commands": [],
    }
    suffixes = [
        "/" + s for s in test_suffixes if s not in GENERIC and "__init__" not in s
    ]
    site = site_packages_dirs(root)
    third_party = set()
    for sp in site:
        for entry in sp.iterdir():
            if entry.name == "riskserve" and entry.is_dir():
                found["first_party"] += shipped_rooms(entry)
            elif entry.name in FIRST_PARTY and entry.is_dir():
                found["first_party"].append(entry.name)  # a bare top-level name
            else:
                third_party.add(entry)
    found["first_party"].sort()
    found["broken_commands"] = broken_commands(root, site, found["first_party"])
    for dirpath, dirnames, filenames in os.walk(root):
        here = Path(dirpath)
        rel = "/" + str(here.relative_to(root)).lstrip(".")
        if here == root:
            dirnames[:] = [d for d in dirnames if d not in SKIP]
        if here in third_party:
            own = False
        else:
            own = not any(parent in third_party for parent in here.parents)
        for name in dirnames + filenames:
            path = f"{rel.rstrip('/')}/{name}"
            if name == ".git":
                found["git"].append(path)
            # The package itself (tensorflow, tensorflow_cpu-*.dist-info, ...), not a
            # module named after it (mlflow.tensorflow, the MLflow flavour).
            if name.lower().startswith("tensorflow") and here.name == "site-packages":
                found["tensorflow"].append(path)
        if "/etc/ssl/private" in rel:
            found["credentials"] += [f"{rel}/{f}" for f in filenames]
        for name in filenames:
            path = f"{rel.rstrip('/')}/{name}"
            if any(path.endswith(s) for s in suffixes):
                found["tests"].append(path)
            if any(path.endswith("/" + c) for c in CREDENTIAL_FILES):
                found["credentials"].append(path)
            elif own and not rel.startswith("/usr"):  # /usr: Debian's own files
                full = here / name
                try:
                    if full.is_symlink() or full.stat().st_size > 2_000_000:
                        continue
                    if SECRET.search(full.read_bytes()):
                        found["credentials"].append(path)
                except OSError:
                    continue
        if here.name == "site-packages":  # a TensorFlow found is reported, not walked
            dirnames[:] = [
                d for d in dirnames if not d.lower().startswith("tensorflow")
            ]
    return found


def shipped_rooms(package: Path) -> list[str]:
    """`riskserve.<room>` for each room the image ships, and `riskserve.cli` when the
    CLI's own modules are there."""
    rooms = [
        f"riskserve.{d.name}" for d in package.iterdir() if (d / "__init__.py").exists()
    ]
    if (package / "cli.py").exists():
        rooms.append("riskserve.cli")
    return rooms


def broken_commands(root: Path, site: list[Path], shipped: list[str]) -> list[str]:
    """riskserve's console scripts present in the venv's bin whose module's package
    is not in the image."""
    broken = []
    for sp in site:
        for entry_points in sp.glob("riskserve-*.dist-info/entry_points.txt"):
            parser = configparser.ConfigParser(delimiters=("=",))
            parser.read(entry_points)
            if not parser.has_section("console_scripts"):
                continue
            for name, target in parser.items("console_scripts"):
                module = target.split(":", 1)[0].strip()
                script = sp.parents[2] / "bin" / name
                if script.exists() and not module_shipped(sp, module):
                    broken.append(
                        f"/{script.relative_to(root)} ({module} is not in the image)"
                    )
    return sorted(broken)


def module_shipped(site_packages: Path, module: str) -> bool:
    path = site_packages.joinpath(*module.split("."))
    return path.with_suffix(".py").exists() or (path / "__init__.py").exists()


if __name__ == "__main__":
    print(json.dumps(scan(Path(sys.argv[1]), sys.argv[2:])))
