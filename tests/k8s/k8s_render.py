"""Rendering of the kustomize overlays and the Helm chart, shared by tests/k8s.

Every render runs the real binaries from `.tools/bin` (installed by `make tools`);
nothing here talks to a cluster.
"""

from __future__ import annotations

import copy
import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from riskserve.localplatform.isvc_schema import (
    close_schema,  # the platform's own, so both agree
)

REPO = Path(__file__).resolve().parents[2]
TOOLS = REPO / ".tools" / "bin"
CHART = REPO / "helm" / "riskserve"
MANIFESTS = REPO / "manifests"
CRDS = REPO / "third_party" / "kserve" / "crds"
RELEASE = "riskserve"
NAMESPACE = "riskserve"

# One configuration, two ways to deploy it: (helm ci values, kustomize dir).
CONFIGURATIONS: dict[str, tuple[Path, Path]] = {
    "default": (CHART / "ci" / "default-values.yaml", MANIFESTS / "base"),
    "dev": (CHART / "ci" / "dev-values.yaml", MANIFESTS / "overlays" / "dev"),
    "local-s3": (
        CHART / "ci" / "local-s3-values.yaml",
        MANIFESTS / "overlays" / "local-s3",
    ),
    "production": (
        CHART / "ci" / "production-values.yaml",
        MANIFESTS / "overlays" / "production",
    ),
    "drift-monitor": (
        CHART / "ci" / "drift-monitor-values.yaml",
        MANIFESTS / "overlays" / "drift-monitor",
    ),
    "feature-store": (
        CHART / "ci" / "feature-store-values.yaml",
        MANIFESTS / "overlays" / "feature-store",
    ),
    "decision-records": (
        CHART / "ci" / "decision-records-values.yaml",
        MANIFESTS / "overlays" / "decision-records",
    ),
}
KSERVE_KINDS = {"InferenceService", "ServingRuntime", "ClusterServingRuntime"}


def tool(name: str) -> Path:
    """The path of a binary from `make tools`; fails (never skips) without it."""
    path = TOOLS / name
    if not path.is_file():
        pytest.fail(f"{path} is missing: run `make tools` first", pytrace=False)
    return path


