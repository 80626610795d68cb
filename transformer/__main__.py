"""`python -m riskserve.transformer --model_name fraud --predictor_host HOST:PORT
--feature_repo DIR`: the transformer in front of a fraud predictor; with
`--features none` (and a policy), the policy-only transformer: the request holds the
model's inputs, no feature store (`riskserve.transformer.policy_only`).

Takes KServe's container arguments (the predictor's mirror of
`kserve.model_server.parser`, which a test holds equal to KServe's), so
`spec.transformer` passes them unchanged, plus the Feast repository.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from pathlib import Path

from riskserve.serving.kserve_args import kserve_parser

log = logging.getLogger("transformer")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m riskserve.transformer",
        description="Decide on raw card transactions: Feast online features, then the "
        "predictor over v2.",
        parents=[kserve_parser()],
    )
    parser.add_argument(
        "--feature_repo",
        type=Path,
        default=None,
        help="The Feast repository folder (also RISKSERVE_TRANSFORMER_FEATURE_REPO).",
    )
    parser.add_argument(
        "--features",
        choices=("feast", "none"),
        default="feast",
        help="feast: look up and push features (the default); none: policy only, the "
        "request holds the model's inputs (needs RISKSERVE_TRANSFORMER_POLICY_URI).",
    )
    # None: not given (KServe's defaults are v1 and 600 s; see main()). gRPC is
    # served only on a --grpc_port given (KServe's default, 8081, would clash between
    # the transformers of one host: the local platform, the tests); the chart and the
    # local platform give one.
    parser.set_defaults(
        protocol=None,
        predictor_protocol=None,
        predictor_request_timeout_seconds=None,
        grpc_port=None,
    )
    return parser


# One process, so never prometheus_client's multiprocess mode: importing Feast sets
# these in os.environ (its own temporary folder), and a child of a process that
# imported Feast inherits them; prometheus_client reads them when first imported.
MULTIPROCESS_VARIABLES = ("PROMETHEUS_MULTIPROC_DIR", "PROMETHEUS_MULTIPROCESS_DIR")


def main(argv: list[str] | None = None) -> int:
    for name in MULTIPROCESS_VARIABLES:
        os.environ.pop(name, None)
    parser = build_parser()
    args = parser.parse_args(argv)
    from riskserve.transformer.settings import TransformerSettings

    settings = TransformerSettings()
    if args.configure_logging:
        from riskserve.serving.logs import configure_logging

        configure_logging(settings.log_level)
    problems = []
    if not args.predictor_host:
        problems.append("--predictor_host HOST:PORT is required")
    for flag in ("protocol", "predictor_protocol"):
        if getattr(args, flag) not in (None, "v2"):
            problems.append(f"--{flag} {getattr(args, flag)}: only v2 is served")
    if args.predictor_use_ssl:
        problems.append("--predictor_use_ssl: TLS to the predictor is not supported")
    if args.workers != 1:
        problems.append("--workers: one process per transformer; scale with replicas")
    repo: Path | None = None
    if args.features == "none":
        if args.feature_repo is not None:
            problems.append(
                "--feature_repo with --features none: a policy-only transformer "
                "opens no feature store"
            )
        if not settings.policy_uri:
            problems.append(
                "--features none needs RISKSERVE_TRANSFORMER_POLICY_URI: without "
                "features or a policy the transformer has nothing to do"
            )
    else:
        repo = args.feature_repo or settings.feature_repo
        if repo is None:
            problems.append(
                "--feature_repo (or RISKSERVE_TRANSFORMER_FEATURE_REPO) is required"
            )
    if problems:
        parser.error("; ".join(problems))
    policy = None
    if settings.policy_uri:
        from riskserve.transformer.policy import PolicyError, load_policy

        try:
            policy = load_policy(settings.policy_uri)
        except PolicyError as exc:
            # One line, no traceback: what an operator reads in the pod's status.
            problems_text = "; ".join(str(exc).splitlines())
            print(
                f"riskserve.transformer: RISKSERVE_TRANSFORMER_POLICY_URI: "
                f"{problems_text}",
                file=sys.stderr,
            )
            return 2
    from riskserve.transformer.experiment_schema import ExperimentError

    experiment = None
    if settings.experiment_uri:
        from riskserve.transformer.experiment import load_experiment

        try:
            experiment = load_experiment(settings.experiment_uri)
        except ExperimentError as exc:
            print(
                "riskserve.transformer: RISKSERVE_TRANSFORMER_EXPERIMENT_URI: "
                + "; ".join(str(exc).splitlines()),
                file=sys.stderr,
            )
            return 2
        if args.features == "none":
            print(
                "riskserve.transformer: RISKSERVE_TRANSFORMER_EXPERIMENT_URI: a "
                "policy-only transformer (--features none) has no entity id to "
                "assign arms by",
                file=sys.stderr,
            )
            return 2
        if experiment.shadows and not settings.inference_log_uri:
            print(
                "riskserve.transformer: RISKSERVE_TRANSFORMER_EXPERIMENT_URI: arm "
                f"{experiment.shadows[0].name!r} is a shadow, whose decisions go only "
                "to the inference log: set RISKSERVE_TRANSFORMER_INFERENCE_LOG_URI",
                file=sys.stderr,
            )
            return 2
    from riskserve.transformer.server import ServerOptions, TransformerServer

    options = ServerOptions(
        model_name=args.model_name,
        predictor_host=args.predictor_host,
        http_port=args.http_port,
        feature_repo=repo,
        predictor_timeout_seconds=float(
            args.predictor_request_timeout_seconds or settings.predictor_timeout_seconds
        ),
        check_predictor_health=args.enable_predictor_health_check,
        timeout_keep_alive=args.timeout_keep_alive,
        log_config_file=args.log_config_file,
        grpc_port=args.grpc_port if args.enable_grpc else None,  # None: not given
        grpc_max_message_bytes=max(
            args.grpc_max_receive_message_length, args.grpc_max_send_message_length
        ),
    )
    try:
        server = TransformerServer(options, settings, policy, experiment)
    except ExperimentError as exc:  # an arm that cannot be bound (its entity)
        print(
            "riskserve.transformer: RISKSERVE_TRANSFORMER_EXPERIMENT_URI: "
            + "; ".join(str(exc).splitlines()),
            file=sys.stderr,
        )
        return 2
    coroutine = server.serve()
    if args.event_loop in ("auto", "uvloop"):
        try:
            import uvloop
        except ImportError:
            if args.event_loop == "uvloop":
                raise
        else:
            return uvloop.run(coroutine)
    return asyncio.run(coroutine)


if __name__ == "__main__":
    sys.exit(main())
