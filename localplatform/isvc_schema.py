"""Validating InferenceService documents against KServe's CRD schema, offline.

The API server of a cluster rejects an InferenceService its CRD does not allow; the
local platform does the same with the CRD's `openAPIV3Schema` (vendored in
`localplatform/schemas/`). Unknown fields are rejected too: an API server would prune them
silently, and a typo in `canaryTrafficPercent` must not pass unnoticed.
"""

from __future__ import annotations

import gzip
import itertools
import json
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
from riskserve.localplatform.spec_rules import excerpt, name_problem

SCHEMA_PATH = Path(__file__).parent / "schemas" / "inferenceservice-v1beta1.json.gz"
API_VERSION = "serving.kserve.io/v1beta1"
KIND = "InferenceService"
MAX_ERRORS = 5


def close_schema(schema: Any) -> Any:
    """A CRD openAPIV3Schema as JSON Schema that rejects unknown fields.

    An object with `properties` and no `x-kubernetes-preserve-unknown-fields` gets
    `additionalProperties: false`; objects without `properties` (like `metadata`, which
    CRDs leave open) stay open. `nullable` becomes a null type.
    """
    if isinstance(schema, list):
        return [close_schema(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    closed = {k: close_schema(v) for k, v in schema.items()}
    if (
        "properties" in closed
        and not schema.get("x-kubernetes-preserve-unknown-fields")
        and "additionalProperties" not in closed
    ):
        closed["additionalProperties"] = False
    if schema.get("nullable") and isinstance(closed.get("type"), str):
        closed["type"] = [closed["type"], "null"]
    return closed


@cache
def _validator() -> jsonschema.Draft7Validator:
    with gzip.open(SCHEMA_PATH, "rt") as handle:
        schema = json.load(handle)
    return jsonschema.Draft7Validator(close_schema(schema))


def isvc_errors(document: dict[str, Any]) -> list[str]:
    """What is wrong with an InferenceService document; empty when it is valid."""
    if not isinstance(document, dict):
        return ["not a YAML mapping"]
    if document.get("apiVersion") != API_VERSION or document.get("kind") != KIND:
        return [
            f"expected apiVersion {API_VERSION} and kind {KIND}, got "
            f"{excerpt(document.get('apiVersion'))} {excerpt(document.get('kind'))}"
        ]
    errors = []
    metadata = document.get("metadata")
    problem = name_problem(metadata.get("name") if isinstance(metadata, dict) else None)
    if problem:
        errors.append(problem)
    # The first few errors, each quoted through `excerpt`: jsonschema's messages repeat
    # the offending value, which may be as large as the document.
    found = itertools.islice(_validator().iter_errors(document), MAX_ERRORS)
    for error in sorted(found, key=lambda e: [str(p) for p in e.path]):
        where = ".".join(str(p) for p in error.absolute_path) or "(root)"
        errors.append(f"{excerpt(where, 120)}: {excerpt(error.message, 160)}")
    return errors
