"""The chart's observability objects: the PrometheusRule (every alert unit-tested with
`promtool test rules`), the PodMonitor and the Grafana dashboard ConfigMap."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from riskserve.serving.metrics import SCORE_BUCKETS

from tests.k8s.k8s_render import CHART, REPO, helm_template

pytestmark = pytest.mark.k8s

PROMTOOL_TESTS = REPO / "tests" / "k8s" / "promtool" / "riskserve-alerts-tests.yml"
MONITORING_ON = (
    "--set",
    "monitoring.podMonitor.enabled=true",
    "--set",
    "monitoring.prometheusRule.enabled=true",
    "--set",
    "monitoring.grafanaDashboard.enabled=true",
)


def promtool() -> str:
    found = shutil.which("promtool")
    if not found:
        pytest.fail("promtool is missing: run `make prometheus` first", pytrace=False)
    return found


def monitoring_documents() -> dict[str, dict]:
    documents = helm_template(CHART / "ci" / "default-values.yaml", *MONITORING_ON)
    return {
        d["kind"]: d
        for d in documents
        if d["kind"] in {"PodMonitor", "PrometheusRule", "ConfigMap"}
        and d["metadata"]["labels"].get("app.kubernetes.io/component") == "monitoring"
    }


def rule_groups() -> dict:
    return {"groups": monitoring_documents()["PrometheusRule"]["spec"]["groups"]}


def write_rules(directory: Path) -> Path:
    path = directory / "rules.yml"
    path.write_text(yaml.safe_dump(rule_groups(), sort_keys=False))
    return path


def test_monitoring_objects_are_off_by_default() -> None:
    documents = helm_template(CHART / "ci" / "default-values.yaml")
    kinds = {d["kind"] for d in documents}
    assert not kinds & {"PodMonitor", "PrometheusRule"}
    assert not [d for d in documents if "grafana_dashboard" in d["metadata"]["labels"]]


def test_promtool_checks_the_rules(tmp_path: Path) -> None:
    rules = write_rules(tmp_path)
    result = subprocess.run(
        [promtool(), "check", "rules", str(rules)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_passes_its_promtool_unit_tests(tmp_path: Path) -> None:
    write_rules(tmp_path)
    shutil.copy(PROMTOOL_TESTS, tmp_path / PROMTOOL_TESTS.name)
    result = subprocess.run(
        [promtool(), "test", "rules", PROMTOOL_TESTS.name],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    print(result.stdout)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_every_alert_has_a_firing_and_a_quiet_unit_test() -> None:
    alerts = {
        rule["alert"]
        for group in rule_groups()["groups"]
        for rule in group["rules"]
        if "alert" in rule
    }
    assert alerts == {
        "RiskservePredictorErrorRate",
        "RiskservePredictorLatencyP99",
        "RiskserveScoreShift",
        "RiskservePredictorDown",
        "RiskserveInferenceLogDrops",
    }
    tests = yaml.safe_load(PROMTOOL_TESTS.read_text())["tests"]
    cases = [case for test in tests for case in test["alert_rule_test"]]
    firing = {case["alertname"] for case in cases if case["exp_alerts"]}
    assert firing == alerts
    # Each test file also holds series that must not fire (a healthy revision, or a
    # time before the `for:` has passed).
    assert all(len(test["input_series"]) >= 2 for test in tests)


def test_score_buckets_of_the_psi_rules_are_the_predictors() -> None:
    """The PSI recording rules name the score histogram's edges one by one: they
    must be the ones serving/metrics.py exposes (`repr` of each float)."""
    group = rule_groups()["groups"][0]
    edges = [
        r["labels"]["bucket"]
        for r in group["rules"]
        if r["record"] == "riskserve:output_score_bucket:increase30m"
    ]
    assert edges == [repr(float(b)) for b in SCORE_BUCKETS]


def test_pod_monitor_labels_targets_with_isvc_and_revision() -> None:
    monitor = monitoring_documents()["PodMonitor"]
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    endpoint = monitor["spec"]["podMetricsEndpoints"][0]
    assert endpoint["path"] == "/metrics" and endpoint["targetPort"] == 8080
    targets = {r["targetLabel"] for r in endpoint["relabelings"]}
    assert {"isvc", "revision", "namespace"} <= targets
    values = monitor["spec"]["selector"]["matchExpressions"][0]["values"]
    assert values == ["fraud", "credit"]


def test_dashboard_configmap_carries_the_grafana_label_and_valid_json() -> None:
    configmap = monitoring_documents()["ConfigMap"]
    assert configmap["metadata"]["labels"]["grafana_dashboard"] == "1"
    dashboard = json.loads(configmap["data"]["riskserve-dashboard.json"])
    queries = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    assert len(queries) >= 6 and dashboard["uid"] == "riskserve-predictors"
