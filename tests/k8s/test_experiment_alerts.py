"""The experiment alert (a challenger significantly worse than the champion, from the
outcomes pass's pushed gauges): the chart renders it with the drift rule, promtool
checks it and its unit tests pass, and the kustomize component holds the same rule;
the gauge it reads is the one the outcomes pass writes."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from riskserve.monitoring.gauges import MonitorGauges

from tests.k8s.k8s_render import REPO, helm_template, run, tool
from tests.k8s.test_drift_monitor import RULE_ON, VALUES, of_kind, promtool

pytestmark = pytest.mark.k8s

PROMTOOL_TESTS = REPO / "tests" / "k8s" / "promtool" / "experiment-alerts-tests.yml"


def experiment_rule() -> dict:
    (rule,) = [
        d
        for d in of_kind(helm_template(VALUES, *RULE_ON), "PrometheusRule")
        if "experiment" in d["metadata"]["name"]
    ]
    return rule


def test_the_experiment_alert_passes_its_promtool_unit_tests(tmp_path: Path) -> None:
    rule = experiment_rule()
    (tmp_path / "rules.yml").write_text(
        yaml.safe_dump({"groups": rule["spec"]["groups"]}, sort_keys=False)
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
    # The metric the alert reads is the one the outcomes pass sets.
    gauges = MonitorGauges()
    (expr,) = [r["expr"] for g in rule["spec"]["groups"] for r in g["rules"]]
    assert gauges.experiment_verdict._name in expr


def test_the_experiment_rule_is_not_rendered_without_the_drift_rule() -> None:
    documents = helm_template(VALUES)
    assert not [
        d
        for d in of_kind(documents, "PrometheusRule")
        if "experiment" in d["metadata"]["name"]
    ]


def test_kustomize_component_holds_the_charts_experiment_rule() -> None:
    out = run(
        tool("kubectl"),
        "kustomize",
        REPO / "manifests" / "components" / "experiment-alerts",
    )
    (rule,) = [
        d for d in yaml.safe_load_all(out) if d and d["kind"] == "PrometheusRule"
    ]
    assert rule["spec"] == experiment_rule()["spec"]
