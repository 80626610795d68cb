"""Prometheus metrics: requests, latency, output scores and the inference log.

The hot path touches pre-bound label children only; the score histogram is a small
numpy collector so a 10,000-row batch costs one `searchsorted`, not 10,000 observes.

prometheus_client stays on the single-row path because a measurement says it costs
little there (issue 24, in-process, min of 100 rounds on a loaded 2-core box): a bound
child's `inc()` 0.50 us and `observe()` 1.12 us, against 0.38 / 0.86 us for handles
calling the value cells directly (bisect for the bucket). Most of it is the value
cell's lock, which a hand-written metric shared by the loop and worker threads needs
too; 0.4 us a request did not pay for a second metrics implementation.
"""

from __future__ import annotations

from bisect import bisect_left

import numpy as np
from prometheus_client import Counter, Gauge, Histogram
from riskserve.serving.buckets import LATENCY_BUCKETS_S

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
    "Inference log records not kept: the spool was over its limit (the sink had been "
    "failing), or a crash tore the record's line before its answer left.",
)
INFERENCE_LOG_WRITTEN = Counter(
    "riskserve_inference_log_written",
    "Inference log records published (in a .jsonl file or object of the log).",
)
INFERENCE_LOG_WRITE_ERRORS = Counter(
    "riskserve_inference_log_write_errors",
    "Inference log records lost because appending them to the spool failed "
    "(a full or read-only disk).",
)
INFERENCE_LOG_RECOVERED = Counter(
    "riskserve_inference_log_recovered",
    "Inference log records a stopped process left in the spool, published by this one.",
)
INFERENCE_LOG_PENDING = Gauge(
    "riskserve_inference_log_pending_records",
    "Inference log records in the spool (written, safe from a process crash), not "
    "yet published.",
    multiprocess_mode="livesum",
)
HTTP_TIMEOUTS = Counter(
    "riskserve_http_timeouts",
    "HTTP connections closed because a request head or body did not arrive in time.",
    ["phase"],
)
HTTP_REJECTED = Counter(
    "riskserve_http_rejected",
    "HTTP requests answered 503 by the concurrency or in-flight body limit.",
    ["limit"],
)

HTTP_BROWSER_REFUSED = Counter(
    "riskserve_http_browser_refused",
    "HTTP requests answered 403 because a web page made them (Origin or "
    "Sec-Fetch-Site; riskserve.serving.browser_guard).",
)

SCORE_HISTOGRAM = Histogram(
    "riskserve_output_score",
    "Distribution of the model's probability output, per scored row.",
    ["model", "version", "output"],
    buckets=SCORE_BUCKETS,
)


class ScoreHistogram:
    """`riskserve_output_score`, observed a batch at a time.

    prometheus_client observes one value per call: 10,000 calls for a 10,000-row batch.
    Here a batch is binned once (bisect for a few rows, one numpy `searchsorted` for
    more) and each bucket of the library's own Histogram child is incremented by its
    count, so the metric stays the library's: it aggregates across `--workers`
    processes in multiprocess mode like every other metric.
    """

    def __init__(self, histogram: Histogram = SCORE_HISTOGRAM) -> None:
        self._histogram = histogram
        self._bounds = np.asarray(SCORE_BUCKETS, dtype=np.float64)
        self._bounds_list = [float(b) for b in SCORE_BUCKETS]
        self._children: dict[tuple[str, str, str], Histogram] = {}

    def observe(
        self, model: str, version: str, output: str, scores: np.ndarray
    ) -> None:
        key = (model, version, output)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = self._histogram.labels(*key)
        values = scores.ravel()
        # The child's buckets hold per-bucket (not cumulative) counts, the last +Inf.
        buckets = child._buckets
        if values.size <= 32:
            # Prometheus buckets are "less or equal": bisect_left finds the first
            # bound >= x; NaN compares false with every bound and goes to +Inf.
            # Plain Python beats numpy's call overhead for a few rows.
            bounds = self._bounds_list
            nan, total = len(bounds), 0.0
            for value in values.tolist():
                buckets[bisect_left(bounds, value) if value == value else nan].inc(1)
                total += value
        else:
            counts = np.bincount(
                np.searchsorted(self._bounds, values, side="left"),
                minlength=len(self._bounds) + 1,
            ).tolist()
            for bucket, count in zip(buckets, counts, strict=True):
                if count:
                    bucket.inc(count)
            total = float(values.sum(dtype=np.float64))
        child._sum.inc(total)


SCORES = ScoreHistogram()
