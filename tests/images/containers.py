"""The images as a user runs them: built by images/build.sh and started by images/engine
(podman with the project's configuration where no Docker engine runs, docker where one
does), on the host's network and free loopback ports."""

from __future__ import annotations

import json
import subprocess
import time
import tomllib
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
ENGINE = REPO_ROOT / "images" / "engine"
BUILD = REPO_ROOT / "images" / "build.sh"
# Every container a test starts carries this name prefix, so none is left behind and
# no one else's container is touched.
NAME_PREFIX = "riskserve-test-"


def image_ref(name: str) -> str:
    """The tag images/build.sh gives: the package version (the chart's appVersion)."""
    version = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"][
        "version"
    ]
    return f"ghcr.io/riskserve/riskserve-{name}:{version}"


def engine(
    *args: str, timeout: float = 120, check: bool = True
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [str(ENGINE), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if check and result.returncode != 0:
        raise AssertionError(
            f"images/engine {' '.join(args[:3])} ... exited {result.returncode}: "
            f"{result.stderr.strip()[-2000:]}"
        )
    return result


def build(names: list[str], progress: Callable[[str], None]) -> None:
    """images/build.sh NAMES, its progress lines passed on as they come."""
    process = subprocess.Popen(
        [str(BUILD), *names],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=REPO_ROOT,
    )
    lines = []
    assert process.stdout is not None
    for line in process.stdout:
        lines.append(line.rstrip())
        progress(line.rstrip())
    if process.wait() != 0:
        raise AssertionError("images/build.sh failed:\n" + "\n".join(lines[-20:]))


@dataclass
class Container:
    """One container started detached; removed (never just left) by `remove`."""

    image: str
    run_args: list[str]
    command: list[str] = field(default_factory=list)
    name: str = field(default_factory=lambda: NAME_PREFIX + uuid.uuid4().hex[:10])
    started: float = 0.0

    def start(self) -> Container:
        self.started = time.monotonic()
        engine(
            "run",
            "-d",
            "--name",
            self.name,
            "--network",
            "host",
            *self.run_args,
            self.image,
            *self.command,
        )
        return self

    def state(self) -> dict:
        out = engine("inspect", "--format", "{{json .State}}", self.name).stdout
        return json.loads(out)

    def logs(self) -> str:
        result = engine("logs", self.name, check=False)
        return result.stdout + result.stderr

    def exec(self, *args: str) -> str:
        return engine("exec", self.name, *args).stdout

    def stop(self, grace: int = 10) -> float:
        """`stop` with the engine's grace period; the seconds it took."""
        started = time.monotonic()
        engine("stop", "-t", str(grace), self.name, timeout=grace + 60)
        return time.monotonic() - started

    def remove(self) -> None:
        engine("rm", "-f", self.name, check=False, timeout=60)


def run_once(
    image: str, run_args: list[str], command: list[str], timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """`run --rm`: the container's exit code and output."""
    return engine(
        "run",
        "--rm",
        "--name",
        NAME_PREFIX + uuid.uuid4().hex[:10],
        "--network",
        "host",
        *run_args,
        image,
        *command,
        timeout=timeout,
        check=False,
    )
