"""Prometheus gauges of a monitoring pass, for alerts (the chart's drift PrometheusRule):
written to a textfile (node-exporter's textfile collector, or a Pushgateway's input) or
served on `--serve PORT`."""

from __future__ import annotations

import time
from pathlib import Path

from prometheus_client import (
    CollectorRegistry,
    Gauge,
    push_to_gateway,
    write_to_textfile,
)
from riskserve.monitoring.analysis import Analysis
from riskserve.monitoring.labels import LabelResult


class MonitorGauges:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.feature_psi = Gauge(
            "riskserve_feature_psi",
            "PSI of a feature's live values against the version's training reference",
            ["model", "version", "feature"],
            registry=r,
        )
        self.feature_drifted = Gauge(
            "riskserve_feature_drifted",
            "1 when the feature drifted (PSI and test over their thresholds)",
            ["model", "version", "feature"],
            registry=r,
        )
        self.output_psi = Gauge(
            "riskserve_output_psi",
            "PSI of a score output against its distribution on the training holdout",
            ["model", "version", "output"],
            registry=r,
        )
        self.output_drifted = Gauge(
            "riskserve_output_drifted",
            "1 when the score output drifted",
            ["model", "version", "output"],
            registry=r,
        )
        self.rows = Gauge(
            "riskserve_monitor_rows",
            "Rows of the monitoring window per version",
            ["model", "version"],
            registry=r,
        )
        self.drifted = Gauge(
            "riskserve_monitor_drifted_columns",
            "Features and outputs that drifted in the last monitoring pass",
            ["model"],
            registry=r,
        )
        self.corrupt = Gauge(
            "riskserve_monitor_corrupt_lines",
            "Inference-log lines skipped as corrupt in the last pass",
            ["model"],
            registry=r,
        )
        self.last_run = Gauge(
            "riskserve_monitor_last_run_timestamp_seconds",
            "When the last monitoring pass finished",
            ["model"],
            registry=r,
        )
        self.realised = Gauge(
            "riskserve_realised_metric",
            "A metric realised on late labels (pr_auc, roc_auc, precision, recall)",
            ["model", "version", "metric"],
            registry=r,
        )
        self.degraded = Gauge(
            "riskserve_model_degraded",
            "1 when a realised metric fell below the holdout's by the threshold",
            ["model", "version"],
            registry=r,
        )

    def record(self, analysis: Analysis) -> MonitorGauges:
        model = analysis.model
        for version in analysis.versions:
            self.rows.labels(model, version.version).set(version.rows)
            for c in version.features:
                self.feature_psi.labels(model, version.version, c.name).set(c.psi)
                self.feature_drifted.labels(model, version.version, c.name).set(
                    int(c.drifted and version.judged)
                )
            for c in version.outputs:
                self.output_psi.labels(model, version.version, c.name).set(c.psi)
                self.output_drifted.labels(model, version.version, c.name).set(
                    int(c.drifted and version.judged)
                )
        self.drifted.labels(model).set(len(analysis.drifted))
        self.corrupt.labels(model).set(analysis.corrupt_count)
        self.last_run.labels(model).set(time.time())
        return self

    def record_labels(self, result: LabelResult) -> MonitorGauges:
        for v in result.per_version:
            for metric in ("pr_auc", "roc_auc", "precision", "recall"):
                if v.get(metric) is not None:
                    self.realised.labels(result.model, v["version"], metric).set(
                        v[metric]
                    )
            self.degraded.labels(result.model, v["version"]).set(
                int(bool(v["degraded"]))
            )
        self.last_run.labels(result.model).set(time.time())
        return self

    def push(self, url: str, model: str, kind: str) -> None:
        """To a Pushgateway (a CronJob lives too briefly to be scraped). A push
        replaces its whole group, so each kind of pass (`drift`, `labels`) has a group
        of its own per model: the labels pass must not erase the drift gauges."""
        push_to_gateway(
            url,
            job="riskserve-monitor",
            grouping_key={"model": model, "pass": kind},
            registry=self.registry,
        )

    def write(self, path: Path) -> None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        write_to_textfile(str(path), self.registry)
