"""A decision policy applied by the transformer, in process (fake store and predictor,
as tests/transformer/test_inprocess.py): the starter policies decide fraud and credit
answers (their action, rule, reason code and version in the answer, the metadata and
the inference log record, over REST and gRPC), requested outputs, no policy -> no extra outputs, and a
policy that does not parse or does not fit the model stops the transformer."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import orjson
import pytest
from riskserve.features.card import CardState, Transaction, fraud_features
from riskserve.features.customer import CustomerState, credit_features
from riskserve.features.customer_online import CustomerLookup
from riskserve.features.online import CardLookup
from riskserve.serving.grpc_v2 import grpc_predict_v2_pb2 as pb
from riskserve.serving.inference_log import InferenceRecord
from riskserve.serving.tensors import OutputTensor
from riskserve.transformer.app import (
    POLICY_OUTPUTS,
    AppliedPolicy,
    Transformer,
    TransformerApp,
)
from riskserve.transformer.checkout import CHECKOUT
from riskserve.transformer.decisions import CARD, Decision
from riskserve.transformer.features_source import FeatureSource, Lookups, PushWorker
from riskserve.transformer.policy import PolicyError, load_policy
from riskserve.transformer.predictor_client import PredictorAnswer, PredictorPool

from tests.asyncio_runner import run as run_async
from tests.transformer.test_grpc_inprocess import (
    Stub,
    grpc_outputs,
    grpc_request,
    over_grpc,
)
from tests.transformer.transformer_helpers import (
    REPO_ROOT,
    child_environment,
    raw_checkout,
    raw_request,
)

pytestmark = pytest.mark.inprocess

NOW_US = 1_767_225_600_000_000  # 2026-01-01 UTC
FRAUD_POLICY = REPO_ROOT / "policies" / "fraud.yaml"
CREDIT_POLICY = REPO_ROOT / "policies" / "credit.yaml"
FRAUD_METADATA = [
    {"name": "fraud_probability", "datatype": "FP32", "shape": [-1, 1]},
    {"name": "is_fraud", "datatype": "BOOL", "shape": [-1, 1]},
]
CREDIT_METADATA = [
    {"name": "default_probability", "datatype": "FP32", "shape": [-1, 1]},
    {"name": "credit_score", "datatype": "FP32", "shape": [-1, 1]},
    {"name": "approved", "datatype": "BOOL", "shape": [-1, 1]},
]


class DecidingPredictor(PredictorPool):
    """Answers the graph's decision (`is_fraud` or `approved`) given for each row."""

    def __init__(self, kind: str) -> None:
        super().__init__("127.0.0.1:9", 1.0)
        self.kind = kind
        self.decisions: list[bool] = []

    async def infer(
        self, model_name: str, features: dict[str, np.ndarray], request_id: str
    ) -> PredictorAnswer:
        rows = len(next(iter(features.values())))
        flags = np.array(self.decisions[:rows], bool).reshape(rows, 1)
        if self.kind == "fraud":
            outputs = [
                OutputTensor("fraud_probability", "FP32", np.where(flags, 0.9, 0.1)),
                OutputTensor("is_fraud", "BOOL", flags),
            ]
        else:
            outputs = [
                OutputTensor("default_probability", "FP32", np.where(flags, 0.1, 0.6)),
                OutputTensor("credit_score", "FP32", np.where(flags, 700.0, 500.0)),
                OutputTensor("approved", "BOOL", flags),
            ]
        return PredictorAnswer("1", outputs)


class KnownSource(FeatureSource):
    """Every card has a home and one earlier transaction; a customer whose id starts
    with `collections` has debt recovered in collections."""

    def __init__(self) -> None:
        pass

    async def lookup(self, events: list[Any]) -> Lookups:
        found: list[Any] = []
        for event in events:
            if isinstance(event, Transaction):
                state = CardState(
                    last_latitude=48.0,
                    last_longitude=2.0,
                    last_timestamp_us=event.timestamp_us - 60_000_000,
                    median_purchase=20.0,
                    transactions=1,
                    merchants_seen=["m00-001"],
                    recent_amounts=[20.0],
                    recent_timestamps_us=[event.timestamp_us - 60_000_000],
                    recent_window_amounts=[20.0],
                )
                found.append(
                    CardLookup(fraud_features(event, state, 48.85, 2.35), state)
                )
            else:
                debt = 120.0 if event.customer_id.startswith("collections") else 0.0
                customer = CustomerState(checkouts=3, recovered_debt=debt)
                found.append(CustomerLookup(credit_features(event, customer), customer))
        return Lookups(found, 0.0)


