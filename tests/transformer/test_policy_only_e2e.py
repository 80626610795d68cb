"""The policy-only transformer (`--features none`) as it runs: a real credit predictor
process (the contract credit model) and the transformer in front of it with the
starter credit policy and no feature store. The request holds the model's inputs as
v2 tensors; the answer is the predictor's outputs plus the policy's decision."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import orjson
import pytest
from riskserve.localplatform.processes import ManagedProcess, free_port
from riskserve.transformer.checkout import NUMERIC
from riskserve.transformer.policy import load_policy

from tests.fixtures.contract_models import credit_model, expected_credit, write_onnx
from tests.serving.predictor_helpers import Predictor, start_predictor
from tests.transformer.transformer_helpers import (
    REPO_ROOT,
    child_environment,
    outputs,
)

pytestmark = pytest.mark.e2e

CREDIT_POLICY = REPO_ROOT / "policies" / "credit.yaml"
POLICY_OUTPUTS = {"action", "policy_version", "policy_rule", "reason_code"}


@dataclass
class Stack:
    folder: Path
    predictor: Predictor
    process: ManagedProcess
    client: httpx.Client


def start_policy_only(
    folder: Path,
    label: str,
    predictor: Predictor,
    env: dict[str, str],
    wait: bool,
    model_name: str = "credit",
) -> tuple[ManagedProcess, httpx.Client]:
    """The transformer as the chart runs it without a feature store: `--features
    none`, no `--feature_repo`."""
    port = free_port()
    process = ManagedProcess(
        name=f"transformer {label}",
        argv=[
            sys.executable,
            "-m",
            "riskserve.transformer",
            "--model_name",
            model_name,
            "--predictor_host",
            f"127.0.0.1:{predictor.http_port}",
            "--http_port",
            str(port),
            "--protocol",
            "v2",
            "--features",
            "none",
        ],
        log_path=folder / f"{label}.log",
        env={**child_environment(), "RISKSERVE_TRANSFORMER_HOST": "127.0.0.1", **env},
        cwd=REPO_ROOT,
    ).start()
    if wait:
        try:
            process.wait_ready(f"http://127.0.0.1:{port}/v2/health/ready", 60)
        except Exception:
            process.stop()
            raise
    return process, httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    folder = tmp_path_factory.mktemp("policy-only")
    write_onnx(credit_model(), folder / "model")
    predictor = start_predictor(folder, "predictor", "credit", folder / "model")
    try:
        process, client = start_policy_only(
            folder,
            "transformer",
            predictor,
            {"RISKSERVE_TRANSFORMER_POLICY_URI": str(CREDIT_POLICY)},
            wait=True,
        )
        try:
            yield Stack(folder, predictor, process, client)
        finally:
            client.close()
            process.stop()
    finally:
        predictor.stop()


def model_request(numeric: np.ndarray, groups: list[str]) -> dict:
    """The credit model's own inputs as v2 JSON tensors: 23 FP32 columns and the
    merchant group (BYTES)."""
    rows = len(groups)
    inputs = [
        {
            "name": name,
            "datatype": "FP32",
            "shape": [rows, 1],
            "data": numeric[:, i].tolist(),
        }
        for i, name in enumerate(NUMERIC)
    ]
    inputs.append(
        {"name": "merchant_group", "datatype": "BYTES", "shape": [rows], "data": groups}
    )
    return {"inputs": inputs}


def test_the_models_inputs_in_the_policys_decision_out(stack: Stack) -> None:
    version = load_policy(str(CREDIT_POLICY)).version
    rng = np.random.default_rng(4)
    numeric = rng.normal(0.0, 1.0, (6, len(NUMERIC))).astype(np.float32)
    recovery = NUMERIC.index("recovery_debt")
    numeric[:, recovery] = 0.0
    numeric[0, recovery] = 250.0  # in collections: the knock-out decides
    groups = ["Electronics", "Entertainment", "Electronics", "Home & Garden"] * 2
    groups = groups[:6]
    answer = stack.client.post(
        "/v2/models/credit/infer", json=model_request(numeric, groups)
    )
    assert answer.status_code == 200, answer.text
    got = outputs(answer)
    _, score, approved = expected_credit(numeric, groups)
    assert got["approved"] == approved.tolist()
    np.testing.assert_allclose(got["credit_score"], score, rtol=1e-5)
    # the policy's decision: the knock-out, then the graph's own cut-off
    expected = [
        "decline" if i == 0 else ("approve" if approved[i] else "decline")
        for i in range(6)
    ]
    assert got["action"] == expected
    assert got["policy_rule"][0] == "in_collections"
    assert got["reason_code"][0] == "KO_IN_COLLECTIONS"
    assert got["policy_version"] == [version] * 6
    # nothing but the predictor's outputs and the policy's: no features echoed
    assert set(got) == {"default_probability", "credit_score", "approved"} | (
        POLICY_OUTPUTS
    )
    # the metadata lists the model's inputs as the transformer's
    metadata = stack.client.get("/v2/models/credit").json()
    assert [i["name"] for i in metadata["inputs"]] == [*NUMERIC, "merchant_group"]
    assert metadata["parameters"]["policy"]["version"] == version
    assert {o["name"] for o in metadata["outputs"]} >= POLICY_OUTPUTS


def test_a_missing_or_mistyped_input_is_a_400_naming_it(stack: Stack) -> None:
    numeric = np.zeros((1, len(NUMERIC)), np.float32)
    body = model_request(numeric, ["Home & Garden"])
    body["inputs"] = [i for i in body["inputs"] if i["name"] != "recovery_debt"]
    answer = stack.client.post("/v2/models/credit/infer", json=body)
    assert answer.status_code == 400
    assert answer.json()["error"] == "missing input tensor(s): recovery_debt"
    body = model_request(numeric, ["Home & Garden"])
    body["inputs"][0]["datatype"] = "FP64"
    answer = stack.client.post("/v2/models/credit/infer", json=body)
    assert answer.status_code == 400
    assert f"input tensor {NUMERIC[0]!r} must be FP32" in answer.json()["error"]
    body = model_request(numeric, ["Home & Garden"])
    body["inputs"].append({**body["inputs"][0], "name": "customer_id"})
    answer = stack.client.post("/v2/models/credit/infer", json=body)
    assert answer.status_code == 400
    assert "unknown input tensor 'customer_id'" in answer.json()["error"]


def test_without_a_policy_or_with_a_feature_repo_it_refuses_to_start(
    stack: Stack,
) -> None:
    process, client = start_policy_only(
        stack.folder, "no-policy", stack.predictor, {}, wait=False
    )
    client.close()
    try:
        deadline = time.monotonic() + 60
        while process.alive() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert process.returncode == 2
        log = process.log_path.read_text()
        assert "--features none needs RISKSERVE_TRANSFORMER_POLICY_URI" in log
    finally:
        process.stop()


FRAUD_POLICY_TEXT = """
name: fraud-chip
kind: fraud
model: fraud
rules:
  - name: no_chip_risky
    when:
      - {field: used_chip, eq: 0}
      - {field: fraud_probability, ge: 0.3}
    action: challenge
    reason: NO_CHIP
  - name: model_says_fraud
    when:
      - {field: is_fraud, eq: true}
    action: block
    reason: MODEL
