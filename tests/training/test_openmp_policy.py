"""Importing the training package makes OpenMP's idle threads wait passively (spinning
threads made an 800-tree fit 20x slower on a loaded 2-core machine), unless the user
chose a policy."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.inprocess


def policy_after_import(env_policy: str | None) -> str:
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    if env_policy is not None:
        env["OMP_WAIT_POLICY"] = env_policy
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "import os, training; print(os.environ['OMP_WAIT_POLICY'])",
        ],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return done.stdout.strip()


def test_the_training_package_sets_passive_waiting() -> None:
    assert policy_after_import(None) == "PASSIVE"


def test_a_users_own_policy_wins() -> None:
    assert policy_after_import("ACTIVE") == "ACTIVE"
