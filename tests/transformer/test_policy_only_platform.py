"""The policy-only transformer on the local platform as it runs: an InferenceService
whose `spec.transformer` has `--features none` and a policy (no Feast repository)
answers the model's inputs, sent through the gateway, with the predictor's outputs and
the policy's decision; a missing input is a 400 naming it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from riskserve.localplatform.client import apply_yaml, status, wait_ready
from riskserve.transformer.checkout import NUMERIC
from riskserve.transformer.policy import load_policy

from tests.fixtures.contract_models import credit_model, expected_credit, write_onnx
from tests.localplatform.platform_helpers import Platform
from tests.transformer.test_policy_only_e2e import CREDIT_POLICY, model_request
from tests.transformer.transformer_helpers import outputs

pytestmark = pytest.mark.e2e


def policy_only_isvc(model: Path, policy: Path) -> str:
    return (
        "apiVersion: serving.kserve.io/v1beta1\n"
        "kind: InferenceService\n"
        "metadata:\n  name: credit\n"
        "spec:\n"
        "  predictor:\n"
        "    model:\n"
        "      modelFormat:\n        name: onnx\n"
        "      protocolVersion: v2\n"
        f"      storageUri: {model}\n"
        "  transformer:\n"
        "    containers:\n"
        "      - name: kserve-container\n"
        "        image: ghcr.io/example/riskserve-transformer:dev\n"
        '        args: ["--features", "none"]\n'
        "        env:\n"
        "          - name: RISKSERVE_TRANSFORMER_POLICY_URI\n"
        f"            value: {policy}\n"
    )


@pytest.fixture
def platform(tmp_path: Path) -> Iterator[Platform]:
    running = Platform(tmp_path / "state").start()
    try:
        yield running
    finally:
        running.stop()
        running.client.close()


def test_a_policy_only_transformer_on_the_platform(
    platform: Platform, tmp_path: Path
) -> None:
    model = write_onnx(credit_model(), tmp_path / "model").parent
    apply_yaml(platform.settings, policy_only_isvc(model, CREDIT_POLICY))
    wait_ready(platform.settings, ["credit"], 180)
    revision = status(platform.settings)["revisions"]["credit-transformer-00001"]
    assert revision["storageUri"] == f"features: none; policy {CREDIT_POLICY}"

    numeric = np.zeros((2, len(NUMERIC)), np.float32)
    numeric[1, NUMERIC.index("recovery_debt")] = 100.0
    groups = ["Electronics", "Entertainment"]
    answer = platform.client.post(
        "/v2/models/credit/infer", json=model_request(numeric, groups)
    )
    assert answer.status_code == 200, answer.text
    assert answer.headers["x-riskserve-revision"] == "credit-transformer-00001"
    got = outputs(answer)
    _, _, approved = expected_credit(numeric, groups)
    assert got["approved"] == approved.tolist()
    assert got["action"][1] == "decline"
    assert got["policy_rule"][1] == "in_collections"
    assert got["action"][0] == ("approve" if approved[0] else "decline")
    assert got["policy_version"] == [load_policy(str(CREDIT_POLICY)).version] * 2

    body = model_request(numeric, groups)
    body["inputs"] = [i for i in body["inputs"] if i["name"] != "merchant_group"]
    refused = platform.client.post("/v2/models/credit/infer", json=body)
    assert refused.status_code == 400
    assert refused.json()["error"] == "missing input tensor(s): merchant_group"
