"""The monitor's settings: read from the environment once, at start.

Its own settings carry the prefix `RISKSERVE_MONITOR_`; S3 and MLflow keep the
ecosystem's standard variable names. The S3 client's settings are the predictor's own
(model/s3_client.py): the monitor reads the log with the very variables, KServe's
`S3_ENDPOINT` / `S3_USE_HTTPS` included, that the predictor wrote it with.
"""

from __future__ import annotations

from pydantic import AliasChoices, Field
from pydantic_settings import SettingsConfigDict
from riskserve.model.mlflow_settings import MlflowClientSettings
from riskserve.model.s3_client import S3Settings
from riskserve.monitoring.drift import Thresholds


class MonitorSettings(S3Settings, MlflowClientSettings):
    """Where the log is, the drift and degradation thresholds, where results go; S3
    as the predictor reaches it (`S3Settings`)."""

    model_config = SettingsConfigDict(env_prefix="RISKSERVE_MONITOR_", extra="ignore")

    log_uri: str | None = None
    """The inference log's root: a folder or `s3://bucket/prefix` (the predictors'
    RISKSERVE_SERVING_INFERENCE_LOG_URI). `--log` overrides it."""

    window: str = "24h"
    """The window read when no --since is given: the last N hours (`24h`) or days
    (`7d`)."""

    psi_threshold: float = Field(default=0.2, gt=0)
    """A feature or score drifted when its PSI reaches this (0.1: watch, 0.2: act)..."""

    p_value_threshold: float = Field(default=0.01, gt=0, lt=1)
    """...and its test (KS for numbers, chi-square for categories) is below this: the
    shift is both large and not chance."""

    missing_rate_threshold: float = Field(default=0.1, gt=0, le=1)
    """A feature also drifted when its missing rate moved by this much (absolute)."""

    metric_drop_threshold: float = Field(default=0.05, gt=0, lt=1)
    """Degraded when a realised metric (PR-AUC, ROC-AUC) falls this far (absolute)
    below the same metric on the training holdout."""

    min_rows: int = Field(default=500, ge=1)
    """Fewer rows than this for a version: reported, never judged (too few to tell)."""

    experiment: str = "monitoring"
    """The MLflow experiment of monitoring runs (the report is their artifact)."""

    mlflow_tracking_uri: str | None = Field(
        default=None,
        validation_alias=AliasChoices(
            "MLFLOW_TRACKING_URI", "RISKSERVE_MONITOR_MLFLOW_TRACKING_URI"
        ),
    )
    """The MLflow server holding the versions' reference profiles (MLflow's own
    variable keeps its name)."""

    mlflow_timeout_s: float = Field(
        10.0,
        gt=0,
        validation_alias=AliasChoices(
            "MLFLOW_HTTP_REQUEST_TIMEOUT", "RISKSERVE_MONITOR_MLFLOW_TIMEOUT_S"
        ),
    )
    """Seconds one call to MLflow may take (MLflow's own variable, when set, wins)."""

    def thresholds(self) -> Thresholds:
        """When a column has drifted: the one place the settings become `Thresholds`."""
        return Thresholds(
            self.psi_threshold, self.p_value_threshold, self.missing_rate_threshold
        )

    def apply_mlflow_client(self) -> None:
        """MLflow's client reads its own variables: the tracking server, a bounded
        wait, and no "View run ... at: URL" line on stdout, which would break `--json`
        (stdout holds the JSON object and nothing else)."""
        self.bind_mlflow_client(
            self.mlflow_tracking_uri, self.mlflow_timeout_s, retries=1
        )
