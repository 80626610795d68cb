"""An experiment's arm predictors on a cluster are fenced: each arm is its own
InferenceService whose predictor takes traffic from the transformers that run the
experiment and from nothing else of ours (no app, no `helm test` pod; the ingress
path Knative routes through in Serverless mode only), and may reach the in-cluster
S3. Chart (`models.<model>.transformer.experimentArms`) and kustomize
(`components/experiment-arms`) alike."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest

from tests.k8s.k8s_render import CONFIGURATIONS, MANIFESTS, helm_template, kustomize
from tests.k8s.test_k8s_render import kubernetes_versions
from tests.k8s.transformer_render import helm_refusal

pytestmark = pytest.mark.k8s

FEATURE_STORE_VALUES, FEATURE_STORE_OVERLAY = CONFIGURATIONS["feature-store"]
DEFAULT_VALUES = CONFIGURATIONS["default"][0]
EXPERIMENT = "models.credit.transformer.experimentUri=s3://mlflow/experiments/e.yaml"
ARMS = "models.credit.transformer.experimentArms={credit-challenger,credit-gbm}"


def policy(documents: Any, suffix: str) -> dict[str, Any]:
    (found,) = [
        d
        for d in documents
        if d["kind"] == "NetworkPolicy" and d["metadata"]["name"].endswith(suffix)
    ]
    return found


def selected(selector: dict[str, Any]) -> list[str]:
    """The InferenceService names a selector's `In` expression lists."""
    (expression,) = selector["matchExpressions"]
    assert expression["key"] == "serving.kserve.io/inferenceservice"
    assert expression["operator"] == "In"
    values: list[str] = expression["values"]
    return values


def validate(document: dict[str, Any]) -> None:
    for version in kubernetes_versions():
        kubernetes_validate.validate(document, version, strict=True)


def test_the_charts_arm_predictors_take_traffic_from_the_transformer_only() -> None:
    documents = helm_template(FEATURE_STORE_VALUES, "--set", EXPERIMENT, "--set", ARMS)
    arms = policy(documents, "experiment-arms")
    validate(arms)
    assert arms["spec"]["podSelector"]["matchLabels"] == {"component": "predictor"}
    assert selected(arms["spec"]["podSelector"]) == ["credit-challenger", "credit-gbm"]
    assert arms["spec"]["policyTypes"] == ["Ingress"]
    (rule,) = arms["spec"]["ingress"]
    transformer, ingress_path = rule["from"]
    # the credit transformer runs the experiment; fraud's does not call the arms
    assert transformer["podSelector"]["matchLabels"] == {"component": "transformer"}
    assert selected(transformer["podSelector"]) == ["credit"]
    # Serverless (the chart's default): Knative's activator and Istio's gateway
    assert set(ingress_path) == {"namespaceSelector"}
    assert "riskserve-app" not in str(arms) and "riskserve-test" not in str(arms)
    # the arms read their model from (and log to) the in-cluster S3
    store_sources = policy(documents, "seaweedfs")["spec"]["ingress"][0]["from"]
    assert any(
        "credit-gbm" in selected(s["podSelector"])
        for s in store_sources
        if "matchExpressions" in s.get("podSelector", {})
    )
    # the chart's own predictors are not loosened by the arms
    predictors = policy(documents, "-predictors")
    assert selected(predictors["spec"]["podSelector"]) == ["fraud", "credit"]


def test_in_raw_deployment_mode_only_the_transformer_reaches_an_arm() -> None:
    documents = helm_template(
        DEFAULT_VALUES,
        "--set",
        "deploymentMode=RawDeployment",
        "--set",
        "models.credit.transformer.features=none",
        "--set",
        "models.credit.transformer.policyUri=s3://mlflow/policies/credit/policy.yaml",
        "--set",
        EXPERIMENT,
        "--set",
        ARMS,
    )
    arms = policy(documents, "experiment-arms")
    validate(arms)
    (rule,) = arms["spec"]["ingress"]
    (transformer,) = rule["from"]
    assert selected(transformer["podSelector"]) == ["credit"]


def test_without_arms_no_arm_policy() -> None:
    documents = helm_template(FEATURE_STORE_VALUES, "--set", EXPERIMENT)
    assert not [
        d for d in documents if d["metadata"]["name"].endswith("experiment-arms")
    ]


def test_arms_without_an_experiment_are_refused_in_one_line() -> None:
    stderr = helm_refusal(FEATURE_STORE_VALUES, ARMS)
    assert (
        "models.credit.transformer.experimentArms needs "
        "models.credit.transformer.experimentUri"
    ) in stderr


@pytest.mark.parametrize("arm", ["credit", "Credit_B"])
def test_the_schema_refuses_an_arm_named_like_a_chart_model_or_not_a_dns_label(
    arm: str,
) -> None:
    stderr = helm_refusal(
        FEATURE_STORE_VALUES,
        EXPERIMENT,
        f"models.credit.transformer.experimentArms={{{arm}}}",
    )
    assert "experimentArms" in stderr


def kustomize_with_arms(tmp_path: Path) -> tuple[dict[str, Any], ...]:
    """The feature-store overlay with components/experiment-arms, as a user's
    overlay would add it."""
    up = os.path.relpath(MANIFESTS, tmp_path)
    (tmp_path / "kustomization.yaml").write_text(
        "apiVersion: kustomize.config.k8s.io/v1beta1\n"
        "kind: Kustomization\n"
        f"resources: [{up}/overlays/feature-store]\n"
        f"components: [{up}/components/experiment-arms]\n"
    )
    return kustomize(tmp_path)


def test_kustomizes_arm_policy_is_the_charts(tmp_path: Path) -> None:
    documents = kustomize_with_arms(tmp_path)
    arms = policy(documents, "experiment-arms")
    validate(arms)
    labels = arms["metadata"]["labels"]
    assert labels["app.kubernetes.io/part-of"] == "riskserve"
    from_helm = policy(
        helm_template(
            FEATURE_STORE_VALUES,
            "--set",
            EXPERIMENT,
            "--set",
            "models.credit.transformer.experimentArms={credit-challenger}",
        ),
        "experiment-arms",
    )
    assert arms["spec"] == from_helm["spec"]
    store_sources = policy(documents, "seaweedfs")["spec"]["ingress"][0]["from"]
    assert {"matchExpressions": arms["spec"]["podSelector"]["matchExpressions"]} in [
        s.get("podSelector") for s in store_sources
    ]
    # the overlay without the component has no arm policy
    assert not [
        d
        for d in kustomize(FEATURE_STORE_OVERLAY)
        if d["metadata"]["name"] == "experiment-arms"
    ]
