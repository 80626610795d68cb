"""Fuzzing the transformer (both kinds: card transactions and BNPL checkouts) as it
runs: `python -m riskserve.transformer` in front of a real predictor, its Feast
repository materialised from generated events.

Arbitrary bodies, wrong types, huge numbers, NaN and infinity, unicode ids, oversized
bodies, binary-tensor headers that lie, slow clients: every answer is a 2xx, or a 4xx
with {"error": "..."} of bounded length that names the field at fault; never a 5xx,
never a crash, nothing in the transformer's log that says it failed; and it still
decides right afterwards. Its gRPC server likewise: generated ModelInferRequests (one
field of a valid raw event changed, tensors dropped or repeated, raw contents) and
bytes that are no message get OK or a refusal with a bounded message, never INTERNAL.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from riskserve.localplatform.processes import free_port
from riskserve.serving.grpc_v2 import grpc_predict_v2_pb2 as pb
from riskserve.serving.grpc_v2 import grpc_predict_v2_pb2_grpc as pb_grpc

from tests.fixtures.contract_models import credit_model, fraud_model, write_onnx
from tests.reliability.test_fuzz import Target, check_answer, slow_clients
from tests.reliability.v2_strategies import (
    DATATYPES,
    TEXT,
    binary_requests,
    corrupted_raw_requests,
    finite,
)
from tests.serving.predictor_helpers import Predictor, start_predictor
from tests.transformer.transformer_helpers import (
    TransformerProcess,
    build_customer_repo,
    build_feature_repo,
    raw_checkout,
    raw_request,
    start_transformer,
)

MB = 1024 * 1024
SERVICE = "inference.GRPCInferenceService"
# The longest error a hostile request may get back: a bounded excerpt of what it
# sent, never the whole of it.
MAX_ERROR_BYTES = 1024
NOW_US = 1_900_000_000_000_000  # 2030: after every generated event


@dataclass
class Stack:
    kind: str
    model: str
    valid: dict
    predictor: Predictor
    transformer: TransformerProcess
    target: Target
    grpc_port: int

    @property
    def infer(self) -> str:
        return f"/v2/models/{self.model}/infer"

    @property
    def fields(self) -> list[str]:
        return [tensor["name"] for tensor in self.valid["inputs"]]


@pytest.fixture(scope="module", params=["card", "checkout"])
def stack(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    kind = request.param
    folder = tmp_path_factory.mktemp(f"fuzz-transformer-{kind}")
    if kind == "card":
        model, repo = "fraud", build_feature_repo(folder, cards=20, days=2)
        entity = str(repo.events.cards["card_id"].iloc[0])
        valid = raw_request(entity, NOW_US, 42.5)
        write_onnx(fraud_model(version="3"), folder / "model")
    else:
        model, repo = "credit", build_customer_repo(folder, customers=20, days=120)
        entity = str(repo.events.checkouts["customer_id"].iloc[0])
        valid = raw_checkout(entity, NOW_US, 80.0, "Electronics")
        write_onnx(credit_model(version="5"), folder / "model")
    with pytest.MonkeyPatch.context() as monkeypatch:
        for name in ("PROMETHEUS_MULTIPROC_DIR", "PROMETHEUS_MULTIPROCESS_DIR"):
            monkeypatch.delenv(name, raising=False)
        predictor = start_predictor(folder, "predictor", model, folder / "model")
        grpc_port = free_port()
        try:
            transformer = start_transformer(
                folder,
                "transformer",
                model,
                f"127.0.0.1:{predictor.http_port}",
                repo.repo,
                env={"RISKSERVE_TRANSFORMER_MAX_BATCH_SIZE": "16"},
                args=("--grpc_port", str(grpc_port)),
            )
        except Exception:
            predictor.stop()
            raise
    target = Target(
        f"transformer ({kind})", transformer.http_port, transformer.process.pid
    )
    try:
        yield Stack(kind, model, valid, predictor, transformer, target, grpc_port)
    finally:
        target.client.close()
        transformer.stop()
        predictor.stop()


def check(stack: Stack, response: httpx.Response, what: object, field: str | None):
    """The contract (`check_answer`), a bounded error, and the field named."""
    check_answer(response, what)
    if response.status_code >= 400:
        assert len(response.content) <= MAX_ERROR_BYTES, (
            f"a {len(response.content)}-byte error for {what!r:.200}: "
            f"{response.text[:300]}"
        )
        if field is not None and response.status_code == 400:
            assert (
                repr(field) in response.json()["error"]
                or field in (response.json()["error"])
            ), f"the error does not name {field!r}: {response.text[:300]}"


def assert_decides(stack: Stack) -> None:
    response = stack.target.client.post(stack.infer, json=stack.valid)
    assert response.status_code == 200, response.text[:300]
    body = response.json()
    assert body["model_version"] == ("3" if stack.kind == "card" else "5")
    outputs = {o["name"]: o["data"] for o in body["outputs"]}
    assert outputs["unknown_entity"] == [False]
    assert outputs["features_unavailable"] == [False]


def with_field(stack: Stack, name: str, **changes: object) -> dict:
    """The valid request with one field's tensor changed."""
    request = json.loads(json.dumps(stack.valid))
    for tensor in request["inputs"]:
        if tensor["name"] == name:
            tensor.update(changes)
    return request


