"""`riskserve monitor MODEL` and `riskserve monitor labels MODEL --labels FILE` (also
`python -m monitoring`).

Exit codes: 0 nothing drifted (or no traffic), 3 drift or degradation, 2 bad input
(an unknown model, no reference profile, an unreadable file or time), 1 when the
retraining loop it started failed.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import time
from pathlib import Path

from pydantic import ValidationError

from model.reference_profile import ReferenceProfile
from monitoring.analysis import Analysis, analyse
from monitoring.drift import Thresholds
from monitoring.log_reader import BadInput, LocalLog, LogWindow, open_log, parse_time
from monitoring.log_reader import read_log as read_inference_log
from monitoring.reference import (
    NoReference,
    csv_profile,
    registry_profile,
    version_tags,
)
from monitoring.settings import MonitorSettings

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT, EXIT_DRIFT = 0, 1, 2, 3


def say(message: str) -> None:
    print(f"[monitor] {message}", file=sys.stderr, flush=True)


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", help="the served model (the log's folder), e.g. fraud")
    parser.add_argument(
        "--log",
        help="the inference log's root: a folder or s3://bucket/prefix (default: "
        "RISKSERVE_MONITOR_LOG_URI)",
    )
    parser.add_argument(
        "--since", help="window start: ISO time or an age (24h, 7d); default 24h ago"
    )
    parser.add_argument("--until", help="window end: ISO time or an age; default now")
    parser.add_argument(
        "--registered-model",
        help="the MLflow registered model of the versions (default: MODEL)",
    )
    parser.add_argument(
        "--reference-data",
        type=Path,
        metavar="FILE",
        help="a CSV of training data: the reference of versions registered without a "
        "profile",
    )
    parser.add_argument("--json", action="store_true", help="print a JSON object")
    parser.add_argument(
        "--textfile", type=Path, help="write the Prometheus gauges to this file"
    )
    parser.add_argument(
        "--push",
        metavar="URL",
        help="push the gauges to this Prometheus Pushgateway (what a CronJob does)",
    )


def drift_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="riskserve monitor",
        description="Drift of the logged inputs and scores against each served "
        "version's training reference. `riskserve monitor labels MODEL --labels FILE` "
        "judges realised performance on late labels.",
    )
    _common(parser)
    parser.add_argument(
        "--no-report",
        action="store_true",
        help="write no HTML report (nothing is written beside the log)",
    )
    parser.add_argument(
        "--no-mlflow", action="store_true", help="log no monitoring run to MLflow"
    )
    parser.add_argument(
        "--serve",
        type=int,
        metavar="PORT",
        help="serve the gauges on this port and repeat the pass every --every seconds",
    )
    parser.add_argument("--every", type=float, default=300.0, help="with --serve")
    parser.add_argument(
        "--on-drift",
        choices=["report", "retrain"],
        default="report",
        help="retrain: run the training job on --data with --promote-if-better",
    )
    parser.add_argument("--data", type=Path, help="with --on-drift retrain: the CSV")
    parser.add_argument(
        "--kind",
        choices=["fraud", "credit"],
        help="with --on-drift retrain: the training job (default: the version's "
        "model_kind tag)",
    )
    parser.add_argument(
        "--rollout",
        choices=["none", "auto"],
        default="none",
        help="auto: after retraining, `riskserve rollout start MODEL --auto` with the "
        "new challenger",
    )
    parser.add_argument(
        "--training-args",
        default="",
        help="with --on-drift retrain: more arguments of the training job, e.g. "
        "'--budget 20'",
    )
    parser.add_argument(
        "--rollout-args",
        default="",
        help="with --rollout auto: more arguments of the rollout, e.g. '--window 10'",
    )
    return parser


def labels_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="riskserve monitor labels",
        description="Realised performance per version and week from late labels.",
    )
    _common(parser)
    parser.add_argument(
        "--labels",
        required=True,
        help="CSV or Parquet (a file or s3:// URI): the key column, label (0/1), time",
    )
    parser.add_argument(
        "--key",
        default="request_id",
        help="the join column: request_id (the log's; row i of a multi-row request "
        "is ID:i) or a logged input such as a business key",
    )
    return parser


class References:
    """Each version's profile, fetched once: the registry's, else the CSV's."""

    def __init__(self, registered: str, csv: Path | None, settings: MonitorSettings):
        self.registered, self.csv, self.settings = registered, csv, settings
        self.cache: dict[str, ReferenceProfile] = {}

    def __call__(self, version: str) -> ReferenceProfile:
        if version not in self.cache:
            self.cache[version] = self._load(version)
        return self.cache[version]

    def _load(self, version: str) -> ReferenceProfile:
        if self.settings.mlflow_tracking_uri:
            try:
                return registry_profile(self.registered, version, self.settings)
            except NoReference:
                if self.csv is None:
                    raise
        if self.csv is None:
            raise NoReference(
                f"no reference profile for {self.registered} v{version}: set "
                "MLFLOW_TRACKING_URI to read the registry's, or give --reference-data "
                "FILE (a CSV of its training data)"
            )
        say(f"building v{version}'s reference profile from {self.csv}")
        return csv_profile(self.csv, self.registered, version, self.settings)


