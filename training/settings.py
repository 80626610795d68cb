"""Settings of the training jobs, read once from the environment at start."""

from __future__ import annotations

import os

from pydantic import AliasChoices, Field
from pydantic_settings import SettingsConfigDict
from riskserve.model.mlflow_settings import MlflowClientSettings


class TrainingSettings(MlflowClientSettings):
    """Where the jobs register models and how long they wait for the registry."""

    model_config = SettingsConfigDict(env_prefix="RISKSERVE_TRAINING_", extra="ignore")

    mlflow_tracking_uri: str = Field(
        "http://127.0.0.1:5000",
        validation_alias=AliasChoices(
            "MLFLOW_TRACKING_URI", "RISKSERVE_TRAINING_MLFLOW_TRACKING_URI"
        ),
    )
    """The MLflow tracking server (MLflow's own variable keeps its name)."""

    registry_timeout_s: float = Field(
        10.0,
        gt=0,
        validation_alias=AliasChoices(
            "MLFLOW_HTTP_REQUEST_TIMEOUT", "RISKSERVE_TRAINING_REGISTRY_TIMEOUT_S"
        ),
    )
    """Seconds one call to MLflow may take before the job gives up on it (MLflow's
    own variable, when set, wins)."""

    registry_retries: int = Field(
        1,
        ge=0,
        validation_alias=AliasChoices(
            "MLFLOW_HTTP_REQUEST_MAX_RETRIES", "RISKSERVE_TRAINING_REGISTRY_RETRIES"
        ),
    )
    """Retries of a failed MLflow call; with the timeout, bounds a dead server to ~30 s
    (MLflow's own variable, when set, wins)."""

    protected_columns: list[str] = []
    """Protected attributes (e.g. `["age", "sex"]`, JSON): a job whose data would make
    one of them a model input refuses to train (fair lending; `--protected` adds to
    it). Names are matched case-insensitively."""

    allow_unapproved: bool = Field(
        False, validation_alias="RISKSERVE_ROLLOUT_ALLOW_UNAPPROVED"
    )
    """Development only, the rollout's own override read by its own name (one concept,
    docs/governance.md): a job may make its new version `champion` though nobody
    approved it. By default a job registers a draft and leaves `champion` alone; an
    approved version becomes champion when `riskserve rollout promote` promotes it (a
    first version, with no champion to canary against: `riskserve approve ...
    --champion`)."""

    git_commit: str | None = None
    """The source commit to tag versions with; images set it, checkouts ask git."""

    def apply_client_limits(self) -> None:
        """Bound MLflow's HTTP client so an unreachable server fails fast, not after
        MLflow's default of minutes of retries, and keep its "🏃 View run NAME at: URL"
        lines (four per fraud job) and INFO lines off the console: the job prints the
        version's URL itself."""
        self.bind_mlflow_client(
            self.mlflow_tracking_uri, self.registry_timeout_s, self.registry_retries
        )


def quiet_tensorflow_logs() -> None:
    """Keep TensorFlow's C++ start-up banners off the job's console (unless set).

    TensorFlow 2.21 prints "oneDNN custom operations are on ..." (with absl's "All log
    messages before absl::InitializeLog() ..." line) twice as it is imported, whatever
    TF_CPP_MIN_LOG_LEVEL says; only turning oneDNN's custom operations off removes it.
    For the fraud DNN (64-32 units, batch 512) they bought nothing measurable: 4 epochs
    on 140,000 rows took 2.7 to 3.7 s of CPU with them and 3.0 to 4.0 s without, 3
    runs each, on this 2-core machine while it was loaded."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")


def passive_openmp_threads() -> None:
    """OpenMP (LightGBM, scikit-learn's compiled parts) lets idle threads wait
    passively unless the user set OMP_WAIT_POLICY. Its threads spin by default: on a
    2-core machine with other work running, an 800-tree fit on 140,000 rows took 301 s
    with 2 threads spinning, 31 s with 1 thread, and 14 s with 2 waiting passively.
    The OpenMP runtime reads the variable once, when it is loaded, so the training
    package calls this as it is imported."""
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
