"""The chart's Grafana dashboard and recording rules against a real Prometheus that
scrapes the local platform's predictors: every panel's query runs and answers with
the revisions that served traffic."""

from __future__ import annotations

import json
import subprocess
import time

import httpx
import pytest
import yaml
from riskserve.localplatform.client import apply_yaml, wait_ready
from riskserve.localplatform.processes import free_port
from riskserve.rollout.prometheus import local_targets_file, write_local_targets

from tests.fixtures.prometheus_server import start_prometheus
from tests.localplatform.platform_helpers import REPO_ROOT, isvc_yaml
from tests.rollout.test_auto_rollout import Traffic

pytestmark = pytest.mark.e2e

HELM = REPO_ROOT / ".tools" / "bin" / "helm"
CHART = REPO_ROOT / "helm" / "riskserve"


def rendered_monitoring() -> tuple[dict, dict]:
    """The chart's dashboard JSON and rule groups, as `helm template` renders them."""
    if not HELM.is_file():
        pytest.fail(f"{HELM} is missing: run `make tools` first", pytrace=False)
    out = subprocess.run(
        [str(HELM), "template", "r", str(CHART), "--set", "seaweedfs.enabled=true"]
        + ["--set", "monitoring.prometheusRule.enabled=true"]
        + ["--set", "monitoring.grafanaDashboard.enabled=true"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    documents = [d for d in yaml.safe_load_all(out) if d]
    rule = next(d for d in documents if d["kind"] == "PrometheusRule")
    configmap = next(
        d
        for d in documents
        if d["kind"] == "ConfigMap" and "grafana_dashboard" in d["metadata"]["labels"]
    )
    return json.loads(configmap["data"]["riskserve-dashboard.json"]), {
        "groups": rule["spec"]["groups"]
    }


def test_every_dashboard_query_answers_for_the_serving_revisions(
    platform, model_dirs, tmp_path
):
    dashboard, rules = rendered_monitoring()
    rules_file = tmp_path / "rules.yml"
    rules_file.write_text(yaml.safe_dump(rules, sort_keys=False))
    apply_yaml(platform.settings, isvc_yaml("fraud", model_dirs["v1"]))
    wait_ready(platform.settings, ["fraud"], 60)
    apply_yaml(platform.settings, isvc_yaml("fraud", model_dirs["shifted"], canary=50))
    wait_ready(platform.settings, ["fraud"], 60)
    targets = write_local_targets(
        platform.settings, local_targets_file(platform.settings)
    )
    assert len(targets) == 2
    process, url = start_prometheus(
        tmp_path / "prometheus",
        free_port(),
        local_targets_file(platform.settings),
        scrape_interval_s=0.5,
        rule_files=[rules_file],
    )
    try:
        with Traffic(platform.settings.gateway_url):
            time.sleep(6)
        time.sleep(1.5)  # a last scrape and rule evaluation after the traffic
        answers = {}
        for panel in dashboard["panels"]:
            for target in panel["targets"]:
                query = target["expr"].replace("$__rate_interval", "1m")
                body = httpx.get(
                    f"{url}/api/v1/query", params={"query": query}, timeout=10
                ).json()
                assert body["status"] == "success", (panel["title"], body)
                revisions = {
                    r["metric"].get("revision") for r in body["data"]["result"]
                }
                answers[panel["title"]] = (revisions, body["data"]["result"])
        for title, (revisions, _) in answers.items():
            print(f"{title}: {sorted(revisions)}")
            assert revisions == {"fraud-predictor-00001", "fraud-predictor-00002"}, (
                title
            )
        # Half the traffic on a shifted model: each revision's scores differ from
        # the pooled ones by more than the alert's bound.
        psi = {
            r["metric"]["revision"]: float(r["value"][1])
            for r in answers["Score PSI against the service's pooled scores (30 m)"][1]
        }
        print(f"PSI by revision: {psi}")
        assert min(psi.values()) > 0.2
    finally:
        process.stop(grace=5)