def _window(args, settings: MonitorSettings) -> LogWindow:
    now = dt.datetime.now(dt.UTC)
    since = parse_time(args.since or settings.window, now)
    until = parse_time(args.until, now) if args.until else now
    if since >= until:
        raise BadInput(f"--since ({since:%Y-%m-%d %H:%M}) is not before --until")
    return LogWindow(since, until)


def _read(args, settings: MonitorSettings):
    uri = args.log or settings.log_uri
    if not uri:
        raise BadInput("no log to read: give --log or set RISKSERVE_MONITOR_LOG_URI")
    log = open_log(uri, settings)
    window = _window(args, settings)
    say(f"reading {args.model}'s log at {uri}")
    started = time.perf_counter()
    data = read_inference_log(log, args.model, window, progress=say)
    say(
        f"{data.rows} rows from {data.records} records in {data.files} files "
        f"({time.perf_counter() - started:.1f} s)"
        + (
            f"; {data.corrupt_count} corrupt lines skipped"
            if data.corrupt_count
            else ""
        )
    )
    return log, window, data


def _gauges(args, kind: str, record) -> None:
    if not (args.textfile or args.push):
        return
    from monitoring.gauges import MonitorGauges

    gauges = record(MonitorGauges())
    if args.textfile:
        gauges.write(args.textfile)
    if args.push:
        try:
            gauges.push(args.push, args.model, kind)
        except OSError as exc:  # the pass's result stands; say the push failed
            say(f"could not push the gauges to {args.push}: {exc}")


def run_drift(args, settings: MonitorSettings) -> int:
    log, window, data = _read(args, settings)
    references = References(
        args.registered_model or args.model, args.reference_data, settings
    )
    thresholds = Thresholds(
        settings.psi_threshold,
        settings.p_value_threshold,
        settings.missing_rate_threshold,
    )
    analysis = analyse(
        data, window, log.where, references, thresholds, settings.min_rows, say
    )
    report = None
    if analysis.rows and not args.no_report:
        report = write_report(analysis, log, settings, args)
    _gauges(args, "drift", lambda g: g.record(analysis))
    if args.json:
        from monitoring.report import to_json

        print(to_json(analysis, report))
    else:
        from monitoring.report import terminal_summary

        print(terminal_summary(analysis))
        if report:
            print(f"report: {report}")
    if analysis.status == "no traffic":
        say("no traffic in the window: nothing to judge")
        return EXIT_OK
    if not analysis.drifted:
        return EXIT_OK
    if args.on_drift == "retrain":
        return _retrain(args, settings, analysis)
    return EXIT_DRIFT


