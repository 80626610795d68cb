"""`riskserve monitor MODEL`, `riskserve monitor labels MODEL --labels FILE` and
`riskserve monitor outcomes MODEL --experiment FILE --labels FILE` (also
`python -m riskserve.monitoring`): the command line of the passes in monitoring/passes.py.

`drift` is the default subcommand, so `monitor fraud --since=24h` (the CronJobs'
command) is `monitor drift fraud --since=24h`. The arguments become a frozen options
object and the settings are read once; nothing here changes either afterwards.

Exit codes: 0 nothing drifted (or no traffic), 3 drift or degradation, 2 bad input
(an unknown model, no reference profile, an unreadable file or time), 1 when the
retraining loop it started failed.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import fields
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from riskserve.monitoring import fairness_live
from riskserve.monitoring.log_reader import STAGES, BadInput
from riskserve.monitoring.passes import (
    EXIT_BAD_INPUT,
    DriftOptions,
    LabelsOptions,
    LogOptions,
    OutcomesOptions,
    drift_pass,
    labels_pass,
    outcomes_pass,
    serve_gauges,
)
from riskserve.monitoring.settings import MonitorSettings

SUBCOMMANDS = ("drift", "labels", "outcomes")


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
    parser.add_argument(
        "--stage",
        choices=STAGES,
        default="auto",
        help="whose records to read where a transformer and its predictor log to one "
        "root: the transformer's (the features as served, with the raw inputs), the "
        "predictor's, or auto (default): the transformer's when there are any",
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


def _drift_arguments(parser: argparse.ArgumentParser) -> None:
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


def _labels_arguments(parser: argparse.ArgumentParser) -> None:
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
    fairness_live.add_arguments(parser)


def _outcomes_arguments(parser: argparse.ArgumentParser) -> None:
    _common(parser)
    parser.add_argument(
        "--experiment",
        required=True,
        metavar="FILE-or-NAME",
        help="the experiment's YAML, a file or s3:// URI (name, arms: the first live "
        "one is the champion, economics) or its name as the records carry it",
    )
    parser.add_argument(
        "--labels",
        required=True,
        help="CSV or Parquet (a file or s3:// URI): the key column, label (0/1), and "
        "an optional amount (the money a bad outcome lost)",
    )
    parser.add_argument(
        "--key",
        default="request_id",
        help="the join column: request_id (row i of a multi-row request is ID:i) or "
        "a raw input such as customer_id",
    )
    parser.add_argument(
        "--gain-rate",
        type=float,
        help="earned on a good approved decision, a share of its amount (over the "
        "experiment file's economics.gain_rate)",
    )
    parser.add_argument(
        "--loss-given-default",
        type=float,
        help="lost on a bad approved decision, a share of its amount, unless its "
        "label gives the amount (over economics.loss_given_default)",
    )
    parser.add_argument(
        "--champion",
        help="the arm the others are judged against (default: the "
        "experiment file's first live arm)",
    )
    parser.add_argument(
        "--alpha", type=float, default=0.05, help="the tests' level (default 0.05)"
    )
    parser.add_argument(
        "--judge",
        choices=["profit", "bad_rate"],
        default="profit",
        help="the verdict's measure: realised profit per decision (bootstrap) or the "
        "bad rate among approved (z-test)",
    )
    parser.add_argument(
        "--mde",
        type=float,
        default=0.01,
        help="the bad rate's minimum detectable effect, absolute (default 0.01): "
        "the sample size still needed is for it",
    )
    parser.add_argument("--power", type=float, default=0.8, help="default 0.8")
    parser.add_argument(
        "--resamples", type=int, default=4000, help="bootstrap resamples (default 4000)"
    )
    parser.add_argument("--seed", type=int, default=0, help="the bootstrap's seed")
    parser.add_argument(
        "--no-report",
        action="store_true",
        help="write no HTML report (nothing is written beside the log)",
    )


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(
        prog="riskserve monitor",
        description="Drift of the logged inputs and scores against each served "
        "version's training reference (`drift`, the default: `riskserve monitor "
        "MODEL`), and realised performance on late labels (`riskserve monitor labels "
        "MODEL --labels FILE`).",
    )
    commands = top.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _drift_arguments(
        commands.add_parser(
            "drift",
            help="drift against the training reference (the default)",
            description="Drift of the logged inputs and scores against each served "
            "version's training reference (the default command: `riskserve monitor "
            "MODEL` is `riskserve monitor drift MODEL`). Realised performance on late "
            "labels: `riskserve monitor labels --help`.",
        )
    )
    _labels_arguments(
        commands.add_parser(
            "labels",
            help="realised performance from late labels",
            description="Realised performance per version and week from late labels.",
        )
    )
    _outcomes_arguments(
        commands.add_parser(
            "outcomes",
            help="an experiment's arms in money, with statistics, on late labels",
            description="Per experiment arm: volume, approval rate, bad rate, expected "
            "and realised profit, fraud caught and missed; each challenger against the "
            "champion (z-tests, a bootstrap, the sample size still needed). Exit 3 "
            "when a challenger is significantly worse.",
        )
    )
    return top


def _with_subcommand(argv: list[str]) -> list[str]:
    """`drift` when no subcommand is named: `monitor fraud ...` as before, and
    `monitor --help` is the default command's help (which names `labels`)."""
    if argv and argv[0] in SUBCOMMANDS:
        return argv
    return ["drift", *argv]