default: {action: allow, reason: OK}
"""


def test_a_fraud_policy_on_the_models_flags_and_the_inference_log(
    tmp_path: Path,
) -> None:
    """The fraud model's inputs include the card flags (`used_chip`), which the
    feature layer's events hold under other names: the policy and the inference log
    read them all the same."""
    from riskserve.model.specs import FRAUD

    from tests.fixtures.contract_models import fraud_model

    write_onnx(fraud_model(), tmp_path / "model")
    policy = tmp_path / "fraud-chip.yaml"
    policy.write_text(FRAUD_POLICY_TEXT)
    log_root = tmp_path / "log"
    predictor = start_predictor(
        tmp_path, "fraud-predictor", "fraud", tmp_path / "model"
    )
    process = None
    try:
        process, client = start_policy_only(
            tmp_path,
            "fraud-transformer",
            predictor,
            {
                "RISKSERVE_TRANSFORMER_POLICY_URI": str(policy),
                "RISKSERVE_TRANSFORMER_INFERENCE_LOG_URI": str(log_root),
                "RISKSERVE_TRANSFORMER_INFERENCE_LOG_FLUSH_SECONDS": "0.2",
            },
            wait=True,
            model_name="fraud",
        )
        rows = {
            "distance_from_home": [1.0, 400.0],
            "distance_from_last_transaction": [0.5, 80.0],
            "ratio_to_median_purchase_price": [1.0, 9.0],
            "repeat_retailer": [1.0, 0.0],
            "used_chip": [1.0, 0.0],
            "used_pin_number": [1.0, 0.0],
            "online_order": [0.0, 1.0],
        }
        assert set(rows) == set(FRAUD.feature_names)
        body = {
            "id": "fraud-policy-only",
            "inputs": [
                {"name": n, "datatype": "FP32", "shape": [2, 1], "data": v}
                for n, v in rows.items()
            ],
        }
        answer = client.post("/v2/models/fraud/infer", json=body)
        assert answer.status_code == 200, answer.text
        got = outputs(answer)
        assert got["policy_version"] == [load_policy(str(policy)).version] * 2
        for i in range(2):
            expected = (
                "challenge"
                if rows["used_chip"][i] == 0 and got["fraud_probability"][i] >= 0.3
                else "block"
                if got["is_fraud"][i]
                else "allow"
            )
            assert got["action"][i] == expected
        assert got["action"] != ["allow", "allow"]  # the row without a chip is risky
        client.close()
        deadline = time.monotonic() + 20
        records: list[dict] = []
        while not records and time.monotonic() < deadline:
            time.sleep(0.2)
            records = [
                orjson.loads(line)
                for path in log_root.glob("fraud/*/*.jsonl")
                for line in path.read_bytes().splitlines()
            ]
        (record,) = records
        assert record["request_id"] == "fraud-policy-only"
        assert record["outputs"]["action"] == got["action"]
        assert record["raw_inputs"]["used_chip"] == [1.0, 0.0]
    finally:
        if process is not None:
            process.stop()
        predictor.stop()
