"""Training jobs run as the user runs them: `python -m riskserve.training ...` in a subprocess,
against the real MLflow server and S3 endpoint started by tests/conftest.py."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]


@dataclass
class JobRun:
    code: int
    stdout: str
    stderr: str


def run_job(args: list[str], env: dict[str, str], timeout: float = 300) -> JobRun:
    result = subprocess.run(
        [sys.executable, "-m", "riskserve.training", *args],
        env={**os.environ, **env},
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    return JobRun(result.returncode, result.stdout, result.stderr)


@pytest.fixture(scope="session")
def registered_models(mlflow_server):
    """Both models trained once on small synthetic data and registered."""
    # A small search budget: the default trial of every candidate still runs in full.
    runs = {
        "fraud": run_job(
            ["fraud", "--rows", "20000", "--epochs", "5", "--budget", "5"],
            mlflow_server,
            timeout=600,
        ),
        "credit": run_job(
            ["credit", "--rows", "40000", "--budget", "5"], mlflow_server, timeout=600
        ),
    }
    for kind, job in runs.items():
        assert job.code == 0, (
            f"{kind} job failed:\n{job.stdout[-3000:]}\n{job.stderr[-3000:]}"
        )
    return runs


@pytest.fixture(scope="module")
def client(mlflow_server, monkeypatch_module):
    """An MLflow client of the test server; this process's mlflow calls go there too
    (never to a store in the working directory)."""
    import mlflow
    from mlflow import MlflowClient

    for key, value in mlflow_server.items():
        monkeypatch_module.setenv(key, value)
    mlflow.set_tracking_uri(mlflow_server["MLFLOW_TRACKING_URI"])
    return MlflowClient(mlflow_server["MLFLOW_TRACKING_URI"])


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as patch:
        yield patch


@pytest.fixture(scope="session")
def train_job():
    """Runs `python -m riskserve.training ARGS` with an environment, as a user would."""
    return run_job
