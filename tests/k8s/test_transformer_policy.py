"""The decision policy on a cluster, chart and kustomize alike: each transformer
container has `RISKSERVE_TRANSFORMER_POLICY_URI`, empty by default (no policy, the
graph's decision stands), set per model from `models.<model>.transformer.policyUri`;
the chart refuses a `models:/` URI, which is resolved before deployment."""

from __future__ import annotations

import pytest
from riskserve.transformer.settings import TransformerSettings

from tests.k8s.k8s_render import helm_template, render
from tests.k8s.test_feature_store import VALUES
from tests.k8s.transformer_render import env, helm_refusal

pytestmark = pytest.mark.k8s

POLICY = "RISKSERVE_TRANSFORMER_POLICY_URI"
URI = "s3://riskserve-models/mlflow/7/abc/artifacts/policy/policy.yaml"


@pytest.mark.parametrize("source", ["helm", "kustomize"])
@pytest.mark.parametrize("model", ["fraud", "credit"])
def test_no_policy_by_default(source: str, model: str) -> None:
    documents = render(source, "feature-store").documents
    assert env(documents, model)[POLICY] == {"name": POLICY, "value": ""}
    # the name is the transformer's own setting, and empty means none
    assert "policy_uri" in TransformerSettings.model_fields
    assert not TransformerSettings(policy_uri="").policy_uri


def test_a_models_policy_uri_reaches_its_transformer_only() -> None:
    documents = helm_template(
        VALUES, "--set", f"models.credit.transformer.policyUri={URI}"
    )
    assert env(documents, "credit")[POLICY]["value"] == URI
    assert env(documents, "fraud")[POLICY]["value"] == ""


def test_the_chart_refuses_a_models_uri_in_one_line() -> None:
    stderr = helm_refusal(
        VALUES, "models.fraud.transformer.policyUri=models:/fraud-policy@champion"
    )
    assert (
        "models.fraud.transformer.policyUri: models:/fraud-policy@champion: resolve "
        "it to its s3:// URI first (riskserve policy status --model fraud)"
    ) in stderr
