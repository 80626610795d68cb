"""Where a monitoring pass's results go, besides stdout: the HTML report beside the log
(and as an artifact of a monitoring run in MLflow), and the Prometheus gauges (a
textfile for node-exporter, or a Pushgateway, which is what a CronJob does)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path

from riskserve.monitoring.analysis import Analysis
from riskserve.monitoring.log_reader import LocalLog, S3Log
from riskserve.monitoring.settings import MonitorSettings

Progress = Callable[[str], None]


def save_report(
    analysis: Analysis,
    log: LocalLog | S3Log,
    settings: MonitorSettings,
    to_mlflow: bool,
    progress: Progress,
) -> str:
    """The HTML report beside the log (`<log>/<model>/reports/`; the only thing the
    monitor writes there), and, with `to_mlflow` and a tracking server, as an artifact
    of a monitoring run in MLflow. Where the report went."""
    from riskserve.monitoring.report import html_report

    progress("writing the HTML report")
    text = html_report(analysis)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    name = f"drift-{stamp}.html"
    where = log.write(f"{analysis.model}/reports/{name}", text.encode(), "text/html")
    if settings.mlflow_tracking_uri and to_mlflow:
        _log_run(analysis, text, name, settings, progress)
    return where


def _log_run(
    analysis: Analysis,
    text: str,
    name: str,
    settings: MonitorSettings,
    progress: Progress,
) -> None:
    import tempfile

    import mlflow

    assert settings.mlflow_tracking_uri  # the caller logs only when one is set
    settings.apply_mlflow_client()
    try:
        mlflow.set_tracking_uri(settings.mlflow_tracking_uri)
        mlflow.set_experiment(settings.experiment)
        with mlflow.start_run(run_name=f"{analysis.model} drift") as run:
            mlflow.set_tags(
                {
                    "model": analysis.model,
                    "status": analysis.status,
                    "window_since": analysis.window.as_dict()["since"],
                    "window_until": analysis.window.as_dict()["until"],
                    "drifted": ",".join(analysis.drifted)[:5000],
                }
            )
            metrics: dict[str, float] = {
                "rows": analysis.rows,
                "drifted_columns": len(analysis.drifted),
            }
            primary = analysis.primary
            if primary:
                for c in (*primary.features, *primary.outputs):
                    metrics[f"psi_{c.name}"[:250]] = c.psi
            mlflow.log_metrics(metrics)
            with tempfile.TemporaryDirectory() as folder:
                path = Path(folder) / name
                path.write_text(text)
                mlflow.log_artifact(str(path), artifact_path="monitoring")
        progress(
            f"logged monitoring run {run.info.run_id} to {settings.mlflow_tracking_uri}"
        )
    except Exception as exc:  # the report is written already; MLflow is a copy
        progress(
            f"could not log the monitoring run to MLflow: {str(exc).splitlines()[0]}"
        )


def publish_gauges(
    record: Callable[..., object],
    model: str,
    kind: str,
    textfile: Path | None,
    push: str | None,
    progress: Progress,
) -> None:
    """The pass's gauges (`record(gauges)` fills them) to `textfile` and/or the
    Pushgateway at `push`; a failed push is said, never fatal."""
    if not (textfile or push):
        return
    from riskserve.monitoring.gauges import MonitorGauges

    gauges = MonitorGauges()
    record(gauges)
    if textfile:
        gauges.write(textfile)
    if push:
        try:
            gauges.push(push, model, kind)
        except OSError as exc:  # the pass's result stands; say the push failed
            progress(f"could not push the gauges to {push}: {exc}")
