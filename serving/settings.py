"""The predictor's settings: read from the environment once, at start.

Everything the predictor reads from the environment is declared here, except the S3
client's variables, which it shares with the monitor (model/s3_client.py). Its own
settings carry the prefix `RISKSERVE_SERVING_`; the standard variables of the ecosystem
(S3, MLflow, KServe's TLS files) keep their own names.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from riskserve.model.s3_client import S3Settings


class StorageSettings(S3Settings):
    """Where models come from: S3 (`S3Settings`, shared with the monitor, which reads
    back the inference log this predictor writes) and MLflow, under their standard
    variable names."""

    mlflow_tracking_uri: str | None = Field(default=None, alias="MLFLOW_TRACKING_URI")
    """MLflow server that resolves `models:/name@alias` and `models:/name/version`."""

    mlflow_s3_endpoint_url: str | None = Field(
        default=None, alias="MLFLOW_S3_ENDPOINT_URL"
    )
    """S3 endpoint MLflow uses for artifacts; falls back to AWS_ENDPOINT_URL."""


class ServingSettings(BaseSettings):
    """The predictor's own settings (prefix `RISKSERVE_SERVING_`)."""

    model_config = SettingsConfigDict(env_prefix="RISKSERVE_SERVING_", extra="ignore")

    api_key: SecretStr | None = None
    """When set, inference and metadata need `Authorization: Bearer <key>` or
    `x-api-key: <key>`; health and /metrics stay open. Unset: auth is off."""

    max_batch_size: int = Field(default=100_000, ge=1)
    """Most rows one inference request may carry; more is a 400."""

    max_body_bytes: int = Field(default=64 * 1024 * 1024, ge=1024)
    """Largest REST request body (and gRPC message) accepted; larger is a 400."""

    model_version: str | None = None
    """Overrides the model version reported in metadata and responses (the MLflow
    version, else ONNX metadata_props `model_version`, else "1")."""

    revision: str | None = None
    """A revision name (set by a platform); when set it is returned on every REST
    response as header `x-riskserve-revision` and as gRPC trailing metadata."""

    inference_log_uri: str | None = None
    """Where to append inference records as JSON lines: a local folder or
    `s3://bucket/prefix`. Unset: no inference log."""

    inference_log_batch_size: int = Field(default=500, ge=1)
    """Most records in one published file/object."""

    inference_log_flush_seconds: float = Field(default=1.0, gt=0)
    """Longest a record waits in the spool before its file is published."""

    inference_log_max_file_bytes: int = Field(default=64 * 1024 * 1024, ge=1024)
    """A file is published once it holds this many bytes, even below the batch size."""

    inference_log_spool_dir: Path | None = None
    """Where records are appended before they are published. Default: `<root>/.spool`
    for a local log; for S3 a folder under the system's temporary folder: point it at
    a volume that outlives the container, so a restart publishes what a crash left."""

    inference_log_max_spool_bytes: int = Field(default=1024 * 1024 * 1024, ge=1024)
    """When the sink has failed for so long that the spool holds this much, new
    records are dropped and counted (`riskserve_inference_log_dropped`)."""

    inference_log_fsync: Literal["never", "interval"] = "never"
    """`never`: every record is written (`write(2)`) before its answer leaves, so a
    crash of the process loses none, but a power loss can lose what the OS had not
    yet written back (Linux: up to ~30 s). `interval`: also fsync the open file every
    `inference_log_fsync_seconds` and each file before it is published, so a power
    loss loses at most that interval."""

    inference_log_fsync_seconds: float = Field(default=1.0, gt=0)
    """The fsync interval of `inference_log_fsync=interval`."""

    http_header_timeout_seconds: float = Field(default=10.0, gt=0)
    """A connection whose request head (request line and headers) is not complete
    this long after it opened, or after the request's first byte, is closed (408
    when part of a request had come): slow-header clients cannot hold descriptors."""

    http_body_timeout_seconds: float = Field(default=30.0, gt=0)
    """A request whose body sends nothing for this long is closed (408)."""

    max_concurrent_requests: int = Field(default=256, ge=1)
    """Requests handled at once by one process; beyond it the answer is 503 with
    `Retry-After`, without reading the body. Health probes and /metrics are exempt."""

    max_concurrent_rpcs: int = Field(default=256, ge=1)
    """gRPC calls handled at once by one process (grpc.aio's
    `maximum_concurrent_rpcs`, health and metadata RPCs included); beyond it a call
    fails at once with RESOURCE_EXHAUSTED, so an overloaded process sheds load instead
    of queueing it without bound."""

    max_in_flight_body_bytes: int = Field(default=1024 * 1024 * 1024, ge=1024)
    """Sum of the declared bodies (Content-Length) of the requests being handled;
    a request that would go above it is a 503 with `Retry-After` (one request is
    always let in, up to `max_body_bytes`)."""

    retry_after_seconds: int = Field(default=1, ge=0)
    """The `Retry-After` of those 503s."""

    inline_max_rows: int = Field(default=256, ge=0)
    """Requests up to this many rows run on the event loop; larger ones run in a
    worker thread so they do not stall small requests."""

    onnx_threads: int = Field(default=1, ge=0)
    """onnxruntime intra-op threads (0: onnxruntime's default, one per core)."""

    host: str = "0.0.0.0"
    """Address the HTTP and gRPC servers listen on."""

    reuse_port: bool = False
    """Bind the HTTP port with SO_REUSEPORT. Set by `--workers N` for its worker
    processes, which share the ports; not for setting by hand."""

    prometheus_multiproc_dir: str | None = Field(
        default=None, validation_alias="PROMETHEUS_MULTIPROC_DIR"
    )
    """prometheus_client's multiprocess folder (its own variable), set by `--workers N`
    for its workers: `/metrics` then sums every worker's values."""

    metrics_dir: str | None = None
    """Where `--workers N` makes its fresh multiprocess-metrics folder (default the
    system's temporary folder; it must be writable, e.g. an emptyDir on /tmp)."""

    tls_cert_file: str | None = Field(
        default=None, validation_alias="KSERVE_TLS_CERT_FILE"
    )
    """KServe's fallback for `--ssl_certfile` (env KSERVE_TLS_CERT_FILE)."""

    tls_key_file: str | None = Field(
        default=None, validation_alias="KSERVE_TLS_KEY_FILE"
    )
    """KServe's fallback for `--ssl_keyfile` (env KSERVE_TLS_KEY_FILE)."""

    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    """Log level. Errors log one structured line each; requests are logged at DEBUG."""

    download_dir: Path | None = None
    """Folder to download remote models into (default: a fresh temporary folder)."""

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value


def load_settings() -> tuple[ServingSettings, StorageSettings]:
    """Read both settings classes from the environment (once, at start)."""
    return ServingSettings(), StorageSettings()


def worker_environment(extra: dict[str, str]) -> dict[str, str]:
    """The environment a `--workers N` parent hands its workers: its own, plus `extra`
    (the multiprocess-metrics folder and the reuse-port flag, which the workers' own
    settings then read)."""
    return {**os.environ, **extra}
