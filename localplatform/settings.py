"""Settings of the local platform: its state folder, gateway, MLflow and local S3."""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class PlatformSettings(BaseSettings):
    """Where the local platform keeps its state and which ports its services use."""

    model_config = SettingsConfigDict(env_prefix="RISKSERVE_", extra="ignore")

    state_dir: Path = Path(".riskserve")
    """Folder for the MLflow database, artifacts, logs and pidfiles."""

    host: str = "127.0.0.1"
    """Address the local services listen on (loopback by default)."""

    gateway_port: int = 8000
    """Port of the gateway that routes `/v2/models/<isvc>/...` by the traffic split."""

    predictor_ready_timeout_s: float = 120.0
    """How long a new revision's predictor may take to load its model."""

    gateway_max_body_bytes: int = 64 * 1024 * 1024
    """Largest request body the gateway forwards; larger is a 400."""

    gateway_deadline_s: float = Field(default=30.0, gt=0)
    """How long the gateway works on one request, retries included, when neither the
    `x-riskserve-timeout-ms` header nor the InferenceService's `predictor.timeout`
    sets it; then it answers 504."""

    gateway_try_timeout_s: float = Field(default=1.0, gt=0)
    """How long one revision may take before the request goes to another ready
    revision (inference is a pure function: retrying it is safe). The revision that
    did not answer is taken out of the split until its readiness probe answers. With no
    other ready revision, the request waits for its whole deadline instead."""

    readiness_probe_timeout_s: float = Field(default=0.5, gt=0)
    """How long the controller's readiness probe waits for a predictor's answer."""

    mlflow_port: int = 5000
    """Port of the local MLflow tracking server."""

    s3_port: int = 9000
    """Port of the local S3 server (SeaweedFS), when `--s3` is asked for."""

    s3_bucket: str = "mlflow"
    """Bucket the local S3 server creates and MLflow stores artifacts in."""

    artifacts_destination: str | None = None
    """Where MLflow stores artifacts: an s3:// URI (with MLFLOW_S3_ENDPOINT_URL and
    AWS_* set) or a folder; default a folder under the state folder."""

    aws_access_key_id: str | None = Field(
        None, validation_alias=AliasChoices("AWS_ACCESS_KEY_ID")
    )
    """Credentials for S3 (the standard variable); the local S3 server takes any."""

    aws_secret_access_key: str | None = Field(
        None, validation_alias=AliasChoices("AWS_SECRET_ACCESS_KEY")
    )
    """Secret for S3 (the standard variable)."""

    mlflow_s3_endpoint_url: str | None = Field(
        None, validation_alias=AliasChoices("MLFLOW_S3_ENDPOINT_URL")
    )
    """An S3 endpoint MLflow should use (the standard variable)."""

    @property
    def mlflow_url(self) -> str:
        return f"http://{self.host}:{self.mlflow_port}"

    @property
    def gateway_url(self) -> str:
        return f"http://{self.host}:{self.gateway_port}"


def inherited_environment() -> dict[str, str]:
    """The environment predictors inherit from the platform: S3 and MLflow variables,
    and any `RISKSERVE_SERVING_*` setting (an API key, say) meant for every predictor."""
    return dict(os.environ)
