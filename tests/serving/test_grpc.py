"""v2 gRPC: the same behaviour and errors as REST, as gRPC status codes."""

from __future__ import annotations

import struct
import time

import grpc
import numpy as np
import pytest
from riskserve.model.specs import FRAUD
from riskserve.serving.grpc_v2 import grpc_predict_v2_pb2 as pb
from riskserve.serving.grpc_v2 import grpc_predict_v2_pb2_grpc as pb_grpc

from tests.fixtures.contract_models import expected_fraud
from tests.serving.predictor_helpers import API_KEY, REVISION, load_testdata

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def fraud_stub(fraud_server):
    with grpc.insecure_channel(fraud_server.grpc_target) as channel:
        yield pb_grpc.GRPCInferenceServiceStub(channel)


@pytest.fixture(scope="module")
def credit_stub(credit_server):
    with grpc.insecure_channel(credit_server.grpc_target) as channel:
        yield pb_grpc.GRPCInferenceServiceStub(channel)


ROWS = np.array([[12.5, 0.3, 4.2, 1, 0, 0, 1], [3.1, 1.2, 0.4, 1, 1, 1, 0]], np.float32)


def _fraud_request(raw: bool = False, **fields) -> pb.ModelInferRequest:
    request = pb.ModelInferRequest(model_name="fraud", id="grpc-1", **fields)
    for i, name in enumerate(FRAUD.feature_names):
        tensor = request.inputs.add(name=name, datatype="FP32", shape=[2, 1])
        if raw:
            request.raw_input_contents.append(ROWS[:, i].astype("<f4").tobytes())
        else:
            tensor.contents.fp32_contents.extend(ROWS[:, i].tolist())
    return request


def test_health_and_metadata(fraud_stub):
    assert fraud_stub.ServerLive(pb.ServerLiveRequest()).live
    assert fraud_stub.ServerReady(pb.ServerReadyRequest()).ready
    assert fraud_stub.ModelReady(pb.ModelReadyRequest(name="fraud")).ready
    assert fraud_stub.ModelReady(pb.ModelReadyRequest(name="fraud", version="3")).ready
    server = fraud_stub.ServerMetadata(pb.ServerMetadataRequest())
    assert server.name == "riskserve"
    metadata = fraud_stub.ModelMetadata(pb.ModelMetadataRequest(name="fraud"))
    assert metadata.platform == "onnx_onnxv1"
    assert list(metadata.versions) == ["3"]
    assert [t.name for t in metadata.inputs] == FRAUD.feature_names
    assert [(t.name, t.datatype, list(t.shape)) for t in metadata.outputs] == [
        ("fraud_probability", "FP32", [-1]),
        ("is_fraud", "BOOL", [-1]),
    ]


@pytest.mark.parametrize("raw", [False, True], ids=["contents", "raw_contents"])
def test_infer(fraud_stub, raw):
    response, call = fraud_stub.ModelInfer.with_call(_fraud_request(raw=raw))
    assert response.model_name == "fraud"
    assert response.model_version == "3"
    assert response.id == "grpc-1"
    probability, is_fraud = expected_fraud(ROWS)
    outputs = {o.name: o for o in response.outputs}
    assert list(outputs["fraud_probability"].shape) == [2]
    if raw:
        assert len(response.raw_output_contents) == 2
        got = np.frombuffer(response.raw_output_contents[0], "<f4")
        flags = np.frombuffer(response.raw_output_contents[1], np.bool_)
    else:
        got = np.array(outputs["fraud_probability"].contents.fp32_contents)
        flags = np.array(outputs["is_fraud"].contents.bool_contents)
    np.testing.assert_allclose(got, probability, rtol=1e-4, atol=1e-6)
    assert flags.tolist() == is_fraud.tolist()
    assert ("x-riskserve-revision", REVISION) in call.trailing_metadata()


def test_infer_feature_matrix_and_selected_output(fraud_stub):
    request = pb.ModelInferRequest(model_name="fraud")
    tensor = request.inputs.add(name="dense_input", datatype="FP32", shape=[2, 7])
    tensor.contents.fp32_contents.extend(ROWS.ravel().tolist())
    request.outputs.add(name="is_fraud")
    response = fraud_stub.ModelInfer(request)
    assert [o.name for o in response.outputs] == ["is_fraud"]
    assert response.id  # generated
    assert list(response.outputs[0].contents.bool_contents) == [True, False]


def _code(call, request, **kwargs) -> tuple[grpc.StatusCode, str]:  # noqa: ANN001
    with pytest.raises(grpc.RpcError) as caught:
        call(request, **kwargs)
    return caught.value.code(), caught.value.details()


