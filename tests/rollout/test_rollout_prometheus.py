"""`rollout start --auto` with its gates read by PromQL from a real Prometheus that
scrapes the local platform's predictor processes: the same promote and rollback
decisions as from the platform's own metrics, window by window."""

from __future__ import annotations

import time

import pytest
from riskserve.localplatform.client import apply_yaml, wait_ready
from riskserve.localplatform.processes import free_port
from riskserve.rollout.controller import LocalBackend, Rollout
from riskserve.rollout.gates import delta, psi
from riskserve.rollout.prometheus import (
    Prometheus,
    PrometheusBackend,
    PrometheusMetrics,
    local_targets_file,
    write_local_targets,
)
from riskserve.rollout.settings import RolloutSettings

from tests.fixtures.prometheus_server import start_prometheus
from tests.localplatform.platform_helpers import isvc_yaml
from tests.rollout.test_auto_rollout import Traffic, current

pytestmark = pytest.mark.e2e


class RecordingPrometheusBackend(PrometheusBackend):
    """Reads the gates from Prometheus, and beside each read keeps the platform's own
    snapshot taken at the same moment, to compare the two judges afterwards."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.pairs: list[tuple[dict, dict]] = []

    def revision_metrics(self, isvc: str) -> dict[str, dict]:
        from_prometheus = super().revision_metrics(isvc)
        self.pairs.append((from_prometheus, self.backend.revision_metrics(isvc)))
        return from_prometheus


@pytest.fixture
def prometheus(platform, tmp_path):
    targets = local_targets_file(platform.settings)
    write_local_targets(platform.settings, targets)
    process, url = start_prometheus(
        tmp_path / "prometheus", free_port(), targets, scrape_interval_s=0.5
    )
    yield url
    process.stop(grace=5)


@pytest.fixture
def deployed(platform, model_dirs, prometheus):
    apply_yaml(platform.settings, isvc_yaml("fraud", model_dirs["v1"]))
    wait_ready(platform.settings, ["fraud"], 60)
    write_local_targets(platform.settings, local_targets_file(platform.settings))
    up = Prometheus(prometheus)
    for _ in range(100):  # bounded: 20 s for the first scrape of the new target
        if up.scalar('up{revision="fraud-predictor-00001"}') == 1:
            return platform
        time.sleep(0.2)
    raise AssertionError("Prometheus never scraped fraud-predictor-00001")


def run(deployed, prometheus, model_dir, **gates):
    messages: list[str] = []
    backend = RecordingPrometheusBackend(
        LocalBackend(deployed.settings),
        PrometheusMetrics(Prometheus(prometheus)),
        local_targets_file(deployed.settings),
    )
    # A model folder, not a registry version: the PromQL gates are under test, not
    # the approval gate (tests/governance).
    settings = RolloutSettings(
        window_s=3, min_requests=20, allow_unapproved=True, **gates
    )
    with Traffic(deployed.settings.gateway_url):
        promoted = Rollout(backend, settings, say=messages.append).auto(
            "fraud", str(model_dir), [20, 60, 100]
        )
    print("\n".join(messages))
    return promoted, messages, backend.pairs, settings


def verdicts(before: dict, after: dict, canary: str, settings) -> dict[str, bool]:
    """The error and score gates of one canary window, from two snapshots."""
    window = delta(before.get(canary), after.get(canary))
    stable = [name for name in after if name != canary]
    reference = delta(None, after.get(stable[0])) if stable else {}
    shift = psi(window["score_counts"], reference.get("score_counts", []))
    return {
        "errors": window["requests"] > 0
        and window["errors"] / window["requests"] > settings.max_error_rate,
        "scores": shift is not None and shift > settings.max_psi,
    }


def assert_same_judgement(pairs, settings) -> None:
    """From the first read to the last, the canary's error and score gates say the
    same through PromQL as through the platform's counters."""
    canary = "fraud-predictor-00002"
    (prom_first, local_first), (prom_last, local_last) = pairs[0], pairs[-1]
    by_prometheus = verdicts(prom_first, prom_last, canary, settings)
    by_platform = verdicts(local_first, local_last, canary, settings)
    print(f"PromQL gates {by_prometheus}, platform gates {by_platform}")
    assert by_prometheus == by_platform
    assert prom_last[canary]["requests"] > 0


