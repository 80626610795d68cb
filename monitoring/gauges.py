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

VERDICTS = {"better": 1, "worse": -1, "inconclusive": 0}
"""riskserve_experiment_verdict's values."""


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
        group = ["model", "version", "protected", "group"]
        self.fairness_air = Gauge(
            "riskserve_fairness_adverse_impact_ratio",
            "A group's approval rate over the most favoured group's, on labelled live "
            "decisions (the four-fifths rule flags < 0.8)",
            group,
            registry=r,
        )
        self.fairness_decisions = Gauge(
            "riskserve_fairness_decisions",
            "Labelled live decisions of a group of a protected attribute",
            group,
            registry=r,
        )
        self.fairness_approval_rate = Gauge(
            "riskserve_fairness_approval_rate",
            "Share of a group's labelled live decisions approved",
            group,
            registry=r,
        )
        self.fairness_approved_default_rate = Gauge(
            "riskserve_fairness_approved_default_rate",
            "Share of a group's approved, labelled decisions that defaulted",
            group,
            registry=r,
        )
        self.fairness_predicted = Gauge(
            "riskserve_fairness_mean_predicted_default_probability",
            "A group's mean predicted default probability (calibration)",
            group,
            registry=r,
        )
        self.fairness_observed = Gauge(
            "riskserve_fairness_observed_default_rate",
            "A group's observed default rate (calibration)",
            group,
            registry=r,
        )
        experiment = ["model", "experiment", "arm"]
        self.experiment_decisions = Gauge(
            "riskserve_experiment_decisions",
            "Decisions of a live experiment arm in the outcomes pass's window",
            experiment,
            registry=r,
        )
        self.experiment_approval_rate = Gauge(
            "riskserve_experiment_approval_rate",
            "Share of an arm's decisions approved (a fraud model's: allowed)",
            experiment,
            registry=r,
        )
        self.experiment_bad_rate = Gauge(
            "riskserve_experiment_bad_rate",
            "Share of an arm's approved, labelled decisions that went bad",
            experiment,
            registry=r,
        )
        self.experiment_profit = Gauge(
            "riskserve_experiment_profit_per_decision",
            "An arm's profit per decision: expected (probabilities) or realised "
            "(labels)",
            [*experiment, "kind"],
            registry=r,
        )
        self.experiment_difference = Gauge(
            "riskserve_experiment_difference",
            "A challenger's metric minus the champion's",
            [*experiment, "metric"],
            registry=r,
        )
        self.experiment_p_value = Gauge(
            "riskserve_experiment_p_value",
            "p-value of a challenger's difference from the champion (z-test for "
            "rates, bootstrap for profit)",
            [*experiment, "metric"],
            registry=r,
        )
        self.experiment_verdict = Gauge(
            "riskserve_experiment_verdict",
            "A challenger against the champion at the pass's alpha: 1 better, "
            "-1 worse, 0 inconclusive",
            experiment,
            registry=r,
        )
        self.experiment_still_needed = Gauge(
            "riskserve_experiment_still_needed_decisions",
            "Labelled approved decisions per arm still needed to detect the chosen "
            "bad-rate effect",
            experiment,
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
        self._record_fairness(result)
        self.last_run.labels(result.model).set(time.time())
        return self

    def _record_fairness(self, result: LabelResult) -> None:
        """Per version and group of the protected attribute (monitoring/fairness_live.py);
        the fairness alert reads the AIR with the decisions behind it."""
        values = (
            (self.fairness_air, "air"),
            (self.fairness_decisions, "rows"),
            (self.fairness_approval_rate, "approval_rate"),
            (self.fairness_approved_default_rate, "approved_default_rate"),
            (self.fairness_predicted, "mean_predicted_pd"),
            (self.fairness_observed, "observed_default_rate"),
        )
        for v in result.fairness:
            for row in v["groups"]:
                labels = (result.model, v["version"], v["protected"], row["group"])
                for gauge, name in values:
                    if row.get(name) is not None:
                        gauge.labels(*labels).set(row[name])

    def record_outcomes(self, result: dict) -> MonitorGauges:
        """An outcomes pass (monitoring/outcomes.py): per live arm its rates and
        money, per challenger its tests and verdict (the experiment alert's input)."""
        model, experiment = result["model"], result["experiment"]
        arm_values = (
            (self.experiment_decisions, "decisions"),
            (self.experiment_approval_rate, "approval_rate"),
            (self.experiment_bad_rate, "bad_rate"),
        )
        for arm in result["arms"]:
            labels = (model, experiment, arm["arm"])
            for gauge, name in arm_values:
                if arm[name] is not None:
                    gauge.labels(*labels).set(arm[name])
            for kind in ("expected", "realised"):
                value = arm[f"{kind}_profit_per_decision"]
                if value is not None:
                    self.experiment_profit.labels(*labels, kind).set(value)
        for c in result["comparisons"]:
            labels = (model, experiment, c["arm"])
            for metric in (
                "approval_rate",
                "bad_rate",
                "realised_profit_per_decision",
            ):
                test = c[metric]
                if test["p_value"] is not None:
                    self.experiment_p_value.labels(*labels, metric).set(test["p_value"])
                if test["difference"] is not None:
                    self.experiment_difference.labels(*labels, metric).set(
                        test["difference"]
                    )
            self.experiment_verdict.labels(*labels).set(VERDICTS[c["verdict"]])
            still = c["sample_size"]["still_needed_per_arm"]
            if still is not None:
                self.experiment_still_needed.labels(*labels).set(still)
        self.last_run.labels(model).set(time.time())
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
