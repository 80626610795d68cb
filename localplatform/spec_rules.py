"""What the local platform accepts beyond KServe's schema, checked before anything runs.

A cluster's API server and KServe's webhook refuse bad names; the local platform also
runs every predictor as a process of the operator's own user, so it refuses what would
let a spec reach outside its revision: names that are not DNS-1123 labels (they become
file names), `env` that is not on an allow-list (a Python process obeys
`PYTHONWARNINGS`, `BROWSER` and its own API key variable), local `storageUri`s outside
the model roots, and YAML that expands (aliases) or nests without bound. Every message
quotes the input through `excerpt`, so no answer grows with what was sent.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

NAME = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
MAX_NAME = 63
MAX_DEPTH = 64
MAX_ANNOTATION_BYTES = 1024
EXCERPT = 80

# Predictor settings a spec may tune per InferenceService. Nothing here can run code,
# turn off auth, move the inference log or change where the predictor listens.
ALLOWED_ENV = frozenset(
    f"RISKSERVE_SERVING_{name}"
    for name in (
        "MAX_BATCH_SIZE",
        "INLINE_MAX_ROWS",
        "ONNX_THREADS",
        "MODEL_VERSION",
        "LOG_LEVEL",
    )
)
# Transformer settings a spec may tune (transformer/settings.py). Not among them: its
# keys, the feature repository (an argument, checked like a storageUri), the Redis
# address, where it listens, its revision name.
ALLOWED_TRANSFORMER_ENV = frozenset(
    f"RISKSERVE_TRANSFORMER_{name}"
    for name in (
        "FAIL_OPEN",
        "PREDICTOR_TIMEOUT_SECONDS",
        "LOOKUP_TIMEOUT_SECONDS",
        "MAX_BATCH_SIZE",
        "MAX_PENDING_PUSHES",
        "MAX_CONCURRENT_REQUESTS",
        "LOG_LEVEL",
        # the decision policy: checked like a storageUri (`policy_uri_problem`)
        "POLICY_URI",
        # the experiment file: under the model roots, or s3:// (`experiment_uri_problem`)
        "EXPERIMENT_URI",
    )
)
POLICY_URI_ENV = "RISKSERVE_TRANSFORMER_POLICY_URI"
EXPERIMENT_URI_ENV = "RISKSERVE_TRANSFORMER_EXPERIMENT_URI"
MAX_ENV_VALUE = 256

# The transformer container's arguments the platform passes on (KServe's own and the
# feature repository); it injects --model_name, --predictor_host, --http_port and
# --protocol itself, so those two may appear only with the values it would use.
ALLOWED_TRANSFORMER_ARGS = (
    "--feature_repo",
    "--predictor_request_timeout_seconds",
    "--features",
)
INJECTED_TRANSFORMER_ARGS = ("--model_name", "--protocol")
MAX_ARGS = 16


class SpecError(ValueError):
    """A document the platform refuses; the message is bounded and names the field."""


def excerpt(value: object, limit: int = EXCERPT) -> str:
    """`value` as text, cut to `limit` characters: error messages never echo more."""
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} chars)"


def name_problem(name: object) -> str | None:
    """Why `name` is not a DNS-1123 label of at most 63 characters (as KServe asks)."""
    if not isinstance(name, str) or not name:
        return "metadata.name is missing"
    if len(name) > MAX_NAME or NAME.fullmatch(name) is None:
        return (
            f"metadata.name {excerpt(name, 70)!r} must be a DNS-1123 label: lower-case "
            f"letters, digits and '-', starting and ending with a letter or digit, at "
            f"most {MAX_NAME} characters"
        )
    return None


def valid_name(name: str) -> bool:
    return name_problem(name) is None


# -- YAML ---------------------------------------------------------------------------------
def load_yaml_documents(text: str) -> list[Any]:
    """The documents of a YAML stream, refusing aliases and deep nesting.

    An alias (`*name`) lets 700 bytes expand to gigabytes; the events are scanned
    (libyaml, in C) before anything is built, so a refused stream costs one pass.
    """
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    depth = 0
    try:
        for event in yaml.parse(text, Loader=loader):
            if isinstance(event, yaml.AliasEvent):
                raise SpecError(
                    "YAML aliases (*name) are not accepted: write the value out"
                )
            if isinstance(event, yaml.CollectionStartEvent):
                depth += 1
                if depth > MAX_DEPTH:
                    raise SpecError(f"YAML nests deeper than {MAX_DEPTH} levels")
            elif isinstance(event, yaml.CollectionEndEvent):
                depth -= 1
        return [d for d in yaml.load_all(text, Loader=loader) if d is not None]
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or type(exc).__name__
        raise SpecError(f"not valid YAML{where}: {excerpt(problem)}") from None


# -- env ------------------------------------------------------------------------------------
def env_problems(spec: dict[str, Any]) -> list[str]:
    """What is wrong with the `env` of a spec: only `predictor.model.env` and the
    transformer container's `env` are run, and only the allow-listed settings of
    each, with plain values."""
    problems = []
    predictor = spec.get("predictor") or {}
    model = predictor.get("model") or {}
    container = transformer_container(spec)
    for where, entries in _env_lists(spec):
        if where == "spec.predictor.model.env" and entries is model.get("env"):
            allowed = ALLOWED_ENV
        elif (
            where == "spec.transformer.containers[0].env"
            and container is not None
            and entries is container.get("env")
        ):
            allowed = ALLOWED_TRANSFORMER_ENV
        else:
            problems.append(f"{where} is not run by the local platform")
            continue
        for entry in entries or []:
            name = entry.get("name") if isinstance(entry, dict) else None
            if name not in allowed:
                problems.append(
                    f"{where}: {excerpt(name)!r} is not allowed on the local platform "
                    f"(allowed: {', '.join(sorted(allowed))})"
                )
            elif "valueFrom" in entry:
                problems.append(
                    f"{where}: {name} uses valueFrom, which runs only on a cluster"
                )
            elif len(str(entry.get("value", ""))) > MAX_ENV_VALUE or "\0" in str(
                entry.get("value", "")
            ):
                problems.append(
                    f"{where}: {name} has a value longer than {MAX_ENV_VALUE} characters"
                )
    return problems


def _env_lists(node: Any, where: str = "spec") -> Iterable[tuple[str, Any]]:
    if isinstance(node, dict):
        for key, value in node.items():
            here = f"{where}.{key}"
            if key == "env" and isinstance(value, list):
                yield here, value
            else:
                yield from _env_lists(value, here)
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _env_lists(value, f"{where}[{index}]")


def allowed_env(predictor: dict[str, Any]) -> dict[str, str]:
    """The allow-listed settings of a validated predictor spec, as environment."""
    entries = (predictor.get("model") or {}).get("env") or []
    return {
        e["name"]: str(e["value"])
        for e in entries
        if e.get("name") in ALLOWED_ENV and "value" in e
    }


# -- spec.transformer -----------------------------------------------------------------------
def transformer_container(spec: dict[str, Any]) -> dict[str, Any] | None:
    """The transformer's one container (KServe's `kserve-container`), if any."""
    transformer = spec.get("transformer")
    if not isinstance(transformer, dict):
        return None
    containers = transformer.get("containers")
    if isinstance(containers, list) and containers and isinstance(containers[0], dict):
        return containers[0]
    return None


def transformer_problems(
    spec: dict[str, Any], name: str, roots: list[Path]
) -> list[str]:
    """What the platform refuses in `spec.transformer`: it runs riskserve's
    transformer by its module (the container's `image` is not run), with the
    allow-listed arguments; `--feature_repo` must lie under the model roots."""
    transformer = spec.get("transformer")
    if transformer is None:
        return []
    containers = (transformer or {}).get("containers")
    if not isinstance(containers, list) or len(containers) != 1:
        return [
            "spec.transformer.containers must hold exactly one container "
            "(riskserve's transformer)"
        ]
    container = containers[0]
    where = "spec.transformer.containers[0]"
    problems = []
    for field in ("command", "envFrom"):
        if field in container:
            problems.append(f"{where}.{field} is not run by the local platform")
    try:
        args = transformer_args(container.get("args") or [])
    except SpecError as exc:
        return [*problems, str(exc)]
    for flag, value in args:
        if flag == "--model_name" and value != name:
            problems.append(
                f"{where}.args: --model_name {excerpt(value)!r} must be the "
                f"InferenceService's name, {name!r}"
            )
        elif flag == "--protocol" and value != "v2":
            problems.append(f"{where}.args: --protocol {excerpt(value)!r}: only v2")
        elif flag == "--predictor_request_timeout_seconds":
            try:
                ok = 0 < float(value) <= 3600
            except ValueError:
                ok = False
            if not ok:
                problems.append(
                    f"{where}.args: --predictor_request_timeout_seconds "
                    f"{excerpt(value)!r} is not a number of seconds up to 3600"
                )
        elif flag == "--feature_repo":
            problem = path_problem(value, roots, f"{where}.args --feature_repo")
            if problem:
                problems.append(problem)
        elif flag == "--features" and value not in ("feast", "none"):
            problems.append(
                f"{where}.args: --features {excerpt(value)!r}: feast or none"
            )
    policy_uri = transformer_env(container).get(POLICY_URI_ENV, "")
    if policy_uri:
        problem = policy_uri_problem(policy_uri, roots, name)
        if problem:
            problems.append(problem)
    experiment_uri = transformer_env(container).get(EXPERIMENT_URI_ENV, "")
    if experiment_uri:
        problem = experiment_uri_problem(experiment_uri, roots)
        if problem:
            problems.append(problem)
    if ("--features", "none") in args:
        # policy only: the request holds the model's inputs, no feature store
        if any(flag == "--feature_repo" for flag, _ in args):
            problems.append(
                f"{where}.args: --feature_repo with --features none (policy only)"
            )
        if not policy_uri:
            problems.append(
                f"{where}.env: --features none needs {POLICY_URI_ENV} (policy only)"
            )
    elif not any(flag == "--feature_repo" for flag, _ in args):
        problems.append(f"{where}.args needs --feature_repo (the Feast repository)")
    return problems


def policy_uri_problem(uri: str, roots: list[Path], model: str) -> str | None:
    """Why the platform refuses a transformer's policy URI: `s3://`, or a local path
    (`file://` too) under the model roots, as `--feature_repo`; `models:/` is
    resolved first, with the chart's one line (the transformer reads no MLflow)."""
    where = f"spec.transformer.containers[0].env {POLICY_URI_ENV}"
    if uri.startswith("models:/"):
        return (
            f"{where}: {excerpt(uri)}: resolve it to its s3:// URI first (riskserve "
            f"policy status --model {model}); the transformer reads no MLflow"
        )
    if uri.startswith("s3://"):
        return None
    if "://" in uri and not uri.startswith("file://"):
        return f"{where} {excerpt(uri)!r}: use s3://bucket/prefix or a local path"
    return path_problem(uri.removeprefix("file://"), roots, where)


def experiment_uri_problem(uri: str, roots: list[Path]) -> str | None:
    """Why the platform refuses a transformer's experiment file: `s3://`, or a local
    path (`file://` too) under the model roots, as `--feature_repo` (its arms' relative
    policy paths are read beside it)."""
    where = f"spec.transformer.containers[0].env {EXPERIMENT_URI_ENV}"
    if uri.startswith("s3://"):
        return None
    if "://" in uri and not uri.startswith("file://"):
        return f"{where} {excerpt(uri)!r}: use s3://bucket/key or a local path"
    return path_problem(uri.removeprefix("file://"), roots, where)


def transformer_args(args: object) -> list[tuple[str, str]]:
    """The container's arguments as (flag, value) pairs, `--flag value` or
    `--flag=value`; a flag off the allow-list is a SpecError naming the list."""
    where = "spec.transformer.containers[0].args"
    if not isinstance(args, list) or not all(isinstance(a, str) for a in args):
        raise SpecError(f"{where} must be a list of strings")
    if len(args) > 2 * MAX_ARGS:
        raise SpecError(f"{where} has more than {2 * MAX_ARGS} items")
    allowed = (*ALLOWED_TRANSFORMER_ARGS, *INJECTED_TRANSFORMER_ARGS)
    pairs, index = [], 0
    while index < len(args):
        flag, sep, value = args[index].partition("=")
        if flag not in allowed:
            raise SpecError(
                f"{where}: {excerpt(flag, 60)!r} is not allowed on the local platform "
                f"(allowed: {', '.join(allowed)}; the platform sets --model_name, "
                "--predictor_host, --http_port and --protocol itself)"
            )
        if not sep:
            if index + 1 >= len(args):
                raise SpecError(f"{where}: {flag} has no value")
            index += 1
            value = args[index]
        if "\0" in value or len(value) > 1024:
            raise SpecError(f"{where}: {flag} has an unusable value")
        pairs.append((flag, value))
        index += 1
    return pairs


def transformer_argv(container: dict[str, Any]) -> list[str]:
    """The allow-listed arguments of a validated container, as `--flag value`."""
    return [
        part
        for flag, value in transformer_args(container.get("args") or [])
        if flag in ALLOWED_TRANSFORMER_ARGS
        for part in (flag, value)
    ]


def transformer_env(container: dict[str, Any]) -> dict[str, str]:
    """The allow-listed settings of a validated transformer container."""
    return {
        e["name"]: str(e["value"])
        for e in container.get("env") or []
        if e.get("name") in ALLOWED_TRANSFORMER_ENV and "value" in e
    }


# -- storageUri ---------------------------------------------------------------------------
REMOTE_SCHEMES = ("s3://", "models:/")


def default_model_roots(state_dir: Path, extra: Iterable[Path] = ()) -> list[Path]:
    """Where a local `storageUri` may lie: the state folder (MLflow's local artifacts),
    the working directory, the system's temporary folder and any configured roots."""
    roots = [state_dir, Path.cwd(), Path(tempfile.gettempdir()), *extra]
    return [Path(os.path.realpath(r)) for r in roots]


def storage_problem(uri: object, roots: list[Path]) -> str | None:
    """Why the platform refuses `uri`. A local path outside the roots is refused
    without looking at it: the answer never says whether such a path exists."""
    if not isinstance(uri, str) or not uri:
        return "spec.predictor.model.storageUri is missing"
    if "\0" in uri or len(uri) > 1024:
        return "spec.predictor.model.storageUri is not a usable URI"
    if uri.startswith(REMOTE_SCHEMES):
        return None
    if "://" in uri and not uri.startswith("file://"):
        return (
            f"spec.predictor.model.storageUri {excerpt(uri)!r}: use s3://bucket/prefix, "
            "models:/name@alias or a local folder"
        )
    return path_problem(
        uri.removeprefix("file://"), roots, "spec.predictor.model.storageUri"
    )


def path_problem(value: str, roots: list[Path], where: str) -> str | None:
    """Why a local path is refused: outside the model roots (never whether it exists)."""
    if not value or "\0" in value:
        return f"{where} is not a usable path"
    path = Path(os.path.realpath(value))
    if not any(path == root or root in path.parents for root in roots):
        return (
            f"{where} {excerpt(value)!r} is outside the model "
            f"roots ({', '.join(str(r) for r in roots)}); add a folder to "
            "RISKSERVE_MODEL_ROOTS to serve from it"
        )
    return None


# -- annotations --------------------------------------------------------------------------
def annotation_problems(annotations: object) -> list[str]:
    if annotations is None:
        return []
    if not isinstance(annotations, dict):
        return ["metadata.annotations must be a mapping of name: value"]
    problems = []
    for key, value in annotations.items():
        if len(str(key)) + len(str(value)) > MAX_ANNOTATION_BYTES:
            problems.append(
                f"metadata.annotations {excerpt(str(key), 60)!r} is longer than "
                f"{MAX_ANNOTATION_BYTES} characters"
            )
    return problems