def hostile_cases(stack: Stack) -> list[tuple[str, bytes, dict, str | None]]:
    """(label, body, headers, the field a 400 must name or None)."""
    entity, amount = stack.fields[0], stack.fields[1]
    timestamp = "timestamp"
    ctype = {"content-type": "application/json"}

    def body(request: dict, allow_nan: bool = False) -> bytes:
        return json.dumps(request, allow_nan=allow_nan).encode()

    cases: list[tuple[str, bytes, dict, str | None]] = [
        ("empty body", b"", ctype, None),
        ("not JSON", b"{", ctype, None),
        ("not UTF-8", b'{"inputs": "\xff\xfe"}', ctype, None),
        ("array", b"[]", ctype, None),
        ("null", b"null", ctype, None),
        ("inputs empty", b'{"inputs": []}', ctype, None),
        ("inputs null item", b'{"inputs": [null]}', ctype, None),
        ("inputs of numbers", b'{"inputs": [1, 2]}', ctype, None),
        ("id a number", b'{"id": 1e999, "inputs": []}', ctype, None),
        ("parameters a list", b'{"inputs": [], "parameters": []}', ctype, None),
        (
            "deep nesting",
            b'{"inputs": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
            ctype,
            None,
        ),  # noqa: E501
        ("text/plain", body(stack.valid), {"content-type": "text/plain"}, None),
        (
            "an unknown field of 100 kB",
            body(
                {
                    "inputs": [
                        *stack.valid["inputs"],
                        {
                            "name": "n" * 100_000,
                            "datatype": "FP32",
                            "shape": [1],
                            "data": [1.0],
                        },  # fmt: skip
                    ]
                }
            ),
            ctype,
            None,
        ),
        (
            "a field sent twice",
            body({"inputs": [*stack.valid["inputs"], stack.valid["inputs"][0]]}),
            ctype,
            entity,
        ),
        (
            "a field missing",
            body({"inputs": stack.valid["inputs"][1:]}),
            ctype,
            entity,
        ),
        ("id a number", body(with_field(stack, entity, data=[7])), ctype, entity),
        ("id empty", body(with_field(stack, entity, data=[""])), ctype, entity),
        (
            "id 10 kB",
            body(with_field(stack, entity, data=["c" * 10_000])),
            ctype,
            entity,
        ),  # noqa: E501
        (
            "id 10 MB",
            body(with_field(stack, entity, data=["c" * 10 * MB])),
            ctype,
            None,
        ),  # noqa: E501
        ("id NUL", body(with_field(stack, entity, data=["\u0000"])), ctype, None),
        ("id emoji", body(with_field(stack, entity, data=["🙂\u202e"])), ctype, None),
        (
            "id lone surrogate",
            body(with_field(stack, entity, data=["\ud800"])),
            ctype,
            None,
        ),  # noqa: E501
        (
            "id FP32",
            body(with_field(stack, entity, datatype="FP32", data=[1.0])),
            ctype,
            entity,
        ),  # noqa: E501
        (
            "amount a string",
            body(with_field(stack, amount, data=["12"])),
            ctype,
            amount,
        ),  # noqa: E501
        ("amount null", body(with_field(stack, amount, data=[None])), ctype, amount),
        (
            "amount nested",  # v2 allows nested data of the right size: a 200
            body(with_field(stack, amount, data=[[[1.0]]])),
            ctype,
            None,
        ),  # noqa: E501
        (
            "amount negative",
            body(with_field(stack, amount, data=[-1.0])),
            ctype,
            amount,
        ),  # noqa: E501
        ("amount 1e308", body(with_field(stack, amount, data=[1e308])), ctype, amount),
        ("amount 2**64", body(with_field(stack, amount, data=[2**64])), ctype, amount),  # noqa: E501
        (
            "amount 10**400",
            body(with_field(stack, amount, data=[10**400])),
            ctype,
            None,
        ),  # noqa: E501
        (
            "amount NaN",
            body(with_field(stack, amount, data=[float("nan")]), True),
            ctype,
            None,
        ),  # noqa: E501
        (
            "amount -Infinity",
            body(with_field(stack, amount, data=[float("-inf")]), True),
            ctype,
            None,
        ),  # noqa: E501
        (
            "amount 1e400",
            body(with_field(stack, amount, data=[1.0])).replace(b"[1.0]", b"[1e400]"),
            ctype,
            None,
        ),  # noqa: E501
        (
            "amount BYTES",
            body(with_field(stack, amount, datatype="BYTES", data=["1"])),
            ctype,
            amount,
        ),  # noqa: E501
        (
            "amount FP128",
            body(with_field(stack, amount, datatype="FP128")),
            ctype,
            amount,
        ),  # noqa: E501
        ("timestamp 0", body(with_field(stack, timestamp, data=[0])), ctype, timestamp),  # noqa: E501
        (
            "timestamp negative",
            body(with_field(stack, timestamp, data=[-5])),
            ctype,
            timestamp,
        ),  # noqa: E501
        (
            "timestamp 2**63 - 1",
            body(with_field(stack, timestamp, data=[2**63 - 1])),
            ctype,
            timestamp,
        ),  # noqa: E501
        (
            "timestamp year 3000",
            body(with_field(stack, timestamp, data=[32_503_680_000_000_000])),
            ctype,
            timestamp,
        ),  # noqa: E501
        (
            "timestamp 2**64",
            body(with_field(stack, timestamp, data=[2**64])),
            ctype,
            timestamp,
        ),  # noqa: E501
        (
            "timestamp a float",
            body(with_field(stack, timestamp, data=[1.5])),
            ctype,
            timestamp,
        ),  # noqa: E501
        (
            "timestamp FP64",
            body(with_field(stack, timestamp, datatype="FP64", data=[1e15])),
            ctype,
            timestamp,
        ),  # noqa: E501
        (
            "shape [2] for one row",
            body(with_field(stack, amount, shape=[2])),
            ctype,
            amount,
        ),  # noqa: E501
        ("shape [1, 2]", body(with_field(stack, amount, shape=[1, 2])), ctype, amount),  # noqa: E501
        (
            "shape [2**63]",
            body(with_field(stack, amount, shape=[2**63])),
            ctype,
            amount,
        ),  # noqa: E501
        ("shape [-1]", body(with_field(stack, amount, shape=[-1])), ctype, amount),
        ("shape a string", body(with_field(stack, amount, shape="1")), ctype, amount),
        (
            "more rows than the batch limit",
            body(
                {
                    "inputs": [
                        {**t, "shape": [17], "data": t["data"] * 17}
                        for t in stack.valid["inputs"]
                    ]
                }
            ),
            ctype,
            None,
        ),
        (
            "outputs not a list",
            body({**stack.valid, "outputs": "x"}),
            ctype,
            None,
        ),
        (
            "an unknown output of 100 kB",
            body({**stack.valid, "outputs": [{"name": "o" * 100_000}]}),
            ctype,
            None,
        ),
    ]
    if stack.kind == "card":
        cases += [
            (
                "latitude 91",
                body(with_field(stack, "merchant_latitude", data=[91.0])),
                ctype,
                "merchant_latitude",
            ),  # noqa: E501
            (
                "chip 2",
                body(with_field(stack, "used_chip", datatype="INT64", data=[2])),
                ctype,
                "used_chip",
            ),  # noqa: E501
            (
                "chip a string",
                body(with_field(stack, "used_chip", data=["true"])),
                ctype,
                "used_chip",
            ),  # noqa: E501
        ]
    else:
        cases += [
            (
                "group unknown",
                body(with_field(stack, "merchant_group", data=["Casino"])),
                ctype,
                "merchant_group",
            ),  # noqa: E501
            (
                "group 100 kB",
                body(with_field(stack, "merchant_group", data=["g" * 100_000])),
                ctype,
                "merchant_group",
            ),  # noqa: E501
            (
                "group a number",
                body(with_field(stack, "merchant_group", data=[3])),
                ctype,
                "merchant_group",
            ),  # noqa: E501
        ]
    # The binary extension, its header lying about the JSON's length.
    octet = "application/octet-stream"
    valid = body(stack.valid)
    for length in ("abc", "-1", "0", str(len(valid) + 10), "9" * 30, "1.5"):
        cases.append(
            (
                f"header length {length[:10]}",
                valid,
                {"content-type": octet, "inference-header-content-length": length},
                None,
            )
        )
    for size in (-1, 1 << 40, "8", 2.5, None):
        request = with_field(stack, amount, parameters={"binary_data_size": size})
        del next(t for t in request["inputs"] if t["name"] == amount)["data"]
        head = body(request)
        cases.append(
            (
                f"binary size {size!r}",
                head + b"\x00" * 8,
                {
                    "content-type": octet,
                    "inference-header-content-length": str(len(head)),
                },  # noqa: E501
                amount,
            )
        )
    # An id sent as BYTES whose length prefix lies, and one that is not UTF-8.
    for raw in (b"\xff\xff\xff\x7f" + b"c", b"\x02\x00\x00\x00\xff\xfe"):
        request = with_field(stack, entity, parameters={"binary_data_size": len(raw)})
        del next(t for t in request["inputs"] if t["name"] == entity)["data"]
        head = body(request)
        cases.append(
            (
                f"binary id {raw[:6]!r}",
                head + raw,
                {
                    "content-type": octet,
                    "inference-header-content-length": str(len(head)),
                },  # noqa: E501
                entity,
            )
        )
    return cases


