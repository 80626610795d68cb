"""Settings of the training jobs, read once from the environment at start."""

from __future__ import annotations

import os

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class TrainingSettings(BaseSettings):
    """Where the jobs register models and how long they wait for the registry."""

    model_config = SettingsConfigDict(env_prefix="RISKSERVE_TRAINING_", extra="ignore")

    mlflow_tracking_uri: str = Field(
        "http://127.0.0.1:5000",
        validation_alias=AliasChoices(
            "MLFLOW_TRACKING_URI", "RISKSERVE_TRAINING_MLFLOW_TRACKING_URI"
        ),
    )
    """The MLflow tracking server (MLflow's own variable keeps its name)."""

    registry_timeout_s: float = 10.0
    """Seconds one call to MLflow may take before the job gives up on it."""

    registry_retries: int = 1
    """Retries of a failed MLflow call; with the timeout, bounds a dead server to ~30 s."""

    git_commit: str | None = None
    """The source commit to tag versions with; images set it, checkouts ask git."""

    def apply_client_limits(self) -> None:
        """Bound MLflow's HTTP client so an unreachable server fails fast, not after
        MLflow's default of minutes of retries. Variables the user set win."""
        os.environ.setdefault(
            "MLFLOW_HTTP_REQUEST_TIMEOUT", str(int(self.registry_timeout_s))
        )
        os.environ.setdefault(
            "MLFLOW_HTTP_REQUEST_MAX_RETRIES", str(self.registry_retries)
        )
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")
        os.environ["MLFLOW_TRACKING_URI"] = self.mlflow_tracking_uri


def quiet_tensorflow_logs() -> None:
    """Keep TensorFlow's C++ start-up banner off the job's console (unless set)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def passive_openmp_threads() -> None:
    """OpenMP (LightGBM, scikit-learn's compiled parts) lets idle threads wait
    passively unless the user set OMP_WAIT_POLICY. Its threads spin by default: on a
    2-core machine with other work running, an 800-tree fit on 140,000 rows took 301 s
    with 2 threads spinning, 31 s with 1 thread, and 14 s with 2 waiting passively.
    The OpenMP runtime reads the variable once, when it is loaded, so the training
    package calls this as it is imported."""
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
