"""Policies every render must meet: Pod Security "restricted", credentials only
through Secrets, probes and resources, labels, images, InferenceService shape."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from tests.k8s.k8s_render import (
    CHART,
    CREDENTIAL_NAME,
    MANIFESTS,
    Render,
    containers,
    pod_specs,
    render,
)

pytestmark = pytest.mark.k8s

# Pod Security Standards, "restricted" profile (kubernetes.io/docs/concepts/
# security/pod-security-standards): the checks that apply to a pod spec.
RESTRICTED_VOLUME_TYPES = {
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "persistentVolumeClaim",
    "projected",
    "secret",
}
REQUIRED_LABELS = {
    "app.kubernetes.io/name",
    "app.kubernetes.io/instance",
    "app.kubernetes.io/component",
    "app.kubernetes.io/part-of",
    "app.kubernetes.io/version",
}


def restricted_violations(pod: dict[str, Any]) -> list[str]:
    """What keeps a pod spec from the "restricted" profile (empty: it meets it).

    Also this project's own rule: a read-only root filesystem everywhere."""
    problems = []
    for flag in ("hostNetwork", "hostPID", "hostIPC"):
        if pod.get(flag):
            problems.append(f"{flag} is set")
    for volume in pod.get("volumes", []):
        kinds = set(volume) - {"name"}
        if not kinds <= RESTRICTED_VOLUME_TYPES:
            problems.append(f"volume {volume['name']} is {kinds}")
    pod_context = pod.get("securityContext") or {}
    if pod_context.get("runAsUser") == 0:
        problems.append("pod runAsUser 0")
    for sysctl in pod_context.get("sysctls", []):
        problems.append(f"sysctl {sysctl['name']}")
    for container in containers(pod):
        name = container["name"]
        context = container.get("securityContext") or {}
        if context.get("privileged"):
            problems.append(f"{name}: privileged")
        if context.get("allowPrivilegeEscalation") is not False:
            problems.append(f"{name}: allowPrivilegeEscalation is not false")
        run_as_non_root = context.get("runAsNonRoot", pod_context.get("runAsNonRoot"))
        if run_as_non_root is not True:
            problems.append(f"{name}: runAsNonRoot is not true")
        if context.get("runAsUser") == 0:
            problems.append(f"{name}: runAsUser 0")
        seccomp = (context.get("seccompProfile") or {}).get("type") or (
            pod_context.get("seccompProfile") or {}
        ).get("type")
        if seccomp not in {"RuntimeDefault", "Localhost"}:
            problems.append(f"{name}: seccompProfile is {seccomp}")
        capabilities = context.get("capabilities") or {}
        if "ALL" not in (capabilities.get("drop") or []):
            problems.append(f"{name}: capabilities do not drop ALL")
        if set(capabilities.get("add") or []) - {"NET_BIND_SERVICE"}:
            problems.append(f"{name}: adds {capabilities['add']}")
        if any(port.get("hostPort") for port in container.get("ports", [])):
            problems.append(f"{name}: hostPort")
        if context.get("readOnlyRootFilesystem") is not True:
            problems.append(f"{name}: root filesystem is writable")
    return problems


def test_every_pod_meets_pod_security_restricted(rendered: Render) -> None:
    pods = list(pod_specs(rendered))
    # 2 Deployments, 2 training Jobs, 1 ServingRuntime, 2 InferenceServices, and
    # with the in-cluster SeaweedFS its Deployment and bucket Job (+ test pod).
    assert len(pods) >= (9 if has_seaweedfs(rendered) else 7), [
        where for where, _ in pods
    ]
    problems = [
        f"{where}: {problem}"
        for where, pod in pods
        for problem in restricted_violations(pod)
    ]
    assert not problems, "\n".join(problems)


def test_restricted_check_rejects_a_root_pod() -> None:
    pod = {
        "hostNetwork": True,
        "volumes": [{"name": "host", "hostPath": {"path": "/"}}],
        "containers": [{"name": "c", "securityContext": {"privileged": True}}],
    }
    problems = " ".join(restricted_violations(pod))
    for expected in ("hostNetwork", "hostPath", "privileged", "runAsNonRoot"):
        assert expected in problems


