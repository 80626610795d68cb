"""The analyst app's settings: read from the environment once, at start.

Everything the app reads from the environment is declared here and nowhere else. Its
own settings carry the prefix `RISKSERVE_APP_`; Gradio's standard `GRADIO_SERVER_NAME`
and `GRADIO_SERVER_PORT` (which the container image sets) are accepted for host and port.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import AliasChoices, Field, SecretStr, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PREFIX = "RISKSERVE_APP_"


class SettingsError(RuntimeError):
    """A setting is missing or invalid; the message is one line for the analyst's admin."""


class AppSettings(BaseSettings):
    """Where the models are, how to authenticate, how long to wait (prefix
    `RISKSERVE_APP_`)."""

    model_config = SettingsConfigDict(
        env_prefix=PREFIX, extra="ignore", populate_by_name=True
    )

    fraud_url: str | None = None
    """Base URL of the fraud InferenceService (e.g. `http://fraud-predictor`); the app
    calls `<fraud_url>/v2/models/<fraud_model_name>`. Overrides the gateway for fraud."""

    credit_url: str | None = None
    """Base URL of the credit InferenceService; as `fraud_url`, for credit."""

    gateway_url: str | None = None
    """Base URL of the local platform gateway (e.g. `http://127.0.0.1:8000`): models
    without their own URL are called at `<gateway_url>/v2/models/<name>`, and the
    rollout panel reads `<gateway_url>/platform/traffic`."""

    fraud_model_name: str = "fraud"
    """Model name of the fraud InferenceService in v2 paths."""

    credit_model_name: str = "credit"
    """Model name of the credit InferenceService in v2 paths."""

    api_key: SecretStr | None = None
    """Sent as `Authorization: Bearer <key>` when the predictors require a key."""

    connect_timeout: float = Field(default=3.0, gt=0)
    """Seconds to wait for a TCP connection to an endpoint."""

    request_timeout: float = Field(default=15.0, gt=0)
    """Seconds to wait for one answer (one form, or one batch of a CSV)."""

    batch_size: int = Field(default=500, ge=1)
    """Rows per inference request when scoring an uploaded CSV."""

    max_upload_rows: int = Field(default=200_000, ge=1)
    """Most data rows an uploaded CSV may have."""

    examples_file: Path | None = None
    """A JSON file of raw-event examples for the forms of models behind a transformer
    (`{"fraud": {label: {field: value}}}`); `riskserve demo` writes one from its
    generated history (real card ids). Without it, a transformer's form offers an
    unknown-card example only."""

    file_retention_seconds: int = Field(default=3600, ge=1)
    """How long uploaded CSV files and scored files (applicants' and cards' data) are
    kept: Gradio's copies and the app's own are deleted once this old (checked every
    minute, or every half of it when shorter), and all of them when the app stops."""

    rollout_refresh_seconds: float = Field(default=5.0, ge=0)
    """How often the rollout panel refreshes itself (0: only with its button)."""

    outcomes_report: str | None = None
    """The experiments panel's data: the JSON an outcomes pass writes (`riskserve
    monitor outcomes MODEL --experiment FILE --labels FILE --json`), a path or an
    http(s) URL, read again at each refresh. None: the panel says how to get one."""

    host: str = Field(
        default="127.0.0.1",
        validation_alias=AliasChoices(f"{PREFIX}HOST", "GRADIO_SERVER_NAME", "host"),
    )
    """Address the app listens on (also Gradio's GRADIO_SERVER_NAME)."""

    port: int = Field(
        default=7860,
        ge=1,
        le=65535,
        validation_alias=AliasChoices(f"{PREFIX}PORT", "GRADIO_SERVER_PORT", "port"),
    )
    """Port the app listens on (also Gradio's GRADIO_SERVER_PORT)."""

    @model_validator(mode="after")
    def _models_reachable(self) -> AppSettings:
        for name in ("fraud_url", "credit_url", "gateway_url"):
            value = getattr(self, name)
            if value is not None:
                value = value.strip().rstrip("/")
                if not value.startswith(("http://", "https://")):
                    raise ValueError(
                        f"{PREFIX}{name.upper()} must start with http:// or https://, "
                        f"got {value!r}"
                    )
                setattr(self, name, value or None)
        missing = [
            f"{PREFIX}{kind.upper()}_URL"
            for kind in ("fraud", "credit")
            if getattr(self, f"{kind}_url") is None
        ]
        if missing and self.gateway_url is None:
            raise ValueError(
                f"set {PREFIX}GATEWAY_URL, or {' and '.join(missing)}: "
                "the app needs to know where the models are served"
            )
        return self

    def model_url(self, kind: str) -> str:
        """The v2 model URL of `fraud` or `credit`, e.g. `http://host/v2/models/fraud`."""
        base = getattr(self, f"{kind}_url") or self.gateway_url
        return f"{base}/v2/models/{getattr(self, f'{kind}_model_name')}"

    @property
    def traffic_url(self) -> str | None:
        """The gateway's traffic endpoint, or None without a gateway."""
        return f"{self.gateway_url}/platform/traffic" if self.gateway_url else None


def load_settings(**overrides: Any) -> AppSettings:
    """Read the settings; a missing or invalid one raises SettingsError with one line."""
    try:
        return AppSettings(**overrides)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            where = ".".join(str(part) for part in error["loc"])
            message = error["msg"].removeprefix("Value error, ")
            problems.append(f"{PREFIX}{where.upper()}: {message}" if where else message)
        raise SettingsError("; ".join(problems)) from None
