"""The developer's local backing services: an S3-compatible endpoint and MLflow.

`riskserve services up` starts them as processes on loopback with pidfiles under the
state folder; `riskserve services down` stops exactly those PIDs. Tests start the same
servers through `start_s3` and `start_mlflow` on free ports.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from localplatform.processes import ManagedProcess, http_ok, read_pidfile, stop_pid


@dataclass(frozen=True)
class S3Endpoint:
    url: str
    bucket: str
    access_key: str
    secret_key: str
    region: str = "us-east-1"

    def client_env(self) -> dict[str, str]:
        """The standard variables boto3, MLflow and KServe's storage code read."""
        return {
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_DEFAULT_REGION": self.region,
            "AWS_ENDPOINT_URL": self.url,
            "MLFLOW_S3_ENDPOINT_URL": self.url,
            "S3_USE_HTTPS": "0",
            "S3_VERIFY_SSL": "0",
        }


def create_bucket(endpoint: S3Endpoint) -> None:
    import boto3

    s3 = boto3.client(
        "s3",
        endpoint_url=endpoint.url,
        aws_access_key_id=endpoint.access_key,
        aws_secret_access_key=endpoint.secret_key,
        region_name=endpoint.region,
    )
    existing = {b["Name"] for b in s3.list_buckets().get("Buckets", [])}
    if endpoint.bucket not in existing:
        s3.create_bucket(Bucket=endpoint.bucket)


def start_s3(
    state_dir: Path,
    port: int,
    bucket: str,
    access_key: str,
    secret_key: str,
    host: str = "127.0.0.1",
    pidfile: Path | None = None,
) -> tuple[ManagedProcess, S3Endpoint]:
    """Start moto's S3-compatible server as its own process and create `bucket`."""
    process = ManagedProcess(
        name="s3 (moto)",
        argv=[sys.executable, "-m", "moto.server", "-H", host, "-p", str(port)],
        log_path=state_dir / "logs" / "s3.log",
        pidfile=pidfile,
    ).start()
    url = f"http://{host}:{port}"
    process.wait_ready(f"{url}/moto-api/", timeout=60)
    endpoint = S3Endpoint(
        url=url, bucket=bucket, access_key=access_key, secret_key=secret_key
    )
    create_bucket(endpoint)
    return process, endpoint


def start_mlflow(
    state_dir: Path,
    port: int,
    artifacts_destination: str,
    env: dict[str, str],
    host: str = "127.0.0.1",
    backend_store_uri: str | None = None,
    pidfile: Path | None = None,
) -> tuple[ManagedProcess, str]:
    """Start `mlflow server` (SQLite backend, proxied artifacts) as its own process."""
    state_dir.mkdir(parents=True, exist_ok=True)
    backend = backend_store_uri or f"sqlite:///{(state_dir / 'mlflow.db').resolve()}"
    process = ManagedProcess(
        name="mlflow server",
        argv=[
            sys.executable,
            "-m",
            "mlflow",
            "server",
            "--host",
            host,
            "--port",
            str(port),
            "--backend-store-uri",
            backend,
            "--artifacts-destination",
            artifacts_destination,
            "--serve-artifacts",
            "--workers",
            "1",
        ],
        log_path=state_dir / "logs" / "mlflow.log",
        env=env,
        pidfile=pidfile,
    ).start()
    url = f"http://{host}:{port}"
    process.wait_ready(f"{url}/health", timeout=120)
    return process, url


def stop_from_pidfile(pidfile: Path) -> bool:
    """Stop the process whose PID we recorded; False when it was not running."""
    pid = read_pidfile(pidfile)
    pidfile.unlink(missing_ok=True)
    return pid is not None and stop_pid(pid)


__all__ = [
    "S3Endpoint",
    "create_bucket",
    "http_ok",
    "start_mlflow",
    "start_s3",
    "stop_from_pidfile",
]