def test_writable_paths_are_empty_dirs(rendered: Render) -> None:
    """With a read-only root, a pod that needs /tmp (Python, MLflow, Gradio,
    mc) gets an emptyDir there, and HOME points into it."""
    for where, pod in pod_specs(rendered):
        volumes = {v["name"]: v for v in pod.get("volumes", [])}
        for container in pod["containers"]:
            mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
            assert "/tmp" in mounts, f"{where} {container['name']}"
            assert "emptyDir" in volumes[mounts["/tmp"]], where


def env_entries(rendered: Render) -> Iterator[tuple[str, dict[str, Any]]]:
    for where, pod in pod_specs(rendered):
        for container in containers(pod):
            for entry in container.get("env", []):
                yield f"{where} {container['name']}", entry


def test_credentials_reach_pods_only_through_secrets(rendered: Render) -> None:
    checked = 0
    for where, entry in env_entries(rendered):
        if CREDENTIAL_NAME.search(entry["name"]) or "PASSWORD" in entry["name"]:
            checked += 1
            assert "value" not in entry, f"{where}: {entry['name']} has a value"
            assert "secretKeyRef" in entry.get("valueFrom", {}), where
    # SeaweedFS x2, bucket Job x2 (when in the cluster), MLflow x2, training x4,
    # predictor, app.
    assert checked >= (12 if has_seaweedfs(rendered) else 8)


def test_no_configmap_holds_a_credential(rendered: Render) -> None:
    for configmap in rendered.of_kind("ConfigMap"):
        for key, value in (configmap.get("data") or {}).items():
            assert not CREDENTIAL_NAME.search(key), key
            assert not looks_like_a_credential(value), key


def test_secrets_only_in_throwaway_configurations(rendered: Render) -> None:
    """Only dev and local-s3 render a Secret, and only with placeholder keys;
    default, production, drift-monitor and decision-records expect the operator to
    create the Secrets."""
    secrets = rendered.of_kind("Secret")
    if rendered.configuration in {
        "default",
        "production",
        "drift-monitor",
        "decision-records",
    }:
        assert not secrets
        return
    names = sorted(s["metadata"]["name"] for s in secrets)
    # The feature store's throwaway configuration adds a placeholder Redis password.
    expected = ["riskserve-s3"]
    if rendered.configuration == "feature-store":
        expected = ["riskserve-redis", "riskserve-s3"]
    assert names == expected
    import base64

    def secret_values(secret: dict[str, Any]) -> dict[str, str]:
        values = dict(secret.get("stringData") or {})
        for key, encoded in (secret.get("data") or {}).items():
            values[key] = base64.b64decode(encoded).decode()
        return values

    for secret in secrets:
        values = secret_values(secret)
        assert all("placeholder" in value for value in values.values()), values
    if rendered.configuration == "feature-store":
        redis = rendered.named("Secret", "riskserve-redis")
        assert set(secret_values(redis)) == {"password"}
    secret = rendered.named("Secret", "riskserve-s3")
    assert set(secret_values(secret)) == {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}
    annotations = secret["metadata"]["annotations"]
    assert {
        "serving.kserve.io/s3-endpoint",
        "serving.kserve.io/s3-usehttps",
        "serving.kserve.io/s3-verifyssl",
        "serving.kserve.io/s3-region",
    } <= set(annotations)


def looks_like_a_credential(text: str) -> bool:
    patterns = [
        r"AKIA[0-9A-Z]{16}",  # AWS access key id
        r"-----BEGIN [A-Z ]*PRIVATE KEY-----",
        r"\bminioadmin\b",  # MinIO's well-known default
        r"://[^/\s:@]+:[^/\s@]+@",  # user:password@ in a URI
    ]
    return any(re.search(p, text) for p in patterns)