class NoPushes(PushWorker):
    def __init__(self) -> None:
        pass

    def submit(self, event: Any, state: Any) -> None:
        pass


class RecordedLog:
    """The inference log's `submit`, recorded (the real log writes the same record)."""

    def __init__(self) -> None:
        self.records: list[InferenceRecord] = []

    def submit(self, record: InferenceRecord) -> None:
        self.records.append(record)


def applied(
    path: Path, model: str, decision: Decision, metadata: list
) -> AppliedPolicy:
    policy = AppliedPolicy(load_policy(str(path)), str(path))
    policy.check(model, decision, metadata)
    return policy


def make_app(
    kind: str, policy: AppliedPolicy | None
) -> tuple[TransformerApp, DecidingPredictor, RecordedLog]:
    predictor, log = DecidingPredictor(kind), RecordedLog()
    transformer = Transformer(
        model_name=kind,
        predictor=predictor,
        source=KnownSource(),
        pushes=NoPushes(),
        decision=CARD if kind == "fraud" else CHECKOUT,
        predictor_outputs=FRAUD_METADATA if kind == "fraud" else CREDIT_METADATA,
        policy=policy,
        inference_log=log,  # type: ignore[arg-type]
    )
    return TransformerApp(transformer), predictor, log


def post(app: TransformerApp, model: str, request: dict) -> httpx.Response:
    async def go() -> httpx.Response:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://transformer"
        ) as client:
            return await client.post(
                f"/v2/models/{model}/infer", content=orjson.dumps(request)
            )

    return run_async(go())


def get(app: TransformerApp, path: str) -> httpx.Response:
    async def go() -> httpx.Response:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://transformer"
        ) as client:
            return await client.get(path)

    return run_async(go())


def outputs(response: httpx.Response) -> dict[str, list]:
    assert response.status_code == 200, response.text
    return {o["name"]: o["data"] for o in response.json()["outputs"]}


def transactions(amounts: list[float]) -> dict:
    """One request of len(amounts) transactions of card-1."""
    request = raw_request("card-1", NOW_US)
    rows = {
        "amount": amounts,
        "timestamp": [NOW_US + i for i in range(len(amounts))],
    }
    for item in request["inputs"]:
        item["shape"] = [len(amounts)]
        item["data"] = rows.get(item["name"], item["data"] * len(amounts))
    return request


def checkouts(customers: list[str]) -> dict:
    request = raw_checkout(customers[0], NOW_US)
    for item in request["inputs"]:
        item["shape"] = [len(customers)]
        if item["name"] == "customer_id":
            item["data"] = customers
        else:
            item["data"] = item["data"] * len(customers)
    return request


def test_the_starter_fraud_policy_blocks_challenges_and_allows() -> None:
    policy = applied(FRAUD_POLICY, "fraud", CARD, FRAUD_METADATA)
    app, predictor, log = make_app("fraud", policy)
    # the graph says fraud; above the limit (the knock-out); above the limit and
    # fraud (the first rule decides); neither
    predictor.decisions = [True, False, True, False]
    got = outputs(post(app, "fraud", transactions([40.0, 6000.0, 6000.0, 40.0])))
    assert got["action"] == ["block", "challenge", "block", "allow"]
    assert got["policy_rule"] == [
        "probability_at_threshold",
        "amount_above_limit",
        "probability_at_threshold",
        "default",
    ]
    assert got["reason_code"] == [
        "FRAUD_PROBABILITY_AT_THRESHOLD",
        "KO_AMOUNT_ABOVE_LIMIT",
        "FRAUD_PROBABILITY_AT_THRESHOLD",
        "FRAUD_PROBABILITY_BELOW_THRESHOLD",
    ]
    version = policy.policy.version
    assert len(version) == 12 and got["policy_version"] == [version] * 4
    # the graph's own decision stays as it answered
    assert got["is_fraud"] == [[True], [False], [True], [False]]
    (record,) = log.records
    logged = {o.name: o.array.tolist() for o in record.outputs}
    assert logged["action"] == got["action"]
    assert logged["policy_rule"] == got["policy_rule"]
    assert logged["policy_version"] == [version] * 4
    assert logged["reason_code"] == got["reason_code"]


def test_a_single_transaction_is_decided_by_the_one_row_path_alike() -> None:
    app, predictor, log = make_app(
        "fraud", applied(FRAUD_POLICY, "fraud", CARD, FRAUD_METADATA)
    )
    predictor.decisions = [False]
    got = outputs(post(app, "fraud", transactions([5000.5])))
    assert got["action"] == ["challenge"]
    assert got["policy_rule"] == ["amount_above_limit"]
    predictor.decisions = [False]
    assert outputs(post(app, "fraud", transactions([5000.0])))["action"] == ["allow"]
    assert [o.array.tolist() for o in log.records[1].outputs if o.name == "action"] == [
        ["allow"]
    ]