def _retrain(args, settings, analysis: Analysis) -> int:
    from monitoring.retrain import RetrainError, run_loop

    registered = args.registered_model or args.model
    kind = args.kind
    if kind is None and analysis.primary is not None:
        kind = version_tags(registered, analysis.primary.version, settings).get(
            "model_kind"
        )
    kind = kind or (args.model if args.model in ("fraud", "credit") else None)
    if kind is None:
        raise BadInput("cannot tell which training job to run: give --kind")
    try:
        code = run_loop(
            kind,
            args.model,
            registered,
            args.data,
            args.rollout == "auto",
            say,
            args.training_args.split(),
            args.rollout_args.split(),
        )
    except RetrainError as exc:
        print(f"riskserve monitor: error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_DRIFT if code in (0, 3) else EXIT_FAILED


def write_report(analysis: Analysis, log, settings, args) -> str:
    """The HTML report beside the log (`<log>/<model>/reports/`; the only thing the
    monitor writes there), and as an artifact of a monitoring run in MLflow."""
    from monitoring.report import html_report

    say("writing the HTML report")
    text = html_report(analysis)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    name = f"drift-{stamp}.html"
    if isinstance(log, LocalLog):
        folder = log.root / analysis.model / "reports"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / name
        path.write_text(text)
        where = str(path)
    else:
        key = log._key(analysis.model, "reports", name)
        log.client.put_object(
            Bucket=log.bucket, Key=key, Body=text.encode(), ContentType="text/html"
        )
        where = f"s3://{log.bucket}/{key}"
    if settings.mlflow_tracking_uri and not args.no_mlflow:
        _log_run(analysis, text, name, settings)
    return where


def _log_run(analysis: Analysis, text: str, name: str, settings) -> None:
    import tempfile

    import mlflow

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
            metrics = {"rows": analysis.rows, "drifted_columns": len(analysis.drifted)}
            primary = analysis.primary
            if primary:
                for c in (*primary.features, *primary.outputs):
                    metrics[f"psi_{c.name}"[:250]] = c.psi
            mlflow.log_metrics(metrics)
            with tempfile.TemporaryDirectory() as folder:
                path = Path(folder) / name
                path.write_text(text)
                mlflow.log_artifact(str(path), artifact_path="monitoring")
        say(
            f"logged monitoring run {run.info.run_id} to {settings.mlflow_tracking_uri}"
        )
    except Exception as exc:  # the report is written already; MLflow is a copy
        say(f"could not log the monitoring run to MLflow: {str(exc).splitlines()[0]}")


def run_labels(args, settings: MonitorSettings) -> int:
    import tempfile

    from monitoring.labels import fetch_labels, labels_summary, read_labels, realised

    with tempfile.TemporaryDirectory(prefix="riskserve-labels-") as folder:
        labels = read_labels(
            fetch_labels(args.labels, settings, Path(folder)), args.key
        )
    if args.since is None:
        args.since = "30d"  # labels arrive late: look further back than drift does
    _, _, data = _read(args, settings)
    if data.rows == 0:
        print(f"{args.model}: no traffic in the window: no labels to join")
        return EXIT_OK
    references = References(
        args.registered_model or args.model, args.reference_data, settings
    )
    result = realised(
        data, labels, args.key, references, settings.metric_drop_threshold
    )
    _gauges(args, "labels", lambda g: g.record_labels(result))
    if args.json:
        import json

        print(json.dumps(result.summary(), indent=1, default=float))
    else:
        print(labels_summary(result))
    return EXIT_DRIFT if result.degraded else EXIT_OK


def serve(args, settings: MonitorSettings) -> int:
    from prometheus_client import start_http_server

    from monitoring.gauges import MonitorGauges

    gauges = MonitorGauges()
    server, thread = start_http_server(args.serve, registry=gauges.registry)
    say(f"serving gauges on :{args.serve}/metrics; a pass every {args.every:g} s")
    args.textfile = None
    try:
        while True:
            _, window, data = _read(args, settings)
            references = References(
                args.registered_model or args.model, args.reference_data, settings
            )
            analysis = analyse(
                data,
                window,
                args.log or settings.log_uri,
                references,
                Thresholds(
                    settings.psi_threshold,
                    settings.p_value_threshold,
                    settings.missing_rate_threshold,
                ),
                settings.min_rows,
                say,
            )
            gauges.record(analysis)
            say(
                f"{analysis.status}: {', '.join(analysis.drifted) or 'nothing drifted'}"
            )
            time.sleep(args.every)
    except KeyboardInterrupt:
        return EXIT_OK
    finally:
        server.shutdown()


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    labels = bool(argv) and argv[0] == "labels"
    args = (labels_parser() if labels else drift_parser()).parse_args(
        argv[1:] if labels else argv
    )
    try:
        try:
            settings = MonitorSettings()
        except ValidationError as exc:
            problem = exc.errors()[0]
            where = ".".join(map(str, problem["loc"])).upper()
            raise BadInput(
                f"setting RISKSERVE_MONITOR_{where}: {problem['msg']}"
            ) from None
        if labels:
            return run_labels(args, settings)
        if args.on_drift == "retrain" and args.data is None:
            raise BadInput("--on-drift retrain needs --data FILE")
        if args.serve:
            return serve(args, settings)
        return run_drift(args, settings)
    except BadInput as exc:
        print(f"riskserve monitor: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
