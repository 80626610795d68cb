"""The monitor reads a log in S3 that the predictor wrote where KServe's storage
initializer variables pointed it: `S3_ENDPOINT` (host:port, no scheme) and
`S3_USE_HTTPS=0`, with no `AWS_ENDPOINT_URL` or `MLFLOW_S3_ENDPOINT_URL` set. Both
sides take their S3 client from the same settings (model/s3_client.py); before, the
monitor ignored these two and went to AWS."""

from __future__ import annotations

import json

import pytest
from riskserve.model.s3_client import S3Settings
from riskserve.monitoring.cli import main

from tests.monitoring.log_helpers import fraud_features, fraud_profile, write_log

pytestmark = pytest.mark.e2e


@pytest.fixture
def kserve_s3_env(s3_server, monkeypatch):
    """The environment of a pod whose S3 Secret KServe turned into variables."""
    for name in ("AWS_ENDPOINT_URL", "MLFLOW_S3_ENDPOINT_URL", "MLFLOW_TRACKING_URI"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("S3_ENDPOINT", s3_server.url.removeprefix("http://"))
    monkeypatch.setenv("S3_USE_HTTPS", "0")
    monkeypatch.setenv("S3_VERIFY_SSL", "0")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", s3_server.access_key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", s3_server.secret_key)
    monkeypatch.setenv("AWS_DEFAULT_REGION", s3_server.region)
    return s3_server


def test_the_monitor_reads_a_log_written_with_s3_endpoint_and_use_https_only(
    kserve_s3_env, tmp_path, capsys
):
    assert kserve_s3_env.url.startswith("http://")
    uri = f"s3://{kserve_s3_env.bucket}/kserve-variables/log"
    live = fraud_features(3_000, seed=41)
    live["distance_from_home"] *= 4
    # The predictor's own writer (riskserve.serving.inference_log), its settings from this
    # environment.
    write_log(uri, live)
    profile = fraud_profile().save(tmp_path / "profile.json")
    code = main(["fraud", "--log", uri, "--reference-data", str(profile), "--json"])
    result = json.loads(capsys.readouterr().out)
    assert code == 3
    assert result["rows"] == 3_000 and "distance_from_home" in result["drifted"]
    # The report went to the same server, beside the log.
    assert result["report"].startswith(f"{uri}/fraud/reports/drift-")
    key = result["report"].removeprefix(f"s3://{kserve_s3_env.bucket}/")
    body = S3Settings().s3_client().get_object(Bucket=kserve_s3_env.bucket, Key=key)
    assert "distance_from_home" in body["Body"].read().decode()