def test_no_credential_in_sources() -> None:
    """Neither the chart's values nor any manifest file holds a real key."""
    files = [*MANIFESTS.rglob("*.yaml"), *CHART.rglob("*.yaml"), *CHART.rglob("*.tpl")]
    assert len(files) > 20
    for path in files:
        assert not looks_like_a_credential(path.read_text()), path
    assert looks_like_a_credential("postgresql://mlflow:hunter2@db:5432/mlflow")


def credential_defaults(values: Any, path: str = "") -> Iterator[str]:
    if isinstance(values, dict):
        for key, value in values.items():
            here = f"{path}.{key}"
            if CREDENTIAL_NAME.search(key) and isinstance(value, str) and value:
                yield here
            yield from credential_defaults(value, here)


def test_values_defaults_hold_no_credentials() -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert list(credential_defaults(values)) == []
    assert values["s3"]["secret"]["create"] is False
    dev = yaml.safe_load((CHART / "ci" / "dev-values.yaml").read_text())
    assert list(credential_defaults(dev)) == [  # only the dev placeholders
        ".s3.secret.accessKeyId",
        ".s3.secret.secretAccessKey",
    ]


def test_every_deployment_has_probes_and_resources(rendered: Render) -> None:
    workloads = rendered.of_kind("Deployment") + rendered.of_kind("ServingRuntime")
    assert len(workloads) == 3 + has_seaweedfs(rendered) + has_pushgateway(rendered)
    for workload in workloads:
        spec = workload["spec"]
        pod = spec["template"]["spec"] if "template" in spec else spec
        for container in pod["containers"]:
            where = f"{workload['metadata']['name']}/{container['name']}"
            for probe in ("readinessProbe", "livenessProbe"):
                assert container.get(probe), f"{where}: no {probe}"
            assert_resources(where, container)


def assert_resources(where: str, container: dict[str, Any]) -> None:
    resources = container.get("resources") or {}
    for bound in ("requests", "limits"):
        for resource in ("cpu", "memory"):
            assert resources.get(bound, {}).get(resource), f"{where}: {bound}"


def test_every_pod_has_resources(rendered: Render) -> None:
    for where, pod in pod_specs(rendered):
        for container in containers(pod):
            assert_resources(f"{where}/{container['name']}", container)


def test_every_resource_carries_the_recommended_labels(rendered: Render) -> None:
    for document in rendered.documents:
        where = f"{rendered.label} {document['kind']}/{document['metadata']['name']}"
        labels = document["metadata"].get("labels") or {}
        assert set(labels) >= REQUIRED_LABELS, f"{where}: {labels}"
        assert labels["app.kubernetes.io/part-of"] == "riskserve", where
        template = document.get("spec", {}).get("template")
        if template:
            assert set(template["metadata"]["labels"]) >= REQUIRED_LABELS, where


def test_selectors_do_not_hold_the_version(rendered: Render) -> None:
    """A selector is immutable: a version in it would break every upgrade."""
    for document in rendered.documents:
        selector = document.get("spec", {}).get("selector") or {}
        selector = selector.get("matchLabels", selector)
        assert "app.kubernetes.io/version" not in selector, document["metadata"]


def images(rendered: Render) -> Iterator[tuple[str, str]]:
    for where, pod in pod_specs(rendered):
        for container in containers(pod):
            yield where, container["image"]


def test_images_are_pinned(rendered: Render) -> None:
    for where, image in images(rendered):
        repository, _, tag = image.rpartition(":")
        assert "/" in repository, f"{where}: {image} has no registry"
        assert tag and tag != "latest", f"{where}: {image} is not pinned"


def test_kustomize_sets_images_only_through_images_field() -> None:
    """Resource YAML names images by a logical name; only a kustomization's
    `images:` says which registry and tag."""
    logical = set()
    for path in [MANIFESTS / "base", *(MANIFESTS / "components").iterdir()]:
        kustomization = yaml.safe_load((path / "kustomization.yaml").read_text())
        logical |= {entry["name"] for entry in kustomization.get("images", [])}
    used = set()
    for path in MANIFESTS.rglob("*.yaml"):
        if path.name == "kustomization.yaml":
            continue
        for match in re.finditer(r"^\s*(?:- )?image:\s*(\S+)", path.read_text(), re.M):
            used.add(match[1])
            assert match[1] in logical, f"{path}: image {match[1]}"
    assert used == logical
    for configuration in ("default", "drift-monitor"):
        rendered = {image for _, image in images(render("kustomize", configuration))}
        assert not rendered & logical, rendered


