"""Settings of the local platform: its state folder, gateway, MLflow and local S3."""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path

from pydantic import AliasChoices, Field, SecretStr
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

    gateway_grpc_port: int = Field(default=8001, ge=0, le=65535)
    """Port of the gateway's gRPC side (`inference.GRPCInferenceService`), routed by the
    same traffic split, deadlines, retries, shadow and key as HTTP; 0 turns it off."""

    gateway_predictor_port: int = Field(default=0, ge=0, le=65535)
    """Port of the gateway's internal predictor listener on loopback, where transformers
    reach an InferenceService's predictor component (KServe's `<isvc>-predictor`
    service); 0 picks a free port at start."""

    direct_predictor_routes: bool = True
    """Transformers call their predictor revision directly while it alone takes the
    predictor component's traffic (no shadow), one hop fewer (direct_routes.py);
    false: always through the predictor listener, which then counts every request."""

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

    platform_admin_key: SecretStr | None = None
    """`RISKSERVE_PLATFORM_ADMIN_KEY`: the key the control API's changes (apply, patch,
    delete) require. Without it, the serving key guards them too. Reading routes
    (status, traffic, `/metrics`) take either key. With no key at all, the control API
    answers loopback clients only, and the gateway refuses a non-loopback address."""

    serving_api_key: SecretStr | None = Field(
        None, validation_alias=AliasChoices("RISKSERVE_SERVING_API_KEY")
    )
    """The predictors' key (every predictor inherits it); the CLI sends it to the
    control API when no admin key is set."""

    gateway_allowed_hosts: list[str] = []
    """Host names the control API answers to besides loopback and `host` (a JSON list,
    e.g. `["riskserve.internal"]`): any other `Host` header is refused, so a web page
    that rebinds its own name to 127.0.0.1 gets nothing."""

    gateway_header_timeout_s: float = Field(default=10.0, gt=0)
    """A connection whose request head is not complete within this many seconds is
    closed (slow clients must not hold the gateway's descriptors)."""

    gateway_body_timeout_s: float = Field(default=30.0, gt=0)
    """A request body that sends nothing for this long is answered 408 and closed."""

    gateway_max_concurrent_requests: int = Field(default=512, ge=1)
    """Requests the gateway works on at once; beyond it the answer is a 503 with
    `Retry-After` (health probes and `/metrics` are never refused)."""

    gateway_max_in_flight_bytes: int = Field(default=512 * 1024 * 1024, ge=1024)
    """Declared request bodies the gateway holds at once (it reads each whole before
    forwarding it): beyond it, a 503 with `Retry-After`, so 30 concurrent 60 MB bodies
    cannot take its memory."""

    max_apply_bytes: int = Field(default=1024 * 1024, ge=1024)
    """Largest YAML body `POST /platform/apply` reads (1 MiB: a KServe object is at most
    1.5 MiB in etcd, and the local platform's are a few hundred bytes)."""

    max_documents_per_apply: int = Field(default=20, ge=1)
    """InferenceServices in one apply."""

    max_inferenceservices: int = Field(default=50, ge=1)
    """InferenceServices the platform holds in total."""

    max_revisions_per_service: int = Field(default=20, ge=3)
    """Revisions kept per InferenceService: beyond it the oldest without traffic are
    forgotten; when every kept revision still has traffic, the apply is refused."""

    max_predictor_processes: int = Field(default=16, ge=1)
    """Predictor processes the platform runs at once (each holds a model in memory,
    about 110 MB): an apply that would need more is refused."""

    model_roots: list[Path] = []
    """Folders a local `storageUri` may lie in (a JSON list), besides the state folder,
    the working directory and the system's temporary folder. Any other local path is
    refused without saying whether it exists."""

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

    @property
    def control_key(self) -> str | None:
        """The key the CLI sends to the control API: the admin key, else the serving
        key, else none."""
        for key in (self.platform_admin_key, self.serving_api_key):
            if key is not None and key.get_secret_value():
                return key.get_secret_value()
        return None

    def exposure_problem(self) -> str | None:
        """Why the gateway must not start as configured: a non-loopback address with
        no key would open the control API to the network."""
        if self.control_key is None and not is_loopback(self.host):
            return (
                f"refusing to listen on {self.host} without a key: set "
                "RISKSERVE_PLATFORM_ADMIN_KEY (or RISKSERVE_SERVING_API_KEY), or use "
                "RISKSERVE_HOST=127.0.0.1"
            )
        return None


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and `localhost`."""
    host = host.strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


# prometheus_client's multiprocess folder: every process that has it sums its metrics
# with every other's in that folder, so two revisions would report each other's
# requests. Importing Feast sets it in its own process (feast's metrics module), which
# a program that imports Feast and starts the platform would pass on.
NOT_INHERITED = ("PROMETHEUS_MULTIPROC_DIR", "PROMETHEUS_MULTIPROCESS_DIR")


def inherited_environment() -> dict[str, str]:
    """The environment predictors inherit from the platform: S3 and MLflow variables,
    and any `RISKSERVE_SERVING_*` setting (an API key, say) meant for every predictor;
    never a prometheus_client multiprocess folder (each revision keeps its own
    metrics; a predictor's `--workers` sets its own)."""
    return {k: v for k, v in os.environ.items() if k not in NOT_INHERITED}
