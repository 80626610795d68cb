"""The drift monitor on a cluster: its CronJobs take schedule, window and thresholds
from values, the predictors' inference log is turned on for it, SeaweedFS lets it in,
and its PrometheusRule (promtool-tested) is the same in Helm and kustomize."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.k8s.k8s_render import (
    CHART,
    NAMESPACE,
    REPO,
    helm_template,
    render,
    run,
    tool,
)

pytestmark = pytest.mark.k8s

VALUES = CHART / "ci" / "drift-monitor-values.yaml"
PROMTOOL_TESTS = REPO / "tests" / "k8s" / "promtool" / "drift-alerts-tests.yml"
RULE_ON = (
    "--set",
    "driftMonitor.prometheusRule.enabled=true",
    "--set",
    "driftMonitor.pushgatewayUrl=http://pushgateway.monitoring:9091",
)


def of_kind(documents, kind: str) -> list[dict]:
    return [d for d in documents if d["kind"] == kind]


def container(cronjob: dict) -> dict:
    (only,) = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"]
    return only


def env(container: dict) -> dict[str, str]:
    return {e["name"]: e.get("value") for e in container["env"]}


def test_off_by_default_and_no_inference_log_then() -> None:
    documents = helm_template(CHART / "ci" / "default-values.yaml")
    assert not of_kind(documents, "CronJob")
    assert not [
        d for d in documents if d["metadata"]["name"] == "riskserve-inference-log"
    ]


def test_cronjobs_take_schedule_window_and_thresholds_from_values() -> None:
    documents = helm_template(
        VALUES,
        "--set",
        "driftMonitor.schedule=*/30 * * * *",
        "--set",
        "driftMonitor.window=6h",
        "--set-json",
        "driftMonitor.psiThreshold=0.25",
        "--set-json",
        "driftMonitor.pValueThreshold=0.001",
        "--set",
        "driftMonitor.pushgatewayUrl=http://pushgateway.monitoring:9091",
    )
    cronjobs = {d["metadata"]["name"]: d for d in of_kind(documents, "CronJob")}
    assert set(cronjobs) == {
        "riskserve-fraud-drift-monitor",
        "riskserve-credit-drift-monitor",
        "riskserve-fraud-label-monitor",
        "riskserve-credit-label-monitor",
    }
    for model in ("fraud", "credit"):
        labels = cronjobs[f"riskserve-{model}-label-monitor"]
        assert labels["spec"]["schedule"] == "*/30 * * * *"
        assert container(labels)["args"][-1] == (
            "--push=http://pushgateway.monitoring:9091"
        )
    for model in ("fraud", "credit"):
        cronjob = cronjobs[f"riskserve-{model}-drift-monitor"]
        assert cronjob["spec"]["schedule"] == "*/30 * * * *"
        assert cronjob["spec"]["concurrencyPolicy"] == "Forbid"
        main = container(cronjob)
        assert main["image"].startswith("ghcr.io/riskserve/riskserve-training:")
        assert main["args"] == [
            "python",
            "-m",
            "riskserve.monitoring",
            model,
            "--log=s3://mlflow/inference-log",
            "--since=6h",
            "--push=http://pushgateway.monitoring:9091",
        ]
        variables = env(main)
        assert variables["RISKSERVE_MONITOR_PSI_THRESHOLD"] == "0.25"
        assert variables["RISKSERVE_MONITOR_P_VALUE_THRESHOLD"] == "0.001"
        assert variables["AWS_ENDPOINT_URL"].endswith(":8333")
        assert variables["MLFLOW_TRACKING_URI"].endswith(":5000")


def test_late_labels_get_a_cronjob_of_their_own_when_given() -> None:
    documents = helm_template(
        VALUES,
        "--set",
        "driftMonitor.labels.fraud=s3://labels/fraud/outcomes.parquet",
        "--set",
        "driftMonitor.labels.credit=",
    )
    names = {d["metadata"]["name"] for d in of_kind(documents, "CronJob")}
    assert "riskserve-fraud-label-monitor" in names
    assert "riskserve-credit-label-monitor" not in names
    labels = next(
        d
        for d in of_kind(documents, "CronJob")
        if d["metadata"]["name"] == "riskserve-fraud-label-monitor"
    )
    assert container(labels)["args"][3:6] == [
        "labels",
        "fraud",
        "--log=s3://mlflow/inference-log",
    ]
    assert "--labels=s3://labels/fraud/outcomes.parquet" in container(labels)["args"]


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("driftMonitor.logUri=/var/log/riskserve", "logUri"),
        ("driftMonitor.window=yesterday", "window"),
        ("driftMonitor.metricDropThreshold=big", "metricDropThreshold"),
    ],
)
def test_bad_drift_values_are_rejected(override: str, message: str) -> None:
    result = subprocess.run(
        [
            tool("helm"),
            "template",
            "r",
            str(CHART),
            "-f",
            str(VALUES),
            "--set",
            override,
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode != 0
    assert message in result.stderr


def push_target(arg: str) -> str:
    """--push=URL -> --push=<the Service's name without the release prefix>."""
    if not arg.startswith("--push="):
        return arg
    host = arg.removeprefix("--push=http://").split(":")[0].split(".")[0]
    return "--push=" + host.removeprefix("riskserve-")


