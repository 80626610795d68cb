"""The transformers' inference log on a cluster, chart and kustomize alike: each
transformer container turns its log on from the ConfigMap that turns the predictors'
on (the drift monitor's, optional: without it the log is off), and spools on its
writable emptyDir, where a restarted container finds what a killed one left."""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import Any

import pytest
from riskserve.transformer.settings import TransformerSettings

from tests.k8s.k8s_render import helm_template, render
from tests.k8s.test_feature_store import VALUES

pytestmark = pytest.mark.k8s

LOG_URI = "RISKSERVE_TRANSFORMER_INFERENCE_LOG_URI"
SPOOL = "RISKSERVE_TRANSFORMER_INFERENCE_LOG_SPOOL_DIR"


def transformer_container(documents: Any, model: str) -> dict[str, Any]:
    (isvc,) = [
        d
        for d in documents
        if d["kind"] == "InferenceService" and d["metadata"]["name"] == model
    ]
    (container,) = isvc["spec"]["transformer"]["containers"]
    return container


@pytest.mark.parametrize("source", ["helm", "kustomize"])
@pytest.mark.parametrize("model", ["fraud", "credit"])
def test_each_transformer_logs_where_the_predictors_do_spooled_on_its_volume(
    source: str, model: str
) -> None:
    container = transformer_container(render(source, "feature-store").documents, model)
    env = {e["name"]: e for e in container["env"]}
    assert env[LOG_URI]["valueFrom"] == {
        "configMapKeyRef": {
            "name": "riskserve-inference-log",
            "key": "RISKSERVE_SERVING_INFERENCE_LOG_URI",
            "optional": True,
        }
    }
    # The root filesystem is read-only: the spool must be on the mounted emptyDir.
    spool = PurePosixPath(env[SPOOL]["value"])
    mounts = [PurePosixPath(m["mountPath"]) for m in container["volumeMounts"]]
    assert any(spool.is_relative_to(m) for m in mounts), (spool, mounts)
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    # The names are the transformer's own settings.
    fields = {
        f"RISKSERVE_TRANSFORMER_{f.upper()}" for f in TransformerSettings.model_fields
    }
    assert {LOG_URI, SPOOL} <= fields


def test_the_key_is_the_one_the_drift_monitors_configmap_sets() -> None:
    """With the drift monitor on, the ConfigMap the transformers read holds the key,
    so predictors and transformers log to the same root."""
    documents = helm_template(VALUES, "--set", "driftMonitor.enabled=true")
    (config,) = [
        d
        for d in documents
        if d["kind"] == "ConfigMap"
        and d["metadata"]["name"] == "riskserve-inference-log"
    ]
    uri = config["data"]["RISKSERVE_SERVING_INFERENCE_LOG_URI"]
    assert uri.startswith("s3://")
    container = transformer_container(documents, "fraud")
    assert {e["name"] for e in container["env"]} >= {LOG_URI, SPOOL}
