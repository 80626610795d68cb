"""The retraining loop: on drift, run the training job (`--promote-if-better`), then,
with `--rollout auto`, an automatic canary of the new challenger.

With a rollout, the training job registers the new version as `challenger` and leaves
`champion` alone: the rollout moves `champion` when it promotes, so a canary its gates
roll back never leaves the alias naming a version that serves no traffic.

Both run as child processes by their command lines (`python -m riskserve.training`, `python -m
riskserve rollout`), never imported: monitoring stays out of the training room (and so
TensorFlow), and each step prints its own progress and exit code, as a person would run
them.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path


class RetrainError(RuntimeError):
    """A step of the loop failed; the message names it and its exit code."""


def training_command(
    kind: str, registered_model: str, data: Path, extra: list[str], rollout: bool
) -> list[str]:
    promote = [] if rollout else ["--promote-if-better"]
    return [
        sys.executable,
        "-m",
        "riskserve.training",
        kind,
        "--data",
        str(data),
        "--model-name",
        registered_model,
        *promote,
        *extra,
    ]


def rollout_command(isvc: str, registered_model: str, extra: list[str]) -> list[str]:
    return [
        sys.executable,
        "-m",
        "riskserve",
        "rollout",
        "start",
        isvc,
        "--model",
        f"models:/{registered_model}@challenger",
        "--auto",
        *extra,
    ]


def run_loop(
    kind: str,
    isvc: str,
    registered_model: str,
    data: Path,
    rollout: bool,
    say: Callable[[str], None],
    training_args: list[str] | None = None,
    rollout_args: list[str] | None = None,
) -> int:
    """0 when trained (and, with rollout, promoted); the rollout's 3 when its gates
    rolled the canary back. RetrainError when a step could not run."""
    if not Path(data).is_file():
        raise RetrainError(f"--data {data}: no such file")
    command = training_command(
        kind, registered_model, data, training_args or [], rollout
    )
    say("retraining: " + " ".join(command[1:]))
    code = subprocess.run(command, check=False).returncode
    if code != 0:
        raise RetrainError(f"the training job failed (exit {code}); nothing rolled out")
    if not rollout:
        say(
            f"retrained; roll it out with: riskserve rollout start {isvc} --model "
            f"models:/{registered_model}@challenger --auto"
        )
        return 0
    command = rollout_command(isvc, registered_model, rollout_args or [])
    say("rolling out: " + " ".join(command[1:]))
    code = subprocess.run(command, check=False).returncode
    if code not in (0, 3):
        raise RetrainError(f"the rollout failed to run (exit {code})")
    say(
        "the new version is promoted"
        if code == 0
        else "the rollout's gates rolled the new version back"
    )
    return code
