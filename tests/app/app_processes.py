"""The app as a real process on a free loopback port, and Debian's Chromium."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from riskserve.localplatform.processes import ManagedProcess, free_port

REPO_ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO_ROOT / "test-artifacts"
APP_API_KEY = "app-test-key-not-a-secret"
CHROMIUM = "/usr/bin/chromium"
FRAUD_REVISION = "fraud-predictor-00002"


@dataclass
class AppProcess:
    process: ManagedProcess
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.process.stop()


def app_env(settings: dict[str, str]) -> dict[str, str]:
    """The shell's environment without any RISKSERVE_/GRADIO_ variable, plus `settings`."""
    base = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("RISKSERVE_", "GRADIO_"))
    }
    return {**base, "GRADIO_ANALYTICS_ENABLED": "False", **settings}


def start_app(
    logs: Path, settings: dict[str, str], timeout: float = 90.0
) -> AppProcess:
    port = free_port()
    process = ManagedProcess(
        name="app",
        argv=[
            sys.executable,
            "-m",
            "riskserve.app",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        log_path=logs / f"app-{port}.log",
        env=app_env(settings),
        cwd=REPO_ROOT,
    ).start()
    try:
        process.wait_ready(f"http://127.0.0.1:{port}/", timeout)
    except Exception:
        process.stop()
        raise
    return AppProcess(process, port)


def ensure_chromium() -> str:
    """Debian's chromium, installed with apt-get when missing (Playwright's own browser
    download does not work here). Fails, never skips, when it cannot be had."""
    if Path(CHROMIUM).exists():
        return CHROMIUM
    if shutil.which("apt-get") is None or os.geteuid() != 0:
        pytest.fail(
            f"{CHROMIUM} is missing and cannot be installed here (needs root and "
            "apt-get): run `apt-get update && apt-get install -y chromium`"
        )
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in (
        ["apt-get", "update", "-q"],
        ["apt-get", "install", "-y", "-q", "--no-install-recommends", "chromium"],
    ):
        result = subprocess.run(
            command, env=env, capture_output=True, text=True, timeout=900
        )
        if result.returncode != 0:
            pytest.fail(
                f"`{' '.join(command)}` failed ({result.returncode}):\n"
                + "\n".join(result.stderr.splitlines()[-15:])
            )
    if not Path(CHROMIUM).exists():
        pytest.fail(f"apt-get installed chromium but {CHROMIUM} is not there")
    return CHROMIUM
