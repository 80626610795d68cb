"""The chart lints, every configuration renders, and every document validates.

Built-in kinds: against the Kubernetes OpenAPI schemas (kubernetes-validate,
strict) at the oldest version the chart declares and at kubectl's version.
KServe kinds: against the CRDs' openAPIV3Schema in third_party/kserve/crds, with
unknown fields rejected.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import jsonschema
import kubernetes_validate
import pytest
import yaml

from tests.k8s.k8s_render import (
    CHART,
    CONFIGURATIONS,
    CRDS,
    KSERVE_KINDS,
    NAMESPACE,
    RELEASE,
    Render,
    close_schema,
    helm_template,
    is_helm_hook,
    kserve_schemas,
    kserve_validator,
    render,
    run,
    tool,
)

pytestmark = pytest.mark.k8s

CI_VALUES = sorted((CHART / "ci").glob("*-values.yaml"))


def kubernetes_versions() -> list[str]:
    """The chart's minimum (kubeVersion: ">=1.30.0-0") and kubectl's own."""
    constraint = yaml.safe_load((CHART / "Chart.yaml").read_text())["kubeVersion"]
    minimum = re.fullmatch(r">=\s*(\d+)\.(\d+)\.\d+(-0)?", constraint)
    assert minimum, f"kubeVersion {constraint!r} is not a plain lower bound"
    kubectl = run(tool("kubectl"), "version", "--client")
    client = re.search(r"Client Version: v(\d+)\.(\d+)", kubectl)
    assert client, kubectl
    versions = [f"{minimum[1]}.{minimum[2]}.0", f"{client[1]}.{client[2]}.0"]
    return sorted(set(versions), key=lambda v: tuple(map(int, v.split("."))))


def test_every_configuration_has_ci_values_and_an_overlay() -> None:
    assert sorted(v for v, _ in CONFIGURATIONS.values()) == CI_VALUES
    for _, directory in CONFIGURATIONS.values():
        assert (directory / "kustomization.yaml").is_file(), directory
    assert {"dev", "production", "local-s3"} <= set(CONFIGURATIONS)


@pytest.mark.parametrize("values", CI_VALUES, ids=lambda p: p.name)
def test_helm_lint_strict(values: Path) -> None:
    output = run(tool("helm"), "lint", "--strict", CHART, "--values", values)
    assert "0 chart(s) failed" in output


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["--set", "deploymentMode=Knative"], "deploymentMode"),
        (["--set", "models.fraud.canaryTrafficPercent=120"], "canaryTrafficPercent"),
        (["--set", "models.fraud.storageUri=models:/fraud@champion"], "storageUri"),
        (["--set", "seaweedfs.unknownKey=1"], "unknownKey"),
        (["--set", "podSecurityContext.runAsNonRoot=false"], "runAsNonRoot"),
        # Canary needs revisions, which only Serverless mode has.
        (
            ["--set", "deploymentMode=RawDeployment"]
            + ["--set", "models.fraud.canaryTrafficPercent=10"],
            "Serverless",
        ),
        (["--set", "s3.secret.create=true"], "accessKeyId"),
        (["--set", "mlflow.replicas=2"], "backendStore"),
        (["--set", "servingRuntime.workers=0"], "workers"),
        (["--set", "models.credit.timeout=0"], "timeout"),
        (["--set", "models.fraud.protocol=soap"], "protocol"),
        # External S3 is the default: without an endpoint there is no store.
        (["--set", "s3.endpoint="], "s3.endpoint"),
        # Drift alerts with nowhere for the monitor's gauges to go would never fire.
        (
            ["--set", "driftMonitor.enabled=true"]
            + ["--set", "driftMonitor.prometheusRule.enabled=true"],
            "driftMonitor.pushgatewayUrl",
        ),
    ],
)
def test_chart_rejects_bad_values(overrides: list[str], message: str) -> None:
    import subprocess

    result = subprocess.run(
        [str(tool("helm")), "template", RELEASE, str(CHART), "-n", NAMESPACE]
        + ["--set", "s3.endpoint=s3.us-east-1.amazonaws.com"]
        + overrides,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode != 0, f"{overrides} rendered"
    assert message in result.stderr, result.stderr


def test_workers_and_timeouts_come_from_values() -> None:
    documents = helm_template(
        CI_VALUES[0],
        "--set",
        "servingRuntime.workers=3",
        "--set",
        "models.fraud.timeout=2",
    )
    (runtime,) = [d for d in documents if d["kind"] == "ServingRuntime"]
    assert "--workers=3" in runtime["spec"]["containers"][0]["args"]
    timeouts = {
        d["metadata"]["name"]: d["spec"]["predictor"]["timeout"]
        for d in documents
        if d["kind"] == "InferenceService"
    }
    assert timeouts == {"fraud": 2, "credit": 5}


def test_a_grpc_model_declares_the_h2c_port_knative_routes() -> None:
    """`models.<m>.protocol: grpc`: the predictor's gRPC port is the one Knative routes
    (its canary split with it); the other model keeps REST; both still validate."""
    documents = helm_template(CI_VALUES[0], "--set", "models.fraud.protocol=grpc")
    services = {
        d["metadata"]["name"]: d for d in documents if d["kind"] == "InferenceService"
    }
    fraud = services["fraud"]["spec"]["predictor"]["model"]
    assert fraud["protocolVersion"] == "grpc-v2"
    assert fraud["ports"] == [{"name": "h2c", "containerPort": 8081, "protocol": "TCP"}]
    (runtime,) = [d for d in documents if d["kind"] == "ServingRuntime"]
    assert "--grpc_port=8081" in runtime["spec"]["containers"][0]["args"]
    credit = services["credit"]["spec"]["predictor"]["model"]
    assert credit["protocolVersion"] == "v2" and "ports" not in credit
    for document in services.values():
        validator = kserve_validator(document["apiVersion"], document["kind"])
        assert not [e.message for e in validator.iter_errors(document)]


def test_every_render_has_documents(rendered: Render) -> None:
    kinds = Counter(d["kind"] for d in rendered.documents)
    assert kinds["InferenceService"] == 2, kinds
    assert kinds["ServingRuntime"] == 1, kinds
    # MLflow, the app, SeaweedFS with its bucket Job unless the S3 is external, and the
    # drift monitor's Pushgateway where it is deployed.
    store = any(d["metadata"]["name"].endswith("seaweedfs") for d in rendered.documents)
    gateway = any(
        d["metadata"]["name"].endswith("pushgateway")
        for d in rendered.of_kind("Service")
    )
    assert kinds["Deployment"] == 2 + store + gateway, kinds
    # The `feast apply` Job where the feature store is rendered.
    feast = any(
        d["metadata"]["name"].endswith("feast-apply") for d in rendered.documents
    )
    assert kinds["Job"] == (3 if store else 2) + feast, kinds


def test_builtin_kinds_validate_against_kubernetes_schemas(rendered: Render) -> None:
    builtin = [d for d in rendered.documents if d["kind"] not in KSERVE_KINDS]
    assert builtin
    errors = []
    for version in kubernetes_versions():
        for document in builtin:
            try:
                kubernetes_validate.validate(document, version, strict=True)
            except kubernetes_validate.ValidationError as error:
                errors.append(f"{version} {document['kind']}: {error.message}")
    assert not errors, "\n".join(errors)


def test_kserve_kinds_validate_against_the_crds(rendered: Render) -> None:
    kserve = [d for d in rendered.documents if d["kind"] in KSERVE_KINDS]
    assert len(kserve) == 3
    errors = [
        f"{document['kind']}/{document['metadata']['name']}: {error.message} "
        f"at {'.'.join(map(str, error.absolute_path))}"
        for document in kserve
        for error in kserve_validator(
            document["apiVersion"], document["kind"]
        ).iter_errors(document)
    ]
    assert not errors, "\n".join(errors)


@pytest.mark.parametrize("path", sorted(CRDS.glob("*.yaml")), ids=lambda p: p.name)
def test_closed_crd_schemas_are_valid_json_schema(path: Path) -> None:
    crd = yaml.safe_load(path.read_text())
    for version in crd["spec"]["versions"]:
        schema = close_schema(version["schema"]["openAPIV3Schema"])
        jsonschema.Draft7Validator.check_schema(schema)


def test_no_document_is_left_unvalidated(rendered: Render) -> None:
    """Each document is either a KServe kind with a CRD here or a built-in kind
    kubernetes-validate knows (an unknown kind would slip past both)."""
    schemas = kserve_schemas()
    for document in rendered.documents:
        key = (document["apiVersion"], document["kind"])
        if document["kind"] in KSERVE_KINDS:
            assert key in schemas, key
        else:
            kubernetes_validate.validate(document, kubernetes_versions()[0])


def test_validators_reject_what_a_cluster_would_reject() -> None:
    """The checks above can fail: a typo in a KServe field and an unknown
    field in a Deployment are both caught."""
    base = render("kustomize", "dev")
    isvc = dict(base.named("InferenceService", "fraud"))
    model = dict(isvc["spec"]["predictor"]["model"], storageURI="s3://x/y")
    isvc["spec"] = {"predictor": dict(isvc["spec"]["predictor"], model=model)}
    validator = kserve_validator(isvc["apiVersion"], "InferenceService")
    with pytest.raises(jsonschema.ValidationError, match="storageURI"):
        validator.validate(isvc)

    deployment = dict(base.of_kind("Deployment")[0])
    deployment["spec"] = dict(deployment["spec"], replica=2)
    with pytest.raises(kubernetes_validate.ValidationError, match="replica"):
        kubernetes_validate.validate(deployment, kubernetes_versions()[0], strict=True)


@pytest.mark.parametrize("configuration", list(CONFIGURATIONS))
def test_helm_and_kustomize_render_the_same_kinds(configuration: str) -> None:
    helm = render("helm", configuration)
    kustomize = render("kustomize", configuration)
    helm_kinds = Counter(d["kind"] for d in helm.documents if not is_helm_hook(d))
    kustomize_kinds = Counter(d["kind"] for d in kustomize.documents)
    assert helm_kinds == kustomize_kinds


@pytest.mark.parametrize("configuration", list(CONFIGURATIONS))
def test_helm_and_kustomize_render_the_same_inference_services(
    configuration: str,
) -> None:
    """The local platform may read either render: the InferenceServices (and
    the runtime they name) must be the same whichever tool made them."""
    helm = render("helm", configuration)
    kustomize = render("kustomize", configuration)
    for name in ("fraud", "credit"):
        from_helm = helm.named("InferenceService", name)
        from_kustomize = kustomize.named("InferenceService", name)
        assert from_helm["spec"] == from_kustomize["spec"], name
        assert (
            from_helm["metadata"]["annotations"]
            == from_kustomize["metadata"]["annotations"]
        )
    runtime = "riskserve-onnx"
    assert (
        helm.named("ServingRuntime", runtime)["spec"]
        == kustomize.named("ServingRuntime", runtime)["spec"]
    )


def test_validated_document_counts(capsys: pytest.CaptureFixture[str]) -> None:
    """Prints how many documents each render holds (for the issue's note)."""
    counts = {}
    for configuration in CONFIGURATIONS:
        for source in ("helm", "kustomize"):
            counts[f"{source}:{configuration}"] = len(
                render(source, configuration).documents
            )
    with capsys.disabled():
        print("\nrendered documents:", counts, "total", sum(counts.values()))
    assert all(count >= 13 for count in counts.values()), counts
