"""Prometheus metrics: requests, latency, output scores and the inference log.

The hot path touches pre-bound label children only; the score histogram is a small
numpy collector so a 10,000-row batch costs one `searchsorted`, not 10,000 observes.
"""

from __future__ import annotations

import threading
from bisect import bisect_left

import numpy as np
from prometheus_client import REGISTRY, Counter, Histogram
from prometheus_client.core import HistogramMetricFamily
from prometheus_client.registry import Collector

from serving.buckets import LATENCY_BUCKETS_S

SCORE_BUCKETS = (
    0.01,
    0.05,
    0.1,
    0.2,
    0.3,
    0.4,
    0.5,
    0.6,
    0.7,
    0.8,
    0.9,
    0.95,
    0.99,
    1.0,
)

REQUESTS = Counter(
    "riskserve_requests",
    "Inference requests by model, version, protocol and status code.",
    ["model", "version", "protocol", "status"],
)
LATENCY = Histogram(
    "riskserve_request_duration_seconds",
    "Server time of successful inference requests, from arrival to scored outputs.",
    ["model", "version", "protocol"],
    buckets=LATENCY_BUCKETS_S,
)
ROWS = Counter(
    "riskserve_inference_rows",
    "Rows scored by model and version.",
    ["model", "version"],
)
INFERENCE_LOG_DROPPED = Counter(
    "riskserve_inference_log_dropped",
    "Inference log records dropped because the queue was full.",
)
INFERENCE_LOG_WRITTEN = Counter(
    "riskserve_inference_log_written",
    "Inference log records written.",
)
INFERENCE_LOG_WRITE_ERRORS = Counter(
    "riskserve_inference_log_write_errors",
    "Inference log records lost because writing their batch failed.",
)


class ScoreHistogram(Collector):
    """`riskserve_output_score`: the distribution of each model's probability output."""

    def __init__(self, buckets: tuple[float, ...] = SCORE_BUCKETS) -> None:
        self._bounds = np.asarray(buckets, dtype=np.float64)
        self._bounds_list = [float(b) for b in buckets]
        self._lock = threading.Lock()
        self._series: dict[tuple[str, str, str], list] = {}

    def observe(
        self, model: str, version: str, output: str, scores: np.ndarray
    ) -> None:
        key = (model, version, output)
        values = scores.ravel()
        with self._lock:
            series = self._series.get(key)
            if series is None:
                series = [[0] * (len(self._bounds_list) + 1), 0.0]
                self._series[key] = series
            counts = series[0]
            if values.size <= 32:
                # Prometheus buckets are "less or equal": bisect_left finds the first
                # bound >= x. Plain Python beats numpy's call overhead for a few rows.
                bounds = self._bounds_list
                for value in values.tolist():
                    # NaN compares false with every bound: it belongs to +Inf only.
                    at = bisect_left(bounds, value) if value == value else len(bounds)
                    counts[at] += 1
                    series[1] += value
                return
            binned = np.bincount(
                np.searchsorted(self._bounds, values, side="left"),
                minlength=len(self._bounds) + 1,
            )
            for i, count in enumerate(binned.tolist()):
                counts[i] += count
            series[1] += float(values.sum(dtype=np.float64))

    def collect(self):  # noqa: ANN201 - prometheus_client's protocol
        family = HistogramMetricFamily(
            "riskserve_output_score",
            "Distribution of the model's probability output, per scored row.",
            labels=["model", "version", "output"],
        )
        with self._lock:
            snapshot = [(k, list(v[0]), v[1]) for k, v in self._series.items()]
        for (model, version, output), counts, total in snapshot:
            cumulative = np.cumsum(counts)
            buckets = [
                (repr(float(bound)), float(cumulative[i]))
                for i, bound in enumerate(self._bounds)
            ]
            buckets.append(("+Inf", float(cumulative[-1])))
            family.add_metric([model, version, output], buckets, total)
        yield family


SCORES = ScoreHistogram()
REGISTRY.register(SCORES)
