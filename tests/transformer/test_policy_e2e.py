"""The starter fraud policy applied by a real transformer process in front of a real
predictor (a Feast repository with the SQLite online store): a raw transaction's
answer carries the policy's action, version and rule, and so does its record in the
inference log; a policy naming a field the model lacks stops the transformer once
the predictor's metadata is known, with one log line."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import orjson
import pytest
from riskserve.transformer.policy import load_policy

from tests.fixtures.contract_models import fraud_model, write_onnx
from tests.serving.predictor_helpers import Predictor, start_predictor
from tests.transformer.transformer_helpers import (
    REPO_ROOT,
    FeatureRepo,
    build_feature_repo,
    outputs,
    raw_request,
    start_transformer,
)

pytestmark = pytest.mark.e2e

FRAUD_POLICY = REPO_ROOT / "policies" / "fraud.yaml"
CREDIT_POLICY = REPO_ROOT / "policies" / "credit.yaml"


@dataclass
class Stack:
    folder: Path
    repo: FeatureRepo
    predictor: Predictor


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    monkeypatch_env = pytest.MonkeyPatch()
    folder = tmp_path_factory.mktemp("transformer-policy")
    repo = build_feature_repo(folder, cards=10, days=2)
    write_onnx(fraud_model(), folder / "model")
    for name in ("PROMETHEUS_MULTIPROC_DIR", "PROMETHEUS_MULTIPROCESS_DIR"):
        monkeypatch_env.delenv(name, raising=False)
    predictor = start_predictor(folder, "predictor", "fraud", folder / "model")
    try:
        yield Stack(folder, repo, predictor)
    finally:
        predictor.stop()
        monkeypatch_env.undo()


def test_a_raw_transaction_gets_the_policys_action_and_the_log_keeps_it(
    stack: Stack,
) -> None:
    log_root = stack.folder / "log"
    version = load_policy(str(FRAUD_POLICY)).version
    card = str(stack.repo.events.cards["card_id"].iloc[0])
    now_us = int(time.time() * 1e6)
    transformer = start_transformer(
        stack.folder,
        "transformer-policy",
        "fraud",
        f"127.0.0.1:{stack.predictor.http_port}",
        stack.repo.repo,
        env={
            "RISKSERVE_TRANSFORMER_POLICY_URI": f"file://{FRAUD_POLICY}",
            "RISKSERVE_TRANSFORMER_INFERENCE_LOG_URI": str(log_root),
            "RISKSERVE_TRANSFORMER_INFERENCE_LOG_FLUSH_SECONDS": "0.2",
        },
    )
    try:
        answers = {}
        for i, amount in enumerate((25.0, 7500.0)):
            request = {"id": f"policy-{i}", **raw_request(card, now_us + i, amount)}
            answer = transformer.client.post("/v2/models/fraud/infer", json=request)
            assert answer.status_code == 200, answer.text
            answers[request["id"]] = outputs(answer)
        for i, amount in enumerate((25.0, 7500.0)):
            got = answers[f"policy-{i}"]
            fraud = got["is_fraud"] == [True]
            expected = (
                ("block", "probability_at_threshold")
                if fraud
                else ("challenge", "amount_above_limit")
                if amount > 5000
                else ("allow", "default")
            )
            assert (got["action"][0], got["policy_rule"][0]) == expected
            assert got["policy_version"] == [version]
            assert got["reason_code"][0]
        metadata = transformer.client.get("/v2/models/fraud").json()
        assert metadata["parameters"]["policy"]["version"] == version
        assert {"action", "policy_version", "policy_rule", "reason_code"} <= {
            o["name"] for o in metadata["outputs"]
        }
        deadline = time.monotonic() + 20
        records: dict[str, dict] = {}
        while len(records) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
            records = {
                r["request_id"]: r
                for path in log_root.glob("fraud/*/*.jsonl")
                for r in map(orjson.loads, path.read_bytes().splitlines())
            }
        assert set(records) == set(answers)
        for request_id, record in records.items():
            got = answers[request_id]
            for name in ("action", "policy_version", "policy_rule", "reason_code"):
                assert record["outputs"][name] == got[name], name
    finally:
        transformer.stop()


def test_a_policy_naming_a_field_the_model_lacks_stops_the_transformer(
    stack: Stack,
) -> None:
    transformer = start_transformer(
        stack.folder,
        "transformer-misfit",
        "fraud",
        f"127.0.0.1:{stack.predictor.http_port}",
        stack.repo.repo,
        env={"RISKSERVE_TRANSFORMER_POLICY_URI": str(CREDIT_POLICY)},
        wait=False,
    )
    try:
        deadline = time.monotonic() + 60
        while transformer.process.alive() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert transformer.process.returncode == 2
        refused = [
            line
            for line in transformer.process.log_path.read_text().splitlines()
            if "the policy does not fit the model" in line
        ]
        assert len(refused) == 1
        assert "card requests, which take a 'fraud' policy" in refused[0]
        assert (
            "'recovery_debt' is not an input, feature or output of model fraud"
            in (refused[0])
        )
    finally:
        transformer.stop()