def raw_exchange(port: int, head: bytes, chunks: list[bytes]) -> bytes:
    """Send a request's head and body chunks on a socket; the status line back."""
    with socket.create_connection(("127.0.0.1", port), 5) as sock:
        sock.sendall(head)
        for chunk in chunks:
            try:
                sock.sendall(chunk)
            except OSError:  # the server answered and closed: that is the point
                break
        sock.settimeout(10)
        answer = b""
        try:
            while b"\r\n\r\n" not in answer:
                data = sock.recv(65536)
                if not data:
                    break
                answer += data
        except TimeoutError:
            pass
        return answer


def fuzz_settings(examples: int):  # noqa: ANN201
    return settings(
        max_examples=examples,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )


def test_the_transformer_survives_hostile_requests(stack: Stack, ledger) -> None:
    assert_decides(stack)
    failures = []
    for label, body, headers, field in hostile_cases(stack):
        response = stack.target.client.post(stack.infer, content=body, headers=headers)
        try:
            check(stack, response, label, field)
            # A case that names a field is one the field's checks must refuse.
            assert field is None or response.status_code == 400, (
                f"{response.status_code}, not 400: {response.text[:200]}"
            )
        except AssertionError as exc:  # every case is tried; all failures reported
            failures.append(f"{label}: {str(exc)[:400]}")
        ledger.fuzz(f"{stack.target.label} REST")
    assert not failures, "\n".join(failures)
    # A declared 1 GB body is refused without waiting for it, and a chunked one
    # above the limit too.
    head = (
        f"POST {stack.infer} HTTP/1.1\r\nhost: x\r\n"
        "content-type: application/json\r\ncontent-length: 1000000000\r\n\r\n"
    ).encode()
    answer = raw_exchange(stack.transformer.http_port, head, [b" " * 65536] * 40)
    assert answer.startswith((b"HTTP/1.1 400", b"HTTP/1.1 413")), answer[:300]
    chunk = b" " * 262144
    head = (
        f"POST {stack.infer} HTTP/1.1\r\nhost: x\r\n"
        "content-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n"
    ).encode()
    chunks = [b"%x\r\n%s\r\n" % (len(chunk), chunk)] * 64 + [b"0\r\n\r\n"]
    answer = raw_exchange(stack.transformer.http_port, head, chunks)
    assert answer.startswith((b"HTTP/1.1 400", b"HTTP/1.1 413")), answer[:300]
    assert stack.transformer.process.alive()
    assert_decides(stack)