def _common_options(args: argparse.Namespace) -> dict[str, Any]:
    """The arguments every pass shares, under their options' names (the same as the
    arguments' `dest`)."""
    return {f.name: getattr(args, f.name) for f in fields(LogOptions)}


def drift_options(args: argparse.Namespace) -> DriftOptions:
    return DriftOptions(
        **_common_options(args),
        report=not args.no_report,
        mlflow=not args.no_mlflow,
        on_drift=args.on_drift,
        data=args.data,
        kind=args.kind,
        rollout=args.rollout == "auto",
        training_args=tuple(args.training_args.split()),
        rollout_args=tuple(args.rollout_args.split()),
        serve_port=args.serve,
        every_s=args.every,
    )


def labels_options(args: argparse.Namespace) -> LabelsOptions:
    return LabelsOptions(
        **_common_options(args),
        labels=args.labels,
        key=args.key,
        fairness=fairness_live.from_arguments(args),
    )


def outcomes_options(args: argparse.Namespace) -> OutcomesOptions:
    return OutcomesOptions(
        **_common_options(args),
        experiment=args.experiment,
        labels=args.labels,
        key=args.key,
        gain_rate=args.gain_rate,
        loss_given_default=args.loss_given_default,
        champion=args.champion,
        alpha=args.alpha,
        judge=args.judge,
        mde=args.mde,
        power=args.power,
        resamples=args.resamples,
        seed=args.seed,
        report=not args.no_report,
    )


def _settings() -> MonitorSettings:
    try:
        return MonitorSettings()
    except ValidationError as exc:
        problem = exc.errors()[0]
        where = ".".join(map(str, problem["loc"]))
        # A standard variable (S3_VERIFY_SSL, ...) is named as it is; the monitor's
        # own fields carry its prefix.
        variable = where if where.isupper() else f"RISKSERVE_MONITOR_{where.upper()}"
        raise BadInput(f"setting {variable}: {problem['msg']}") from None


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser().parse_args(_with_subcommand(argv))
    try:
        settings = _settings()
        if args.command == "labels":
            return labels_pass(labels_options(args), settings)
        if args.command == "outcomes":
            return outcomes_pass(outcomes_options(args), settings)
        options = drift_options(args)
        if options.serve_port:
            return serve_gauges(options, settings)
        return drift_pass(options, settings)
    except BadInput as exc:
        print(f"riskserve monitor: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
