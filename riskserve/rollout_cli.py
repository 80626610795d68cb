"""`riskserve rollout start | promote | rollback | status | gate`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from riskserve.rollout.controller import (
    Backend,
    KServeBackend,
    LocalBackend,
    Rollout,
    RolloutError,
)
from riskserve.rollout.settings import RolloutSettings


def add_auto_options(parser: argparse.ArgumentParser, when: str = "") -> None:
    """`--auto`, `--steps`, `--window`: the automatic rollout's options, the same for
    a model (`riskserve rollout start`) and a policy (`riskserve policy rollout`)."""
    parser.add_argument(
        "--auto",
        action="store_true",
        help=f"{when}step through --steps, judge each on the metrics, then "
        "promote or roll back",
    )
    parser.add_argument(
        "--steps", help="with --auto: comma-separated percentages (default 10,50,100)"
    )
    parser.add_argument(
        "--window", type=float, help="with --auto: seconds watched per step"
    )
    parser.add_argument(
        "--prometheus",
        metavar="URL",
        help="with --auto: read the gates by PromQL from this Prometheus (needed "
        "on a cluster)",
    )


def auto_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The settings `--steps` and `--window` override."""
    overrides: dict[str, Any] = {}
    if args.window:
        overrides["window_s"] = args.window
    if args.steps:
        overrides["steps"] = args.steps
    if args.prometheus:
        overrides["prometheus_url"] = args.prometheus
    return overrides


def with_prometheus(backend: Any, settings: RolloutSettings) -> Any:
    """`backend` with the automatic gates read from Prometheus when the settings name
    one (`--prometheus`), else `backend`."""
    if not settings.prometheus_url:
        return backend
    from riskserve.rollout.prometheus import prometheus_backend

    return prometheus_backend(backend, settings)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="riskserve rollout")
    parser.add_argument(
        "action", choices=["start", "promote", "rollback", "status", "gate"]
    )
    parser.add_argument("isvc", help="the InferenceService, e.g. fraud")
    parser.add_argument(
        "--model",
        help="start: models:/NAME@ALIAS, models:/NAME/N, s3://..., or a folder",
    )
    parser.add_argument(
        "--percent", type=int, default=10, help="start: canary share (0-100)"
    )
    add_auto_options(parser, "start: ")
    parser.add_argument(
        "--shadow",
        action="store_true",
        help="start: mirror traffic to the new revision, never return its answers",
    )
    parser.add_argument(
        "--outcomes",
        type=Path,
        metavar="FILE",
        help="gate: the experiment's outcomes report (riskserve monitor outcomes "
        "--json); promote when the challenger arm is better, roll back when worse",
    )
    parser.add_argument(
        "--arm",
        help="gate: the challenger arm the canary serves (default: the report's)",
    )
    parser.add_argument("--backend", choices=["local", "kserve"], help="default: local")
    parser.add_argument(
        "--namespace", help="kserve backend: namespace of the InferenceService"
    )
    return parser


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    overrides = {}
    if args.backend:
        overrides["backend"] = args.backend
    if args.namespace:
        overrides["namespace"] = args.namespace
    overrides.update(auto_overrides(args))
    settings = RolloutSettings(**overrides)
    backend: Backend
    if settings.backend == "kserve":
        backend = KServeBackend(settings.namespace)
    else:
        from riskserve.localplatform.settings import PlatformSettings

        backend = LocalBackend(PlatformSettings())
    rollout = Rollout(with_prometheus(backend, settings), settings)
    try:
        if args.action == "start":
            if not args.model:
                raise RolloutError("start needs --model")
            if args.auto:
                steps = settings.step_percents()
                return 0 if rollout.auto(args.isvc, args.model, steps) else 3
            rollout.start(args.isvc, args.model, args.percent, shadow=args.shadow)
        elif args.action == "promote":
            rollout.promote(args.isvc)
        elif args.action == "rollback":
            rollout.rollback(args.isvc)
        elif args.action == "gate":
            if args.outcomes is None:
                raise RolloutError("gate needs --outcomes FILE")
            decided = rollout.gate_on_outcomes(args.isvc, args.outcomes, args.arm)
            print(f"{args.isvc}: outcomes gate: {decided}")
        status = rollout.status(args.isvc)
        print(f"{args.isvc}: traffic {status.split() or 'none'}")
        print(
            f"  latestCreated {status.latest_created}, latestReady {status.latest_ready}, "
            f"latestRolledout {status.latest_rolledout}, previousRolledout {status.previous_rolledout}"
        )
        if args.action == "status" and hasattr(backend, "revision_metrics"):
            for name, m in backend.revision_metrics(args.isvc).items():
                shadow = m.get("shadow_comparison", {})
                line = f"  {name}: {m['requests']} requests, {m['errors']} errors"
                if shadow.get("compared"):
                    line += (
                        f"; shadow: {shadow['compared']} compared, {shadow['disagreements']} "
                        f"decisions differ, mean |score diff| "
                        f"{shadow['sum_abs_diff'] / shadow['compared']:.4f}"
                    )
                print(line)
    except RolloutError as exc:
        print(f"riskserve rollout {args.action}: error: {exc}", file=sys.stderr)
        return 2
    except ValueError as exc:
        print(f"riskserve rollout {args.action}: error: {exc}", file=sys.stderr)
        return 2
    return 0
