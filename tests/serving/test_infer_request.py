"""Parsing a v2 request once, per wire form (serving/infer_request.py), and the one
place gRPC turns a failure into a status (serving/grpc_server.py)."""

from __future__ import annotations

import contextlib

import grpc
import numpy as np
import orjson
import pytest
from riskserve.serving.dataplane import DataPlane
from riskserve.serving.errors import InvalidInput
from riskserve.serving.grpc_server import create_server
from riskserve.serving.grpc_v2 import grpc_predict_v2_pb2 as pb
from riskserve.serving.grpc_v2 import grpc_predict_v2_pb2_grpc as pb_grpc
from riskserve.serving.infer_request import infer_request_from_grpc, parse_infer_request
from riskserve.serving.model import OnnxRiskModel
from riskserve.serving.tensors import encode_raw

from tests.asyncio_runner import run as run_async
from tests.fixtures.contract_models import fraud_model, write_onnx

pytestmark = pytest.mark.inprocess

ROW = [12.5, 0.3, 4.2, 1, 0, 0, 1]


def rest_body(**fields: object) -> bytes:
    request = {
        "inputs": [
            {"name": "dense_input", "datatype": "FP32", "shape": [1, 7], "data": ROW}
        ],
        **fields,
    }
    return orjson.dumps(request)


def test_a_rest_request_is_parsed_with_its_id_outputs_and_parameters() -> None:
    body = rest_body(
        id="r-1",
        outputs=[{"name": "is_fraud", "parameters": {"binary_data": True}}],
        parameters={"note": "x"},
    )
    request, requested = parse_infer_request("fraud", "3", body, None, 1.0)
    assert (request.model_name, request.model_version, request.id) == (
        "fraud",
        "3",
        "r-1",
    )
    assert request.protocol == "rest" and request.received == 1.0
    assert request.requested_outputs == ["is_fraud"] and requested.is_binary("is_fraud")
    assert request.parameters == {"note": "x"}
    np.testing.assert_allclose(request.inputs[0].array, [ROW])


def test_a_rest_request_without_an_id_gets_a_fresh_one() -> None:
    first, _ = parse_infer_request("fraud", None, rest_body(), None, 0.0)
    second, _ = parse_infer_request("fraud", None, rest_body(), None, 0.0)
    assert first.id and second.id and first.id != second.id


@pytest.mark.parametrize(
    ("body", "header_length", "says"),
    [
        (b"{not json", None, "Inference-Header-Content-Length header"),
        (b"[1]", None, "not a JSON object"),
        (b'{"inputs": []}', None, "empty"),
        (rest_body(id=7), None, "'id' must be a string"),
        (rest_body(parameters=[1]), None, "'parameters' must be a JSON object"),
        (rest_body(), b"x", "must be a byte count"),
    ],
)
def test_a_bad_rest_request_says_what_is_wrong(
    body: bytes, header_length: bytes | None, says: str
) -> None:
    with pytest.raises(InvalidInput, match=says):
        parse_infer_request("fraud", None, body, header_length, 0.0)


def test_a_grpc_request_is_parsed_from_raw_or_typed_contents() -> None:
    raw = pb.ModelInferRequest(model_name="fraud", model_version="", id="g")
    raw.inputs.add(name="dense_input", datatype="FP32", shape=[1, 7])
    raw.raw_input_contents.append(encode_raw(np.array([ROW], dtype=np.float32)))
    raw.outputs.add(name="is_fraud")
    raw.parameters["note"].string_param = "x"
    typed = pb.ModelInferRequest(model_name="fraud")
    tensor = typed.inputs.add(name="dense_input", datatype="FP32", shape=[1, 7])
    tensor.contents.fp32_contents.extend(ROW)
    parsed = [infer_request_from_grpc(r, "id-1", 2.0) for r in (raw, typed)]
    for request in parsed:
        assert request.protocol == "grpc" and request.id == "id-1"
        assert request.model_version is None
        np.testing.assert_allclose(request.inputs[0].array, [ROW])
    assert parsed[0].requested_outputs == ["is_fraud"]
    assert parsed[0].parameters == {"note": "x"}
    assert parsed[1].requested_outputs is None and parsed[1].parameters == {}


def test_a_grpc_request_with_data_in_the_wrong_field_is_refused() -> None:
    request = pb.ModelInferRequest(model_name="fraud")
    tensor = request.inputs.add(name="dense_input", datatype="FP32", shape=[1, 1])
    tensor.contents.int_contents.append(1)
    with pytest.raises(InvalidInput, match="int_contents"):
        infer_request_from_grpc(request, "id", 0.0)


class BrokenModel:
    """Loaded and ready, but scoring fails with a fault that is not a ServingError."""

    def __init__(self, model: OnnxRiskModel) -> None:
        self._model = model

    def __getattr__(self, name: str) -> object:
        return getattr(self._model, name)

    def predict(self, tensors: object, requested: object = None) -> object:
        raise RuntimeError("onnxruntime fell over")


def test_every_grpc_failure_answers_a_status_and_the_revision(tmp_path) -> None:
    model = OnnxRiskModel("fraud", write_onnx(fraud_model(), tmp_path / "f"))
    model.load()
    plane = DataPlane(BrokenModel(model), api_key="k")  # type: ignore[arg-type]

    async def scenario() -> list[tuple[grpc.StatusCode, str, tuple]]:
        from riskserve.localplatform.processes import free_port

        port = free_port()
        server = create_server(plane, port, 1 << 20, revision="r7", host="127.0.0.1")
        await server.start()
        answers = []
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
                stub = pb_grpc.GRPCInferenceServiceStub(channel)
                misfiled = pb.ModelInferRequest(model_name="fraud")
                misfiled.inputs.add(name="dense_input", datatype="FP32", shape=[1])
                misfiled.inputs[0].contents.int_contents.append(1)
                key = (("x-api-key", "k"),)
                calls = [
                    stub.ServerLive(pb.ServerLiveRequest()),
                    stub.ServerMetadata(pb.ServerMetadataRequest()),
                    stub.ModelMetadata(
                        pb.ModelMetadataRequest(name="nope"), metadata=key
                    ),
                    stub.ModelInfer(misfiled, metadata=key),
                ]
                infer = pb.ModelInferRequest(model_name="fraud")
                infer.inputs.add(name="dense_input", datatype="FP32", shape=[1, 7])
                infer.inputs[0].contents.fp32_contents.extend(ROW)
                calls.append(stub.ModelInfer(infer, metadata=key))
                for call in calls:
                    with contextlib.suppress(grpc.aio.AioRpcError):
                        await call
                    answers.append(
                        (
                            await call.code(),
                            await call.details(),
                            tuple(await call.trailing_metadata()),
                        )
                    )
        finally:
            await server.stop(grace=None)
        return answers

    live, keyless, unknown, misfiled, broken = run_async(scenario())
    assert live[0] == grpc.StatusCode.OK
    assert keyless[0] == grpc.StatusCode.UNAUTHENTICATED
    assert unknown[0] == grpc.StatusCode.NOT_FOUND and "nope" in unknown[1]
    assert misfiled[0] == grpc.StatusCode.INVALID_ARGUMENT
    assert broken == (
        grpc.StatusCode.INTERNAL,
        "internal error: RuntimeError",
        (("x-riskserve-revision", "r7"),),
    )
    for answer in (live, keyless, unknown, misfiled):
        assert ("x-riskserve-revision", "r7") in answer[2]
