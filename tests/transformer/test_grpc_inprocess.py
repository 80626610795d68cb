"""The transformer's v2 gRPC server in process, over the same fakes as
test_inprocess.py: the answer equals REST's for the same event (outputs, request id,
push), the raw fields are checked by REST's checks (INVALID_ARGUMENT naming the
field), the status codes map as the predictor's, the API key comes through metadata,
and hostile messages are refused without taking the server down."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import orjson
import pytest
from riskserve.localplatform.processes import free_port
from riskserve.serving.grpc_v2 import grpc_predict_v2_pb2 as pb
from riskserve.serving.grpc_v2 import grpc_predict_v2_pb2_grpc as pb_grpc
from riskserve.serving.inference_log import InferenceLog
from riskserve.serving.settings import StorageSettings
from riskserve.transformer.app import Transformer, TransformerApp
from riskserve.transformer.grpc_server import create_server
from riskserve.transformer.predictor_client import PredictorError
from riskserve.transformer.raw_request import RAW_NAMES

from tests.asyncio_runner import run as run_async
from tests.transformer.test_inprocess import (
    KEY,
    NOW_US,
    FakePredictor,
    FakeSource,
    RecordedPushes,
    call,
    outputs,
)
from tests.transformer.transformer_helpers import raw_request

pytestmark = pytest.mark.inprocess

Stub = pb_grpc.GRPCInferenceServiceStub


def grpc_request(json_request: dict, **fields: Any) -> pb.ModelInferRequest:
    """The REST JSON request as a ModelInferRequest with typed contents."""
    request = pb.ModelInferRequest(model_name="fraud", **fields)
    for item in json_request["inputs"]:
        tensor = request.inputs.add(
            name=item["name"], datatype=item["datatype"], shape=item["shape"]
        )
        values = item["data"]
        if item["datatype"] == "BYTES":
            tensor.contents.bytes_contents.extend(v.encode() for v in values)
        elif item["datatype"] == "FP64":
            tensor.contents.fp64_contents.extend(values)
        elif item["datatype"] == "BOOL":
            tensor.contents.bool_contents.extend(values)
        else:
            tensor.contents.int64_contents.extend(values)
    return request


def make(api_key: str | None = None) -> tuple[Transformer, FakeSource, RecordedPushes]:
    source, pushes = FakeSource(), RecordedPushes()
    transformer = Transformer(
        model_name="fraud",
        predictor=FakePredictor(),
        source=source,
        pushes=pushes,
        api_key=api_key,
    )
    return transformer, source, pushes


def over_grpc(transformer: Transformer, talk: Callable[[Stub], Awaitable[Any]]) -> Any:
    """Serve `transformer` on a loopback port, run `talk` against it, stop."""

    async def go() -> Any:
        port = free_port()
        server = create_server(transformer, port, 4 * 1024 * 1024, host="127.0.0.1")
        await server.start()
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
                return await talk(Stub(channel))
        finally:
            await server.stop(grace=None)

    return run_async(go())


def grpc_outputs(response: pb.ModelInferResponse) -> dict[str, list]:
    got: dict[str, list] = {}
    for output in response.outputs:
        contents = output.contents
        for name in (
            "fp32_contents",
            "fp64_contents",
            "bool_contents",
            "int64_contents",
            "int_contents",
            "bytes_contents",
        ):
            values = list(getattr(contents, name))
            if values:
                got[output.name] = values
                break
        else:
            got[output.name] = []
    return got


async def status_of(call_: Awaitable[Any]) -> tuple[grpc.StatusCode, str]:
    try:
        await call_
    except grpc.aio.AioRpcError as error:
        return error.code(), error.details() or ""
    return grpc.StatusCode.OK, ""


def test_a_raw_transaction_over_grpc_gets_the_rest_answer_and_a_push() -> None:
    json_request = raw_request("card-1", NOW_US)
    transformer, _, pushes = make()
    (rest,) = call(
        TransformerApp(transformer),
        [
            (
                "POST",
                "/v2/models/fraud/infer",
                {"content": orjson.dumps({**json_request, "id": "same"})},
            )
        ],
    )
    assert rest.status_code == 200, rest.text

    async def talk(stub: Stub) -> pb.ModelInferResponse:
        return await stub.ModelInfer(grpc_request(json_request, id="same"))

    answer = over_grpc(transformer, talk)
    assert answer.id == "same" == rest.json()["id"]
    assert answer.model_name == "fraud" and answer.model_version == "3"
    got, expected = grpc_outputs(answer), outputs(rest)
    assert list(got) == list(expected)
    for name, values in expected.items():
        if isinstance(values[0], float):
            assert got[name] == pytest.approx(values), name
        elif isinstance(values[0], str):
            assert [v.decode() for v in got[name]] == values, name
        else:
            assert got[name] == values, name
    # One push per answer, REST's then gRPC's, of the same card.
    assert [txn.card_id for txn, _ in pushes.submitted] == ["card-1", "card-1"]


def test_raw_input_contents_come_back_raw_and_requested_outputs_are_kept() -> None:
    transformer, *_ = make()
    json_request = raw_request("card-1", NOW_US)
    request = pb.ModelInferRequest(model_name="fraud")
    for item in json_request["inputs"]:
        request.inputs.add(name=item["name"], datatype=item["datatype"], shape=[1])
        value = item["data"][0]
        if item["datatype"] == "BYTES":
            raw = len(value).to_bytes(4, "little") + value.encode()
        elif item["datatype"] == "FP64":
            raw = np.array([value], "<f8").tobytes()
        elif item["datatype"] == "BOOL":
            raw = bytes([int(value)])
        else:
            raw = np.array([value], "<i8").tobytes()
        request.raw_input_contents.append(raw)
    request.outputs.add(name="fraud_probability")
    request.outputs.add(name="unknown_entity")

    answer = over_grpc(transformer, lambda stub: stub.ModelInfer(request))
    assert [o.name for o in answer.outputs] == ["fraud_probability", "unknown_entity"]
    assert np.frombuffer(answer.raw_output_contents[0], "<f4").tolist() == [0.25]
    assert answer.raw_output_contents[1] == b"\x00"
    assert answer.id  # one is made when the request has none


@pytest.mark.parametrize(
    ("field", "change", "words"),
    [
        ("amount", -5.0, "'amount' holds a negative amount"),
        ("merchant_latitude", 91.0, "'merchant_latitude' holds a value outside"),
        ("card_id", "", "'card_id' holds an empty id"),
        ("timestamp", 0, "'timestamp' must hold microseconds"),
    ],
)
def test_a_bad_field_is_invalid_argument_naming_it(
    field: str, change: object, words: str
) -> None:
    transformer, _, pushes = make()
    json_request = raw_request("card-1", NOW_US)
    for item in json_request["inputs"]:
        if item["name"] == field:
            item["data"] = [change]

    code, details = over_grpc(
        transformer, lambda stub: status_of(stub.ModelInfer(grpc_request(json_request)))
    )
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert words in details
    assert not pushes.submitted


def test_statuses_map_as_the_predictors_and_the_key_comes_through_metadata() -> None:
    transformer, source, _ = make(api_key=KEY)
    good = grpc_request(raw_request("card-1", NOW_US))
    keyed = (("x-api-key", KEY),)

    async def talk(stub: Stub) -> list[tuple[grpc.StatusCode, str]]:
        answers = [
            await status_of(stub.ModelInfer(good)),
            await status_of(stub.ModelInfer(good, metadata=(("x-api-key", "no"),))),
            await status_of(
                stub.ModelInfer(
                    pb.ModelInferRequest(model_name="credit"), metadata=keyed
                )
            ),
            await status_of(
                stub.ModelInfer(good, metadata=(("authorization", f"Bearer {KEY}"),))
            ),
        ]
        source.down = True
        answers.append(await status_of(stub.ModelInfer(good, metadata=keyed)))
        source.down = False
        transformer.source = None  # the store not open yet
        answers.append(await status_of(stub.ModelInfer(good, metadata=keyed)))
        return answers

    codes = [code for code, _ in over_grpc(transformer, talk)]
    assert codes == [
        grpc.StatusCode.UNAUTHENTICATED,
        grpc.StatusCode.UNAUTHENTICATED,
        grpc.StatusCode.NOT_FOUND,
        grpc.StatusCode.OK,
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.UNAVAILABLE,
    ]


@pytest.mark.parametrize(
    ("status", "code"),
    [(502, grpc.StatusCode.UNAVAILABLE), (504, grpc.StatusCode.DEADLINE_EXCEEDED)],
)
def test_a_predictor_failure_maps_to_its_status(
    status: int, code: grpc.StatusCode
) -> None:
    transformer, *_ = make()

    class Failing(FakePredictor):
        async def infer(self, *_: Any) -> Any:
            raise PredictorError("the predictor did not answer", status)

    transformer.predictor = Failing()
    got, details = over_grpc(
        transformer,
        lambda stub: status_of(
            stub.ModelInfer(grpc_request(raw_request("card-1", NOW_US)))
        ),
    )
    assert got == code and "predictor" in details


def test_health_and_metadata_as_rest_answers_them() -> None:
    transformer, *_ = make(api_key=KEY)
    keyed = (("x-api-key", KEY),)

    async def talk(stub: Stub) -> tuple[Any, ...]:
        return (
            await stub.ServerLive(pb.ServerLiveRequest()),
            await stub.ServerReady(pb.ServerReadyRequest()),
            await stub.ModelReady(pb.ModelReadyRequest(name="fraud")),
            await stub.ModelMetadata(
                pb.ModelMetadataRequest(name="fraud"), metadata=keyed
            ),
            await status_of(stub.ModelMetadata(pb.ModelMetadataRequest(name="fraud"))),
            await stub.ServerMetadata(pb.ServerMetadataRequest(), metadata=keyed),
            await status_of(stub.ModelReady(pb.ModelReadyRequest(name="nope"))),
        )

    live, ready, model_ready, metadata, unkeyed, server, unknown = over_grpc(
        transformer, talk
    )
    assert live.live and ready.ready and model_ready.ready
    assert [i.name for i in metadata.inputs] == list(RAW_NAMES)
    assert "unknown_entity" in [o.name for o in metadata.outputs]
    assert unkeyed[0] == grpc.StatusCode.UNAUTHENTICATED
    assert server.name == "riskserve-transformer"
    assert unknown[0] == grpc.StatusCode.NOT_FOUND


def test_hostile_messages_are_refused_and_the_server_keeps_answering() -> None:
    transformer, _, pushes = make()
    good = grpc_request(raw_request("card-1", NOW_US))
    hostile = [
        pb.ModelInferRequest(model_name="fraud"),  # no inputs
        pb.ModelInferRequest(
            model_name="fraud",
            inputs=[pb.ModelInferRequest.InferInputTensor(name="x" * 100_000)],
        ),
        pb.ModelInferRequest(
            model_name="fraud",
            inputs=[
                pb.ModelInferRequest.InferInputTensor(
                    name="card_id", datatype="BYTES", shape=[2**40]
                )
            ],
        ),
        pb.ModelInferRequest(
            model_name="fraud",
            inputs=[
                pb.ModelInferRequest.InferInputTensor(
                    name="amount", datatype="FP64", shape=[1]
                )
            ],
            raw_input_contents=[b"\x00" * 3, b"extra"],
        ),
    ]
    # every field sent twice
    twice = grpc_request(raw_request("card-1", NOW_US))
    twice.inputs.extend(list(twice.inputs))
    hostile.append(twice)
    # the card id tensor with 100 rows while the others have 1
    ragged = grpc_request(raw_request("card-1", NOW_US))
    ragged.inputs[0].shape[:] = [100]
    hostile.append(ragged)

    async def talk(stub: Stub) -> list[tuple[grpc.StatusCode, str]]:
        answers = [await status_of(stub.ModelInfer(m)) for m in hostile]
        answers.append(await status_of(stub.ModelInfer(good)))
        return answers

    answers = over_grpc(transformer, talk)
    for (code, details), message in zip(answers[:-1], hostile, strict=True):
        assert code == grpc.StatusCode.INVALID_ARGUMENT, (code, details, message)
        assert len(details) < 1000
    assert answers[-1][0] == grpc.StatusCode.OK
    assert len(pushes.submitted) == 1


def test_bytes_that_are_no_message_are_invalid_argument_not_a_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """grpc's own handling answers UNKNOWN and logs a traceback per such call."""
    transformer, *_ = make()

    async def go() -> list[tuple[grpc.StatusCode, str]]:
        port = free_port()
        server = create_server(transformer, port, 4 * 1024 * 1024, host="127.0.0.1")
        await server.start()
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
                answers = []
                for method in ("ModelInfer", "ModelMetadata"):
                    call = channel.unary_unary(
                        f"/inference.GRPCInferenceService/{method}"
                    )
                    answers.append(await status_of(call(b"\x00\x01\xff")))
                return answers
        finally:
            await server.stop(grace=None)

    with caplog.at_level(logging.ERROR):
        answers = run_async(go())
    assert answers == [
        (
            grpc.StatusCode.INVALID_ARGUMENT,
            "the request is not a valid ModelInferRequest",
        ),
        (
            grpc.StatusCode.INVALID_ARGUMENT,
            "the request is not a valid ModelMetadataRequest",
        ),
    ]
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


