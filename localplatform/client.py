"""The local platform's client: start and stop its daemon, and call its control API
(apply, patch, status, traffic) over HTTP. The CLI and the rollout controller both use
it; nothing here imports the CLI."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from riskserve.localplatform.orphans import stop_orphans
from riskserve.localplatform.processes import (
    ManagedProcess,
    http_ok,
    port_open,
    read_pidfile,
    stop_pid,
)
from riskserve.localplatform.settings import PlatformSettings, inherited_environment


class PlatformError(RuntimeError):
    """The platform refused a request or is not running; the message says why."""


def pidfile(settings: PlatformSettings) -> Path:
    return settings.state_dir / "pids" / "platform.pid"


def running(settings: PlatformSettings) -> bool:
    return read_pidfile(pidfile(settings)) is not None and http_ok(
        f"{settings.gateway_url}/v2/health/live"
    )


def start_daemon(settings: PlatformSettings, env: dict[str, str] | None = None) -> bool:
    """Start the daemon unless it runs; True when this call started it."""
    if running(settings):
        return False
    problem = settings.exposure_problem()
    if problem:
        raise PlatformError(problem)
    if port_open(settings.host, settings.gateway_port):
        raise PlatformError(
            f"port {settings.gateway_port} is taken by another program; set "
            "RISKSERVE_GATEWAY_PORT to a free port"
        )
    if settings.gateway_grpc_port and port_open(
        settings.host, settings.gateway_grpc_port
    ):
        raise PlatformError(
            f"port {settings.gateway_grpc_port} (the gateway's gRPC) is taken by another "
            "program; set RISKSERVE_GATEWAY_GRPC_PORT to a free port, or 0 to turn it off"
        )
    process = ManagedProcess(
        name="riskserve platform",
        argv=[sys.executable, "-m", "riskserve.localplatform.daemon"],
        log_path=settings.state_dir / "logs" / "platform.log",
        env=None if env is None else {**inherited_environment(), **env},
        pidfile=pidfile(settings),
    ).start()
    process.wait_ready(f"{settings.gateway_url}/v2/health/live", timeout=30)
    return True


@dataclass(frozen=True)
class Shutdown:
    """What `stop_daemon` did."""

    daemon_stopped: bool
    """A running daemon was stopped (it stops the predictors it started)."""
    orphans_stopped: tuple[int, ...] = ()
    """PIDs of predictors a dead daemon had left running, stopped now."""


def stop_daemon(settings: PlatformSettings) -> Shutdown:
    """Stop the daemon, then any predictor of this platform that outlived an earlier
    daemon (one killed with SIGKILL, say): riskserve.localplatform.orphans."""
    pid = read_pidfile(pidfile(settings))
    pidfile(settings).unlink(missing_ok=True)
    daemon_stopped = pid is not None and stop_pid(pid, grace=20)
    return Shutdown(daemon_stopped, tuple(stop_orphans(settings)))


def _call(
    settings: PlatformSettings,
    method: str,
    path: str,
    headers: dict[str, str] | None = None,
    **kwargs,
) -> dict:
    headers = dict(headers or {})
    key = settings.control_key
    if key is not None:
        headers["authorization"] = f"Bearer {key}"
    try:
        response = httpx.request(
            method,
            f"{settings.gateway_url}{path}",
            timeout=30,
            headers=headers,
            **kwargs,
        )
    except httpx.HTTPError as exc:
        raise PlatformError(
            f"the platform at {settings.gateway_url} is not reachable ({exc}); "
            "start it with `riskserve up`"
        ) from None
    try:
        body = response.json()
    except ValueError:
        body = {"error": f"HTTP {response.status_code}: {response.text[:200]}"}
    if response.status_code >= 400:
        raise PlatformError(body.get("error", response.text[:200]))
    return body


def apply_yaml(settings: PlatformSettings, text: str) -> list[str]:
    return _call(
        settings,
        "POST",
        "/platform/apply",
        headers={"content-type": "application/yaml"},
        content=text.encode(),
    )["applied"]


def delete(settings: PlatformSettings, name: str) -> list[str]:
    return _call(settings, "DELETE", f"/platform/inferenceservices/{name}")["deleted"]


def patch(settings: PlatformSettings, name: str, changes: dict) -> list[str]:
    return _call(
        settings, "POST", f"/platform/inferenceservices/{name}/patch", json=changes
    )["applied"]


def status(settings: PlatformSettings) -> dict:
    return _call(settings, "GET", "/platform/status")


def traffic(settings: PlatformSettings) -> dict:
    return _call(settings, "GET", "/platform/traffic")


def wait_ready(
    settings: PlatformSettings, names: list[str], timeout: float, say=print
) -> None:
    """Until each named service's latest revision is ready or has failed."""
    deadline = time.monotonic() + timeout
    while True:
        report = status(settings)
        pending = []
        for item in report["inferenceservices"]:
            if item["metadata"]["name"] not in names:
                continue
            # Every component: the predictor, and the transformer in front of it.
            for component in item["status"]["components"].values():
                latest = component["latestCreatedRevision"]
                revision = report["revisions"].get(latest, {})
                if revision.get("failed"):
                    continue
                if component["latestReadyRevision"] != latest:
                    pending.append(latest)
        if not pending:
            return
        if time.monotonic() > deadline:
            raise PlatformError(
                f"not ready within {timeout:.0f} s: {', '.join(pending)}"
            )
        time.sleep(0.3)


def summary_lines(report: dict) -> list[str]:
    lines = []
    for item in report["inferenceservices"]:
        name = item["metadata"]["name"]
        st = item["status"]
        ready: dict[str, Any] = next(
            (c for c in st["conditions"] if c["type"] == "Ready"), {}
        )
        splits = []
        for component, state in st["components"].items():
            split = (
                ", ".join(
                    f"{t['revisionName']} {t['percent']}%" for t in state["traffic"]
                )
                or "no traffic"
            )
            splits.append(
                split if component == "predictor" else f"{component}: {split}"
            )
        lines.append(
            f"{name}: ready={ready.get('status')} url={st['url']} traffic: "
            + "; ".join(splits)
        )
        for condition in st["conditions"]:
            if condition["status"] == "False":
                lines.append(
                    f"  {condition['type']}: {condition.get('reason')}: {condition.get('message')}"
                )
    return lines
