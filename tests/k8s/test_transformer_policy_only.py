"""The policy-only transformer on a cluster: `models.<model>.transformer.features:
none` with a `policyUri` renders that model's transformer without the feature store
(`--features=none`, no Feast repository, no feature-store ConfigMap or Redis), reading
its policy from the S3 every component shares; the predictors' network policy lets
it in. Without a policy the chart refuses in one line."""

from __future__ import annotations

import subprocess
from typing import Any

import pytest

from tests.k8s.k8s_render import (
    CHART,
    CONFIGURATIONS,
    NAMESPACE,
    RELEASE,
    helm_template,
    kserve_validator,
    tool,
)
from tests.k8s.test_transformer_inference_log import transformer_container

pytestmark = pytest.mark.k8s

DEFAULT_VALUES = CONFIGURATIONS["default"][0]
URI = "s3://riskserve-models/mlflow/7/abc/artifacts/policy"
POLICY_ONLY = (
    "--set",
    "models.credit.transformer.features=none",
    "--set",
    f"models.credit.transformer.policyUri={URI}",
)


def isvc(documents: Any, name: str) -> dict[str, Any]:
    (found,) = [
        d
        for d in documents
        if d["kind"] == "InferenceService" and d["metadata"]["name"] == name
    ]
    return found


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
    env = {e["name"]: e for e in container["env"]}
    assert env["RISKSERVE_TRANSFORMER_POLICY_URI"]["value"] == URI
    assert env["AWS_ENDPOINT_URL"]["value"].startswith("http")
    assert "RISKSERVE_FEATURES_REDIS_PASSWORD" not in env
    # fraud has no features and no policy-only setting: no transformer
    assert "transformer" not in isvc(documents, "fraud")["spec"]
    # the predictors take traffic from the transformers
    (predictors,) = [
        d
        for d in documents
        if d["kind"] == "NetworkPolicy" and d["metadata"]["name"].endswith("predictors")
    ]
    sources = predictors["spec"]["ingress"][0]["from"]
    assert any(
        s.get("podSelector", {}).get("matchLabels", {}).get("component")
        == "transformer"
        for s in sources
    )


def test_without_a_policy_the_chart_refuses_in_one_line() -> None:
    done = subprocess.run(
        [
            str(tool("helm")),
            "template",
            RELEASE,
            str(CHART),
            "--namespace",
            NAMESPACE,
            "--values",
            str(DEFAULT_VALUES),
            "--set",
            "models.credit.transformer.features=none",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode != 0
    assert (
        "models.credit.transformer.features: none is a policy-only transformer: set "
        "models.credit.transformer.policyUri"
    ) in done.stderr


def test_an_unknown_features_mode_is_refused_by_the_schema() -> None:
    done = subprocess.run(
        [
            str(tool("helm")),
            "template",
            RELEASE,
            str(CHART),
            "--namespace",
            NAMESPACE,
            "--values",
            str(DEFAULT_VALUES),
            "--set",
            "models.credit.transformer.features=sideways",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode != 0
    assert "features" in done.stderr
