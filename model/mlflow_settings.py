"""How every riskserve process talks to MLflow: one place for the client's limits.

MLflow's client reads its settings from its own environment variables, nothing else.
Training, monitoring and rollouts read those limits once, at start, as fields of their
settings classes (this mixin, under MLflow's own names, so a user's
`MLFLOW_HTTP_REQUEST_*` is the value used everywhere, checks included), and
`bind_mlflow_client` hands them to MLflow's client through MLflow's own setters
(`mlflow.environment_variables`: its client takes no timeout or retry argument, it
reads those variables on every request; this module never touches os.environ
itself), so an unreachable server
fails every one of them within the same bounded wait, never after MLflow's default of
minutes of retries, and none prints MLflow's "View run ... at: URL" lines on stdout.
"""

from __future__ import annotations

import logging
import math
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings
from riskserve.model import registry_tags

LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]


class MlflowClientSettings(BaseSettings):
    """MLflow client limits shared by every settings class that talks to MLflow. The
    timeout and retries are fields of each component's class (their defaults differ);
    these two are the same for all."""

    mlflow_backoff_factor: int = Field(
        1, ge=0, validation_alias="MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR"
    )
    """Backoff factor between MLflow's retries, whole seconds as MLflow reads it
    (MLflow's own variable; its default is 2)."""

    mlflow_logging_level: LogLevel = Field(
        "WARNING", validation_alias="MLFLOW_LOGGING_LEVEL"
    )
    """MLflow's logger level (MLflow's own variable): WARNING keeps its INFO lines
    ("Experiment with name ... does not exist. Creating a new experiment.") off the
    console; its warnings and errors still show."""

    mlflow_tracking_token: SecretStr | None = Field(
        None, validation_alias="MLFLOW_TRACKING_TOKEN"
    )
    mlflow_tracking_username: str | None = Field(
        None, validation_alias="MLFLOW_TRACKING_USERNAME"
    )
    mlflow_tracking_password: SecretStr | None = Field(
        None, validation_alias="MLFLOW_TRACKING_PASSWORD"
    )
    mlflow_tracking_auth: str | None = Field(
        None, validation_alias="MLFLOW_TRACKING_AUTH"
    )
    """MLflow's own authentication variables, which its client reads itself; read here
    too for the registry reads made without its client (`registry_version_tags`)."""

    def registry_version_tags(
        self, tracking_uri: str | None, name: str, version: str, timeout_s: float
    ) -> dict[str, str] | None:
        """`name` version `version`'s tags read over MLflow's REST API without
        importing MLflow (riskserve.model.registry_tags says why), or None where that
        module does not read this registry and MLflow's client must. Raises
        registry_tags.VersionNotFound or RegistryUnreachable."""
        if not tracking_uri or not registry_tags.readable(
            tracking_uri, self.mlflow_tracking_auth
        ):
            return None
        headers = registry_tags.auth_header(
            _secret(self.mlflow_tracking_token),
            self.mlflow_tracking_username,
            _secret(self.mlflow_tracking_password),
        )
        return registry_tags.version_tags(
            tracking_uri, name, version, timeout_s, headers
        )

    def bind_mlflow_client(
        self, tracking_uri: str | None, timeout_s: float, retries: int
    ) -> None:
        """Point MLflow's client at `tracking_uri` (when given) and bound each call to
        `timeout_s` seconds (MLflow takes whole seconds: rounded up) and `retries`
        retries."""
        from mlflow import environment_variables as mlflow_env

        if tracking_uri:
            # MLflow's variable, not mlflow.set_tracking_uri: that one pins the URI in
            # the process, over a URI a later caller sets in the variable.
            mlflow_env.MLFLOW_TRACKING_URI.set(tracking_uri)
        mlflow_env.MLFLOW_HTTP_REQUEST_TIMEOUT.set(max(1, math.ceil(timeout_s)))
        mlflow_env.MLFLOW_HTTP_REQUEST_MAX_RETRIES.set(retries)
        mlflow_env.MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR.set(self.mlflow_backoff_factor)
        mlflow_env.MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT.set("true")
        mlflow_env.MLFLOW_LOGGING_LEVEL.set(self.mlflow_logging_level)
        # MLflow reads the level when it is imported, which may have happened already.
        logging.getLogger("mlflow").setLevel(self.mlflow_logging_level)


def _secret(value: SecretStr | None) -> str | None:
    return value.get_secret_value() if value is not None else None
