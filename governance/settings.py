"""Settings of `riskserve report | approve | reject | decisions`, read once from the
environment. S3 keeps the ecosystem's variable names (model/s3_client.py), so the
records pass reads the inference log with the variables the predictor wrote it with."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from pydantic import AliasChoices, Field
from pydantic_settings import SettingsConfigDict
from riskserve.model.mlflow_settings import MlflowClientSettings
from riskserve.model.s3_client import S3Settings

if TYPE_CHECKING:
    from mlflow import MlflowClient


RECORDS_RETENTION_DAYS = 762
"""25 months (Regulation B keeps an application, its decision and reasons that long),
rounded up to whole days."""


class GovernanceSettings(S3Settings, MlflowClientSettings):
    """Where the registry is, and how long a call to it may take; where the decision
    records are and how long they are kept."""

    model_config = SettingsConfigDict(
        env_prefix="RISKSERVE_GOVERNANCE_", extra="ignore"
    )

    mlflow_tracking_uri: str = Field(
        "http://127.0.0.1:5000",
        validation_alias=AliasChoices(
            "MLFLOW_TRACKING_URI", "RISKSERVE_GOVERNANCE_MLFLOW_TRACKING_URI"
        ),
    )
    """The MLflow registry holding the versions (MLflow's own variable keeps its name)."""

    mlflow_timeout_s: float = Field(
        10.0,
        gt=0,
        validation_alias=AliasChoices(
            "MLFLOW_HTTP_REQUEST_TIMEOUT", "RISKSERVE_GOVERNANCE_MLFLOW_TIMEOUT_S"
        ),
    )
    """Seconds one call to MLflow may take (MLflow's own variable, when set, wins)."""

    records_uri: str | None = None
    """The decision records: a folder or `s3://bucket/prefix` holding
    `date=YYYY-MM-DD/*.parquet`. `--records` overrides it."""

    inference_log_uri: str | None = None
    """The inference log the records pass compacts (the predictors' and
    transformers' RISKSERVE_*_INFERENCE_LOG_URI). `--log` overrides it."""

    records_retention_days: int = Field(RECORDS_RETENTION_DAYS, ge=1)
    """Days a decision record is kept: day partitions older are swept, and the S3
    lifecycle rule expires objects this old."""

    records_pushgateway: str | None = None
    """The Pushgateway the records pass pushes its counts to (lost lines, unwritten
    records). `--push` overrides it."""

    def mlflow_client(self) -> MlflowClient:
        self.bind_mlflow_client(
            self.mlflow_tracking_uri, self.mlflow_timeout_s, retries=1
        )
        # MLflow draws a progress bar per download; the command prints one line.
        os.environ["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] = "false"
        from mlflow import MlflowClient

        return MlflowClient(self.mlflow_tracking_uri)
