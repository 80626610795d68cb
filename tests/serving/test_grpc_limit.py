"""The predictor's gRPC server caps the calls it handles at once (issue 24)."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import grpc
import numpy as np
import pytest
from riskserve.model.specs import FRAUD
from riskserve.serving.grpc_v2 import grpc_predict_v2_pb2 as pb
from riskserve.serving.grpc_v2 import grpc_predict_v2_pb2_grpc as pb_grpc

from tests.serving.predictor_helpers import start_predictor

pytestmark = pytest.mark.e2e

CALLERS = 6
# Big enough that scoring one takes a while on a worker thread (the slot stays taken).
ROWS = 100_000


def _big_request() -> pb.ModelInferRequest:
    request = pb.ModelInferRequest(model_name="fraud")
    values = np.random.default_rng(3).gamma(2.0, 5.0, ROWS).astype("<f4").tobytes()
    for name in FRAUD.feature_names:
        request.inputs.add(name=name, datatype="FP32", shape=[ROWS, 1])
        request.raw_input_contents.append(values)
    return request


def _burst(stub: pb_grpc.GRPCInferenceServiceStub, request) -> list[grpc.StatusCode]:
    """CALLERS calls released at once; the status code of each."""
    start = threading.Barrier(CALLERS)

    def call() -> grpc.StatusCode:
        start.wait()
        try:
            stub.ModelInfer(request, timeout=60)
        except grpc.RpcError as error:
            return error.code()
        return grpc.StatusCode.OK

    with ThreadPoolExecutor(CALLERS) as pool:
        return list(pool.map(lambda _: call(), range(CALLERS)))


def test_calls_beyond_the_cap_are_resource_exhausted(models_dir, logs_dir):
    predictor = start_predictor(
        logs_dir,
        "grpc-cap",
        "fraud",
        models_dir / "fraud",
        env={
            "RISKSERVE_SERVING_MAX_CONCURRENT_RPCS": "1",
            "RISKSERVE_SERVING_INLINE_MAX_ROWS": "0",
        },
    )
    request = _big_request()
    try:
        with grpc.insecure_channel(
            predictor.grpc_target,
            options=[("grpc.max_send_message_length", 64 << 20)],
        ) as channel:
            stub = pb_grpc.GRPCInferenceServiceStub(channel)
            codes: list[grpc.StatusCode] = []
            for _ in range(5):  # calls released together overlap; retry if not
                codes = _burst(stub, request)
                if grpc.StatusCode.RESOURCE_EXHAUSTED in codes:
                    break
            assert set(codes) == {
                grpc.StatusCode.OK,
                grpc.StatusCode.RESOURCE_EXHAUSTED,
            }, codes
            # The cap is on calls in flight, not a quota: one at a time all pass.
            for _ in range(3):
                response = stub.ModelInfer(request, timeout=60)
                assert response.outputs[0].shape == [ROWS]
    finally:
        predictor.stop()
