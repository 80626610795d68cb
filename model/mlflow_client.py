"""How every riskserve process talks to MLflow: one place for the client's limits.

MLflow's client reads its settings from the environment. Training, monitoring and the
rollout tooling all call `bound_mlflow_client`, so an unreachable server fails every
one of them within the same bounded wait, never after MLflow's default of minutes of
retries, and none prints MLflow's "View run ... at: URL" lines on stdout.
"""

from __future__ import annotations

import os


def bound_mlflow_client(
    tracking_uri: str | None, timeout_s: float, retries: int
) -> None:
    """Point MLflow's client at `tracking_uri` (when given) and bound each call to
    `timeout_s` seconds and `retries` retries. Limits the user set in the environment
    win: they are defaults, not overrides."""
    if tracking_uri:
        os.environ["MLFLOW_TRACKING_URI"] = tracking_uri
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", str(int(timeout_s)))
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", str(retries))
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")
    os.environ["MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT"] = "true"
