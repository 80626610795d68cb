"""Settings of `riskserve report | approve | reject`, read once from the environment."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from pydantic import AliasChoices, Field
from pydantic_settings import SettingsConfigDict
from riskserve.model.mlflow_client import MlflowClientSettings

if TYPE_CHECKING:
    from mlflow import MlflowClient


class GovernanceSettings(MlflowClientSettings):
    """Where the registry is, and how long a call to it may take."""

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

    def mlflow_client(self) -> MlflowClient:
        self.bind_mlflow_client(
            self.mlflow_tracking_uri, self.mlflow_timeout_s, retries=1
        )
        # MLflow draws a progress bar per download; the command prints one line.
        os.environ["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] = "false"
        from mlflow import MlflowClient

        return MlflowClient(self.mlflow_tracking_uri)
