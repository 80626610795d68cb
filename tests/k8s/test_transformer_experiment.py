"""An experiment on a cluster, chart and kustomize alike: each transformer container
has `RISKSERVE_TRANSFORMER_EXPERIMENT_URI`, empty by default (no experiment), set per
model from `models.<model>.transformer.experimentUri`; the chart's schema refuses a
value that is neither s3:// nor an absolute path."""

from __future__ import annotations

import pytest
from riskserve.transformer.settings import TransformerSettings

from tests.k8s.k8s_render import helm_template, render
from tests.k8s.test_feature_store import VALUES
from tests.k8s.transformer_render import env, helm_refusal

pytestmark = pytest.mark.k8s

EXPERIMENT = "RISKSERVE_TRANSFORMER_EXPERIMENT_URI"
URI = "s3://riskserve-models/experiments/fraud-cutoff.yaml"


@pytest.mark.parametrize("source", ["helm", "kustomize"])
@pytest.mark.parametrize("model", ["fraud", "credit"])
def test_no_experiment_by_default(source: str, model: str) -> None:
    documents = render(source, "feature-store").documents
    assert env(documents, model)[EXPERIMENT] == {"name": EXPERIMENT, "value": ""}
    # the name is the transformer's own setting, and empty means none
    assert "experiment_uri" in TransformerSettings.model_fields
    assert not TransformerSettings(experiment_uri="").experiment_uri


def test_a_models_experiment_uri_reaches_its_transformer_only() -> None:
    documents = helm_template(
        VALUES, "--set", f"models.fraud.transformer.experimentUri={URI}"
    )
    assert env(documents, "fraud")[EXPERIMENT]["value"] == URI
    assert env(documents, "credit")[EXPERIMENT]["value"] == ""


def test_the_chart_refuses_an_experiment_uri_of_another_scheme() -> None:
    stderr = helm_refusal(
        VALUES, "models.fraud.transformer.experimentUri=https://example.com/e.yaml"
    )
    assert "experimentUri" in stderr