def test_the_rpc_cap_refuses_calls_beyond_it() -> None:
    transformer, *_ = make()
    started = asyncio.Event()
    release = asyncio.Event()

    class Slow(FakePredictor):
        async def infer(self, *args: Any) -> Any:
            started.set()
            await release.wait()
            return await super().infer(*args)

    transformer.predictor = Slow()
    request = grpc_request(raw_request("card-1", NOW_US))

    async def go() -> tuple[grpc.StatusCode, grpc.StatusCode]:
        port = free_port()
        server = create_server(
            transformer, port, 4 * 1024 * 1024, host="127.0.0.1", max_concurrent_rpcs=1
        )
        await server.start()
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
                stub = Stub(channel)
                first = asyncio.ensure_future(status_of(stub.ModelInfer(request)))
                await started.wait()
                second = await status_of(stub.ModelInfer(request))
                release.set()
                return (await first)[0], second[0]
        finally:
            await server.stop(grace=None)

    first, second = run_async(go())
    assert first == grpc.StatusCode.OK
    assert second == grpc.StatusCode.RESOURCE_EXHAUSTED


def test_a_grpc_answer_is_in_the_inference_log_as_a_rest_one_naming_grpc(
    tmp_path: Path,
) -> None:
    """The same record for the same request over either server, written before the
    answer; a refused request leaves none."""
    records = {}
    for transport in ("rest", "grpc"):
        root = tmp_path / transport
        transformer, *_ = make()
        log = InferenceLog(str(root), StorageSettings())
        transformer.inference_log = log
        json_request = raw_request("card-1", NOW_US)
        if transport == "rest":
            (answer,) = call(
                TransformerApp(transformer),
                [
                    (
                        "POST",
                        "/v2/models/fraud/infer",
                        {"content": orjson.dumps({**json_request, "id": "log-1"})},
                    )
                ],
            )
            assert answer.status_code == 200
        else:
            refused = grpc_request(raw_request("card-1", NOW_US, amount=-1.0))
            answered = grpc_request(json_request, id="log-1")

            async def talk(
                stub: Stub,
                refused: pb.ModelInferRequest = refused,
                answered: pb.ModelInferRequest = answered,
            ) -> None:
                code, _ = await status_of(stub.ModelInfer(refused))
                assert code == grpc.StatusCode.INVALID_ARGUMENT
                await stub.ModelInfer(answered)

            over_grpc(transformer, talk)
        log.close()
        (record,) = [
            orjson.loads(line)
            for path in sorted(root.glob("*/*/*.jsonl"))
            for line in path.read_bytes().splitlines()
        ]
        records[transport] = record
    # Each names the server it came through; the rest is the same record.
    for transport, record in records.items():
        assert record.pop("protocol") == transport
        del record["latency_ms"], record["timestamp"]
    assert records["grpc"] == records["rest"]
    assert records["grpc"]["request_id"] == "log-1"
    assert records["grpc"]["raw_inputs"]["card_id"] == ["card-1"]
