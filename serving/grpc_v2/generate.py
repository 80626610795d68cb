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


def generate(spec: Path = SPEC, out_root: Path = REPO_ROOT) -> list[Path]:
    """Write the stubs under `out_root/serving/grpc_v2/`; return their paths."""
    from grpc_tools import protoc

    with tempfile.TemporaryDirectory() as include:
        proto_dir = Path(include) / "serving" / "grpc_v2"
        proto_dir.mkdir(parents=True)
        shutil.copy(spec, proto_dir / "grpc_predict_v2.proto")
        (out_root / "serving" / "grpc_v2").mkdir(parents=True, exist_ok=True)
        code = protoc.main(
            [
                "grpc_tools.protoc",
                f"-I{include}",
                f"--python_out={out_root}",
                f"--pyi_out={out_root}",
                f"--grpc_python_out={out_root}",
                str(proto_dir / "grpc_predict_v2.proto"),
            ]
        )
    if code != 0:
        raise RuntimeError(f"protoc failed with exit code {code}")
    return [out_root / "serving" / "grpc_v2" / name for name in GENERATED]


if __name__ == "__main__":
    for path in generate(Path(sys.argv[1]) if len(sys.argv) > 1 else SPEC):
        print(path)
