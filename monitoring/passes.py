"""The monitoring passes, each taking its typed options: drift (once, or repeated behind
a gauges endpoint) and late labels. Each reads the log's window, judges it against each
served version's reference profile, publishes the result and returns the exit code.

Exit codes: 0 nothing drifted (or no traffic), 3 drift, degradation or an adverse
impact ratio under 0.8 (the labels pass with a protected attribute), 2 bad input
(`BadInput`, raised to the caller), 1 when the retraining loop it started failed.
"""

from __future__ import annotations

import datetime as dt
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from riskserve.monitoring.analysis import Analysis, analyse
from riskserve.monitoring.drift import Thresholds
from riskserve.monitoring.fairness_live import ProtectedColumn
from riskserve.monitoring.log_reader import (
    BadInput,
    LocalLog,
    LogData,
    LogWindow,
    S3Log,
    Stage,
    open_log,
    parse_time,
    read_log,
)
from riskserve.monitoring.publish import publish_gauges, save_report
from riskserve.monitoring.reference import References, version_tags
from riskserve.monitoring.settings import MonitorSettings

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT, EXIT_DRIFT = 0, 1, 2, 3

LABELS_LOOKBACK = "30d"
"""The labels pass's window when no --since is given: labels arrive late, so it looks
further back than drift does."""


def say(message: str) -> None:
    print(f"[monitor] {message}", file=sys.stderr, flush=True)


@dataclass(frozen=True, kw_only=True)
class LogOptions:
    """What every pass reads, judges against, and where its gauges go."""

    model: str
    """The served model (the log's folder), e.g. fraud."""
    log: str | None = None
    """The log's root (a folder or s3://bucket/prefix); None: the settings' log_uri."""
    since: str | None = None
    """Window start: an ISO time or an age (24h, 7d); None: the pass's default."""
    until: str | None = None
    """Window end; None: now."""
    registered_model: str | None = None
    """The MLflow registered model of the versions; None: `model`."""
    reference_data: Path | None = None
    """A CSV of training data: the reference of versions registered without one."""
    json: bool = False
    """Print one JSON object instead of the summary."""
    textfile: Path | None = None
    """Write the Prometheus gauges to this file."""
    push: str | None = None
    """Push the gauges to this Pushgateway URL."""
    stage: Stage = "auto"
    """Whose records to read when a predictor and its transformer log to one root:
    `predictor`, `transformer` (the features as served), or `auto` (`STAGES`)."""

    @property
    def registered(self) -> str:
        return self.registered_model or self.model


@dataclass(frozen=True, kw_only=True)
class DriftOptions(LogOptions):
    """A drift pass: the report, the MLflow run, and what to do on drift."""

    report: bool = True
    """Write the HTML report beside the log."""
    mlflow: bool = True
    """Log a monitoring run to MLflow (with a tracking server)."""
    on_drift: Literal["report", "retrain"] = "report"
    """retrain: run the training job on `data`, then maybe a rollout."""
    data: Path | None = None
    """The training CSV of a retrain."""
    kind: Literal["fraud", "credit"] | None = None
    """The training job; None: the version's model_kind tag, else the model's name."""
    rollout: bool = False
    """After retraining, an automatic canary of the new challenger."""
    training_args: tuple[str, ...] = ()
    """More arguments of the training job."""
    rollout_args: tuple[str, ...] = ()
    """More arguments of the rollout."""
    serve_port: int | None = None
    """Serve the gauges on this port and repeat the pass (`serve_gauges`)."""
    every_s: float = 300.0
    """Seconds between the passes of `serve_gauges`."""

    def __post_init__(self) -> None:
        if self.on_drift == "retrain" and self.data is None:
            raise BadInput("--on-drift retrain needs --data FILE")


@dataclass(frozen=True, kw_only=True)
class LabelsOptions(LogOptions):
    """A late-labels pass."""

    labels: str
    """CSV or Parquet (a file or s3:// URI): the key column, label (0/1), time."""
    key: str = "request_id"
    """The join column: request_id (the log's) or a logged input."""
    fairness: ProtectedColumn | None = None
    """Fair lending on the labelled decisions: the protected attribute and where it
    is (monitoring/fairness_live.py)."""


@dataclass(frozen=True, kw_only=True)
class OutcomesOptions(LogOptions):
    """An outcomes pass: an experiment's arms judged in money on late labels."""

    experiment: str
    """The experiment's YAML (its name, arms and economics are read) or its name."""
    labels: str
    """CSV or Parquet (a file or s3:// URI): the key column, label (0/1), and an
    optional `amount` (the loss: a default's, a chargeback's)."""
    key: str = "request_id"
    """The join column: request_id (the log's) or a raw input of the records."""
    gain_rate: float | None = None
    """Earned on a good approved decision, a share of its amount (over the file's)."""
    loss_given_default: float | None = None
    """Lost on a bad approved decision, a share of its amount (over the file's)."""
    champion: str | None = None
    """The arm challengers are judged against; None: the file's first live arm."""
    alpha: float = 0.05
    judge: Literal["profit", "bad_rate"] = "profit"
    mde: float = 0.01
    power: float = 0.8
    resamples: int = 4000
    seed: int = 0
    report: bool = True
    """Write the HTML report beside the log."""

    def __post_init__(self) -> None:
        if not 0 < self.alpha < 1 or not 0 < self.power < 1:
            raise BadInput("--alpha and --power must be between 0 and 1")
        if not 0 < self.mde < 1:
            raise BadInput("--mde must be between 0 and 1 (an absolute rate change)")
        if not 100 <= self.resamples <= 100_000:
            raise BadInput("--resamples must be between 100 and 100000")