def test_promql_gates_promote_a_good_canary(deployed, prometheus, model_dirs):
    promoted, messages, pairs, settings = run(
        deployed, prometheus, model_dirs["v2"], p99_slack_ms=25
    )
    assert promoted, messages
    assert current(deployed).split() == "fraud-predictor-00002 100%"
    assert_same_judgement(pairs, settings)


@pytest.mark.parametrize(
    ("bad", "why"), [("shifted", "PSI"), ("erroring", "error rate")]
)
def test_promql_gates_roll_back_a_bad_canary(
    deployed, prometheus, model_dirs, bad, why
):
    promoted, messages, pairs, settings = run(deployed, prometheus, model_dirs[bad])
    assert not promoted
    assert why in messages[-1], messages
    assert "rolled back to fraud-predictor-00001" in messages[-1]
    assert current(deployed).latest_rolledout == "fraud-predictor-00001"
    assert_same_judgement(pairs, settings)


def test_window_queries_give_the_gate_p99(deployed, prometheus, model_dirs):
    """The documented windowed PromQL (histogram_quantile over increase) answers for
    the stable revision with the p99 the gate computes from the same buckets."""
    from riskserve.rollout.gates import quantile_ms

    metrics = PrometheusMetrics(Prometheus(prometheus))
    with Traffic(deployed.settings.gateway_url):
        time.sleep(4)
    time.sleep(1.5)  # one more scrape after the traffic stopped
    window = metrics.window("fraud", "fraud-predictor-00001", "1m")
    snapshot = metrics.revision_metrics("fraud")["fraud-predictor-00001"]
    gate_p99_s = quantile_ms(snapshot, 0.99) / 1000
    print(f"histogram_quantile p99 {window['p99_seconds']}, gate p99 {gate_p99_s}")
    assert window["error_rate"] == 0
    # increase() extrapolates each bucket series to the window edges on its own, so
    # the interpolated values differ inside a bucket (0.50 vs 0.60 ms was seen, both
    # in the 0.5-1 ms bucket): they must name the same bucket, or a neighbour.
    from bisect import bisect_left

    from riskserve.serving.buckets import LATENCY_BUCKETS_S

    promql_bucket = bisect_left(LATENCY_BUCKETS_S, window["p99_seconds"])
    gate_bucket = bisect_left(LATENCY_BUCKETS_S, gate_p99_s)
    assert abs(promql_bucket - gate_bucket) <= 1, (window["p99_seconds"], gate_p99_s)
    assert sum(window["score_buckets"]) > 0


def test_kserve_auto_needs_prometheus_and_takes_it(monkeypatch, tmp_path, capsys):
    """On KServe, `--auto` without `--prometheus` refuses with the way out; with it,
    the rollout proceeds to the cluster (here none is configured: a one-line error)."""
    from riskserve.rollout_cli import main

    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "no-kubeconfig"))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    # Not about approval (tests/governance): s3:// is no registry version.
    monkeypatch.setenv("RISKSERVE_ROLLOUT_ALLOW_UNAPPROVED", "true")
    argv = ["start", "fraud", "--model", "s3://mlflow/x", "--auto", "--backend"]
    assert main(argv + ["kserve"]) == 2
    assert "--prometheus URL" in capsys.readouterr().err
    assert main(argv + ["kserve", "--prometheus", "http://127.0.0.1:1"]) == 2
    error = capsys.readouterr().err
    assert "no Kubernetes configuration" in error and "--prometheus" not in error


def test_kserve_series_are_read_in_the_rollout_namespace(deployed, prometheus):
    """The kserve backend's queries select `namespace`: series of another namespace
    (here the local targets, which have none) are not read as this one's."""
    from riskserve.rollout.controller import KServeBackend
    from riskserve.rollout.prometheus import prometheus_backend

    settings = RolloutSettings(namespace="riskserve", prometheus_url=prometheus)
    backend = prometheus_backend(KServeBackend("riskserve", api=object()), settings)
    assert backend.metrics.labels == {"namespace": "riskserve"}
    assert backend.revision_metrics("fraud") == {}
    unscoped = PrometheusMetrics(Prometheus(prometheus)).revision_metrics("fraud")
    assert unscoped["fraud-predictor-00001"]["ready"] is True
