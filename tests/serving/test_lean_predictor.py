"""The predictor pod runs the predictor and nothing else: `python -X importtime -m
riskserve.serving` on a local model folder, asked for readiness, metadata and one inference over
REST and gRPC, must not have imported a module of the platform, the rollouts, the
CLI, or the heavy libraries only they (or training and the app) need."""

from __future__ import annotations

import re

import grpc
import pytest
from riskserve.serving.grpc_v2 import grpc_predict_v2_pb2 as pb
from riskserve.serving.grpc_v2 import grpc_predict_v2_pb2_grpc as pb_grpc

from tests.fixtures.rooms import ROOMS
from tests.serving.predictor_helpers import load_testdata, start_predictor

pytestmark = pytest.mark.e2e

# Third-party packages the predictor never needs, and first-party rooms it never uses.
NOT_IN_A_PREDICTOR = (
    "kubernetes",
    "jsonschema",
    "httpx",
    "mlflow",
    "tensorflow",
    "gradio",
    "kserve",
    "fastapi",
    "localplatform",
    "rollout",
    "riskserve",
    "training",
    "app",
)
IMPORT_LINE = re.compile(r"^import time:\s+\d+ \|\s+\d+ \|\s*(?P<module>[\w.]+)\s*$")


def top_level(module: str) -> str | None:
    """The package a module belongs to: a room for `riskserve.<room>...`, "riskserve"
    for the CLI's own modules (`riskserve.cli`, ...), None for the bare namespace."""
    parts = module.split(".")
    if parts[0] != "riskserve":
        return parts[0]
    if len(parts) == 1:
        return None
    return parts[1] if parts[1] in ROOMS else "riskserve"


def imported(log_text: str) -> set[str]:
    names = {
        top_level(m["module"])
        for line in log_text.splitlines()
        if (m := IMPORT_LINE.match(line))
    }
    return {n for n in names if n is not None}


def test_a_predictor_imports_nothing_it_does_not_serve_with(models_dir, tmp_path):
    predictor = start_predictor(
        tmp_path,
        "lean",
        "fraud",
        models_dir / "fraud",
        python_flags=("-X", "importtime"),
    )
    try:
        assert predictor.client.get("/v2/models/fraud").status_code == 200
        response = predictor.infer(load_testdata("fraud_infer_request.json"))
        assert response.status_code == 200, response.text
        with grpc.insecure_channel(predictor.grpc_target) as channel:
            stub = pb_grpc.GRPCInferenceServiceStub(channel)
            assert stub.ModelReady(pb.ModelReadyRequest(name="fraud")).ready
    finally:
        predictor.stop()
    modules = imported((tmp_path / "lean.log").read_text())
    assert {"serving", "onnxruntime", "uvicorn", "grpc"} <= modules  # the log is read
    assert not modules & set(NOT_IN_A_PREDICTOR), sorted(
        modules & set(NOT_IN_A_PREDICTOR)
    )