def test_kustomize_and_helm_run_the_same_monitor_passes() -> None:
    def passes(source: str) -> dict[str, list[str]]:
        return {
            d["metadata"]["name"].removeprefix("riskserve-"): [
                push_target(a) for a in container(d)["args"]
            ]
            for d in render(source, "drift-monitor").of_kind("CronJob")
        }

    helm, kustomize = passes("helm"), passes("kustomize")
    assert set(helm) == {
        f"{model}-{kind}-monitor"
        for model in ("fraud", "credit")
        for kind in ("drift", "label")
    }
    assert kustomize == helm
    assert helm["credit-label-monitor"] == [
        "python",
        "-m",
        "riskserve.monitoring",
        "labels",
        "credit",
        "--log=s3://mlflow/inference-log",
        "--labels=s3://mlflow/labels/credit.csv",
        "--push=pushgateway",
    ]


@pytest.mark.parametrize("source", ["helm", "kustomize"])
def test_the_monitor_pushes_to_the_pushgateway_deployed_beside_it(source: str) -> None:
    rendered = render(source, "drift-monitor")
    (service,) = [
        d
        for d in rendered.of_kind("Service")
        if d["metadata"]["name"].endswith("pushgateway")
    ]
    (deployment,) = [
        d
        for d in rendered.of_kind("Deployment")
        if d["metadata"]["name"] == service["metadata"]["name"]
    ]
    pod = deployment["spec"]["template"]
    assert service["spec"]["selector"].items() <= pod["metadata"]["labels"].items()
    (port,) = service["spec"]["ports"]
    assert port["port"] == 9091
    (gateway,) = pod["spec"]["containers"]
    assert gateway["image"] == "docker.io/prom/pushgateway:v1.11.1"
    # In memory: nothing to write on a read-only root filesystem.
    assert "--persistence.file=" in gateway["args"]
    host = service["metadata"]["name"]
    if source == "helm":  # the chart names the Service by its full DNS name
        host += f".{NAMESPACE}.svc.cluster.local"
    for cronjob in rendered.of_kind("CronJob"):
        pushes = [a for a in container(cronjob)["args"] if a.startswith("--push=")]
        assert pushes == [f"--push=http://{host}:9091"], cronjob["metadata"]["name"]


def test_drift_alerts_scrape_the_in_chart_pushgateway_with_its_labels() -> None:
    documents = helm_template(
        VALUES, "--set", "driftMonitor.prometheusRule.enabled=true"
    )
    monitors = [
        d
        for d in of_kind(documents, "PodMonitor")
        if d["metadata"]["name"].endswith("pushgateway")
    ]
    (monitor,) = monitors
    (endpoint,) = monitor["spec"]["podMetricsEndpoints"]
    assert endpoint["honorLabels"] is True and endpoint["port"] == "http"
    # Without the rule (and so perhaps without the Operator's CRDs): no PodMonitor.
    assert not [
        d
        for d in of_kind(helm_template(VALUES), "PodMonitor")
        if d["metadata"]["name"].endswith("pushgateway")
    ]


