"""The transformer's Prometheus metrics (the predictor's bucket edges, so latencies
of both line up)."""

from __future__ import annotations

from typing import Any

from prometheus_client import Counter, Gauge, Histogram
from riskserve.serving.buckets import LATENCY_BUCKETS_S

REQUESTS = Counter(
    "riskserve_transformer_requests",
    "Inference requests by model and status code.",
    ["model", "status"],
)
LATENCY = Histogram(
    "riskserve_transformer_request_duration_seconds",
    "Server time of successful inference requests, from arrival to the answer sent.",
    ["model"],
    buckets=LATENCY_BUCKETS_S,
)
STAGE = Histogram(
    "riskserve_transformer_stage_duration_seconds",
    "Time in each stage: lookup (online store and on-demand view, the thread hop "
    "included), predictor (the v2 call), push (the state update, after the answer).",
    ["stage"],
    buckets=LATENCY_BUCKETS_S,
)
ROWS = Counter("riskserve_transformer_rows", "Transactions decided.", ["model"])
ACTIONS = Counter(
    "riskserve_transformer_actions",
    "Rows answered, by the action the decision policy took (a policy rollout's "
    "action-mix gate compares them per transformer revision; none without a policy).",
    ["model", "action"],
)
# ACTIONS' children by (model, action): a policy has a handful of actions
_ACTION_COUNTERS: dict[tuple[str, str], Any] = {}


def count_actions(model: str, actions: Any) -> None:
    """Count the rows answered by each action (an iterable of action names)."""
    for action in actions:
        key = (model, str(action))
        counter = _ACTION_COUNTERS.get(key)
        if counter is None:
            counter = _ACTION_COUNTERS[key] = ACTIONS.labels(*key)
        counter.inc()


UNKNOWN_ENTITIES = Counter(
    "riskserve_transformer_unknown_entities",
    "Transactions of a card with no profile and no history (scored on the defaults).",
)
FAIL_OPEN = Counter(
    "riskserve_transformer_fail_open",
    "Transactions scored from request-only features because the store was down.",
)
STORE_ERRORS = Counter(
    "riskserve_transformer_store_errors",
    "Requests whose online lookup failed or timed out.",
)
PUSHES = Counter("riskserve_transformer_pushes", "State updates pushed.")
PUSH_FAILURES = Counter(
    "riskserve_transformer_push_failures",
    "State updates lost: error (the push raised), queue_full, shutdown.",
    ["reason"],
)
PUSHES_PENDING = Gauge(
    "riskserve_transformer_pushes_pending", "State updates waiting to be pushed."
)
HTTP_TIMEOUTS = Counter(
    "riskserve_transformer_http_timeouts",
    "Connections closed for a slow request head or a stalled body.",
    ["phase"],
)
HTTP_REJECTED = Counter(
    "riskserve_transformer_http_rejected",
    "Requests refused with 503 at the concurrency or in-flight body limit.",
    ["limit"],
)
HTTP_BROWSER_REFUSED = Counter(
    "riskserve_transformer_http_browser_refused",
    "Requests refused with 403 because a web page made them (Origin or "
    "Sec-Fetch-Site; riskserve.serving.browser_guard).",
)
