"""The predictor in one process, no server started: tensor codecs, the model's feeds,
the data plane, the REST app through httpx's ASGI transport, and the gRPC servicer on
an in-process grpc.aio server. `make test-fast` runs this layer."""

from __future__ import annotations

import asyncio
import threading

import grpc
import httpx
import numpy as np
import pytest
from riskserve.model.specs import FRAUD
from riskserve.serving.dataplane import DataPlane, InferRequest
from riskserve.serving.errors import InvalidInput, ModelNotFound, Unauthorized
from riskserve.serving.grpc_server import create_server
from riskserve.serving.grpc_v2 import grpc_predict_v2_pb2 as pb
from riskserve.serving.grpc_v2 import grpc_predict_v2_pb2_grpc as pb_grpc
from riskserve.serving.model import OnnxRiskModel
from riskserve.serving.rest import RestApp
from riskserve.serving.tensors import (
    InputTensor,
    decode_json_input,
    decode_raw_input,
    encode_raw,
)

from tests.asyncio_runner import run as run_async
from tests.fixtures.contract_models import expected_fraud, fraud_model, write_onnx
from tests.serving.predictor_helpers import load_testdata

pytestmark = pytest.mark.inprocess

ROWS = np.array(
    [[12.5, 0.3, 4.2, 1, 0, 0, 1], [3.1, 0.9, 0.6, 1, 1, 1, 0]], dtype=np.float32
)


@pytest.fixture(scope="module")
def fraud(tmp_path_factory) -> OnnxRiskModel:
    path = write_onnx(fraud_model(version="3"), tmp_path_factory.mktemp("m") / "f")
    model = OnnxRiskModel("fraud", path)
    model.load()
    return model


def per_feature(rows: np.ndarray) -> list[InputTensor]:
    return [
        InputTensor(name, "FP32", (len(rows), 1), rows[:, [i]])
        for i, name in enumerate(FRAUD.feature_names)
    ]


# -- tensor codecs ---------------------------------------------------------------------


def test_json_input_is_decoded_to_its_shape_and_dtype() -> None:
    tensor = decode_json_input(
        {"name": "x", "datatype": "FP32", "shape": [2, 1], "data": [[1.5], [2]]}, 0
    )
    assert tensor.array.dtype == np.float32 and tensor.array.shape == (2, 1)
    assert tensor.array.ravel().tolist() == [1.5, 2.0]


@pytest.mark.parametrize(
    ("item", "says"),
    [
        ({"name": "x", "datatype": "FP32", "shape": [3, 1], "data": [1, 2]}, "x"),
        ({"name": "x", "datatype": "NOPE", "shape": [1], "data": [1]}, "NOPE"),
        ({"datatype": "FP32", "shape": [1], "data": [1]}, "name"),
    ],
)
def test_a_bad_json_input_names_what_is_wrong(item: dict, says: str) -> None:
    with pytest.raises(InvalidInput, match=says):
        decode_json_input(item, 0)


def test_raw_tensors_round_trip() -> None:
    array = np.arange(6, dtype=np.float32).reshape(3, 2)
    decoded = decode_raw_input("x", "FP32", (3, 2), encode_raw(array))
    np.testing.assert_array_equal(decoded.array, array)
    with pytest.raises(InvalidInput, match="x"):
        decode_raw_input("x", "FP32", (4, 2), encode_raw(array))


# -- the model's feeds -----------------------------------------------------------------


def test_per_feature_and_matrix_inputs_give_the_same_answer(fraud) -> None:
    expected, decided = expected_fraud(ROWS)
    outputs, rows = fraud.predict(per_feature(ROWS))
    by_name = {o.name: o.array for o in outputs}
    assert rows == 2
    np.testing.assert_allclose(by_name["fraud_probability"], expected, atol=1e-6)
    np.testing.assert_array_equal(by_name["is_fraud"], decided)
    matrix, _ = fraud.predict([InputTensor("dense_input", "FP32", (2, 7), ROWS)])
    np.testing.assert_allclose(matrix[0].array, expected, atol=1e-6)


def test_a_missing_feature_is_named(fraud) -> None:
    with pytest.raises(InvalidInput, match="online_order"):
        fraud.predict(per_feature(ROWS)[:-1])


# -- the data plane --------------------------------------------------------------------


def test_small_and_big_batches_score_alike_on_the_loop_and_off_it(fraud) -> None:
    plane = DataPlane(fraud, inline_max_rows=4)
    rows = np.tile(ROWS, (50, 1))

    async def both():
        small = await plane.infer(InferRequest("fraud", None, per_feature(ROWS)))
        big = await plane.infer(InferRequest("fraud", None, per_feature(rows)))
        return small, big

    small, big = run_async(both())
    assert big.outputs[0].array.shape == (100,)
    np.testing.assert_array_equal(big.outputs[0].array[:2], small.outputs[0].array)
    assert small.model_version == "3" and small.request_id


