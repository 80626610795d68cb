"""Prometheus behind `rollout start --auto`: the gates' revision metrics read by PromQL.

The gates of an automatic rollout (riskserve.rollout.controller) read `revision_metrics(isvc)`:
per revision, cumulative requests, errors, a latency histogram and a score histogram,
and judge the difference of two such snapshots (one window). `PrometheusBackend` wraps
a backend (local or KServe) and answers `revision_metrics` from a Prometheus that
scrapes the predictors, so the same arithmetic judges the same window on either
platform. The scrape targets carry `isvc` and `revision` labels: the chart's
PodMonitor sets them from KServe's pod labels; on the local platform
`write_local_targets` lists the revisions for Prometheus' `file_sd_configs`.

The PromQL (each `sum by (revision)` over `{isvc="<isvc>"}`, plus
`namespace="<ns>"` on a cluster):

    requests  sum by (revision) (riskserve_requests_total{SEL})
    errors    sum by (revision) (riskserve_requests_total{SEL, status=~"5.."})
    latency   sum by (revision, le) (riskserve_request_duration_seconds_bucket{SEL})
    scores    sum by (revision, le) (riskserve_output_score_bucket{SEL})
    ready     max by (revision) (up{SEL})

A policy rollout judges the transformer's revisions instead
(`TRANSFORMER_SNAPSHOT_QUERIES`): `riskserve_transformer_requests_total`,
`riskserve_transformer_request_duration_seconds_bucket` and, for the action-mix gate,
`sum by (revision, action) (riskserve_transformer_actions_total{SEL})`.

Over a window W the same gates read, for dashboards and alerts (`WINDOW_QUERIES`):

    error rate  (sum(increase(riskserve_requests_total{SEL, revision="R",
                  status=~"5.."}[W])) or vector(0))
                / sum(increase(riskserve_requests_total{SEL, revision="R"}[W]))
    p99         histogram_quantile(0.99, sum by (le) (increase(
                  riskserve_request_duration_seconds_bucket{SEL, revision="R"}[W])))
    score PSI   from sum by (le) (increase(riskserve_output_score_bucket{SEL,
                  revision="R"}[W])) of canary and stable, bucket by bucket.

`histogram_quantile` interpolates linearly inside the bucket, as the gate's own
`quantile_ms` does, so the p99 of a window is the same number either way.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from pathlib import Path
from typing import Any

import httpx
from riskserve.rollout.controller import RolloutError

SNAPSHOT_QUERIES = {
    "requests": "sum by (revision) (riskserve_requests_total{%(sel)s})",
    "errors": 'sum by (revision) (riskserve_requests_total{%(sel)s, status=~"5.."})',
    "latency": "sum by (revision, le) (riskserve_request_duration_seconds_bucket{%(sel)s})",
    "scores": "sum by (revision, le) (riskserve_output_score_bucket{%(sel)s})",
    "ready": "max by (revision) (up{%(sel)s})",
}
# A policy rollout judges the transformer's revisions: its own series, and the
# actions its policy took (the action-mix gate); no score histogram.
TRANSFORMER_SNAPSHOT_QUERIES = {
    "requests": "sum by (revision) (riskserve_transformer_requests_total{%(sel)s})",
    "errors": (
        "sum by (revision) "
        '(riskserve_transformer_requests_total{%(sel)s, status=~"5.."})'
    ),
    "latency": (
        "sum by (revision, le) "
        "(riskserve_transformer_request_duration_seconds_bucket{%(sel)s})"
    ),
    "actions": "sum by (revision, action) (riskserve_transformer_actions_total{%(sel)s})",
    "ready": "max by (revision) (up{%(sel)s})",
}

WINDOW_QUERIES = {
    "error_rate": (
        '(sum(increase(riskserve_requests_total{%(sel)s, status=~"5.."}[%(w)s]))'
        " or vector(0)) / sum(increase(riskserve_requests_total{%(sel)s}[%(w)s]))"
    ),
    "p99_seconds": (
        "histogram_quantile(0.99, sum by (le) "
        "(increase(riskserve_request_duration_seconds_bucket{%(sel)s}[%(w)s])))"
    ),
    "score_buckets": (
        "sum by (le) (increase(riskserve_output_score_bucket{%(sel)s}[%(w)s]))"
    ),
}


def selector(labels: dict[str, str]) -> str:
    return ", ".join(f'{k}="{v}"' for k, v in sorted(labels.items()))


class Prometheus:
    """The HTTP API of one Prometheus server (instant queries only)."""

    def __init__(self, url: str, timeout: float = 10.0) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout

    def query(self, promql: str, at: float | None = None) -> list[dict[str, Any]]:
        params = {"query": promql}
        if at is not None:
            params["time"] = f"{at:.3f}"
        try:
            response = httpx.get(
                f"{self.url}/api/v1/query", params=params, timeout=self.timeout
            )
        except httpx.HTTPError as exc:
            raise RolloutError(f"Prometheus at {self.url} unreachable: {exc}") from None
        try:
            body = response.json()
        except ValueError:
            body = {}
        if response.status_code != 200 or body.get("status") != "success":
            raise RolloutError(
                f"Prometheus query failed ({response.status_code}): "
                f"{body.get('error') or response.text[:200]}: {promql}"
            )
        return body["data"]["result"]

    def scalar(self, promql: str) -> float | None:
        """The single value of a query; None when it has no sample (or is NaN)."""
        result = self.query(promql)
        if not result:
            return None
        value = float(result[0]["value"][1])
        return None if math.isnan(value) else value


def _by_revision(result: list[dict[str, Any]]) -> dict[str, float]:
    return {r["metric"].get("revision", ""): float(r["value"][1]) for r in result}


def _buckets_by_revision(
    result: list[dict[str, Any]],
) -> dict[str, list[tuple[float, float]]]:
    """Cumulative (le, count) per revision, sorted by le."""
    series: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for r in result:
        series[r["metric"].get("revision", "")].append(
            (float(r["metric"]["le"]), float(r["value"][1]))
        )
    return {k: sorted(v) for k, v in series.items()}


def per_bucket(cumulative: list[tuple[float, float]]) -> list[int]:
    """Counts per bucket from cumulative `le` counts (the last is `+Inf`)."""
    counts, previous = [], 0.0
    for _, value in cumulative:
        counts.append(max(round(value - previous), 0))
        previous = value
    return counts


def score_counts(cumulative: list[tuple[float, float]]) -> list[int]:
    """Score buckets as the gateway reports them: probabilities never exceed 1, so the
    `+Inf` bucket is folded into the last one."""
    counts = per_bucket(cumulative)
    if cumulative and math.isinf(cumulative[-1][0]) and len(counts) > 1:
        counts[-2] += counts.pop()
    return counts


class PrometheusMetrics:
    """`revision_metrics` of the rollout gates, read from Prometheus."""

    def __init__(self, prometheus: Prometheus, labels: dict[str, str] | None = None):
        self.prometheus = prometheus
        self.labels = dict(labels or {})

    def revision_metrics(
        self, isvc: str, at: float | None = None, component: str = "predictor"
    ) -> dict[str, dict]:
        """Each revision's counters: the predictor's, or the transformer's
        (`component="transformer"`, a policy rollout's, with its action counts)."""
        sel = selector({**self.labels, "isvc": isvc})
        queries = (
            SNAPSHOT_QUERIES
            if component == "predictor"
            else TRANSFORMER_SNAPSHOT_QUERIES
        )
        q = {k: v % {"sel": sel} for k, v in queries.items()}
        requests = _by_revision(self.prometheus.query(q["requests"], at))
        errors = _by_revision(self.prometheus.query(q["errors"], at))
        latency = _buckets_by_revision(self.prometheus.query(q["latency"], at))
        scores = (
            _buckets_by_revision(self.prometheus.query(q["scores"], at))
            if "scores" in q
            else {}
        )
        actions: dict[str, dict[str, int]] = defaultdict(dict)
        if "actions" in q:
            for r in self.prometheus.query(q["actions"], at):
                revision = r["metric"].get("revision", "")
                action = r["metric"].get("action", "")
                actions[revision][action] = round(float(r["value"][1]))
        ready = _by_revision(self.prometheus.query(q["ready"], at))
        snapshot: dict[str, dict] = {}
        # `up` covers every pod of the InferenceService, both components': the
        # gates look their two revisions up by name
        for revision in (
            set(requests) | set(ready) | set(latency) | set(scores) | set(actions)
        ):
            bounds = latency.get(revision, [])
            snapshot[revision] = {
                "name": revision,
                "requests": round(requests.get(revision, 0)),
                "errors": round(errors.get(revision, 0)),
                "latency_bounds_ms": [b * 1000 for b, _ in bounds if not math.isinf(b)],
                "latency_counts": per_bucket(bounds),
                "score_counts": score_counts(scores.get(revision, [])),
                "action_counts": actions.get(revision, {}),
                "ready": ready.get(revision, 0.0) >= 1.0,
            }
        return snapshot

    def window(self, isvc: str, revision: str, window: str) -> dict[str, Any]:
        """The documented windowed queries for one revision (dashboards, checks)."""
        sel = selector({**self.labels, "isvc": isvc, "revision": revision})
        q = {k: v % {"sel": sel, "w": window} for k, v in WINDOW_QUERIES.items()}
        buckets = [
            (float(r["metric"]["le"]), float(r["value"][1]))
            for r in self.prometheus.query(q["score_buckets"])
        ]
        cumulative = sorted(buckets)
        score = []
        previous = 0.0
        for _, value in cumulative:
            score.append(max(value - previous, 0.0))
            previous = value
        return {
            "error_rate": self.prometheus.scalar(q["error_rate"]),
            "p99_seconds": self.prometheus.scalar(q["p99_seconds"]),
            "score_buckets": score,
        }


class PrometheusBackend:
    """A rollout backend whose `revision_metrics` come from Prometheus; patches and
    status go to the wrapped backend. On the local platform, every read first
    refreshes the file of scrape targets, so a new revision is scraped at once."""

    def __init__(
        self,
        backend,
        metrics: PrometheusMetrics,
        targets_file: Path | None = None,
    ) -> None:
        self.backend = backend
        self.name = backend.name
        self.metrics = metrics
        self.targets_file = targets_file

    def patch(self, isvc, storage_uri, percent, annotations) -> None:
        self.backend.patch(isvc, storage_uri, percent, annotations)

    def get(self, isvc) -> dict[str, Any]:
        return self.backend.get(isvc)

    def patch_transformer(self, isvc, env, percent, annotations) -> None:
        self.backend.patch_transformer(isvc, env, percent, annotations)

    def revision_metrics(
        self, isvc: str, component: str = "predictor"
    ) -> dict[str, dict]:
        if self.targets_file is not None:
            write_local_targets(self.backend.settings, self.targets_file)
        return self.metrics.revision_metrics(isvc, component=component)


def local_targets(platform_settings) -> list[dict[str, Any]]:
    """The local platform's running predictors and transformers as Prometheus
    file_sd target groups."""
    from riskserve.localplatform.client import status

    report = status(platform_settings)
    groups = []
    for name, revision in sorted(report["revisions"].items()):
        port = revision.get("httpPort")
        if not port or not revision.get("pid"):
            continue
        groups.append(
            {
                "targets": [f"{platform_settings.host}:{port}"],
                "labels": {
                    "isvc": revision.get("inferenceService")
                    or name.rsplit("-predictor-", 1)[0],
                    "revision": name,
                },
            }
        )
    return groups


def write_local_targets(platform_settings, path: Path) -> list[dict[str, Any]]:
    """Write the targets file atomically (Prometheus re-reads it when it changes)."""
    groups = local_targets(platform_settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(groups, indent=1)
    if path.exists() and path.read_text() == text:
        return groups
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text)
    tmp.replace(path)
    return groups


def prometheus_backend(backend, settings) -> PrometheusBackend:
    """`backend` with its gates read from `settings.prometheus_url`: on KServe the
    series are those of `settings.namespace`; locally the targets file is kept in
    the platform's state folder (point Prometheus' file_sd_configs at it)."""
    prometheus = Prometheus(settings.prometheus_url)
    if backend.name == "kserve":
        metrics = PrometheusMetrics(prometheus, {"namespace": settings.namespace})
        return PrometheusBackend(backend, metrics)
    return PrometheusBackend(
        backend,
        PrometheusMetrics(prometheus),
        local_targets_file(backend.settings),
    )


def local_targets_file(platform_settings) -> Path:
    """Where the local platform's scrape targets are written for Prometheus."""
    return platform_settings.state_dir / "prometheus" / "targets.json"