def test_the_transformer_survives_generated_requests(
    stack: Stack, budget, ledger
) -> None:
    @fuzz_settings(budget.fuzz_examples)
    @given(corrupted=corrupted_raw_requests(stack.valid))
    def one_field(corrupted: tuple[dict, str]) -> None:
        request, field = corrupted
        # JSON has no NaN/Infinity; json.dumps writes them anyway, as hostile tokens
        # that make the whole body invalid JSON. Otherwise the only field at fault is
        # the one changed.
        plain = finite(request)
        body = json.dumps(request, allow_nan=not plain).encode()
        response = stack.target.client.post(
            stack.infer, content=body, headers={"content-type": "application/json"}
        )
        check(stack, response, request, field if plain else None)
        ledger.fuzz(f"{stack.target.label} REST")

    one_field()

    json_values = st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
        lambda children: (
            st.lists(children, max_size=4)
            | st.dictionaries(st.text(max_size=8), children, max_size=4)
        ),
        max_leaves=20,
    )

    @fuzz_settings(budget.fuzz_examples)
    @given(
        body=st.binary(max_size=256)
        | json_values.map(lambda v: json.dumps({"inputs": v}).encode())
    )
    def arbitrary(body: bytes) -> None:
        response = stack.target.client.post(
            stack.infer, content=body, headers={"content-type": "application/json"}
        )
        check(stack, response, body[:200], None)
        ledger.fuzz(f"{stack.target.label} REST")

    arbitrary()

    @fuzz_settings(budget.fuzz_examples)
    @given(request=binary_requests(stack.fields, ["unknown_entity"]))
    def binary(request: tuple[bytes, dict]) -> None:
        body, headers = request
        response = stack.target.client.post(stack.infer, content=body, headers=headers)
        check(stack, response, (headers, body[:200]), None)
        ledger.fuzz(f"{stack.target.label} REST binary")

    binary()
    assert stack.transformer.process.alive()
    assert_decides(stack)