def test_the_starter_credit_policy_declines_a_customer_in_collections() -> None:
    app, predictor, log = make_app(
        "credit", applied(CREDIT_POLICY, "credit", CHECKOUT, CREDIT_METADATA)
    )
    # the graph approves the first two; the second is in collections (knock-out)
    predictor.decisions = [True, True, False]
    got = outputs(post(app, "credit", checkouts(["c-1", "collections-2", "c-3"])))
    assert got["action"] == ["approve", "decline", "decline"]
    assert got["policy_rule"] == ["score_at_cutoff", "in_collections", "default"]
    assert got["reason_code"] == [
        "SCORE_AT_OR_ABOVE_CUTOFF",
        "KO_IN_COLLECTIONS",
        "SCORE_BELOW_CUTOFF",
    ]
    assert got["approved"] == [[True], [True], [False]]  # the graph's, unchanged
    assert got["recovery_debt"] == [0.0, 120.0, 0.0]


def test_requested_outputs_name_the_policys_outputs() -> None:
    app, predictor, _ = make_app(
        "fraud", applied(FRAUD_POLICY, "fraud", CARD, FRAUD_METADATA)
    )
    predictor.decisions = [True]
    request = {
        **transactions([10.0]),
        "outputs": [
            {"name": "action"},
            {"name": "policy_rule", "parameters": {"binary_data": True}},
            {"name": "fraud_probability"},
        ],
    }
    answer = post(app, "fraud", request)
    assert answer.status_code == 200, answer.text
    head_length = int(answer.headers["inference-header-content-length"])
    head = orjson.loads(answer.content[:head_length])
    assert [o["name"] for o in head["outputs"]] == [
        "action",
        "policy_rule",
        "fraud_probability",
    ]
    assert head["outputs"][0]["data"] == ["block"]
    rule = b"probability_at_threshold"
    assert answer.content[head_length:] == len(rule).to_bytes(4, "little") + rule


def test_the_metadata_lists_the_policys_outputs_and_version() -> None:
    policy = applied(FRAUD_POLICY, "fraud", CARD, FRAUD_METADATA)
    app, _, _ = make_app("fraud", policy)
    metadata = get(app, "/v2/models/fraud").json()
    names = [o["name"] for o in metadata["outputs"]]
    assert names[:6] == ["fraud_probability", "is_fraud", *POLICY_OUTPUTS]
    assert {o["datatype"] for o in metadata["outputs"][2:6]} == {"BYTES"}
    assert metadata["parameters"]["policy"] == {
        "name": "fraud-starter",
        "version": policy.policy.version,
        "uri": str(FRAUD_POLICY),
    }


def test_without_a_policy_the_answer_has_no_policy_outputs() -> None:
    app, predictor, log = make_app("fraud", None)
    predictor.decisions = [True]
    got = outputs(post(app, "fraud", transactions([6000.0])))
    assert got["is_fraud"] == [[True]]
    assert not set(POLICY_OUTPUTS) & set(got)
    assert not {o.name for o in log.records[0].outputs} & set(POLICY_OUTPUTS)
    metadata = get(app, "/v2/models/fraud").json()
    assert not {o["name"] for o in metadata["outputs"]} & set(POLICY_OUTPUTS)
    assert "policy" not in metadata["parameters"]


def test_an_unchecked_policy_keeps_the_transformer_not_ready() -> None:
    policy = AppliedPolicy(load_policy(str(FRAUD_POLICY)), str(FRAUD_POLICY))
    app, _, _ = make_app("fraud", policy)
    assert get(app, "/v2/health/ready").status_code == 503
    answer = post(app, "fraud", transactions([10.0]))
    assert answer.status_code == 503
    assert "its policy is not checked yet" in answer.json()["error"]
    policy.check("fraud", CARD, FRAUD_METADATA)
    assert get(app, "/v2/health/ready").status_code == 200