def test_the_data_plane_refuses_unknown_models_versions_and_keys(fraud) -> None:
    plane = DataPlane(fraud, api_key="k")
    with pytest.raises(ModelNotFound, match="fraud"):
        plane.infer_now(InferRequest("credit", None, per_feature(ROWS)))
    with pytest.raises(ModelNotFound, match="version"):
        plane.infer_now(InferRequest("fraud", "9", per_feature(ROWS)))
    with pytest.raises(Unauthorized):
        plane.authorize("Bearer nope", None)
    plane.authorize("Bearer k", None)


# -- REST through the ASGI transport ---------------------------------------------------


def rest_client(plane: DataPlane) -> httpx.AsyncClient:
    app = RestApp(plane, max_body_bytes=1 << 20, revision="fraud-predictor-00003")
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://predictor"
    )


def test_rest_answers_health_metadata_infer_and_errors(fraud) -> None:
    async def calls():
        async with rest_client(DataPlane(fraud)) as client:
            return (
                await client.get("/v2/health/live"),
                await client.get("/v2/models/fraud"),
                await client.post(
                    "/v2/models/fraud/infer",
                    json=load_testdata("fraud_infer_request.json"),
                ),
                await client.get("/v2/models/fraud/infer"),
                await client.post("/v2/models/nope/infer", json={"inputs": []}),
                await client.post("/v2/models/fraud/infer", content=b"{not json"),
            )

    live, metadata, infer, wrong_method, unknown, bad = run_async(calls())
    assert live.status_code == 200
    assert [i["name"] for i in metadata.json()["inputs"]] == FRAUD.feature_names
    assert infer.status_code == 200, infer.text
    assert infer.headers["x-riskserve-revision"] == "fraud-predictor-00003"
    assert infer.json()["id"] == "fraud-testdata-1"
    assert wrong_method.status_code == 405
    assert unknown.status_code == 404 and "error" in unknown.json()
    assert bad.status_code == 400 and "JSON" in bad.json()["error"]


# -- gRPC, and a big batch that must not hold up the loop ------------------------------


class GatedModel:
    """The fraud model, but a batch of more than one row waits for `release`: the
    test can then ask for health while that batch is still being scored."""

    def __init__(self, model: OnnxRiskModel) -> None:
        self._model = model
        self.started = threading.Event()
        self.release = threading.Event()

    def __getattr__(self, name: str):  # noqa: ANN204
        return getattr(self._model, name)

    def predict(self, tensors, requested=None):  # noqa: ANN001, ANN201
        if tensors[0].shape[0] > 1:
            self.started.set()
            assert self.release.wait(30), "the test never released the batch"
        return self._model.predict(tensors, requested)


def grpc_request(rows: np.ndarray) -> pb.ModelInferRequest:
    request = pb.ModelInferRequest(model_name="fraud", id="g-1")
    for i, name in enumerate(FRAUD.feature_names):
        tensor = request.inputs.add(name=name, datatype="FP32", shape=[len(rows), 1])
        tensor.contents.fp32_contents.extend(rows[:, i].tolist())
    return request


def test_grpc_answers_and_a_big_batch_leaves_probes_and_small_requests_free(
    fraud,
) -> None:
    gated = GatedModel(fraud)
    plane = DataPlane(gated, inline_max_rows=1)

    async def scenario():
        from riskserve.localplatform.processes import free_port

        port = free_port()
        server = create_server(plane, port, 1 << 24, host="127.0.0.1")
        await server.start()
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
                stub = pb_grpc.GRPCInferenceServiceStub(channel)
                big = asyncio.ensure_future(stub.ModelInfer(grpc_request(ROWS)))
                loop = asyncio.get_running_loop()
                assert await loop.run_in_executor(None, gated.started.wait, 30)
                # The batch is being scored: the loop still answers everyone else.
                async with rest_client(plane) as client:
                    live = await client.get("/v2/health/live")
                    one = await client.post(
                        "/v2/models/fraud/infer",
                        json={
                            "inputs": [
                                {
                                    "name": "dense_input",
                                    "datatype": "FP32",
                                    "shape": [1, 7],
                                    "data": ROWS[0].tolist(),
                                }
                            ]
                        },
                    )
                probe = await stub.ServerLive(pb.ServerLiveRequest())
                still_scoring = not big.done()
                gated.release.set()
                return live, one, probe, still_scoring, await big
        finally:
            gated.release.set()
            await server.stop(grace=None)

    live, one, probe, still_scoring, answer = run_async(scenario())
    assert still_scoring
    assert live.status_code == 200 and probe.live
    assert one.status_code == 200, one.text
    expected, _ = expected_fraud(ROWS)
    assert answer.id == "g-1"
    np.testing.assert_allclose(
        answer.outputs[0].contents.fp32_contents, expected, atol=1e-6
    )
