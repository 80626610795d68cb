"""A policy rollout's gates read by PromQL, as on a cluster: a real Prometheus scrapes
two transformer revisions (processes exporting the transformer's own metrics module)
and `PrometheusMetrics` reads each revision's requests, errors, latency and the
actions its policy took, the series the action-mix gate judges."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest
from riskserve.localplatform.processes import free_port
from riskserve.rollout.gates import action_shift, delta
from riskserve.rollout.prometheus import Prometheus, PrometheusMetrics

from tests.fixtures.prometheus_server import start_prometheus

pytestmark = pytest.mark.e2e

# A transformer revision's counters, exported by the transformer's metrics module
# itself (the names, labels and buckets a cluster's Prometheus scrapes).
EXPORTER = """
import json, sys, time
from prometheus_client import start_http_server
from riskserve.transformer import metrics
spec = json.loads(sys.argv[1])
for action, count in spec["actions"].items():
    metrics.count_actions("credit", [action] * count)
metrics.REQUESTS.labels("credit", "200").inc(spec["ok"])
metrics.REQUESTS.labels("credit", "503").inc(spec["errors"])
for _ in range(spec["ok"]):
    metrics.LATENCY.labels("credit").observe(spec["seconds"])
start_http_server(int(sys.argv[2]), addr="127.0.0.1")
print("serving", flush=True)
time.sleep(600)
"""

REVISIONS = {
    "credit-transformer-00001": {
        "actions": {"approve": 60, "decline": 40},
        "ok": 100,
        "errors": 0,
        "seconds": 0.003,
    },
    "credit-transformer-00002": {
        "actions": {"decline": 50},
        "ok": 48,
        "errors": 2,
        "seconds": 0.004,
    },
}


@pytest.fixture
def scraped(tmp_path) -> Iterator[str]:
    exporters, groups = [], []
    try:
        for revision, spec in REVISIONS.items():
            port = free_port()
            process = subprocess.Popen(
                [sys.executable, "-c", EXPORTER, json.dumps(spec), str(port)],
                stdout=subprocess.PIPE,
                text=True,
            )
            exporters.append(process)
            assert process.stdout is not None
            assert process.stdout.readline().strip() == "serving"
            groups.append(
                {
                    "targets": [f"127.0.0.1:{port}"],
                    "labels": {"isvc": "credit", "revision": revision},
                }
            )
        targets = tmp_path / "targets.json"
        targets.write_text(json.dumps(groups))
        prometheus, url = start_prometheus(
            tmp_path / "prometheus", free_port(), targets, scrape_interval_s=0.5
        )
        try:
            up = Prometheus(url)
            for _ in range(100):  # bounded: 20 s for the first scrapes
                if (up.scalar('count(up{isvc="credit"} == 1)') or 0) == 2 and (
                    up.scalar("count(riskserve_transformer_actions_total)") or 0
                ) == 3:
                    break
                time.sleep(0.2)
            else:
                raise AssertionError("Prometheus never scraped both revisions")
            yield url
        finally:
            prometheus.stop(grace=5)
    finally:
        for process in exporters:  # ours, by PID
            process.kill()
            process.wait(timeout=10)


def test_transformer_revisions_are_read_with_their_actions(scraped) -> None:
    metrics = PrometheusMetrics(Prometheus(scraped))
    snapshot = metrics.revision_metrics("credit", component="transformer")
    stable = snapshot["credit-transformer-00001"]
    canary = snapshot["credit-transformer-00002"]
    assert (stable["requests"], stable["errors"]) == (100, 0)
    assert (canary["requests"], canary["errors"]) == (50, 2)
    assert stable["action_counts"] == {"approve": 60, "decline": 40}
    assert canary["action_counts"] == {"decline": 50}
    assert sum(stable["latency_counts"]) == 100 and stable["ready"] is True
    # the gate's arithmetic on what Prometheus returned: the canary declines all
    window = delta(None, canary)
    why = action_shift(
        window["action_counts"], delta(None, stable)["action_counts"], 0.10, 3.0
    )
    assert why and why.startswith("action mix shifted: approve 0.0% of 50 canary")
    # the predictor's series of the same InferenceService are not the transformer's
    predictor = metrics.revision_metrics("credit")
    assert all(r["requests"] == 0 for r in predictor.values()), predictor


def test_policy_auto_on_a_cluster_takes_prometheus(monkeypatch, tmp_path, capsys):
    """`policy rollout --auto --backend kserve`: without --prometheus the way out in
    one line; with it, the rollout proceeds to the cluster (none here: one line)."""
    from riskserve.cli import main

    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "no-kubeconfig"))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    argv = ["policy", "rollout", "credit", "--auto", "--backend", "kserve"]
    assert main(argv) == 2
    assert "pass --prometheus URL" in capsys.readouterr().err
    assert main([*argv, "--prometheus", "http://127.0.0.1:1"]) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert "no Kubernetes configuration" in line and "--prometheus" not in line, line