@pytest.mark.parametrize("source", ["helm", "kustomize"])
def test_the_predictors_write_the_log_the_monitor_reads(source: str) -> None:
    rendered = render(source, "drift-monitor")
    (configmap,) = [
        d
        for d in rendered.documents
        if d["kind"] == "ConfigMap"
        and d["metadata"]["name"] == "riskserve-inference-log"
    ]
    log_uri = configmap["data"]["RISKSERVE_SERVING_INFERENCE_LOG_URI"]
    assert log_uri == "s3://mlflow/inference-log"
    (runtime,) = rendered.of_kind("ServingRuntime")
    env_from = runtime["spec"]["containers"][0]["envFrom"]
    assert {"configMapRef": {"name": "riskserve-inference-log", "optional": True}} in (
        env_from
    )
    for cronjob in rendered.of_kind("CronJob"):
        assert f"--log={log_uri}" in container(cronjob)["args"]
    # SeaweedFS takes the monitor's pods in.
    policy = next(
        d
        for d in rendered.of_kind("NetworkPolicy")
        if d["metadata"]["name"].endswith("seaweedfs")
    )
    allowed = policy["spec"]["ingress"][0]["from"]
    for cronjob in rendered.of_kind("CronJob"):
        pod_labels = cronjob["spec"]["jobTemplate"]["spec"]["template"]["metadata"][
            "labels"
        ]
        assert any(
            "podSelector" in peer
            and peer["podSelector"].get("matchLabels")
            and peer["podSelector"]["matchLabels"].items() <= pod_labels.items()
            for peer in allowed
        ), cronjob["metadata"]["name"]


def promtool() -> str:
    found = shutil.which("promtool")
    if not found:
        pytest.fail("promtool is missing: run `make prometheus` first", pytrace=False)
    return found


def drift_rule() -> dict:
    (rule,) = [
        d
        for d in of_kind(helm_template(VALUES, *RULE_ON), "PrometheusRule")
        if "drift" in d["metadata"]["name"]
    ]
    return rule


def test_every_drift_alert_passes_its_promtool_unit_tests(tmp_path: Path) -> None:
    (tmp_path / "rules.yml").write_text(
        yaml.safe_dump({"groups": drift_rule()["spec"]["groups"]}, sort_keys=False)
    )
    check = subprocess.run(
        [promtool(), "check", "rules", "rules.yml"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert check.returncode == 0, check.stdout + check.stderr
    shutil.copy(PROMTOOL_TESTS, tmp_path / PROMTOOL_TESTS.name)
    result = subprocess.run(
        [promtool(), "test", "rules", PROMTOOL_TESTS.name],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    alerts = {r["alert"] for g in drift_rule()["spec"]["groups"] for r in g["rules"]}
    tests = yaml.safe_load(PROMTOOL_TESTS.read_text())["tests"]
    cases = [case for test in tests for case in test["alert_rule_test"]]
    assert {c["alertname"] for c in cases if c["exp_alerts"]} == alerts
    assert {c["alertname"] for c in cases if not c["exp_alerts"]} >= {
        "RiskserveFeatureDrift",
        "RiskserveDriftMonitorStale",
    }


def test_kustomize_component_holds_the_charts_drift_rule() -> None:
    out = run(
        tool("kubectl"), "kustomize", REPO / "manifests" / "components" / "drift-alerts"
    )
    documents = [d for d in yaml.safe_load_all(out) if d]
    (rule,) = [d for d in documents if d["kind"] == "PrometheusRule"]
    assert rule["spec"] == drift_rule()["spec"]
    # ...and scrapes the Pushgateway of components/pushgateway, keeping pushed labels.
    (monitor,) = [d for d in documents if d["kind"] == "PodMonitor"]
    (endpoint,) = monitor["spec"]["podMetricsEndpoints"]
    assert endpoint["honorLabels"] is True and endpoint["port"] == "http"
    gateway = run(
        tool("kubectl"), "kustomize", REPO / "manifests" / "components" / "pushgateway"
    )
    (deployment,) = [
        d for d in yaml.safe_load_all(gateway) if d and d["kind"] == "Deployment"
    ]
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert monitor["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
