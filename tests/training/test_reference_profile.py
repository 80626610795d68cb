"""The reference profile a training job stores with every version, and the monitor
reading it back from the registry (real MLflow server, S3 behind it)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import mlflow
import numpy as np
import onnxruntime as ort
import pytest
from mlflow import MlflowClient
from riskserve.model.reference_profile import (
    ARTIFACT_NAME,
    VERSION_TAG,
    ReferenceProfile,
)
from riskserve.model.specs import get_spec

from tests.monitoring.log_helpers import fraud_features, write_log

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]


def version_of(job) -> str:
    return re.search(r"registered \w+ v(\d+)", job.stdout).group(1)


@pytest.fixture(autouse=True)
def mlflow_env(mlflow_server, monkeypatch):
    """This process resolves `models:/` too: point its registry at the server."""
    for key, value in mlflow_server.items():
        monkeypatch.setenv(key, value)


@pytest.fixture(scope="module")
def client(mlflow_server):
    return MlflowClient(mlflow_server["MLFLOW_TRACKING_URI"])


def download_profile(client, name: str, version: str, tmp_path: Path):
    info = client.get_model_version(name, version)
    assert info.tags[VERSION_TAG] == ARTIFACT_NAME
    local = mlflow.artifacts.download_artifacts(
        run_id=info.run_id,
        artifact_path=info.tags[VERSION_TAG],
        dst_path=str(tmp_path),
        tracking_uri=client._tracking_client.tracking_uri,
    )
    return info, ReferenceProfile.load(Path(local))


@pytest.mark.parametrize("kind", ["fraud", "credit"])
def test_every_version_carries_its_reference_profile(
    registered_models, client, kind, tmp_path
):
    version = version_of(registered_models[kind])
    info, profile = download_profile(client, kind, version, tmp_path)
    spec = get_spec(kind)
    assert list(profile.features) == spec.feature_names
    run_metrics = client.get_run(info.run_id).data.metrics
    assert profile.metrics["pr_auc"] == pytest.approx(run_metrics["pr_auc"])
    score = "fraud_probability" if kind == "fraud" else "default_probability"
    assert score in profile.outputs
    assert profile.outputs[score].kind == "numeric"
    if kind == "credit":
        assert "credit_score" in profile.outputs
        status = profile.features["account_status"]
        assert 0.3 < status.missing_rate < 0.8  # missing is normal input
        merchant = profile.features["merchant_group"]
        assert merchant.kind == "categorical"
        assert set(merchant.categories) <= set(
            spec.feature("merchant_group").categories
        )
    else:
        assert profile.features["distance_from_home"].kind == "numeric"
        assert set(profile.features["used_chip"].categories) == {"0.0", "1.0"}
        assert "threshold" in profile.decision


def scored_log(client, version: str, root: Path, shift: float, tmp_path: Path) -> None:
    """Synthetic fraud traffic scored by the registered version itself, logged."""
    local = mlflow.artifacts.download_artifacts(
        f"models:/fraud/{version}",
        dst_path=str(tmp_path / "model"),
        tracking_uri=client._tracking_client.tracking_uri,
    )
    (path,) = Path(local).rglob("*.onnx")
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    frame = fraud_features(6_000, seed=99)
    frame["ratio_to_median_purchase_price"] *= shift
    feeds = {c: frame[[c]].to_numpy(np.float32) for c in frame.columns}
    (probability,) = session.run(["fraud_probability"], feeds)
    write_log(root, frame, version=version, scores=np.asarray(probability))


def monitor(env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "riskserve.monitoring", *args],
        env={**os.environ, **env},
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_the_monitor_judges_traffic_against_the_registry_profile(
    registered_models, client, mlflow_server, tmp_path
):
    version = version_of(registered_models["fraud"])
    scored_log(client, version, tmp_path / "calm", 1.0, tmp_path / "a")
    calm = monitor(
        mlflow_server, "fraud", "--log", str(tmp_path / "calm"), "--json", "--no-report"
    )
    assert calm.returncode == 0, calm.stderr
    assert json.loads(calm.stdout)["drifted"] == []

    scored_log(client, version, tmp_path / "shifted", 3.0, tmp_path / "b")
    shifted = monitor(
        mlflow_server, "fraud", "--log", str(tmp_path / "shifted"), "--json"
    )
    assert shifted.returncode == 3, shifted.stderr
    result = json.loads(shifted.stdout)
    assert "ratio_to_median_purchase_price" in result["drifted"]
    assert "fraud_probability" in result["drifted"]  # the scores moved with it
    # The report is an artifact of a monitoring run too.
    runs = client.search_runs(
        [client.get_experiment_by_name("monitoring").experiment_id],
        filter_string="tags.status = 'drift'",
    )
    assert runs
    files = [f.path for f in client.list_artifacts(runs[0].info.run_id, "monitoring")]
    assert files and files[0].endswith(".html")


def test_a_version_without_a_profile_points_to_reference_data(
    registered_models, client, mlflow_server, tmp_path
):
    version = version_of(registered_models["fraud"])
    scored_log(client, version, tmp_path / "log", 1.0, tmp_path / "m")
    client.delete_model_version_tag("fraud", version, VERSION_TAG)
    try:
        missing = monitor(mlflow_server, "fraud", "--log", str(tmp_path / "log"))
        assert missing.returncode == 2
        assert "has no reference profile" in missing.stderr
        assert "--reference-data" in missing.stderr
        reference = fraud_features(20_000, seed=5)
        reference.to_csv(tmp_path / "train.csv", index=False)
        built = monitor(
            mlflow_server,
            "fraud",
            "--log",
            str(tmp_path / "log"),
            "--reference-data",
            str(tmp_path / "train.csv"),
            "--json",
            "--no-report",
        )
        assert built.returncode == 0, built.stderr
        result = json.loads(built.stdout)
        # Scored by the version's own model: the score has a reference too.
        assert [o["name"] for o in result["outputs"]] == ["fraud_probability"]
        assert result["drifted"] == []
    finally:
        client.set_model_version_tag("fraud", version, VERSION_TAG, ARTIFACT_NAME)
