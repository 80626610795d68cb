"""Predictor processes on free loopback ports, and the payloads under tests/testdata."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

import httpx
from riskserve.localplatform.processes import ManagedProcess, free_port

REPO_ROOT = Path(__file__).resolve().parents[2]
SPEC_DIR = REPO_ROOT / "third_party" / "kserve" / "open-inference-protocol"
TESTDATA = REPO_ROOT / "tests" / "testdata" / "serving"
API_KEY = "test-key-not-a-secret"
REVISION = "fraud-predictor-00003"


@dataclass
class Predictor:
    process: ManagedProcess
    http_port: int
    grpc_port: int
    client: httpx.Client

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def grpc_target(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    def infer(self, body: object, model: str = "fraud", **kwargs) -> httpx.Response:
        return self.client.post(f"/v2/models/{model}/infer", json=body, **kwargs)

    def stop(self) -> None:
        self.client.close()
        self.process.stop()


def start_predictor(
    logs: Path,
    label: str,
    model_name: str,
    model_dir: str | Path,
    env: dict[str, str] | None = None,
    args: tuple[str, ...] = (),
    wait: bool = True,
    timeout: float = 60.0,
    python_flags: tuple[str, ...] = (),
) -> Predictor:
    http_port, grpc_port = free_port(), free_port()
    # Only what the test sets: no RISKSERVE_SERVING_* leaks in from the shell.
    base = {k: v for k, v in os.environ.items() if not k.startswith("RISKSERVE_")}
    process = ManagedProcess(
        name=f"predictor {label}",
        argv=[
            sys.executable,
            *python_flags,
            "-m",
            "riskserve.serving",
            "--model_name",
            model_name,
            "--model_dir",
            str(model_dir),
            "--http_port",
            str(http_port),
            "--grpc_port",
            str(grpc_port),
            *args,
        ],
        log_path=logs / f"{label}.log",
        env={**base, "RISKSERVE_SERVING_HOST": "127.0.0.1", **(env or {})},
        cwd=REPO_ROOT,
    ).start()
    if wait:
        try:
            process.wait_ready(f"http://127.0.0.1:{http_port}/v2/health/ready", timeout)
        except Exception:
            process.stop()
            raise
    client = httpx.Client(base_url=f"http://127.0.0.1:{http_port}", timeout=30)
    return Predictor(process, http_port, grpc_port, client)


def load_testdata(name: str) -> dict:
    import json

    return json.loads((TESTDATA / name).read_text())
