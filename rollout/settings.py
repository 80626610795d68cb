"""Settings of `riskserve rollout`, read once from the environment at start."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import AliasChoices, Field
from pydantic_settings import SettingsConfigDict
from riskserve.model.mlflow_settings import MlflowClientSettings

if TYPE_CHECKING:
    from mlflow import MlflowClient


class RolloutSettings(MlflowClientSettings):
    """Which platform a rollout drives, and the gates of an automatic rollout."""

    model_config = SettingsConfigDict(env_prefix="RISKSERVE_ROLLOUT_", extra="ignore")

    backend: Literal["local", "kserve"] = "local"
    """`local`: the local platform's gateway; `kserve`: a cluster, via the Kubernetes API."""

    namespace: str = "default"
    """Namespace of the InferenceServices (kserve backend)."""

    prometheus_url: str | None = None
    """A Prometheus scraping the predictors: `--auto` then reads its gates by PromQL
    (riskserve.rollout.prometheus); needed on KServe, optional locally."""

    mlflow_tracking_uri: str | None = Field(
        None,
        validation_alias=AliasChoices(
            "MLFLOW_TRACKING_URI", "RISKSERVE_ROLLOUT_MLFLOW_TRACKING_URI"
        ),
    )
    """MLflow, to resolve `models:/` URIs and to move the `champion` alias on promote."""

    mlflow_timeout_s: float = Field(
        10.0,
        gt=0,
        validation_alias=AliasChoices(
            "MLFLOW_HTTP_REQUEST_TIMEOUT", "RISKSERVE_ROLLOUT_MLFLOW_TIMEOUT_S"
        ),
    )
    """Seconds one call to MLflow may take (MLflow's own variable, when set, wins)."""

    def mlflow_client(self) -> MlflowClient:
        """MLflow's client for this rollout, its calls bounded like the jobs' (one
        retry), so a dead server fails `riskserve rollout` in seconds."""
        self.bind_mlflow_client(
            self.mlflow_tracking_uri, self.mlflow_timeout_s, retries=1
        )
        from mlflow import MlflowClient

        return MlflowClient(self.mlflow_tracking_uri)

    allow_unapproved: bool = False
    """Development only: promote versions that are not approved (and models that are
    not registry versions). By default a promotion needs the version's validation
    status `approved` in MLflow (`riskserve approve`; riskserve.governance)."""

    artifacts_destination: str = "s3://mlflow/artifacts"
    """The MLflow server's `--artifacts-destination`: `mlflow-artifacts:/` paths are
    joined to it to give KServe an `s3://` storageUri."""

    steps: str = "10,50,100"
    """Canary percentages an `--auto` rollout steps through."""

    def step_percents(self) -> list[int]:
        """`steps` as percentages (ValueError naming the setting when one is not an
        integer; `check_percent` judges the range)."""
        try:
            return [int(s) for s in self.steps.split(",") if s.strip()]
        except ValueError:
            raise ValueError(
                f"--steps: comma-separated percentages, got {self.steps[:80]!r}"
            ) from None

    window_s: float = 10.0
    """Seconds of traffic compared at each step."""

    min_requests: int = 20
    """Fewest canary requests a window needs before it is judged."""

    max_error_rate: float = 0.01
    """Largest canary error rate (5xx and unreachable) that passes."""

    max_p99_ratio: float = 1.5
    """Canary p99 may be at most this times the stable p99 (plus `p99_slack_ms`)."""

    p99_slack_ms: float = 2.0
    """Latency slack so that sub-millisecond noise cannot fail a rollout."""

    latency_rechecks: int = Field(1, ge=0)
    """Windows a canary that broke only the latency gate is watched again before it is
    rolled back: a short window's p99 is a handful of requests, which one stall of a
    busy host decides, while a slow model stays slow. Errors and score shifts roll back
    at once."""

    max_psi: float = 0.2
    """Largest population stability index between canary and stable scores."""

    max_action_shift: float = Field(0.10, ge=0, le=1)
    """A policy rollout's action-mix gate: the largest change, as a share of rows, of
    any action (approve, refer, decline; allow, challenge, block) on the canary
    transformer against the stable one over the same window, beyond the sampling
    allowance of `action_shift_z`. Moving the mix is what a cut-off change is for:
    set it above the shift you intend (`riskserve policy rollout --max-action-shift`)."""

    action_shift_z: float = Field(3.0, gt=0)
    """The sampling allowance of the action-mix gate, in standard errors of the
    difference of two proportions: a 10% canary's few dozen decisions must not fail
    it by chance (3.0: about 0.3% of windows per action with no real shift)."""

    outcome_max_age_s: float = Field(2 * 86400.0, gt=0)
    """The outcomes gate refuses a report whose window ended longer ago than this: a
    stale verdict must not promote or roll back today's canary."""