def test_errors_as_status_codes(fraud_stub):
    missing = _fraud_request()
    del missing.inputs[3]
    code, details = _code(fraud_stub.ModelInfer, missing)
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert "repeat_retailer" in details

    wrong_type = _fraud_request()
    wrong_type.inputs[0].datatype = "FP64"
    code, details = _code(fraud_stub.ModelInfer, wrong_type)
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert "distance_from_home" in details

    short = _fraud_request()
    short.inputs[1].shape[:] = [3, 1]
    code, details = _code(fraud_stub.ModelInfer, short)
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert "distance_from_last_transaction" in details

    raw_mismatch = _fraud_request(raw=True)
    del raw_mismatch.raw_input_contents[0]
    assert (
        _code(fraud_stub.ModelInfer, raw_mismatch)[0]
        == grpc.StatusCode.INVALID_ARGUMENT
    )

    unknown_model = _fraud_request()
    unknown_model.model_name = "credit"
    assert _code(fraud_stub.ModelInfer, unknown_model)[0] == grpc.StatusCode.NOT_FOUND
    unknown_version = _fraud_request(model_version="9")
    assert _code(fraud_stub.ModelInfer, unknown_version)[0] == grpc.StatusCode.NOT_FOUND
    code, _ = _code(fraud_stub.ModelMetadata, pb.ModelMetadataRequest(name="credit"))
    assert code == grpc.StatusCode.NOT_FOUND
    code, _ = _code(fraud_stub.ModelReady, pb.ModelReadyRequest(name="credit"))
    assert code == grpc.StatusCode.NOT_FOUND

    # and still correct afterwards
    assert fraud_stub.ModelInfer(_fraud_request()).model_version == "3"


def _bad_inputs() -> dict[str, pb.ModelInferRequest]:
    """Requests whose inputs a served model would refuse with INVALID_ARGUMENT."""
    empty = _fraud_request()
    del empty.inputs[:]
    unknown_type = _fraud_request()
    unknown_type.inputs[0].datatype = "FP128"
    misfiled = _fraud_request()
    misfiled.inputs[0].contents.int_contents.append(1)
    raw_mismatch = _fraud_request(raw=True)
    del raw_mismatch.raw_input_contents[0]
    short = _fraud_request()
    short.inputs[1].shape[:] = [3, 1]
    return {
        "empty": empty,
        "unknown_type": unknown_type,
        "misfiled": misfiled,
        "raw_mismatch": raw_mismatch,
        "short": short,
    }


@pytest.mark.parametrize("inputs", list(_bad_inputs()))
def test_an_unknown_model_or_version_is_not_found_before_its_inputs_are_read(
    fraud_stub, inputs
):
    request = _bad_inputs()[inputs]
    # the inputs are bad: the served model refuses them as such
    assert _code(fraud_stub.ModelInfer, request)[0] == grpc.StatusCode.INVALID_ARGUMENT
    # but for a model or a version this server does not serve, that comes first
    request.model_name = "nope"
    code, details = _code(fraud_stub.ModelInfer, request)
    assert code == grpc.StatusCode.NOT_FOUND
    assert "'nope' not found" in details
    request.model_name, request.model_version = "fraud", "9"
    code, details = _code(fraud_stub.ModelInfer, request)
    assert code == grpc.StatusCode.NOT_FOUND
    assert "no version '9'" in details


def test_auth_comes_before_the_model_lookup(credit_stub):
    request = _credit_request()
    request.model_name = "nope"
    del request.inputs[:]
    assert _code(credit_stub.ModelInfer, request)[0] == grpc.StatusCode.UNAUTHENTICATED
    key = [("x-api-key", API_KEY)]
    code, _ = _code(credit_stub.ModelInfer, request, metadata=key)
    assert code == grpc.StatusCode.NOT_FOUND
    unknown = pb.ModelMetadataRequest(name="nope")
    assert _code(credit_stub.ModelMetadata, unknown)[0] == (
        grpc.StatusCode.UNAUTHENTICATED
    )
    code, _ = _code(credit_stub.ModelMetadata, unknown, metadata=key)
    assert code == grpc.StatusCode.NOT_FOUND
    code, _ = _code(
        credit_stub.ModelMetadata,
        pb.ModelMetadataRequest(name="credit", version="9"),
        metadata=key,
    )
    assert code == grpc.StatusCode.NOT_FOUND
    # readiness is a probe: open, and NOT_FOUND for a model this server lacks
    code, _ = _code(credit_stub.ModelReady, pb.ModelReadyRequest(name="nope"))
    assert code == grpc.StatusCode.NOT_FOUND
    code, _ = _code(
        credit_stub.ModelReady, pb.ModelReadyRequest(name="credit", version="9")
    )
    assert code == grpc.StatusCode.NOT_FOUND