def _window(options: LogOptions, default_since: str) -> LogWindow:
    now = dt.datetime.now(dt.UTC)
    since = parse_time(options.since or default_since, now)
    until = parse_time(options.until, now) if options.until else now
    if since >= until:
        raise BadInput(f"--since ({since:%Y-%m-%d %H:%M}) is not before --until")
    return LogWindow(since, until)


def _open(options: LogOptions, settings: MonitorSettings) -> LocalLog | S3Log:
    uri = options.log or settings.log_uri
    if not uri:
        raise BadInput("no log to read: give --log or set RISKSERVE_MONITOR_LOG_URI")
    return open_log(uri, settings)


def _read(
    log: LocalLog | S3Log, options: LogOptions, default_since: str
) -> tuple[LogWindow, LogData]:
    window = _window(options, default_since)
    say(f"reading {options.model}'s log at {log.where}")
    started = time.perf_counter()
    data = read_log(log, options.model, window, progress=say, stage=options.stage)
    say(
        f"{data.rows} rows from {data.records} {data.stage} records in {data.files} "
        "files "
        f"({time.perf_counter() - started:.1f} s)"
        + (
            f"; {data.corrupt_count} corrupt lines skipped"
            if data.corrupt_count
            else ""
        )
    )
    return window, data


def _judge_drift(
    options: DriftOptions, settings: MonitorSettings, thresholds: Thresholds
) -> tuple[LocalLog | S3Log, Analysis]:
    """The window's rows of each served version against that version's reference."""
    log = _open(options, settings)
    window, data = _read(log, options, settings.window)
    references = References(
        options.registered, options.reference_data, settings, progress=say
    )
    analysis = analyse(
        data, window, log.where, references, thresholds, settings.min_rows, say
    )
    return log, analysis


def drift_pass(options: DriftOptions, settings: MonitorSettings) -> int:
    """One drift pass: summary or JSON on stdout, the report, the gauges; on drift,
    exit 3 or the retraining loop."""
    log, analysis = _judge_drift(options, settings, settings.thresholds())
    report = None
    if analysis.rows and options.report:
        report = save_report(analysis, log, settings, options.mlflow, say)
    publish_gauges(
        lambda g: g.record(analysis),
        options.model,
        "drift",
        options.textfile,
        options.push,
        say,
    )
    if options.json:
        from riskserve.monitoring.report import to_json

        print(to_json(analysis, report))
    else:
        from riskserve.monitoring.report import terminal_summary

        print(terminal_summary(analysis))
        if report:
            print(f"report: {report}")
    if analysis.status == "no traffic":
        say("no traffic in the window: nothing to judge")
        return EXIT_OK
    if not analysis.drifted:
        return EXIT_OK
    if options.on_drift == "retrain":
        return _retrain(options, settings, analysis)
    return EXIT_DRIFT


