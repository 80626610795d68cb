"""`riskserve services up|down|status`: MLflow (and optionally a local S3 and a Redis
for the feature store's online store) for a developer.

The processes outlive the command that starts them; their PIDs are kept in pidfiles
under the state folder, and `down` stops exactly those.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from riskserve.localplatform.processes import http_ok, port_open, read_pidfile, stop_pid
from riskserve.localplatform.settings import PlatformSettings
from riskserve.services import (
    RedisEndpoint,
    S3Endpoint,
    create_bucket,
    remove_seaweedfs_sockets,
    start_mlflow,
    start_redis,
    start_s3,
)


def _pidfile(settings: PlatformSettings, name: str) -> Path:
    return settings.state_dir / "pids" / f"{name}.pid"


def _local_s3_credentials(settings: PlatformSettings) -> tuple[str, str]:
    """Credentials for the local S3 server: the user's, or a pair made once and kept
    (mode 600) in the state folder; none is ever written in the repo."""
    if settings.aws_access_key_id and settings.aws_secret_access_key:
        return settings.aws_access_key_id, settings.aws_secret_access_key
    path = settings.state_dir / "local-s3-credentials"
    if path.exists():
        key, secret = path.read_text().split()
        return key, secret
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    key, secret = "riskserve-local", secrets.token_hex(16)
    path.write_text(f"{key} {secret}\n")
    path.chmod(0o600)
    return key, secret


def _local_redis_password(settings: PlatformSettings) -> str:
    """The local Redis' password: made once and kept (created mode 600) in the
    state folder; none is ever written in the repo."""
    path = settings.state_dir / "local-redis-password"
    if path.exists():
        return path.read_text().strip()
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    password = "r" + secrets.token_hex(16)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(password + "\n")
    return password


def local_redis(settings: PlatformSettings) -> RedisEndpoint:
    """Where `services up --redis` runs Redis: the platform's host, the feature
    layer's Redis port (RISKSERVE_FEATURES_REDIS_PORT, 6379 by default)."""
    from riskserve.features.store_config import FeatureStoreSettings

    port = FeatureStoreSettings().redis_port
    return RedisEndpoint(settings.host, port, _local_redis_password(settings))


def services_env(
    settings: PlatformSettings, use_s3: bool, use_redis: bool = False
) -> dict[str, str]:
    """The variables a client of the local services (a job, a predictor) needs."""
    env = {"MLFLOW_TRACKING_URI": settings.mlflow_url}
    if use_s3:
        key, secret = _local_s3_credentials(settings)
        endpoint = S3Endpoint(
            f"http://{settings.host}:{settings.s3_port}",
            settings.s3_bucket,
            key,
            secret,
        )
        env.update(endpoint.client_env())
    if use_redis:
        env.update(local_redis(settings).client_env())
    return env


def up(
    settings: PlatformSettings, use_s3: bool, say=print, use_redis: bool = False
) -> dict[str, str]:
    """Start what is not running yet; returns the client environment."""
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    env = services_env(settings, use_s3, use_redis)
    if use_redis:
        pidfile = _pidfile(settings, "redis")
        if read_pidfile(pidfile) is None:
            redis = local_redis(settings)
            if port_open(redis.host, redis.port):
                raise RuntimeError(
                    f"port {redis.port} is taken by another program; set "
                    "RISKSERVE_FEATURES_REDIS_PORT to a free port"
                )
            say(f"starting Redis (the online store) on {redis.host}:{redis.port}")
            start_redis(
                settings.state_dir,
                redis.port,
                redis.password,
                host=redis.host,
                pidfile=pidfile,
            )
    if use_s3:
        pidfile = _pidfile(settings, "s3")
        if read_pidfile(pidfile) is None:
            if port_open(settings.host, settings.s3_port):
                raise RuntimeError(
                    f"port {settings.s3_port} is taken by another program; set "
                    "RISKSERVE_S3_PORT to a free port"
                )
            key, secret = _local_s3_credentials(settings)
            say(f"starting the local S3 server on {env['AWS_ENDPOINT_URL']}")
            start_s3(
                settings.state_dir,
                settings.s3_port,
                settings.s3_bucket,
                key,
                secret,
                host=settings.host,
                pidfile=pidfile,
            )
        else:
            key, secret = _local_s3_credentials(settings)
            create_bucket(
                S3Endpoint(env["AWS_ENDPOINT_URL"], settings.s3_bucket, key, secret)
            )
    pidfile = _pidfile(settings, "mlflow")
    if read_pidfile(pidfile) is None or not http_ok(f"{settings.mlflow_url}/health"):
        if port_open(settings.host, settings.mlflow_port):
            raise RuntimeError(
                f"port {settings.mlflow_port} is taken by another program; set "
                "RISKSERVE_MLFLOW_PORT to a free port"
            )
        destination = settings.artifacts_destination or (
            f"s3://{settings.s3_bucket}/artifacts"
            if use_s3
            else str((settings.state_dir / "mlartifacts").resolve())
        )
        say(
            f"starting MLflow on {settings.mlflow_url} (artifacts in {destination}); "
            "first start takes up to a minute"
        )
        start_mlflow(
            settings.state_dir,
            settings.mlflow_port,
            destination,
            {**os.environ, **env},
            host=settings.host,
            pidfile=pidfile,
        )
    return env


def down(settings: PlatformSettings, say=print) -> None:
    for name in ("mlflow", "s3", "redis"):
        pidfile = _pidfile(settings, name)
        pid = read_pidfile(pidfile)
        if pid is None:
            pidfile.unlink(missing_ok=True)
            continue
        say(f"stopping {name} (pid {pid})")
        argv = _cmdline(pid)  # read before it is gone: its sockets are named there
        # SeaweedFS flushes its volumes on SIGTERM and may take up to 30 s.
        stop_pid(pid, grace=30.0 if name == "s3" else 10.0)
        pidfile.unlink(missing_ok=True)
        if name == "s3":
            remove_seaweedfs_sockets(argv)


def _cmdline(pid: int) -> list[str]:
    """The process's command line (Linux /proc; empty elsewhere or when gone)."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def status(settings: PlatformSettings) -> dict[str, str]:
    report = {}
    for name in ("mlflow", "s3", "redis"):
        pid = read_pidfile(_pidfile(settings, name))
        report[name] = f"running (pid {pid})" if pid else "stopped"
    return report
