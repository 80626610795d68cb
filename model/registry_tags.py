"""One registry version's tags from an MLflow server, without importing MLflow.

Every promotion's approval gate reads one model version's tags before traffic moves.
Importing MLflow's client took 4.2 s on this 2-core machine idle (2026-12-07:
`from mlflow.tracking import MlflowClient`; `import mlflow` 5.0 s) and 20-40 s under
load, so `riskserve policy rollout --promote` moved traffic that long after it started.
Against an MLflow server over plain HTTP (the local platform's, and the in-cluster
Service's) the same read is one GET of MLflow's REST API (`model-versions/get`), a few
milliseconds. Anything else (an `https://` server, whose CA and client certificates
MLflow's client resolves its own way; a custom `MLFLOW_TRACKING_AUTH` plugin; a
`sqlite://` or database store, whose tables are MLflow's internals) is not read here:
`version_tags` returns None and the caller asks MLflow's client.
"""

from __future__ import annotations

import base64
import json
import urllib.parse
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import urllib.error

# urllib.request (http.client, ssl, email: ~90 ms) is imported where a read is made:
# this module sits under every component's settings, whose start-up should not pay it.


class VersionNotFound(Exception):
    """The registry answered: no such model version (MLflow's message)."""


class RegistryUnreachable(Exception):
    """The registry did not answer, or not as MLflow's REST API does."""


def readable(tracking_uri: str | None, auth_plugin: str | None) -> bool:
    """Whether `version_tags` reads this registry itself (plain HTTP, MLflow's own
    basic or bearer authentication at most)."""
    return bool(
        tracking_uri
        and urllib.parse.urlsplit(tracking_uri).scheme == "http"
        and not auth_plugin
    )


def auth_header(
    token: str | None, username: str | None, password: str | None
) -> dict[str, str]:
    """The Authorization header MLflow's client sends for these settings (its
    `MLFLOW_TRACKING_TOKEN` first, then `MLFLOW_TRACKING_USERNAME`/`_PASSWORD`)."""
    if token:
        return {"Authorization": f"Bearer {token}"}
    if username and password:
        pair = base64.b64encode(f"{username}:{password}".encode()).decode()
        return {"Authorization": f"Basic {pair}"}
    return {}


def version_tags(
    tracking_uri: str,
    name: str,
    version: str,
    timeout_s: float,
    headers: dict[str, str] | None = None,
) -> dict[str, str]:
    """`name` version `version`'s tags, read from the MLflow server at `tracking_uri`
    (`readable` must hold). Raises VersionNotFound or RegistryUnreachable."""
    import urllib.error
    import urllib.request

    query = urllib.parse.urlencode({"name": name, "version": version})
    url = f"{tracking_uri.rstrip('/')}/api/2.0/mlflow/model-versions/get?{query}"
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            raw = response.read(1 << 22)
    except urllib.error.HTTPError as exc:
        error = _error_body(exc)
        if exc.code == 404 or error.get("error_code") == "RESOURCE_DOES_NOT_EXIST":
            raise VersionNotFound(
                error.get("message") or f"{name} version {version} not found"
            ) from None
        raise RegistryUnreachable(
            f"MLflow at {tracking_uri} answered {exc.code}: "
            f"{error.get('message') or exc.reason}"
        ) from None
    except (OSError, ValueError) as exc:  # refused, timed out, a bad URL
        raise RegistryUnreachable(
            f"MLflow at {tracking_uri} did not answer: {type(exc).__name__}: {exc}"
        ) from None
    try:
        body = json.loads(raw)
    except ValueError:
        raise RegistryUnreachable(
            f"MLflow at {tracking_uri} answered model-versions/get with no JSON: "
            f"{raw[:80]!r}"
        ) from None
    try:
        tags = body["model_version"].get("tags", [])
        return {str(t["key"]): str(t.get("value", "")) for t in tags}
    except (KeyError, TypeError, AttributeError):
        raise RegistryUnreachable(
            f"MLflow at {tracking_uri} answered model-versions/get without a "
            "model_version"
        ) from None


def _error_body(exc: urllib.error.HTTPError) -> dict[str, str]:
    try:
        body = json.loads(exc.read(1 << 16))
    except (OSError, ValueError):
        return {}
    return body if isinstance(body, dict) else {}