def test_helm_templates_take_images_only_from_values() -> None:
    for path in (CHART / "templates").rglob("*.yaml"):
        for line in path.read_text().splitlines():
            if re.match(r"\s*(- )?image:", line):
                assert 'include "riskserve.image"' in line, f"{path}: {line}"


def test_inference_services_have_the_shape_kserve_documents(rendered: Render) -> None:
    runtimes = {r["metadata"]["name"] for r in rendered.of_kind("ServingRuntime")}
    serverless = rendered.configuration != "local-s3"
    for isvc in rendered.of_kind("InferenceService"):
        name = isvc["metadata"]["name"]
        predictor = isvc["spec"]["predictor"]
        model = predictor["model"]
        assert model["modelFormat"] == {"name": "onnx"}
        assert model["runtime"] in runtimes
        assert model["protocolVersion"] == "v2"
        assert model["storageUri"].startswith("s3://mlflow/"), model["storageUri"]
        mode = isvc["metadata"]["annotations"]["serving.kserve.io/deploymentMode"]
        assert mode == ("Serverless" if serverless else "RawDeployment")
        assert 1 <= predictor["minReplicas"] <= predictor["maxReplicas"]
        account = rendered.named("ServiceAccount", predictor["serviceAccountName"])
        assert {"name": "riskserve-s3"} in account["secrets"]
        canary = predictor.get("canaryTrafficPercent")
        if rendered.configuration == "production" and name == "fraud":
            assert canary == 10
        else:
            assert canary is None, name
    assert sorted(
        i["metadata"]["name"] for i in rendered.of_kind("InferenceService")
    ) == [
        "credit",
        "fraud",
    ]