def _credit_request() -> pb.ModelInferRequest:
    rest = load_testdata("credit_infer_request.json")
    request = pb.ModelInferRequest(model_name="credit")
    for item in rest["inputs"]:
        tensor = request.inputs.add(
            name=item["name"], datatype=item["datatype"], shape=item["shape"]
        )
        if item["datatype"] == "BYTES":
            tensor.contents.bytes_contents.extend(v.encode() for v in item["data"])
        else:
            tensor.contents.fp32_contents.extend(
                float("nan") if v is None else v for v in item["data"]
            )
    return request


def test_credit_bytes_and_auth(credit_stub, credit_server):
    request = _credit_request()
    code, details = _code(credit_stub.ModelInfer, request)
    assert code == grpc.StatusCode.UNAUTHENTICATED
    assert "API key" in details
    code, _ = _code(credit_stub.ModelInfer, request, metadata=[("x-api-key", "wrong")])
    assert code == grpc.StatusCode.UNAUTHENTICATED
    code, _ = _code(credit_stub.ModelMetadata, pb.ModelMetadataRequest(name="credit"))
    assert code == grpc.StatusCode.UNAUTHENTICATED
    assert credit_stub.ServerLive(pb.ServerLiveRequest()).live  # health stays open

    for metadata in (
        [("authorization", f"Bearer {API_KEY}")],
        [("x-api-key", API_KEY)],
    ):
        grpc_answer = credit_stub.ModelInfer(request, metadata=metadata)
        rest_answer = credit_server.infer(
            load_testdata("credit_infer_request.json"), model="credit"
        ).json()
        grpc_scores = list(grpc_answer.outputs[1].contents.fp32_contents)
        np.testing.assert_allclose(
            grpc_scores, rest_answer["outputs"][1]["data"], rtol=1e-6
        )


def test_raw_bytes_input(credit_stub):
    request = _credit_request()
    for tensor in request.inputs:
        if tensor.datatype == "BYTES":
            raw = b"".join(
                struct.pack("<I", len(v)) + v for v in tensor.contents.bytes_contents
            )
        else:
            raw = np.array(tensor.contents.fp32_contents, "<f4").tobytes()
        request.raw_input_contents.append(raw)
        tensor.ClearField("contents")
    response = credit_stub.ModelInfer(request, metadata=[("x-api-key", API_KEY)])
    assert len(response.raw_output_contents) == 3
    assert np.frombuffer(response.raw_output_contents[0], "<f4").shape == (2,)


def test_hostile_bytes_and_huge_names_get_bounded_refusals_and_log_lines(
    fraud_stub, fraud_server
):
    """Bytes that are no request message are INVALID_ARGUMENT (not grpc's own UNKNOWN
    with a traceback logged per call); a 100,000-character name or id is refused with
    a bounded status (quoted back whole it reset the stream: RESOURCE_EXHAUSTED) and
    one bounded log line per request."""
    with grpc.insecure_channel(fraud_server.grpc_target) as channel:
        garbage = channel.unary_unary("/inference.GRPCInferenceService/ModelInfer")
        for blob in (b"\xff\xff\xff", b"\x0a\xff"):
            with pytest.raises(grpc.RpcError) as refused:
                garbage(blob, timeout=10)
            assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert "not a valid ModelInferRequest" in refused.value.details()
    log_path = fraud_server.process.log_path
    before = log_path.stat().st_size
    huge = "x" * 100_000
    long_id = _fraud_request()
    long_id.id = huge
    hostile = [
        (pb.ModelInferRequest(model_name=huge), grpc.StatusCode.NOT_FOUND),
        (long_id, None),
    ]
    bad_input = _fraud_request()
    bad_input.inputs[0].name = huge
    hostile.append((bad_input, grpc.StatusCode.INVALID_ARGUMENT))
    for request, code in hostile:
        try:
            fraud_stub.ModelInfer(request, timeout=10)
        except grpc.RpcError as error:
            assert error.code() == code, error.details()
            assert len(error.details()) < 1_200
            assert error.details().endswith(" characters)")  # cut, and says so
        else:
            assert code is None  # a long id is the client's to choose
    # The refusals' log lines: none carries the 100,000 characters.
    time.sleep(0.5)
    with open(log_path, "rb") as handle:
        handle.seek(before)
        lines = handle.read().splitlines()
    assert lines and max(len(line) for line in lines) < 5_000
    assert not any(b"Traceback" in line for line in lines)