def run(*args: str | Path) -> str:
    result = subprocess.run(
        [str(a) for a in args], capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        pytest.fail(
            f"{' '.join(map(str, args))} exited {result.returncode}:\n{result.stderr}",
            pytrace=False,
        )
    return result.stdout


@dataclass(frozen=True)
class Render:
    """The documents one tool rendered for one configuration."""

    source: str  # "helm" or "kustomize"
    configuration: str
    documents: tuple[dict[str, Any], ...]

    @property
    def label(self) -> str:
        return f"{self.source}:{self.configuration}"

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        return [d for d in self.documents if d["kind"] == kind]

    def named(self, kind: str, name: str) -> dict[str, Any]:
        for document in self.of_kind(kind):
            if document["metadata"]["name"] == name:
                return document
        raise AssertionError(f"{self.label}: no {kind} {name}")


def parse(text: str) -> tuple[dict[str, Any], ...]:
    return tuple(d for d in yaml.safe_load_all(text) if d)


@cache
def helm_template(values: Path, *extra: str) -> tuple[dict[str, Any], ...]:
    return parse(
        run(
            tool("helm"),
            "template",
            RELEASE,
            CHART,
            "--namespace",
            NAMESPACE,
            "--values",
            values,
            *extra,
        )
    )


@cache
def kustomize(directory: Path) -> tuple[dict[str, Any], ...]:
    return parse(run(tool("kubectl"), "kustomize", directory))


@cache
def render(source: str, configuration: str) -> Render:
    values, directory = CONFIGURATIONS[configuration]
    documents = helm_template(values) if source == "helm" else kustomize(directory)
    return Render(source, configuration, documents)


def all_renders() -> list[Render]:
    return [render(s, c) for c in CONFIGURATIONS for s in ("helm", "kustomize")]


RENDER_IDS = [f"{s}:{c}" for c in CONFIGURATIONS for s in ("helm", "kustomize")]


def is_helm_hook(document: dict[str, Any]) -> bool:
    return "helm.sh/hook" in (document["metadata"].get("annotations") or {})


# ---- KServe CRD schemas, closed --------------------------------------------


@cache
def kserve_validator(api_version: str, kind: str) -> jsonschema.Draft7Validator:
    """A validator built once per kind: building one checks nothing, so a
    render of three KServe documents validates in milliseconds."""
    schema = kserve_schemas().get((api_version, kind))
    if schema is None:
        pytest.fail(f"no CRD in {CRDS} serves {api_version} {kind}", pytrace=False)
    return jsonschema.Draft7Validator(schema)


@cache
def kserve_schemas() -> dict[tuple[str, str], dict[str, Any]]:
    """(apiVersion, kind) -> closed schema, from third_party/kserve/crds."""
    if not CRDS.is_dir():
        pytest.fail(f"{CRDS} is missing")
    schemas = {}
    for path in sorted(CRDS.glob("*.yaml")):
        crd = yaml.safe_load(path.read_text())
        group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
        for version in crd["spec"]["versions"]:
            if version.get("served"):
                schema = copy.deepcopy(version["schema"]["openAPIV3Schema"])
                schemas[(f"{group}/{version['name']}", kind)] = close_schema(schema)
    return schemas


# ---- Pod specs --------------------------------------------------------------

POD_TEMPLATE_KINDS = {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"}


def pod_specs(rendered: Render) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every pod spec a render will create: (where, spec).

    An InferenceService's predictor pod is the ServingRuntime's container with
    the predictor's pod-level fields, as KServe merges them.
    """
    for document in rendered.documents:
        kind, name = document["kind"], document["metadata"]["name"]
        where = f"{rendered.label} {kind}/{name}"
        if kind in POD_TEMPLATE_KINDS:
            yield where, document["spec"]["template"]["spec"]
        elif kind == "CronJob":
            yield where, document["spec"]["jobTemplate"]["spec"]["template"]["spec"]
        elif kind == "Pod":
            yield where, document["spec"]
        elif kind == "ServingRuntime":
            spec = document["spec"]
            yield where, {"containers": spec["containers"], **_volumes(spec)}
        elif kind == "InferenceService":
            yield where, predictor_pod(rendered, document)
            transformer = document["spec"].get("transformer")
            if transformer:  # a pod spec of its own (KServe's spec.transformer)
                yield f"{where} transformer", transformer_pod(transformer)


def _volumes(spec: dict[str, Any]) -> dict[str, Any]:
    return {"volumes": spec["volumes"]} if "volumes" in spec else {}


def predictor_pod(rendered: Render, isvc: dict[str, Any]) -> dict[str, Any]:
    predictor = isvc["spec"]["predictor"]
    model = predictor["model"]
    runtime = rendered.named("ServingRuntime", model["runtime"])["spec"]
    container = copy.deepcopy(runtime["containers"][0])
    for key, value in model.items():
        if key not in {"modelFormat", "runtime", "storageUri", "protocolVersion"}:
            container[key] = value
    pod = {k: v for k, v in predictor.items() if k != "model"}
    pod["containers"] = [container, *runtime["containers"][1:]]
    if "volumes" in runtime:
        pod["volumes"] = runtime["volumes"] + pod.get("volumes", [])
    return pod


# The component fields KServe's ComponentExtensionSpec adds to a transformer's
# PodSpec; the rest is the pod.
COMPONENT_FIELDS = {
    "minReplicas",
    "maxReplicas",
    "timeout",
    "canaryTrafficPercent",
    "scaleTarget",
    "scaleMetric",
    "containerConcurrency",
    "logger",
    "batcher",
    "labels",
    "annotations",
}


def transformer_pod(transformer: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in transformer.items() if k not in COMPONENT_FIELDS}


def containers(pod: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        *pod.get("initContainers", []),
        *pod.get("containers", []),
        *pod.get("ephemeralContainers", []),
    ]


CREDENTIAL_NAME = re.compile(
    r"(?i)(password|passwd|secret_?access_?key|access_?key_?id|api_?key|token|"
    r"credentials?)$"
)
