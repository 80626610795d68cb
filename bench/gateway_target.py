"""`python -m bench.gateway_target`: the local platform's gateway in front of one
predictor revision, for the benchmark's gateway-vs-direct comparison.

It applies one InferenceService for `--model_dir` to a fresh state folder, runs the
platform daemon (gateway on `--http_port`) in this process, and on SIGTERM stops the
predictor it started.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from riskserve.localplatform.apply_check import parse_documents
from riskserve.localplatform.controller import LocalPlatform
from riskserve.localplatform.daemon import serve_forever
from riskserve.localplatform.settings import PlatformSettings, inherited_environment

ISVC = """apiVersion: serving.kserve.io/v1beta1
kind: InferenceService
metadata:
  name: fraud
spec:
  predictor:
    model:
      modelFormat:
        name: onnx
      protocolVersion: v2
      storageUri: {storage_uri}
"""


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.gateway_target")
    parser.add_argument("--model_dir", required=True)
    parser.add_argument("--http_port", type=int, required=True)
    parser.add_argument("--grpc_port", type=int, default=0, help="0: no gRPC")
    args = parser.parse_args()
    settings = PlatformSettings(
        state_dir=Path(tempfile.mkdtemp(prefix="riskserve-bench-platform-")),
        gateway_port=args.http_port,
        gateway_grpc_port=args.grpc_port,
    )
    platform = LocalPlatform(settings, env=inherited_environment())
    platform.apply_documents(parse_documents(ISVC.format(storage_uri=args.model_dir)))
    serve_forever(settings)
    return 0


if __name__ == "__main__":
    sys.exit(main())