# The gRPC content fields and values of every width each can carry.
GRPC_VALUES = {
    "bool_contents": st.booleans(),
    "int_contents": st.integers(-(2**31), 2**31 - 1),
    "int64_contents": st.integers(-(2**63), 2**63 - 1),
    "uint_contents": st.integers(0, 2**32 - 1),
    "uint64_contents": st.integers(0, 2**64 - 1),
    "fp32_contents": st.floats(width=32),
    "fp64_contents": st.floats(),
    "bytes_contents": st.binary(max_size=300),
}
GRPC_REFUSALS = {
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.NOT_FOUND,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
}


def valid_message(stack: Stack) -> pb.ModelInferRequest:
    """The valid raw event as a ModelInferRequest with typed contents."""
    request = pb.ModelInferRequest(model_name=stack.model)
    for item in stack.valid["inputs"]:
        tensor = request.inputs.add(
            name=item["name"], datatype=item["datatype"], shape=item["shape"]
        )
        value = item["data"][0]
        if item["datatype"] == "BYTES":
            tensor.contents.bytes_contents.append(value.encode())
        elif item["datatype"] == "FP64":
            tensor.contents.fp64_contents.append(value)
        elif item["datatype"] == "BOOL":
            tensor.contents.bool_contents.append(value)
        else:
            tensor.contents.int64_contents.append(value)
    return request


