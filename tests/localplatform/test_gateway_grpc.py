"""gRPC through the local platform's gateway: clients no one here wrote (Triton's and
KServe's), the canary split, deadlines and retries, shadow copies, the key, and the
unknown model refused first; raw events to the transformers of InferenceServices
that have one, by the transformer component's split. Real daemon, real predictors and
transformers, real sockets."""

from __future__ import annotations

import collections
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from typing import NamedTuple

import grpc
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from riskserve.localplatform.client import (
    PlatformError,
    apply_yaml,
    status,
    traffic,
    wait_ready,
)
from riskserve.localplatform.grpc_gateway import MalformedMessage, model_name
from riskserve.model.specs import FRAUD
from riskserve.serving.grpc_v2 import grpc_predict_v2_pb2 as pb
from riskserve.serving.grpc_v2 import grpc_predict_v2_pb2_grpc as pb_grpc

from tests.fixtures.contract_models import credit_model, expected_fraud, write_onnx
from tests.localplatform.platform_helpers import Platform, isvc_yaml

KEY = "grpc-gateway-test-key"
AUTH = (("authorization", f"Bearer {KEY}"),)
CANARY = "fraud-predictor-00002"
STABLE = "fraud-predictor-00001"


@pytest.fixture(scope="module")
def canary_platform(tmp_path_factory, model_dirs):
    """fraud v1 with v2 as a 50% canary, behind a key; the try timeout short."""
    running = Platform(tmp_path_factory.mktemp("grpc") / "state").use_key(KEY)
    running.env["RISKSERVE_GATEWAY_TRY_TIMEOUT_S"] = "0.5"
    running.env["RISKSERVE_GATEWAY_HEADER_TIMEOUT_S"] = "2"
    running.start()
    apply_yaml(running.settings, isvc_yaml("fraud", model_dirs["v1"]))
    wait_ready(running.settings, ["fraud"], 60)
    apply_yaml(running.settings, isvc_yaml("fraud", model_dirs["v2"], canary=50))
    wait_ready(running.settings, ["fraud"], 60)
    yield running
    running.stop()
    running.client.close()


def grpc_target(platform: Platform) -> str:
    return f"127.0.0.1:{platform.settings.gateway_grpc_port}"


