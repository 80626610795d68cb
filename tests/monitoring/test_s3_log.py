"""The monitor on a log in S3 (the real SeaweedFS of the tests, over HTTP), written by
the predictor's own S3 writer: read under the prefix, and the report put beside it."""

from __future__ import annotations

import json

import boto3
import pytest
from riskserve.monitoring.cli import main
from riskserve.serving.inference_log import InferenceLog
from riskserve.serving.settings import StorageSettings

from tests.monitoring.log_helpers import fraud_features, fraud_profile, write_log

pytestmark = pytest.mark.e2e


@pytest.fixture
def s3_env(s3_server, monkeypatch):
    for key, value in s3_server.client_env().items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    return s3_server


def test_a_log_under_an_s3_prefix_is_read_and_the_report_put_beside_it(
    s3_env, tmp_path, capsys, monkeypatch
):
    uri = f"s3://{s3_env.bucket}/monitor-test/log"
    live = fraud_features(4_000, seed=31)
    live["distance_from_home"] *= 4
    # The predictor's writer, pointed at S3: write_log's files go through its sink.
    monkeypatch.setattr(
        "tests.monitoring.log_helpers.InferenceLog",
        lambda _root, storage, batch_size: InferenceLog(
            uri, StorageSettings(), batch_size=batch_size
        ),
    )
    write_log(tmp_path / "unused", live)
    profile = fraud_profile().save(tmp_path / "profile.json")
    code = main(["fraud", "--log", uri, "--reference-data", str(profile), "--json"])
    result = json.loads(capsys.readouterr().out)
    assert code == 3
    assert result["rows"] == 4_000 and "distance_from_home" in result["drifted"]
    assert result["report"].startswith(f"{uri}/fraud/reports/drift-")
    s3 = boto3.client("s3", **StorageSettings().boto3_client_kwargs())
    key = result["report"].removeprefix(f"s3://{s3_env.bucket}/")
    body = s3.get_object(Bucket=s3_env.bucket, Key=key)["Body"].read().decode()
    assert "distance_from_home" in body
    # Another model's name under the same prefix: exit 2, naming what is there.
    assert main(["credit", "--log", uri, "--reference-data", str(profile)]) == 2
    assert "fraud" in capsys.readouterr().err