def test_a_policy_naming_a_field_the_model_lacks_is_refused_in_one_line() -> None:
    # the fraud policy in front of the credit model: no is_fraud, no amount
    policy = AppliedPolicy(load_policy(str(FRAUD_POLICY)), str(FRAUD_POLICY))
    with pytest.raises(PolicyError) as refused:
        policy.check("credit", CHECKOUT, CREDIT_METADATA)
    assert "'is_fraud' is not an input, feature or output of model credit" in str(
        refused.value
    )
    assert not policy.checked
    # a credit policy (approve / decline) in front of a card transformer
    credit = AppliedPolicy(load_policy(str(CREDIT_POLICY)), str(CREDIT_POLICY))
    with pytest.raises(
        PolicyError, match="decides card requests, which take a 'fraud'"
    ):
        credit.check("fraud", CARD, [*FRAUD_METADATA, *CREDIT_METADATA])
    clash = [*FRAUD_METADATA, {"name": "action", "datatype": "BYTES", "shape": [-1]}]
    with pytest.raises(PolicyError, match="model fraud already answers 'action'"):
        policy.check("fraud", CARD, clash)


def test_a_policy_that_does_not_parse_stops_the_process_with_one_line(
    tmp_path: Path,
) -> None:
    broken = tmp_path / "policy.yaml"
    broken.write_text("name: broken\nkind: fraud\nrules: [{name: x, action: block\n")
    env = {
        **child_environment(),
        "RISKSERVE_TRANSFORMER_POLICY_URI": str(broken),
        "RISKSERVE_TRANSFORMER_FEATURE_REPO": str(tmp_path),
    }
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "riskserve.transformer",
            "--model_name",
            "fraud",
            "--predictor_host",
            "127.0.0.1:9",
        ],
        env=env,
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith(
        f"riskserve.transformer: RISKSERVE_TRANSFORMER_POLICY_URI: {broken}"
    )
    assert "not YAML" in lines[0]


def test_a_rule_on_the_reason_codes_reads_each_rows_k_codes(tmp_path: Path) -> None:
    """A refer band on the score and a rule on the model's K reason codes a row."""
    path = tmp_path / "policy.yaml"
    path.write_text(
        "name: credit-refer\nkind: credit\nmodel: credit\nrules:\n"
        "  - name: thin_file\n"
        "    when: [{field: reason_codes, contains: THIN_FILE}]\n"
        "    action: refer\n    reason: REFER_THIN_FILE\n"
        "  - name: score_band\n"
        "    when: [{field: credit_score, ge: 600, lt: 650}]\n"
        "    action: refer\n    reason: REFER_SCORE_BAND\n"
        "default: {action: approve, reason: APPROVED}\n"
    )
    metadata = [
        *CREDIT_METADATA,
        {"name": "reason_codes", "datatype": "BYTES", "shape": [-1, 4]},
    ]
    app, predictor, _ = make_app("credit", applied(path, "credit", CHECKOUT, metadata))
    codes = np.array(
        [["A", "B", "C", "D"], ["A", "THIN_FILE:no history", "C", "D"], ["A"] * 4],
        dtype=object,
    )
    scores = np.array([700.0, 700.0, 620.0], "f4")

    async def infer(
        model_name: str, features: dict[str, np.ndarray], request_id: str
    ) -> PredictorAnswer:
        return PredictorAnswer(
            "1",
            [
                OutputTensor("credit_score", "FP32", scores),
                OutputTensor("approved", "BOOL", scores >= 600),
                OutputTensor("reason_codes", "BYTES", codes),
            ],
        )

    predictor.infer = infer  # type: ignore[method-assign]
    got = outputs(post(app, "credit", checkouts(["c-1", "c-2", "c-3"])))
    assert got["action"] == ["approve", "refer", "refer"]
    assert got["policy_rule"] == ["default", "thin_file", "score_band"]
    assert got["reason_codes"] == codes.tolist()


def test_over_grpc_the_answer_and_metadata_carry_the_policy_too() -> None:
    policy = applied(FRAUD_POLICY, "fraud", CARD, FRAUD_METADATA)
    app, predictor, log = make_app("fraud", policy)
    predictor.decisions = [False]

    async def talk(stub: Stub) -> tuple[Any, Any]:
        answer = await stub.ModelInfer(grpc_request(transactions([6000.0])))
        metadata = await stub.ModelMetadata(pb.ModelMetadataRequest(name="fraud"))
        return answer, metadata

    answer, metadata = over_grpc(app.t, talk)
    got = grpc_outputs(answer)
    assert got["action"] == [b"challenge"]
    assert got["policy_rule"] == [b"amount_above_limit"]
    assert got["reason_code"] == [b"KO_AMOUNT_ABOVE_LIMIT"]
    assert got["policy_version"] == [policy.policy.version.encode()]
    assert set(POLICY_OUTPUTS) <= {o.name for o in metadata.outputs}
    (record,) = log.records
    assert [o.array.tolist() for o in record.outputs if o.name == "action"] == [
        ["challenge"]
    ]
