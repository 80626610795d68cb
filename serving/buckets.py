"""Histogram bucket edges shared by the predictor's metrics and the local platform's
gateway, so that a p99 read from either (by PromQL or by the rollout gates) is
interpolated over the same edges."""

from __future__ import annotations

# Milliseconds: fine where single-row requests fall (0.1-10 ms), coarse in the tail.
LATENCY_BOUNDS_MS = (
    0.1,
    0.25,
    0.5,
    1,
    2,
    3,
    5,
    7.5,
    10,
    15,
    25,
    50,
    100,
    250,
    1000,
    5000,
)
LATENCY_BUCKETS_S = tuple(ms / 1000 for ms in LATENCY_BOUNDS_MS)