def rows(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    features = rng.gamma(2.0, 3.0, (n, len(FRAUD.feature_names))).astype(np.float32)
    features[:, 3:] = rng.integers(0, 2, (n, 4))
    return features


def typed_request(features: np.ndarray, model: str = "fraud") -> pb.ModelInferRequest:
    request = pb.ModelInferRequest(model_name=model)
    for index, name in enumerate(FRAUD.feature_names):
        tensor = request.inputs.add(
            name=name, datatype="FP32", shape=[len(features), 1]
        )
        tensor.contents.fp32_contents.extend(features[:, index].tolist())
    return request


# Triton's and KServe's clients each register their own copy of the v2 protobuf
# package `inference`, which cannot share a process with another copy (protobuf refuses
# a second definition of a symbol): each runs in a process of its own, as a payment
# system's client would, and prints what it saw.
TRITON_CLIENT = """
import collections, json, sys
import numpy as np
import tritonclient.grpc as triton
target, key, calls = sys.argv[1], sys.argv[2], int(sys.argv[3])
names = json.loads(sys.argv[4])
client = triton.InferenceServerClient(target)
headers = {"authorization": f"Bearer {key}"}
out = {
    "live": client.is_server_live(headers=headers),
    "ready": client.is_model_ready("fraud", headers=headers),
    "inputs": [i["name"] for i in client.get_model_metadata(
        "fraud", headers=headers, as_json=True)["inputs"]],
    "answers": [],
}
rng = np.random.default_rng(0)
for call in range(calls):
    features = rng.gamma(2.0, 3.0, (2, len(names))).astype(np.float32)
    inputs = []
    for index, name in enumerate(names):
        tensor = triton.InferInput(name, [2, 1], "FP32")
        tensor.set_data_from_numpy(features[:, index : index + 1].copy())
        inputs.append(tensor)
    result = client.infer("fraud", inputs, headers=headers)
    out["answers"].append({
        "features": features.tolist(),
        "probability": result.as_numpy("fraud_probability").ravel().tolist(),
        "is_fraud": result.as_numpy("is_fraud").ravel().tolist(),
        "version": result.get_response().model_version,
    })
client.close()
print(json.dumps(out))
"""

KSERVE_CLIENT = """
import asyncio, json, sys
import numpy as np
from kserve import InferenceGRPCClient, InferInput, InferRequest
target, key, calls = sys.argv[1], sys.argv[2], int(sys.argv[3])
names = json.loads(sys.argv[4])

async def main():
    client = InferenceGRPCClient(target, timeout=10, verbose=False)
    rng = np.random.default_rng(1)
    answers = []
    try:
        for call in range(calls):
            features = rng.gamma(2.0, 3.0, (3, len(names))).astype(np.float32)
            inputs = []
            for index, name in enumerate(names):
                tensor = InferInput(name, [3, 1], "FP32")
                tensor.set_data_from_numpy(
                    features[:, index : index + 1].copy(), binary_data=False
                )
                inputs.append(tensor)
            response = await client.infer(
                InferRequest(model_name="fraud", infer_inputs=inputs),
                headers=(("authorization", f"Bearer {key}"),),
            )
            by_name = {o.name: o for o in response.outputs}
            answers.append({
                "features": features.tolist(),
                "probability": [float(v) for v in by_name["fraud_probability"].data],
                "version": response.model_version,
            })
    finally:
        await client.close()
    print(json.dumps({"answers": answers}))

asyncio.run(main())
"""


def run_client(script: str, platform: Platform, calls: int) -> dict:
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            script,
            grpc_target(platform),
            KEY,
            str(calls),
            json.dumps(list(FRAUD.feature_names)),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def check_answers(answers: list[dict]) -> collections.Counter[str]:
    versions: collections.Counter[str] = collections.Counter()
    for answer in answers:
        probability, decision = expected_fraud(np.asarray(answer["features"]))
        np.testing.assert_allclose(
            answer["probability"], probability, rtol=1e-4, atol=1e-6
        )
        if "is_fraud" in answer:
            assert answer["is_fraud"] == decision.tolist()
        versions[answer["version"]] += 1
    return versions


@pytest.mark.e2e
def test_triton_grpc_client_gets_both_revisions_in_proportion(canary_platform):
    """tritonclient.grpc as a payment system would use it: raw tensors, the key as a
    header. 400 calls split about 50/50 by the versions that answered, every answer
    exactly the model's."""
    before = served_counts(canary_platform)
    seen = run_client(TRITON_CLIENT, canary_platform, 400)
    assert seen["live"] and seen["ready"]
    assert seen["inputs"] == list(FRAUD.feature_names)
    versions = check_answers(seen["answers"])
    print(f"versions over 400 gRPC calls through the gateway: {dict(versions)}")
    assert set(versions) == {"1", "2"}
    assert 150 <= versions["2"] <= 250, versions  # 50% +- 5 standard deviations
    after = served_counts(canary_platform)
    # The gateway counts gRPC calls with HTTP's: the rollout gates see both.
    assert after[CANARY] - before[CANARY] >= versions["2"]
    assert after[STABLE] - before[STABLE] >= versions["1"]


@pytest.mark.e2e
def test_kserve_grpc_client_through_the_gateway(canary_platform):
    """KServe's own async gRPC client, typed contents: both revisions answer."""
    versions = check_answers(run_client(KSERVE_CLIENT, canary_platform, 200)["answers"])
    print(f"versions over 200 KServe gRPC client calls: {dict(versions)}")
    assert set(versions) == {"1", "2"}
    assert 65 <= versions["2"] <= 135, versions


def served_counts(platform: Platform) -> dict[str, int]:
    revisions = traffic(platform.settings)["inferenceservices"]["fraud"]["revisions"]
    return collections.defaultdict(int, {r["name"]: r["requests"] for r in revisions})


@pytest.mark.e2e
def test_the_revision_is_named_in_the_trailers(canary_platform):
    with grpc.insecure_channel(grpc_target(canary_platform)) as channel:
        stub = pb_grpc.GRPCInferenceServiceStub(channel)
        seen = set()
        for call in range(60):
            features = rows(1, seed=call)
            response, outcome = stub.ModelInfer.with_call(
                typed_request(features), metadata=AUTH, timeout=10
            )
            revision = dict(outcome.trailing_metadata())["x-riskserve-revision"]
            assert response.model_version == {STABLE: "1", CANARY: "2"}[revision]
            seen.add(revision)
    assert seen == {STABLE, CANARY}


@pytest.mark.e2e
def test_unknown_models_keys_and_garbage_are_refused_first(canary_platform):
    """The key before the lookup, the lookup before the body: an unknown model with an
    empty or broken request is NOT_FOUND; without the key, known or not, the same
    UNAUTHENTICATED; bytes that are no protobuf message are INVALID_ARGUMENT."""
    with grpc.insecure_channel(grpc_target(canary_platform)) as channel:
        infer = channel.unary_unary(
            "/inference.GRPCInferenceService/ModelInfer",
            request_serializer=None,
            response_deserializer=pb.ModelInferResponse.FromString,
        )

        def refusal(body: bytes, metadata=AUTH) -> tuple[grpc.StatusCode, str]:
            with pytest.raises(grpc.RpcError) as caught:
                infer(body, metadata=metadata, timeout=10)
            return caught.value.code(), caught.value.details()

        empty_unknown = pb.ModelInferRequest(model_name="nope").SerializeToString()
        code, details = refusal(empty_unknown)
        assert code == grpc.StatusCode.NOT_FOUND and "nope" in details
        # The predictor's own lookup comes first too: an empty request to a known
        # model is the predictor's INVALID_ARGUMENT, passed on with its words.
        code, details = refusal(
            pb.ModelInferRequest(model_name="fraud").SerializeToString()
        )
        assert code == grpc.StatusCode.INVALID_ARGUMENT, details
        without_key = {
            refusal(body, metadata=())
            for body in (
                empty_unknown,
                typed_request(rows(1)).SerializeToString(),
                b"\xff\xff\xff",
            )
        }
        assert without_key == {
            (grpc.StatusCode.UNAUTHENTICATED, "missing or invalid API key")
        }
        code, details = refusal(b"\x0a\xff\xff\xff\xff\x0f")  # a name longer than all
        assert (
            code == grpc.StatusCode.INVALID_ARGUMENT and "ModelInferRequest" in details
        )
        stub = pb_grpc.GRPCInferenceServiceStub(channel)
        with pytest.raises(grpc.RpcError) as caught:
            stub.ModelMetadata(pb.ModelMetadataRequest(name="nope"), metadata=AUTH)
        assert caught.value.code() == grpc.StatusCode.NOT_FOUND
        with pytest.raises(grpc.RpcError) as caught:
            # Triton's statistics extension: no predictor serves it.
            channel.unary_unary("/inference.GRPCInferenceService/ModelStatistics")(
                b"", metadata=AUTH, timeout=10
            )
        assert caught.value.code() == grpc.StatusCode.UNIMPLEMENTED
        assert stub.ServerLive(pb.ServerLiveRequest()).live  # probes need no key


@pytest.mark.e2e
def test_a_hung_canary_costs_one_try_and_deadlines_bound_the_call(canary_platform):
    """SIGSTOP the canary: every call still answers, from the stable revision, and the
    canary leaves the split until it answers again. Then with the stable revision
    stopped too, the call's own deadline and the x-riskserve-timeout-ms metadata bound
    the wait."""
    pids = {
        name: revision["pid"]
        for name, revision in status(canary_platform.settings)["revisions"].items()
    }
    with grpc.insecure_channel(grpc_target(canary_platform)) as channel:
        stub = pb_grpc.GRPCInferenceServiceStub(channel)
        os.kill(pids[CANARY], signal.SIGSTOP)
        try:
            versions = collections.Counter()
            slowest = 0.0
            for call in range(40):
                started = time.monotonic()
                response = stub.ModelInfer(
                    typed_request(rows(1, seed=call)), metadata=AUTH, timeout=10
                )
                slowest = max(slowest, time.monotonic() - started)
                versions[response.model_version] += 1
            assert versions == {"1": 40}, versions
            assert slowest < 0.5 + 2.0, slowest  # one try timeout at most
            revision = status(canary_platform.settings)["revisions"][CANARY]
            assert not revision["ready"]
            # The stable revision hung too: the metadata's deadline bounds the call
            # (the try that timed out takes it out of the split, as on HTTP) ...
            os.kill(pids[STABLE], signal.SIGSTOP)
            try:
                started = time.monotonic()
                with pytest.raises(grpc.RpcError) as caught:
                    stub.ModelInfer(
                        typed_request(rows(1)),
                        metadata=(*AUTH, ("x-riskserve-timeout-ms", "800")),
                        timeout=20,
                    )
                assert caught.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
                assert "800 ms" in caught.value.details()
                assert time.monotonic() - started < 5
                with pytest.raises(grpc.RpcError) as caught:
                    stub.ModelInfer(typed_request(rows(1)), metadata=AUTH, timeout=10)
                assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
                assert "no ready revision" in caught.value.details()
            finally:
                os.kill(pids[STABLE], signal.SIGCONT)
            wait_revision_ready(canary_platform, STABLE)
            # ... and so does the call's own gRPC deadline.
            os.kill(pids[STABLE], signal.SIGSTOP)
            try:
                started = time.monotonic()
                with pytest.raises(grpc.RpcError) as caught:
                    stub.ModelInfer(typed_request(rows(1)), metadata=AUTH, timeout=1.0)
                assert caught.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
                assert time.monotonic() - started < 4
                with pytest.raises(grpc.RpcError) as caught:
                    stub.ModelInfer(
                        typed_request(rows(1)),
                        metadata=(*AUTH, ("x-riskserve-timeout-ms", "soon")),
                        timeout=10,
                    )
                assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
                assert "x-riskserve-timeout-ms" in caught.value.details()
            finally:
                os.kill(pids[STABLE], signal.SIGCONT)
        finally:
            os.kill(pids[CANARY], signal.SIGCONT)
    wait_revision_ready(canary_platform, STABLE)
    wait_revision_ready(canary_platform, CANARY)


def wait_revision_ready(platform: Platform, name: str) -> None:
    deadline = time.monotonic() + 30
    while not status(platform.settings)["revisions"][name]["ready"]:
        assert time.monotonic() < deadline, status(platform.settings)
        time.sleep(0.2)


@pytest.mark.e2e
def test_a_shadow_gets_grpc_copies_and_never_answers(tmp_path, model_dirs):
    platform = Platform(tmp_path / "state").start()
    try:
        apply_yaml(platform.settings, isvc_yaml("fraud", model_dirs["v1"]))
        wait_ready(platform.settings, ["fraud"], 60)
        shadowed = isvc_yaml("fraud", model_dirs["shifted"], canary=0).replace(
            "  name: fraud\n",
            "  name: fraud\n  annotations:\n    riskserve.io/shadow: 'true'\n",
        )
        apply_yaml(platform.settings, shadowed)
        wait_ready(platform.settings, ["fraud"], 60)
        with grpc.insecure_channel(grpc_target(platform)) as channel:
            stub = pb_grpc.GRPCInferenceServiceStub(channel)
            for call in range(100):
                request = typed_request(rows(4, seed=call))
                if call % 2:  # raw tensors as well as typed contents
                    features = rows(4, seed=call)
                    request = pb.ModelInferRequest(model_name="fraud")
                    for index, name in enumerate(FRAUD.feature_names):
                        request.inputs.add(name=name, datatype="FP32", shape=[4, 1])
                        request.raw_input_contents.append(
                            features[:, index].astype("<f4").tobytes()
                        )
                response = stub.ModelInfer(request, timeout=10)
                assert response.model_version == "1"
        time.sleep(0.5)  # the last copies are on their way
        revisions = {
            r["name"]: r
            for r in traffic(platform.settings)["inferenceservices"]["fraud"][
                "revisions"
            ]
        }
        comparison = revisions[CANARY]["shadow_comparison"]
        assert comparison["compared"] >= 95 and comparison["errors"] == 0, comparison
        # The shifted model scores higher: its answers differ; none reached a client.
        assert comparison["sum_abs_diff"] / comparison["compared"] > 0.05
    finally:
        platform.stop()
        platform.client.close()


@pytest.mark.inprocess
@pytest.mark.parametrize(
    "message",
    [
        pb.ModelInferRequest(model_name="fraud"),
        pb.ModelInferRequest(model_name="fraud", id="x" * 300),
        pb.ModelMetadataRequest(name="credit", version="3"),
        pb.ModelReadyRequest(name="ünïcode"),
        pb.ModelInferRequest(),
    ],
)
def test_the_model_name_is_read_off_the_wire(message):
    request = typed_request(rows(5), model=getattr(message, "model_name", "x"))
    if isinstance(message, pb.ModelInferRequest):
        request.MergeFrom(message)
        expected = request.model_name
        wire = request.SerializeToString()
    else:
        expected = message.name
        wire = message.SerializeToString()
    assert model_name(wire) == expected
    # The last occurrence wins, as protobuf reads it.
    assert (
        model_name(wire + pb.ModelInferRequest(model_name="z").SerializeToString())
        == "z"
    )


@pytest.mark.inprocess
@pytest.mark.parametrize(
    "wire",
    [
        b"\x0a\x05abc",
        b"\x0a",
        b"\xff",
        b"\x0f",
        b"\x00\x01",
        b"\x0a\x02\xff\xfe",
        b"\x80" * 20,
    ],
)
def test_broken_messages_are_named_not_crashed_on(wire):
    with pytest.raises(MalformedMessage):
        model_name(wire)


@pytest.mark.inprocess
@given(wire=st.binary(max_size=200))
@settings(max_examples=2000, deadline=None)
def test_any_bytes_give_a_name_or_a_malformed_message(wire):
    try:
        name = model_name(wire)
    except MalformedMessage:
        return
    assert isinstance(name, str)


@pytest.mark.e2e
def test_a_silent_connection_is_closed_after_the_header_timeout(canary_platform):
    """A client that connects and never speaks HTTP/2 holds a descriptor for the
    header timeout (2 s here), not forever."""
    started = time.monotonic()
    with socket.create_connection(
        ("127.0.0.1", canary_platform.settings.gateway_grpc_port), timeout=30
    ) as silent:
        while silent.recv(4096):  # the server's SETTINGS frame, then its close
            pass
    took = time.monotonic() - started
    assert 1.5 < took < 10, took


@pytest.mark.e2e
def test_garbage_on_the_grpc_port_harms_no_later_call(canary_platform):
    """Bytes that are not HTTP/2, a preface cut short, a connection left idle: the
    gateway drops each, and the next call is answered."""
    for junk in (
        b"GET / HTTP/1.1\r\nhost: x\r\n\r\n",
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\xff" * 100,
        os.urandom(4096),
        b"",
    ):
        with socket.create_connection(
            ("127.0.0.1", canary_platform.settings.gateway_grpc_port), timeout=5
        ) as raw:
            raw.sendall(junk)
            raw.settimeout(2)
            with contextlib.suppress(OSError):
                raw.recv(1024)
    with grpc.insecure_channel(grpc_target(canary_platform)) as channel:
        stub = pb_grpc.GRPCInferenceServiceStub(channel)
        response = stub.ModelInfer(typed_request(rows(1)), metadata=AUTH, timeout=10)
        assert response.model_version in {"1", "2"}


@pytest.mark.e2e
def test_a_taken_grpc_port_is_refused_in_one_line(tmp_path):
    """Another program on the gRPC port: `up` refuses before starting anything, and
    the daemon itself (started by hand) exits with one line, not a traceback; grpc's
    default SO_REUSEPORT would have let both listen and split the connections."""
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    port = holder.getsockname()[1]
    try:
        platform = Platform(tmp_path / "state")
        platform.settings = platform.settings.model_copy(
            update={"gateway_grpc_port": port}
        )
        platform.env["RISKSERVE_GATEWAY_GRPC_PORT"] = str(port)
        with pytest.raises(PlatformError, match="RISKSERVE_GATEWAY_GRPC_PORT"):
            platform.start()
        daemon = subprocess.run(
            [sys.executable, "-m", "riskserve.localplatform.daemon"],
            env={**os.environ, **platform.env},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert daemon.returncode == 2, daemon.stderr
        assert daemon.stderr.count("\n") == 1, daemon.stderr
        assert "RISKSERVE_GATEWAY_GRPC_PORT" in daemon.stderr
    finally:
        holder.close()
        platform.client.close()


# -- an InferenceService with a transformer: raw events over gRPC ----------------------


class RawAnswer(NamedTuple):
    revision: str
    model_version: str
    outputs: dict[str, list]


def raw_grpc_request(json_request: dict, model: str = "fraud") -> pb.ModelInferRequest:
    """A raw event's JSON tensors (transformer_helpers.raw_request) as typed contents."""
    request = pb.ModelInferRequest(model_name=model)
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


def grpc_raw_infer(
    platform: Platform,
    json_request: dict,
    metadata: tuple[tuple[str, str], ...],
    model: str = "fraud",
) -> RawAnswer:
    """A raw event through the gateway's gRPC port: the revision that answered (the
    trailers), the model version and the outputs by name."""
    with grpc.insecure_channel(grpc_target(platform)) as channel:
        stub = pb_grpc.GRPCInferenceServiceStub(channel)
        response, outcome = stub.ModelInfer.with_call(
            raw_grpc_request(json_request, model), metadata=metadata, timeout=30
        )
    got: dict[str, list] = {}
    for output in response.outputs:
        fields = output.contents.ListFields()
        values = list(fields[0][1]) if fields else []
        got[output.name] = [v.decode() if isinstance(v, bytes) else v for v in values]
    revision = dict(outcome.trailing_metadata())["x-riskserve-revision"]
    return RawAnswer(revision, response.model_version, got)


@pytest.mark.e2e
def test_raw_events_over_grpc_follow_the_transformer_split(tmp_path, model_dirs):
    """fraud and credit with transformers, fraud's at a 50% transformer canary: raw
    transactions over gRPC reach both transformer revisions in proportion (the same
    split as REST), each decision equal to REST's for the same kind of event; a raw
    checkout reaches credit's transformer; a bad field is INVALID_ARGUMENT naming it."""
    from tests.localplatform.test_transformer_platform import isvc_with_transformer
    from tests.transformer.transformer_helpers import (
        build_customer_repo,
        build_feature_repo,
        outputs,
        raw_checkout,
        raw_request,
    )

    cards = build_feature_repo(tmp_path / "cards")
    customers = build_customer_repo(tmp_path / "customers")
    platform = Platform(tmp_path / "state").use_key(KEY).start()
    try:
        apply_yaml(
            platform.settings, isvc_with_transformer(model_dirs["v1"], cards.repo)
        )
        wait_ready(platform.settings, ["fraud"], 180)
        apply_yaml(
            platform.settings,
            isvc_with_transformer(
                model_dirs["v1"],
                cards.repo,
                transformer_canary=50,
                transformer_args=("--predictor_request_timeout_seconds", "3"),
            ),
        )
        credit_dir = tmp_path / "credit-model"
        write_onnx(credit_model(), credit_dir)
        apply_yaml(
            platform.settings,
            isvc_with_transformer(credit_dir, customers.repo, name="credit"),
        )
        wait_ready(platform.settings, ["fraud", "credit"], 180)

        when = int(cards.events.transactions["event_timestamp"].max().value // 1000)
        split: collections.Counter[str] = collections.Counter()
        for i in range(200):
            answer = grpc_raw_infer(
                platform, raw_request(f"grpc-card-{i}", when + 1), AUTH
            )
            split[answer.revision] += 1
            assert answer.model_version == "1"
        share = split["fraud-transformer-00002"] / 200
        print(f"transformer canary share over 200 gRPC calls: {share:.3f} {split}")
        # sd 3.5 points over 200: 0.36-0.64 is four of them.
        assert set(split) == {"fraud-transformer-00001", "fraud-transformer-00002"}
        assert 0.36 <= share <= 0.64

        # The same kind of event (a card seen for the first time) over REST and
        # gRPC: the same outputs, the same values.
        headers = {"authorization": f"Bearer {KEY}"}
        rest = platform.client.post(
            "/v2/models/fraud/infer",
            json=raw_request("grpc-rest-card", when + 1),
            headers=headers,
        )
        assert rest.status_code == 200, rest.text
        by_grpc = grpc_raw_infer(platform, raw_request("grpc-card-x", when + 1), AUTH)
        by_rest = outputs(rest)
        assert list(by_grpc.outputs) == list(by_rest)
        for name, values in by_rest.items():
            if isinstance(values[0], float):
                assert by_grpc.outputs[name] == pytest.approx(values), name
            else:
                assert by_grpc.outputs[name] == values, name

        # A raw checkout to credit's transformer.
        customer = str(customers.events.checkouts["customer_id"].iloc[0])
        last = max(
            customers.events.checkouts["event_timestamp"].max(),
            customers.events.payments["event_timestamp"].max(),
        )
        checkout = raw_checkout(customer, int(last.value // 1000) + 3_600_000_000)
        by_grpc = grpc_raw_infer(platform, checkout, AUTH, model="credit")
        assert by_grpc.revision == "credit-transformer-00001"
        assert by_grpc.outputs["unknown_entity"] == [False]
        assert 0.0 <= by_grpc.outputs["default_probability"][0] <= 1.0

        # A bad field: INVALID_ARGUMENT naming it, from the transformer.
        with pytest.raises(grpc.RpcError) as refused:
            grpc_raw_infer(platform, raw_request("grpc-bad", when, amount=-1.0), AUTH)
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "'amount' holds a negative amount" in (refused.value.details() or "")
    finally:
        platform.stop()
        platform.client.close()
