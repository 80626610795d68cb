"""Regenerate the v2 gRPC stubs from KServe's protocol spec, kept in
third_party/kserve/ (needs grpcio-tools)."""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
REPO_ROOT = PACKAGE_DIR.parent.parent
SPEC = (
    REPO_ROOT
    / "third_party"
    / "kserve"
    / "open-inference-protocol"
    / "grpc_predict_v2.proto"
)
# The .pyi (protoc's own --pyi_out) types the messages for mypy.
GENERATED = (
    "grpc_predict_v2_pb2.py",
    "grpc_predict_v2_pb2.pyi",
    "grpc_predict_v2_pb2_grpc.py",
)


def generate(spec: Path = SPEC, out_dir: Path = PACKAGE_DIR) -> list[Path]:
    """Write the two stubs into `out_dir` (this package by default); return their
    paths. They import each other as `riskserve.serving.grpc_v2`, the installed name."""
    from grpc_tools import protoc

    package = Path("riskserve") / "serving" / "grpc_v2"
    with tempfile.TemporaryDirectory() as include, tempfile.TemporaryDirectory() as out:
        proto_dir = Path(include) / package
        proto_dir.mkdir(parents=True)
        shutil.copy(spec, proto_dir / "grpc_predict_v2.proto")
        code = protoc.main(
            [
                "grpc_tools.protoc",
                f"-I{include}",
                f"--python_out={out}",
                f"--pyi_out={out}",
                f"--grpc_python_out={out}",
                str(proto_dir / "grpc_predict_v2.proto"),
            ]
        )
        if code != 0:
            raise RuntimeError(f"protoc failed with exit code {code}")
        out_dir.mkdir(parents=True, exist_ok=True)
        for name in GENERATED:
            shutil.copy(Path(out) / package / name, out_dir / name)
    return [out_dir / name for name in GENERATED]


if __name__ == "__main__":
    for path in generate(Path(sys.argv[1]) if len(sys.argv) > 1 else SPEC):
        print(path)
