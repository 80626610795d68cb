"""The predictor and the monitor build their S3 client from one settings class, so the
same environment gives both the same endpoint, TLS and credentials."""

from __future__ import annotations

import pytest
from riskserve.monitoring.settings import MonitorSettings
from riskserve.serving.settings import StorageSettings
from riskserve.serving.storage import s3_client

pytestmark = pytest.mark.inprocess

STANDARD = (
    "AWS_ENDPOINT_URL",
    "S3_ENDPOINT",
    "S3_USE_HTTPS",
    "S3_VERIFY_SSL",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_DEFAULT_REGION",
    "AWS_REGION",
)


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch):
    for name in STANDARD:
        monkeypatch.delenv(name, raising=False)


@pytest.mark.parametrize(
    ("environment", "endpoint", "use_ssl"),
    [
        # KServe's storage-initializer variables alone.
        (
            {"S3_ENDPOINT": "seaweedfs.s3:8333", "S3_USE_HTTPS": "0"},
            "http://seaweedfs.s3:8333",
            False,
        ),
        ({"S3_ENDPOINT": "s3.example.com"}, "https://s3.example.com", True),
        # AWS_ENDPOINT_URL wins over S3_ENDPOINT.
        (
            {"AWS_ENDPOINT_URL": "http://127.0.0.1:9000", "S3_ENDPOINT": "other:1"},
            "http://127.0.0.1:9000",
            False,
        ),
    ],
)
def test_predictor_and_monitor_reach_the_same_endpoint(
    monkeypatch, environment, endpoint, use_ssl
):
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("S3_VERIFY_SSL", "false")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "key")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    predictor = StorageSettings().boto3_client_kwargs()
    assert predictor == MonitorSettings().boto3_client_kwargs()
    assert predictor == {
        "verify": False,
        "endpoint_url": endpoint,
        "use_ssl": use_ssl,
        "aws_access_key_id": "key",
        "aws_secret_access_key": "secret",
        "region_name": "eu-west-1",
    }


def test_the_client_goes_where_the_settings_say(monkeypatch):
    monkeypatch.setenv("S3_ENDPOINT", "127.0.0.1:9")
    monkeypatch.setenv("S3_USE_HTTPS", "0")
    client = s3_client(StorageSettings())
    assert client.meta.endpoint_url == "http://127.0.0.1:9"
    assert MonitorSettings().s3_client().meta.endpoint_url == "http://127.0.0.1:9"
