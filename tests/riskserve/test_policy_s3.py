"""A policy applied to an MLflow server whose artifacts live in S3 (the cluster's
layout): `riskserve policy status` gives each version's `s3://` location, and the
transformer's loader reads the stored YAML from it over real HTTP (SeaweedFS on
loopback), without MLflow."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from riskserve.transformer.policy import load_policy
from riskserve.transformer.policy_schema import PolicyError

from riskserve.cli import main
from tests.fixtures.contract_models import fraud_model

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
MODEL = "fraud-s3"  # a name of the fraud kind no other test registers


def test_a_policy_stored_in_s3_is_read_back_by_the_transformers_loader(
    mlflow_server, tmp_path, monkeypatch, capsys
):
    import mlflow
    from riskserve.model.specs import FRAUD
    from riskserve.training.registry import log_and_register_onnx

    for key, value in mlflow_server.items():
        monkeypatch.setenv(key, value)
    monkeypatch.chdir(tmp_path)
    mlflow.set_tracking_uri(mlflow_server["MLFLOW_TRACKING_URI"])
    mlflow.set_experiment(MODEL)
    example = {n: np.ones((2, 1), np.float32) for n in FRAUD.feature_names}
    outputs = {
        "fraud_probability": np.array([0.1, 0.9], np.float32),
        "is_fraud": np.array([False, True]),
    }
    with mlflow.start_run():
        log_and_register_onnx(fraud_model(), MODEL, example, outputs, {})
    policy_file = tmp_path / "policy.yaml"
    policy_file.write_text(
        (REPO / "policies" / "fraud.yaml")
        .read_text()
        .replace("model: fraud\n", f"model: {MODEL}\n")
    )

    assert main(["policy", "apply", str(policy_file), "--alias", "champion"]) == 0
    assert "registered version 1" in capsys.readouterr().out
    assert main(["policy", "status", "--model", MODEL]) == 0
    line = capsys.readouterr().out.splitlines()[1]
    # applied is validated (checked against the model version it names)
    assert line.startswith("  version 1 [champion] validated sha256 ")
    assert "for fraud-s3/1" in line
    uri = line.split()[-1]
    assert uri.startswith("s3://mlflow/artifacts/") and uri.endswith("/policy")

    stored = load_policy(uri)  # the S3 settings of the environment, as in a pod
    assert stored.text == policy_file.read_bytes()
    assert load_policy(uri + "/policy.yaml").version == stored.version
    with pytest.raises(PolicyError, match="cannot read the policy"):
        load_policy("s3://mlflow/no/such/prefix")
