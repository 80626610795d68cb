"""MLflow's client limits are read once, as settings, under MLflow's own variable
names where a user may already have set them, and written back for MLflow's client:
the value a job checks the registry with is the value MLflow's client waits with."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest
from pydantic import ValidationError
from riskserve.monitoring.settings import MonitorSettings
from riskserve.rollout.settings import RolloutSettings
from riskserve.training.settings import TrainingSettings

pytestmark = pytest.mark.inprocess

MLFLOW_VARIABLES = (
    "MLFLOW_TRACKING_URI",
    "MLFLOW_HTTP_REQUEST_TIMEOUT",
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR",
    "MLFLOW_LOGGING_LEVEL",
    "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT",
)


@pytest.fixture(autouse=True)
def clean_environment() -> Iterator[None]:
    """The code under test writes os.environ (that is its job): each test starts
    without MLflow's variables and leaves the environment as it found it."""
    saved = dict(os.environ)
    for name in MLFLOW_VARIABLES:
        os.environ.pop(name, None)
    yield
    os.environ.clear()
    os.environ.update(saved)


def test_defaults_are_written_for_mlflows_client() -> None:
    TrainingSettings().apply_client_limits()
    assert os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] == "10"
    assert os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] == "1"
    assert os.environ["MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR"] == "1"
    assert os.environ["MLFLOW_LOGGING_LEVEL"] == "WARNING"
    assert os.environ["MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT"] == "true"


def test_the_users_mlflow_variables_win_and_are_the_values_checked(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("RISKSERVE_TRAINING_REGISTRY_TIMEOUT_S", "60")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "3")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    settings = TrainingSettings()
    # The job's own reachability check uses the same wait as MLflow's client.
    assert settings.registry_timeout_s == 3
    assert settings.registry_retries == 0
    settings.apply_client_limits()
    assert os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] == "3"
    assert os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] == "0"
    monkeypatch.setenv("RISKSERVE_MONITOR_MLFLOW_TIMEOUT_S", "60")
    assert MonitorSettings().mlflow_timeout_s == 3
    assert RolloutSettings().mlflow_timeout_s == 3


def test_riskserve_names_apply_when_mlflows_are_unset(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("RISKSERVE_TRAINING_REGISTRY_TIMEOUT_S", "2.5")
    TrainingSettings().apply_client_limits()
    # MLflow takes whole seconds: rounded up, never down to 0 (no wait at all).
    assert os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] == "3"
    del os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"]
    monkeypatch.setenv("RISKSERVE_MONITOR_MLFLOW_TIMEOUT_S", "0.2")
    MonitorSettings().apply_mlflow_client()
    assert os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] == "1"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("MLFLOW_HTTP_REQUEST_TIMEOUT", "soon"),
        ("MLFLOW_HTTP_REQUEST_TIMEOUT", "0"),
        ("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "-1"),
        ("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "fast"),
        ("MLFLOW_LOGGING_LEVEL", "LOUD"),
    ],
)
def test_a_bad_mlflow_variable_fails_at_start_naming_it(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(name, value)
    for settings in (TrainingSettings, MonitorSettings, RolloutSettings):
        if settings is not TrainingSettings and name.endswith("MAX_RETRIES"):
            continue  # the monitor and rollouts retry once, whatever is set
        with pytest.raises(ValidationError, match=name):
            settings()


def test_a_rollout_against_a_dead_mlflow_fails_in_seconds() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    started = time.monotonic()
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "from riskserve.rollout.controller import resolve_model, RolloutError\n"
            "from riskserve.rollout.settings import RolloutSettings\n"
            "try:\n"
            "    resolve_model('models:/fraud/1', RolloutSettings(), for_kserve=False)\n"
            "except RolloutError as exc:\n"
            "    print('refused:', exc)\n",
        ],
        env={
            **{k: v for k, v in os.environ.items() if k not in MLFLOW_VARIABLES},
            "MLFLOW_TRACKING_URI": f"http://127.0.0.1:{port}",
            "MLFLOW_HTTP_REQUEST_TIMEOUT": "2",
        },
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    elapsed = time.monotonic() - started
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.startswith("refused: models:/fraud/1"), done.stdout
    # MLflow's default (5 retries, backoff 2, 120 s timeout) took minutes.
    assert elapsed < 60, elapsed
