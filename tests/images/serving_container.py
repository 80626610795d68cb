"""The serving image started as KServe starts it, for the image tests."""

from __future__ import annotations

import time

import httpx
import yaml

from tests.images.containers import REPO_ROOT, Container

RUNTIME = REPO_ROOT / "manifests" / "base" / "serving-runtime.yaml"


def kserve_args(model_name: str, http_port: int, grpc_port: int) -> list[str]:
    """The container arguments of the project's ServingRuntime, as KServe fills them
    in; only the ports change, for the host's network."""
    runtime = yaml.safe_load(RUNTIME.read_text())
    (container,) = runtime["spec"]["containers"]
    ports = {"--http_port": http_port, "--grpc_port": grpc_port}
    args = []
    for arg in container["args"]:
        flag = arg.split("=", 1)[0]
        arg = arg.replace("{{.Name}}", model_name)
        args.append(f"{flag}={ports[flag]}" if flag in ports else arg)
    return args


def wait_ready(url: str, container: Container, timeout: float = 60) -> float:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/v2/health/ready", timeout=1).status_code == 200:
                return time.monotonic() - container.started
        except httpx.HTTPError:
            pass
        if not container.state().get("Running", False):
            break
        time.sleep(0.1)
    raise AssertionError(f"the predictor never got ready:\n{container.logs()[-3000:]}")