def test_serving_runtime_runs_the_predictor_with_kserve_arguments(
    rendered: Render,
) -> None:
    (runtime,) = rendered.of_kind("ServingRuntime")
    spec = runtime["spec"]
    assert {"name": "onnx", "version": "1", "autoSelect": True, "priority": 2} in spec[
        "supportedModelFormats"
    ]
    assert spec["protocolVersions"] == ["v2", "grpc-v2"]
    assert spec["annotations"] == {
        "prometheus.kserve.io/port": "8080",
        "prometheus.kserve.io/path": "/metrics",
    }
    container = spec["containers"][0]
    assert container["name"] == "kserve-container"
    assert container["args"] == [
        "--model_name={{.Name}}",
        "--model_dir=/mnt/models",
        "--http_port=8080",
        "--grpc_port=8081",
        "--workers=1",
    ]
    assert container["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"
    api_key = next(
        e for e in container["env"] if e["name"] == "RISKSERVE_SERVING_API_KEY"
    )
    assert api_key["valueFrom"]["secretKeyRef"]["optional"] is True


def has_seaweedfs(rendered: Render) -> bool:
    return any(
        d["metadata"]["name"].endswith("seaweedfs") for d in rendered.of_kind("Service")
    )


def has_feature_store(rendered: Render) -> bool:
    return any(
        d["metadata"]["name"].endswith("feast-apply") for d in rendered.of_kind("Job")
    )


def has_pushgateway(rendered: Render) -> bool:
    return any(
        d["metadata"]["name"].endswith("pushgateway")
        for d in rendered.of_kind("Service")
    )


def policy_target(policy: dict[str, Any]) -> str:
    """What a NetworkPolicy fences: predictors, transformers (KServe's `component`
    label on an InferenceService's pods), or a workload by its name label."""
    selector = policy["spec"]["podSelector"]
    labels = selector.get("matchLabels", {})
    if "component" in labels:
        return f"{labels['component']}s"
    return labels["app.kubernetes.io/name"]


def test_network_policies_fence_predictors_and_seaweedfs(rendered: Render) -> None:
    policies = rendered.of_kind("NetworkPolicy")
    feature_store = has_feature_store(rendered)
    assert len(policies) == 1 + has_seaweedfs(rendered) + 2 * feature_store
    by_target = {policy_target(p): p["spec"]["ingress"] for p in policies}
    sources = str(by_target["predictors"])
    assert "riskserve-app" in sources and "istio-system" in sources
    assert "knative-serving" in sources
    if not has_seaweedfs(rendered):
        return
    store_sources = str(by_target["seaweedfs"])
    for client in ("training", "mlflow|registry", "inferenceservice", "create-bucket"):
        assert re.search(client, store_sources), client
    assert by_target["seaweedfs"][0]["ports"] == [{"port": 8333, "protocol": "TCP"}]


def test_no_minio_anywhere(rendered: Render) -> None:
    """MinIO is archived: no image, name or setting of it is rendered."""
    text = yaml.safe_dump_all(rendered.documents)
    assert not re.search("minio", text, re.IGNORECASE), re.findall(
        r".{40}minio.{40}", text, re.IGNORECASE
    )[:3]


def test_s3_endpoint_follows_the_store(rendered: Render) -> None:
    """The clients' S3 endpoint is the in-cluster SeaweedFS when it is rendered, and
    the external S3 otherwise; the storage-initializer annotations agree."""
    endpoints = {
        e["value"]
        for _, e in env_entries(rendered)
        if e["name"] in {"MLFLOW_S3_ENDPOINT_URL", "S3_ENDPOINT"}
    }
    if has_seaweedfs(rendered):
        assert endpoints and all(":8333" in e and "seaweedfs" in e for e in endpoints)
    else:
        assert endpoints == {"https://s3.us-east-1.amazonaws.com"}
    for secret in rendered.of_kind("Secret"):
        annotation = (secret["metadata"].get("annotations") or {}).get(
            "serving.kserve.io/s3-endpoint"
        )
        if annotation:
            assert any(annotation in e for e in endpoints), (annotation, endpoints)


def test_app_points_at_the_inference_services(rendered: Render) -> None:
    (app,) = [
        d
        for d in rendered.of_kind("Deployment")
        if d["metadata"]["labels"]["app.kubernetes.io/component"] == "app"
    ]
    env = {
        e["name"]: e.get("value")
        for e in app["spec"]["template"]["spec"]["containers"][0]["env"]
    }
    assert re.fullmatch(
        r"http://fraud-predictor(\.riskserve\.svc\.cluster\.local)?",
        env["RISKSERVE_APP_FRAUD_URL"],
    )
    assert re.fullmatch(
        r"http://credit-predictor(\.riskserve\.svc\.cluster\.local)?",
        env["RISKSERVE_APP_CREDIT_URL"],
    )


def test_production_reads_the_database_uri_from_a_secret() -> None:
    for source in ("helm", "kustomize"):
        production = render(source, "production")
        (mlflow,) = [
            d
            for d in production.of_kind("Deployment")
            if d["metadata"]["labels"]["app.kubernetes.io/name"] == "mlflow"
        ]
        assert mlflow["spec"]["replicas"] == 2
        env = mlflow["spec"]["template"]["spec"]["containers"][0]["env"]
        uri = next(e for e in env if e["name"] == "MLFLOW_BACKEND_STORE_URI")
        assert uri["valueFrom"]["secretKeyRef"]["name"] == "riskserve-mlflow-db"
        assert len(production.of_kind("PodDisruptionBudget")) == 4


def test_helm_test_pod_checks_each_model_ready() -> None:
    (pod,) = render("helm", "default").of_kind("Pod")
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    args = pod["spec"]["containers"][0]["args"]
    for model in ("fraud", "credit"):
        url = f"http://{model}-predictor.riskserve.svc.cluster.local/v2/models/{model}/ready"
        assert url in args