@st.composite
def grpc_messages(draw: st.DrawFn, valid: pb.ModelInferRequest) -> pb.ModelInferRequest:
    request = pb.ModelInferRequest()
    request.CopyFrom(valid)
    index = draw(st.integers(0, len(request.inputs) - 1))
    tensor = request.inputs[index]
    what = draw(
        st.sampled_from(
            ["contents", "contents", "datatype", "shape", "name", "raw", "drop", "add"]
        )
    )
    if what == "contents":
        field = draw(st.sampled_from(sorted(GRPC_VALUES)))
        tensor.ClearField("contents")
        getattr(tensor.contents, field).extend(
            draw(st.lists(GRPC_VALUES[field], max_size=4))
        )
    elif what == "datatype":
        tensor.datatype = draw(st.sampled_from(DATATYPES) | TEXT)
    elif what == "shape":
        tensor.shape[:] = draw(
            st.sampled_from([[1, 1], [2], [0], [-1], [2**40], [1, 2]])
            | st.lists(st.integers(-(2**63), 2**63 - 1), max_size=3)
        )
    elif what == "name":
        tensor.name = draw(TEXT | st.just("n" * 100_000))
    elif what == "raw":
        count = draw(st.sampled_from([len(request.inputs), 1]))
        request.raw_input_contents.extend(
            draw(st.lists(st.binary(max_size=24), min_size=count, max_size=count))
        )
    elif what == "drop":
        del request.inputs[index]
    else:
        request.inputs.add().CopyFrom(tensor)
    if draw(st.integers(0, 5)) == 0:
        request.outputs.add(name=draw(TEXT))
    return request


def test_the_transformers_grpc_server_survives_generated_messages(
    stack: Stack, budget, ledger
) -> None:
    valid = valid_message(stack)
    with grpc.insecure_channel(f"127.0.0.1:{stack.grpc_port}") as channel:
        stub = pb_grpc.GRPCInferenceServiceStub(channel)
        garbage = channel.unary_unary(f"/{SERVICE}/ModelInfer")
        assert stub.ModelInfer(valid, timeout=10).outputs

        @fuzz_settings(budget.fuzz_examples)
        @given(request=grpc_messages(valid))
        def one(request: pb.ModelInferRequest) -> None:
            try:
                stub.ModelInfer(request, timeout=10)
            except grpc.RpcError as error:
                assert error.code() in GRPC_REFUSALS, (error.code(), error.details())
                assert len(error.details() or "") <= MAX_ERROR_BYTES
            ledger.fuzz(f"{stack.target.label} gRPC")

        one()

        @fuzz_settings(max(10, budget.fuzz_examples // 5))
        @given(blob=st.binary(max_size=256))
        def not_a_message(blob: bytes) -> None:
            try:
                garbage(blob, timeout=10)
            except grpc.RpcError as error:
                # Bytes that are no message too: INVALID_ARGUMENT, not grpc's own
                # UNKNOWN with a traceback in the log (found here).
                assert error.code() in GRPC_REFUSALS, (error.code(), error.details())
            ledger.fuzz(f"{stack.target.label} gRPC")

        not_a_message()
        assert stub.ModelInfer(valid, timeout=10).outputs
    assert stack.transformer.process.alive()
    assert_decides(stack)


def test_slow_clients_hold_up_no_one(stack: Stack, budget) -> None:
    slow_clients(
        stack.target,
        budget.slow_client_seconds,
        path=stack.infer,
        body=json.dumps(stack.valid).encode(),
        still_correct=lambda _: assert_decides(stack),
    )
    assert stack.transformer.process.alive()


def test_nothing_failed_inside_the_transformer(stack: Stack) -> None:
    """After everything above: no traceback, no error and no warning in its log: a
    state push runs after the answer, so its failure shows nowhere else (a time after
    2262 was answered, then its push failed: found here), and a numpy overflow
    warning means infinity reached the model (an amount of 1e308: found here)."""
    log = Path(stack.transformer.process.log_path).read_text(errors="replace")
    failed = [
        line
        for line in log.splitlines()
        if '"level":"ERROR"' in line or "Traceback" in line or "Warning" in line
    ]
    assert not failed, "\n".join(failed[:10])