def _retrain(
    options: DriftOptions, settings: MonitorSettings, analysis: Analysis
) -> int:
    from riskserve.monitoring.retrain import RetrainError, run_loop

    kind: str | None = options.kind
    if kind is None and analysis.primary is not None:
        kind = version_tags(options.registered, analysis.primary.version, settings).get(
            "model_kind"
        )
    kind = kind or (options.model if options.model in ("fraud", "credit") else None)
    if kind is None:
        raise BadInput("cannot tell which training job to run: give --kind")
    assert options.data is not None  # DriftOptions checks it for a retrain
    try:
        code = run_loop(
            kind,
            options.model,
            options.registered,
            options.data,
            options.rollout,
            say,
            list(options.training_args),
            list(options.rollout_args),
        )
    except RetrainError as exc:
        print(f"riskserve monitor: error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_DRIFT if code in (0, 3) else EXIT_FAILED


def serve_gauges(options: DriftOptions, settings: MonitorSettings) -> int:
    """Serve the gauges on `options.serve_port` and repeat the drift pass every
    `options.every_s` seconds, until interrupted."""
    from prometheus_client import start_http_server
    from riskserve.monitoring.gauges import MonitorGauges

    if options.serve_port is None:
        raise BadInput("serving the gauges needs a port (--serve PORT)")
    gauges = MonitorGauges()
    server, _ = start_http_server(options.serve_port, registry=gauges.registry)
    say(
        f"serving gauges on :{options.serve_port}/metrics; a pass every "
        f"{options.every_s:g} s"
    )
    thresholds = settings.thresholds()
    try:
        while True:
            _, analysis = _judge_drift(options, settings, thresholds)
            gauges.record(analysis)
            say(
                f"{analysis.status}: {', '.join(analysis.drifted) or 'nothing drifted'}"
            )
            time.sleep(options.every_s)
    except KeyboardInterrupt:
        return EXIT_OK
    finally:
        server.shutdown()


def labels_pass(options: LabelsOptions, settings: MonitorSettings) -> int:
    """Realised performance per version and week, and with a protected attribute
    fairness per group; exit 3 when it degraded or a group's AIR is under 0.8."""
    import tempfile

    from riskserve.monitoring.labels import (
        fetch_labels,
        labels_summary,
        read_labels,
        realised,
    )

    fairness = options.fairness
    proxy = None
    with tempfile.TemporaryDirectory(prefix="riskserve-labels-") as folder:
        labels = read_labels(
            fetch_labels(options.labels, settings, Path(folder)),
            options.key,
            keep=(fairness.column,) if fairness and not fairness.file else (),
        )
        if fairness is not None and fairness.file is not None:
            from riskserve.monitoring.fairness_live import read_proxy

            proxy = read_proxy(
                fetch_labels(fairness.file, settings, Path(folder)), fairness
            )
    _, data = _read(_open(options, settings), options, LABELS_LOOKBACK)
    if data.rows == 0:
        print(f"{options.model}: no traffic in the window: no labels to join")
        return EXIT_OK
    references = References(
        options.registered, options.reference_data, settings, progress=say
    )
    result = realised(
        data,
        labels,
        options.key,
        references,
        settings.metric_drop_threshold,
        fairness,
        proxy,
    )
    publish_gauges(
        lambda g: g.record_labels(result),
        options.model,
        "labels",
        options.textfile,
        options.push,
        say,
    )
    if options.json:
        import json

        print(json.dumps(result.summary(), indent=1, default=float))
    else:
        print(labels_summary(result))
    return EXIT_DRIFT if result.degraded or result.adverse_impact else EXIT_OK


def outcomes_pass(options: OutcomesOptions, settings: MonitorSettings) -> int:
    """Each arm's outcomes and each challenger against the champion; exit 3 when a
    challenger is significantly worse."""
    import json
    import tempfile

    from riskserve.monitoring.labels import fetch_labels
    from riskserve.monitoring.outcomes import (
        Judging,
        outcomes,
        outcomes_summary,
        worse_arms,
    )
    from riskserve.monitoring.outcomes_experiment import (
        economics_of,
        is_experiment_file,
        read_experiment,
    )
    from riskserve.monitoring.outcomes_labels import read_outcome_labels
    from riskserve.monitoring.outcomes_log import read_decisions

    experiment = None
    name = options.experiment
    if is_experiment_file(options.experiment):
        experiment = read_experiment(options.experiment, settings)
        name = experiment.name
    economics = economics_of(experiment, options.gain_rate, options.loss_given_default)
    champion = options.champion or (experiment and experiment.champion_arm)
    if not champion:
        raise BadInput(
            f"which arm is the champion? {options.experiment!r} is no experiment "
            "file: give --champion ARM"
        )
    with tempfile.TemporaryDirectory(prefix="riskserve-outcomes-") as folder:
        labels = read_outcome_labels(
            fetch_labels(options.labels, settings, Path(folder)), options.key
        )
    log = _open(options, settings)
    window = _window(options, LABELS_LOOKBACK)
    say(f"reading experiment {name!r} of {options.model}'s log at {log.where}")
    decisions = read_decisions(log, options.model, window, name)
    if decisions.live.empty:
        print(f"{options.model}: no decision of experiment {name!r} in the window")
        return EXIT_OK
    judging = Judging(
        champion=champion,
        alpha=options.alpha,
        judge=options.judge,
        mde=options.mde,
        power=options.power,
        resamples=options.resamples,
        seed=options.seed,
    )
    result = {
        "experiment": name,
        "model": options.model,
        "window": window.as_dict(),
        "log": log.where,
        **outcomes(decisions, labels, options.key, economics, judging),
    }
    result["report"] = None
    if options.report:
        from riskserve.monitoring.outcomes_report import outcomes_html

        stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
        result["report"] = log.write(
            f"{options.model}/reports/outcomes-{name}-{stamp}.html",
            outcomes_html(result).encode(),
            "text/html",
        )
    publish_gauges(
        lambda g: g.record_outcomes(result),
        options.model,
        "outcomes",
        options.textfile,
        options.push,
        say,
    )
    if options.json:
        print(json.dumps(result, indent=1))
    else:
        print(outcomes_summary(result))
        if result["report"]:
            print(f"report: {result['report']}")
    worse = worse_arms(result)
    if worse:
        say(f"significantly worse than {champion}: {', '.join(worse)}")
    return EXIT_DRIFT if worse else EXIT_OK
