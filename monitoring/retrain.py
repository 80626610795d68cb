"""The retraining loop: on drift, run the training job, validate what it registered
(`riskserve report`), and stop there: a person approves a version before it serves.

The training job registers the new version as a draft `challenger` (with
`--promote-if-better` when there is no rollout: it still never becomes `champion`
unapproved). The loop then generates the version's validation report, which makes it
`validated` (riskserve.governance records that, in one place), and names the command a
person runs to approve it. With `--rollout auto` it starts the automatic canary of that
version; the rollout controller refuses an unapproved version before any traffic
moves, and the loop says so in one line: only the development override
(RISKSERVE_ROLLOUT_ALLOW_UNAPPROVED=true) lets the canary run and the rollout move
`champion` when it promotes.

Every step runs as a child process by its command line (`python -m
riskserve.training`, `python -m riskserve report`, `python -m riskserve rollout`),
never imported: monitoring stays out of the training and governance rooms (and so
TensorFlow), and each step prints its own progress and exit code, as a person would
run them.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

# The training job's last line names the version it registered.
REGISTERED = re.compile(r"^registered (\S+) v(\d+) ")
# The rollout controller's refusal of a version nobody approved (rollout/controller.py
# check_promotable); any other exit 2 of the rollout is a failure of the loop.
REFUSED = "refused to promote"
REPORTED_BY = "riskserve monitor (retraining loop)"


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


def report_command(registered_model: str, version: str, out: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "riskserve",
        "report",
        f"{registered_model}/{version}",
        "--out",
        str(out),
        "--by",
        REPORTED_BY,
    ]


def rollout_command(
    isvc: str, registered_model: str, version: str, extra: list[str]
) -> list[str]:
    return [
        sys.executable,
        "-m",
        "riskserve",
        "rollout",
        "start",
        isvc,
        "--model",
        f"models:/{registered_model}/{version}",
        "--auto",
        *extra,
    ]


def _run_echoed(command: list[str], echo: TextIO) -> tuple[int, list[str]]:
    """Run `command` with its stdout (`echo` is sys.stdout) or its stderr passed
    through line by line as it comes; its exit code and those lines."""
    on_stdout = echo is sys.stdout
    process = subprocess.Popen(  # noqa: S603 -- our own commands, no shell
        command,
        text=True,
        stdout=subprocess.PIPE if on_stdout else None,
        stderr=None if on_stdout else subprocess.PIPE,
    )
    pipe = process.stdout if on_stdout else process.stderr
    assert pipe is not None
    lines = []
    for line in pipe:
        echo.write(line)
        echo.flush()
        lines.append(line.rstrip("\n"))
    return process.wait(), lines


def _approve_line(registered_model: str, version: str, isvc: str) -> str:
    return (
        f"a person approves it: `riskserve approve {registered_model} {version} --by "
        f"NAME --note TEXT`, then `riskserve rollout start {isvc} --model "
        f"models:/{registered_model}/{version} --auto`"
    )


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
    """0 when the new version is trained and validated and stops there (without a
    rollout, or when the rollout refused it as unapproved), or, with the development
    override, was promoted; the rollout's 3 when its gates rolled the canary back.
    RetrainError when a step failed (training, the report, the rollout for any other
    reason than the approval gate)."""
    if not Path(data).is_file():
        raise RetrainError(f"--data {data}: no such file")
    command = training_command(
        kind, registered_model, data, training_args or [], rollout
    )
    say("retraining: " + " ".join(command[1:]))
    code, lines = _run_echoed(command, sys.stdout)
    if code != 0:
        raise RetrainError(f"the training job failed (exit {code}); nothing rolled out")
    found = [m for m in map(REGISTERED.match, lines) if m]
    if not found or found[-1].group(1) != registered_model:
        raise RetrainError(
            "the training job did not say which version it registered; nothing "
            "validated or rolled out"
        )
    version = found[-1].group(2)

    with tempfile.TemporaryDirectory(prefix="riskserve-retrain-") as folder:
        # The report is logged with the version (validation/report-<sha>.html); the
        # local copy goes with the folder.
        out = Path(folder) / f"{registered_model}-v{version}-validation.html"
        command = report_command(registered_model, version, out)
        say("validating: " + " ".join(command[1:]))
        code = subprocess.run(command, check=False).returncode  # noqa: S603
    if code != 0:
        raise RetrainError(
            f"the validation report of {registered_model} v{version} failed (exit "
            f"{code}); it stays a draft, nothing rolled out"
        )
    if not rollout:
        say(
            f"{registered_model} v{version} is validated; the loop stops there: "
            + _approve_line(registered_model, version, isvc)
        )
        return 0
    command = rollout_command(isvc, registered_model, version, rollout_args or [])
    say("rolling out: " + " ".join(command[1:]))
    code, lines = _run_echoed(command, sys.stderr)
    if code == 2 and any(REFUSED in line for line in lines[-3:]):
        say(
            f"not rolled out: {registered_model} v{version} is validated, not "
            "approved, and the rollout refused it; the loop stops there: "
            + _approve_line(registered_model, version, isvc)
        )
        return 0
    if code not in (0, 3):
        raise RetrainError(f"the rollout failed to run (exit {code})")
    say(
        "the new version is promoted"
        if code == 0
        else "the rollout's gates rolled the new version back"
    )
    return code
