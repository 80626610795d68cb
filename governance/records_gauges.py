"""The records pass's counts as Prometheus gauges, pushed to a Pushgateway (a CronJob
lives too briefly to be scraped), as the monitor's passes push theirs. The
PrometheusRule alerts on `riskserve_decision_records_lost` above zero and on a pass
that has not succeeded for a day."""

from __future__ import annotations

import time

from riskserve.governance.records_compaction import CompactionResult

JOB = "riskserve-decision-records"


def push(url: str, result: CompactionResult, decisions: int) -> None:
    """Push the pass's gauges (one group: each pass replaces the last)."""
    from prometheus_client import CollectorRegistry, Gauge, push_to_gateway

    registry = CollectorRegistry()

    def gauge(name: str, text: str, value: float) -> None:
        Gauge(name, text, registry=registry).set(value)

    gauge(
        "riskserve_decision_records_lost",
        "Log lines of the last records pass that were not decision records, plus "
        "records it could not write (the log keeps them: a later pass may).",
        result.lost,
    )
    gauge(
        "riskserve_decision_records_unparsed_lines",
        "Log lines of the last records pass that were not decision records.",
        result.unparsed_lines,
    )
    gauge(
        "riskserve_decision_records_unwritten",
        "Records the last records pass could not write.",
        result.unwritten_records,
    )
    gauge(
        "riskserve_decision_records_written",
        "Records the last records pass wrote.",
        result.written,
    )
    gauge(
        "riskserve_decision_records_total",
        "Live decisions in the records after the last pass.",
        decisions,
    )
    gauge(
        "riskserve_decision_records_last_run_timestamp_seconds",
        "When the last records pass ended (Unix time).",
        time.time(),
    )
    push_to_gateway(url, job=JOB, registry=registry)
