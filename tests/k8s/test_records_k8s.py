"""The decision records on a cluster: a CronJob compacting the inference log into
records with the retention and the S3 lifecycle rule from values, as restricted as
every pod of the chart, SeaweedFS open to it, and its PrometheusRule (promtool-tested)
the same in Helm and kustomize."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.k8s.k8s_render import (
    CHART,
    MANIFESTS,
    NAMESPACE,
    REPO,
    helm_template,
    kustomize,
    tool,
)

pytestmark = pytest.mark.k8s

VALUES = CHART / "ci" / "decision-records-values.yaml"
OVERLAY = MANIFESTS / "overlays" / "decision-records"
ALERTS = (
    MANIFESTS
    / "components"
    / "decision-records-alerts"
    / "decision-records-prometheusrule.yaml"
)
RULE_ON = ("--set", "records.prometheusRule.enabled=true")
PROMTOOL_TESTS = (
    REPO / "tests" / "k8s" / "promtool" / "decision-records-alerts-tests.yml"
)


def records_cronjob(documents) -> dict:
    (cronjob,) = [
        d
        for d in documents
        if d["kind"] == "CronJob" and d["metadata"]["name"].endswith("decision-records")
    ]
    return cronjob


def pod(cronjob: dict) -> dict:
    return cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]


def env(container: dict) -> dict[str, str]:
    return {
        e["name"]: e.get("value") or e["valueFrom"]["secretKeyRef"]["key"]
        for e in container["env"]
    }


def rule_groups(documents) -> list[dict]:
    (rule,) = [
        d
        for d in documents
        if d["kind"] == "PrometheusRule"
        and d["metadata"]["name"].endswith("decision-records-alerts")
    ]
    return rule["spec"]["groups"]


def test_off_by_default() -> None:
    documents = helm_template(CHART / "ci" / "default-values.yaml")
    assert not [d for d in documents if "decision-records" in d["metadata"]["name"]]


def test_the_cronjob_takes_schedule_retention_and_locations_from_values() -> None:
    documents = helm_template(
        VALUES,
        "--set",
        "records.schedule=5 */2 * * *",
        "--set",
        "records.retentionDays=800",
        "--set",
        "records.sinceDays=7",
        "--set",
        "records.uri=s3://records/decisions",
    )
    cronjob = records_cronjob(documents)
    assert cronjob["spec"]["schedule"] == "5 */2 * * *"
    assert cronjob["spec"]["concurrencyPolicy"] == "Forbid"
    spec = pod(cronjob)
    (retention,) = spec["initContainers"]
    (records,) = spec["containers"]
    assert retention["args"] == [
        "python",
        "-m",
        "riskserve.governance",
        "records",
        "retention",
        "--apply",
    ]
    assert records["args"][3:] == ["records", "compact", "--since-days=7"]
    for container in (retention, records):
        assert container["image"].startswith("ghcr.io/riskserve/riskserve-training:")
        variables = env(container)
        assert variables["RISKSERVE_GOVERNANCE_RECORDS_URI"] == "s3://records/decisions"
        assert variables["RISKSERVE_GOVERNANCE_RECORDS_RETENTION_DAYS"] == "800"
        assert variables["RISKSERVE_GOVERNANCE_INFERENCE_LOG_URI"] == (
            "s3://mlflow/inference-log"
        )
        assert variables["AWS_SECRET_ACCESS_KEY"] == "AWS_SECRET_ACCESS_KEY"  # Secret
    assert env(records)["RISKSERVE_GOVERNANCE_RECORDS_PUSHGATEWAY"] == (
        f"http://riskserve-pushgateway.{NAMESPACE}.svc.cluster.local:9091"
    )
    # Without the lifecycle rule (a bucket whose lifecycle someone else owns).
    documents = helm_template(VALUES, "--set", "records.lifecycleRule=false")
    assert "initContainers" not in pod(records_cronjob(documents))


@pytest.mark.parametrize("source", ["helm", "kustomize"])
def test_the_pod_is_restricted_and_seaweedfs_lets_it_in(source: str) -> None:
    documents = helm_template(VALUES) if source == "helm" else kustomize(OVERLAY)
    spec = pod(records_cronjob(documents))
    assert spec["automountServiceAccountToken"] is False
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    for container in spec["containers"] + spec["initContainers"]:
        context = container["securityContext"]
        assert context["allowPrivilegeEscalation"] is False
        assert context["readOnlyRootFilesystem"] is True
        assert context["capabilities"] == {"drop": ["ALL"]}
        assert container["resources"]["limits"]["memory"]
        assert {"name": "tmp", "mountPath": "/tmp"} in container["volumeMounts"]
    (policy,) = [
        d
        for d in documents
        if d["kind"] == "NetworkPolicy" and d["metadata"]["name"].endswith("seaweedfs")
    ]
    admitted = [
        peer["podSelector"].get("matchLabels", {}).get("app.kubernetes.io/name")
        for peer in policy["spec"]["ingress"][0]["from"]
    ]
    assert "decision-records" in admitted


def test_kustomize_and_helm_run_the_same_pass_and_rules() -> None:
    helm, kustomized = helm_template(VALUES, *RULE_ON), kustomize(OVERLAY)

    def shape(documents) -> tuple:
        spec = pod(records_cronjob(documents))
        return (
            [c["args"] for c in spec["initContainers"] + spec["containers"]],
            {
                name: value
                for c in spec["containers"]
                for name, value in env(c).items()
                if name.startswith("RISKSERVE_GOVERNANCE_RECORDS_")
                and not name.endswith("PUSHGATEWAY")
            },
        )

    assert shape(helm) == shape(kustomized)
    assert rule_groups(helm) == rule_groups([yaml.safe_load(ALERTS.read_text())])
    assert not [d for d in helm_template(VALUES) if d["kind"] == "PrometheusRule"]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (("records.retentionDays=0",), "retentionDays"),
        (("records.uri=/var/records",), "uri"),
        (("driftMonitor.enabled=false",), "records.enabled needs driftMonitor.enabled"),
        (
            (
                "driftMonitor.pushgateway.enabled=false",
                "driftMonitor.pushgatewayUrl=",
                "records.prometheusRule.enabled=true",
            ),
            "records.prometheusRule needs a Pushgateway",
        ),
    ],
)
def test_bad_values_are_refused(overrides: tuple[str, ...], message: str) -> None:
    sets = [arg for override in overrides for arg in ("--set", override)]
    result = subprocess.run(
        [tool("helm"), "template", "r", str(CHART), "-f", str(VALUES), *sets],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode != 0
    assert message in result.stderr


def promtool() -> str:
    found = shutil.which("promtool")
    if not found:
        pytest.fail("promtool is missing: run `make prometheus` first", pytrace=False)
    return found


def test_the_rules_pass_promtool_and_their_unit_tests(tmp_path: Path) -> None:
    rules = tmp_path / "rules.yml"
    groups = {"groups": rule_groups(helm_template(VALUES, *RULE_ON))}
    rules.write_text(yaml.safe_dump(groups, sort_keys=False))
    checked = subprocess.run(
        [promtool(), "check", "rules", str(rules)], capture_output=True, text=True
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    shutil.copy(PROMTOOL_TESTS, tmp_path / PROMTOOL_TESTS.name)
    tested = subprocess.run(
        [promtool(), "test", "rules", PROMTOOL_TESTS.name],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert "SUCCESS" in tested.stdout
