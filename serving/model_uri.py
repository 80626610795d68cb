"""`models:/` URIs of the MLflow registry: one parser and one resolver, used by the
predictor (to download a version) and by rollouts (to pin a revision to a version).

Accepted: `models:/NAME@ALIAS`, `models:/NAME/VERSION` and `models:/NAME/latest` (the
highest version number). MLflow itself is imported by the callers, only when a
`models:/` URI is used: it is slow to import.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

MODELS_URI = re.compile(
    r"^models:/(?P<name>[^/@]+)(?:@(?P<alias>[^/]+)|/(?P<version>\d+|latest))/?$"
)
EXPECTED = "expected models:/NAME@ALIAS, models:/NAME/VERSION or models:/NAME/latest"


@dataclass(frozen=True)
class RegisteredModelUri:
    name: str
    alias: str | None = None
    version: str | None = None  # a number, or "latest"


def is_models_uri(uri: str) -> bool:
    return uri.startswith("models:/")


def parse_models_uri(uri: str) -> RegisteredModelUri:
    """Raise ValueError (saying what is expected) for a malformed `models:/` URI."""
    match = MODELS_URI.match(uri)
    if match is None:
        raise ValueError(f"{uri}: {EXPECTED}")
    return RegisteredModelUri(match["name"], match["alias"], match["version"])


def resolve_version(client: Any, uri: RegisteredModelUri) -> str:
    """The version number `uri` points at now, asked of an `MlflowClient`; raises
    LookupError when the model has no versions, MlflowException when MLflow refuses."""
    if uri.alias is not None:
        return str(client.get_model_version_by_alias(uri.name, uri.alias).version)
    if uri.version == "latest":
        versions = client.search_model_versions(f"name='{uri.name}'")
        if not versions:
            raise LookupError(f"model {uri.name!r} has no versions")
        return str(max(int(v.version) for v in versions))
    return str(client.get_model_version(uri.name, uri.version).version)
