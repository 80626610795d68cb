"""The policy-only transformer on a cluster: `models.<model>.transformer.features:
none` with a `policyUri` renders that model's transformer without the feature store
(`--features=none`, no Feast repository, no feature-store ConfigMap or Redis), reading
its policy from the S3 every component shares; the predictors' network policy lets
it in. Without a policy the chart refuses in one line. Kustomize's
`components/policy-only-transformer` (the `policy-only` overlay) renders the same
InferenceServices and passes every check the other configurations pass."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from tests.k8s.k8s_render import (
    CONFIGURATIONS,
    MANIFESTS,
    Render,
    helm_template,
    kserve_validator,
    kustomize,
)
from tests.k8s.test_transformer_inference_log import transformer_container
from tests.k8s.transformer_render import env, helm_refusal, passes_every_render_check

pytestmark = pytest.mark.k8s

DEFAULT_VALUES = CONFIGURATIONS["default"][0]
URI = "s3://riskserve-models/mlflow/7/abc/artifacts/policy"
POLICY_ONLY = (
    "--set",
    "models.credit.transformer.features=none",
    "--set",
    f"models.credit.transformer.policyUri={URI}",
)
# The component's placeholder URI, which a user patches with theirs.
COMPONENT_URI = "s3://mlflow/policies/credit/policy.yaml"
OVERLAY = MANIFESTS / "overlays" / "policy-only"


def isvc(documents: Any, name: str) -> dict[str, Any]:
    (found,) = [
        d
        for d in documents
        if d["kind"] == "InferenceService" and d["metadata"]["name"] == name
    ]
    return found


def predictor_sources(documents: Any) -> list[dict[str, Any]]:
    (predictors,) = [
        d
        for d in documents
        if d["kind"] == "NetworkPolicy" and d["metadata"]["name"].endswith("predictors")
    ]
    sources: list[dict[str, Any]] = predictors["spec"]["ingress"][0]["from"]
    return sources


def admits_transformers(sources: list[dict[str, Any]]) -> bool:
    return any(
        s.get("podSelector", {}).get("matchLabels", {}).get("component")
        == "transformer"
        for s in sources
    )


def test_a_policy_only_transformer_renders_without_the_feature_store() -> None:
    documents = helm_template(
        DEFAULT_VALUES, *POLICY_ONLY, "--set", "networkPolicy.enabled=true"
    )
    assert not any(d["metadata"]["name"].endswith("feature-store") for d in documents)
    credit = isvc(documents, "credit")
    kserve_validator(credit["apiVersion"], credit["kind"]).validate(credit)
    container = transformer_container(documents, "credit")
    assert "--features=none" in container["args"]
    assert not any(a.startswith("--feature_repo") for a in container["args"])
    assert "envFrom" not in container  # no feature-store ConfigMap
    variables = env(documents, "credit")
    assert variables["RISKSERVE_TRANSFORMER_POLICY_URI"]["value"] == URI
    assert variables["AWS_ENDPOINT_URL"]["value"].startswith("http")
    assert "RISKSERVE_FEATURES_REDIS_PASSWORD" not in variables
    # fraud has no features and no policy-only setting: no transformer
    assert "transformer" not in isvc(documents, "fraud")["spec"]
    assert admits_transformers(predictor_sources(documents))


def test_without_a_policy_the_chart_refuses_in_one_line() -> None:
    stderr = helm_refusal(DEFAULT_VALUES, "models.credit.transformer.features=none")
    assert (
        "models.credit.transformer.features: none is a policy-only transformer: set "
        "models.credit.transformer.policyUri"
    ) in stderr


def test_an_unknown_features_mode_is_refused_by_the_schema() -> None:
    stderr = helm_refusal(DEFAULT_VALUES, "models.credit.transformer.features=sideways")
    assert "features" in stderr


def kustomize_render() -> Render:
    return Render("kustomize", "policy-only", kustomize(OVERLAY))


def helm_render() -> Render:
    documents = helm_template(
        DEFAULT_VALUES,
        "--set",
        "models.credit.transformer.features=none",
        "--set",
        f"models.credit.transformer.policyUri={COMPONENT_URI}",
    )
    return Render("helm", "policy-only", documents)


def test_kustomize_renders_the_charts_policy_only_inference_services() -> None:
    from_kustomize = kustomize_render()
    from_helm = helm_render()
    container = transformer_container(from_kustomize.documents, "credit")
    assert container["args"][-1] == "--features=none"
    assert "envFrom" not in container
    variables = env(from_kustomize.documents, "credit")
    assert variables["RISKSERVE_TRANSFORMER_POLICY_URI"]["value"] == COMPONENT_URI
    assert variables["AWS_ENDPOINT_URL"]["value"] == "http://seaweedfs:8333"
    for name in ("fraud", "credit"):
        kustomize_spec = copy.deepcopy(from_kustomize.named("InferenceService", name))
        helm_spec = copy.deepcopy(from_helm.named("InferenceService", name))
        # S3's in-cluster address is the one thing each tool names its own way
        # (the chart's release-prefixed Service, the base's `seaweedfs`).
        for spec in (kustomize_spec, helm_spec):
            for variable in (
                spec["spec"]
                .get("transformer", {"containers": [{}]})["containers"][0]
                .get("env", [])
            ):
                if variable["name"] == "AWS_ENDPOINT_URL":
                    variable["value"] = "<s3>"
        assert kustomize_spec["spec"] == helm_spec["spec"], name
    # Nothing of the feature store: no ConfigMap, Redis or Feast Job.
    names = {d["metadata"]["name"] for d in from_kustomize.documents}
    assert not {"riskserve-feature-store", "redis", "feast-apply"} & names
    # The predictors admit the transformers; the transformers have their own fence.
    assert admits_transformers(predictor_sources(from_kustomize.documents))
    assert from_kustomize.named("NetworkPolicy", "transformers")


@pytest.mark.parametrize("render", [kustomize_render, helm_render])
def test_the_policy_only_configuration_passes_every_render_check(render: Any) -> None:
    passes_every_render_check(render())
