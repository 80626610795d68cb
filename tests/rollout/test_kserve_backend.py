"""The kserve backend: the merge patches it sends and the status it reads.

No Kubernetes API server can run on these machines, so the boundary is kept to one
object, `CustomObjectsApi`, which these tests replace with a recorder. Everything on
our side of it is real: the patches are applied (RFC 7386) to the InferenceServices
the chart renders and validated against KServe's CRD, and the status objects under
tests/testdata/kserve are validated against the CRD before they are parsed.
"""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml
from riskserve.governance.approvals import decide, record_report
from riskserve.governance.status import APPROVED
from riskserve.localplatform.isvc_schema import isvc_errors
from riskserve.rollout.controller import (
    MODEL_VERSION_ANNOTATION,
    KServeBackend,
    PredictorStatus,
    Rollout,
    RolloutError,
    artifact_s3_uri,
)
from riskserve.rollout.settings import RolloutSettings

pytestmark = pytest.mark.e2e

REPO_ROOT = Path(__file__).resolve().parents[2]
TESTDATA = REPO_ROOT / "tests" / "testdata" / "kserve"


def merge_patch(target, patch):
    """RFC 7386 JSON merge patch, as the API server applies it."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


class RecordingApi:
    """Stands in for kubernetes.client.CustomObjectsApi: keeps one object per name,
    applies merge patches to it, and records what was sent."""

    def __init__(self, objects: dict[str, dict]) -> None:
        self.objects = objects
        self.patches: list[dict] = []

    def get_namespaced_custom_object(self, group, version, namespace, plural, name):
        assert (group, version, plural) == (
            "serving.kserve.io",
            "v1beta1",
            "inferenceservices",
        )
        if name not in self.objects:
            raise LookupError(f"inferenceservices.serving.kserve.io {name!r} not found")
        return copy.deepcopy(self.objects[name])

    def patch_namespaced_custom_object(
        self, group, version, namespace, plural, name, body
    ):
        self.patches.append(copy.deepcopy(body))
        self.objects[name] = merge_patch(self.objects[name], body)
        return self.objects[name]


@pytest.fixture
def base_fraud() -> dict:
    documents = yaml.safe_load_all(
        (REPO_ROOT / "manifests/base/inference-services.yaml").read_text()
    )
    (fraud,) = [d for d in documents if d and d["metadata"]["name"] == "fraud"]
    return fraud


def test_patches_validate_against_the_crd(base_fraud):
    api = RecordingApi({"fraud": base_fraud})
    rollout = Rollout(
        KServeBackend("riskserve", api),
        # An s3:// location, not a registry version: the patches are under test, not
        # the approval gate (tests/governance).
        RolloutSettings(backend="kserve", allow_unapproved=True),
        say=lambda m: None,
    )
    rollout.start("fraud", "s3://mlflow/artifacts/1/models/m-9/artifacts", 10)
    patched = api.objects["fraud"]
    assert isvc_errors(patched) == []
    assert patched["spec"]["predictor"]["canaryTrafficPercent"] == 10
    assert patched["spec"]["predictor"]["model"]["storageUri"].endswith("m-9/artifacts")
    assert patched["spec"]["predictor"]["model"]["modelFormat"] == {
        "name": "onnx"
    }  # kept

    rollout.set_percent("fraud", 50)
    assert isvc_errors(api.objects["fraud"]) == []
    api.objects["fraud"]["status"] = yaml.safe_load(
        (TESTDATA / "canary-10.yaml").read_text()
    )["status"]
    rollout.promote("fraud")
    assert "canaryTrafficPercent" not in api.objects["fraud"]["spec"]["predictor"]
    assert isvc_errors(api.objects["fraud"]) == []
    rollout.rollback("fraud")
    assert api.objects["fraud"]["spec"]["predictor"]["canaryTrafficPercent"] == 0
    assert isvc_errors(api.objects["fraud"]) == []
    for body in api.patches:
        assert set(body) <= {"spec", "metadata"}


def test_a_bad_percent_or_unknown_service_sends_nothing(base_fraud):
    api = RecordingApi({"fraud": base_fraud})
    rollout = Rollout(
        KServeBackend("riskserve", api),
        RolloutSettings(backend="kserve"),
        say=lambda m: None,
    )
    with pytest.raises(RolloutError, match="from 0 to 100"):
        rollout.start("fraud", "s3://b/p", 150)
    with pytest.raises(RolloutError, match="'credit' not found"):
        rollout.start("credit", "s3://b/p", 10)
    with pytest.raises(RolloutError, match="local platform only"):
        rollout.start("fraud", "s3://b/p", 10, shadow=True)
    assert api.patches == []


@pytest.mark.parametrize(
    ("recording", "expected"),
    [
        (
            "canary-10.yaml",
            (
                "fraud-predictor-00002",
                "fraud-predictor-00001",
                10,
                "fraud-predictor-00002 10%, fraud-predictor-00001 90%",
            ),
        ),
        (
            "promoted.yaml",
            (None, "fraud-predictor-00002", None, "fraud-predictor-00002 100%"),
        ),
        (
            "failed-canary.yaml",
            (
                "fraud-predictor-00003",
                "fraud-predictor-00002",
                20,
                "fraud-predictor-00002 100%",
            ),
        ),
    ],
)
def test_status_parsing_on_recorded_kserve_objects(recording, expected):
    isvc = yaml.safe_load((TESTDATA / recording).read_text())
    assert (
        isvc_errors(isvc) == []
    )  # the recording is in KServe's shape, status included
    status = PredictorStatus.from_isvc(isvc)
    assert (
        status.canary,
        status.latest_rolledout,
        status.canary_percent,
        status.split(),
    ) == expected


def test_promote_moves_the_champion_alias_only_on_promote(mlflow_server):
    from mlflow import MlflowClient

    client = MlflowClient(mlflow_server["MLFLOW_TRACKING_URI"])
    name = "fraud-alias-test"
    client.create_registered_model(name)
    for _ in range(2):
        client.create_model_version(name, source="s3://mlflow/artifacts/placeholder")
    client.set_registered_model_alias(name, "champion", "1")
    # The realistic path: version 2 has a validation report and is approved.
    record_report(client, name, "2", "ab" * 32, "validation/report.html", "validator")
    decide(client, name, "2", APPROVED, "head of model risk", "report reviewed")

    isvc = yaml.safe_load((TESTDATA / "canary-10.yaml").read_text())
    isvc["metadata"]["annotations"][MODEL_VERSION_ANNOTATION] = f"{name}/2"
    api = RecordingApi({"fraud": copy.deepcopy(isvc)})
    settings = RolloutSettings(
        backend="kserve", mlflow_tracking_uri=mlflow_server["MLFLOW_TRACKING_URI"]
    )
    rollout = Rollout(KServeBackend("riskserve", api), settings, say=lambda m: None)
    rollout.rollback("fraud")
    assert client.get_model_version_by_alias(name, "champion").version == "1"
    api.objects["fraud"] = copy.deepcopy(isvc)
    rollout.promote("fraud")
    assert client.get_model_version_by_alias(name, "champion").version == "2"


def test_models_uri_becomes_the_s3_location_kserve_reads():
    uri = artifact_s3_uri(
        "mlflow-artifacts:/1/models/m-abc/artifacts", "s3://mlflow/artifacts"
    )
    assert uri == "s3://mlflow/artifacts/1/models/m-abc/artifacts"
    assert artifact_s3_uri("s3://other/x", "s3://mlflow/artifacts") == "s3://other/x"
    with pytest.raises(RolloutError, match="KServe cannot read"):
        artifact_s3_uri("file:///tmp/mlruns/1/x", "s3://mlflow/artifacts")
