"""`python -m riskserve.serving --model_name NAME --model_dir URI`: the predictor runtime.

Takes KServe's container arguments, starts v2 REST (and gRPC) at once so liveness
answers, loads the model in the background (readiness answers 503 until it is loaded),
and exits non-zero when the model cannot be loaded. `--server kserve` runs the same
model class under KServe's stock ModelServer instead.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys

from riskserve.serving.kserve_args import kserve_parser

log = logging.getLogger("serving")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m riskserve.serving",
        description="Serve an ONNX risk model over the v2 Open Inference Protocol.",
        parents=[kserve_parser()],
    )
    parser.add_argument(
        "--model_dir",
        required=True,
        help="Local folder or .onnx file, s3://bucket/prefix, models:/name@alias or "
        "models:/name/version.",
    )
    parser.add_argument(
        "--model_version",
        default=None,
        help="Version to report (default: the registry's, else the ONNX metadata's, "
        "else 1). Also RISKSERVE_SERVING_MODEL_VERSION.",
    )
    parser.add_argument(
        "--server",
        choices=["riskserve", "kserve"],
        default="riskserve",
        help="riskserve: the lean v2 server; kserve: KServe's stock ModelServer.",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from riskserve.serving.settings import load_settings

    settings, storage = load_settings()
    if args.configure_logging:
        from riskserve.serving.logs import configure_logging

        configure_logging(settings.log_level)
    if args.model_version:
        settings.model_version = args.model_version
    if args.workers > 1 and args.server == "riskserve":
        from riskserve.serving.workers import run_workers

        return run_workers(
            sys.argv[1:] if argv is None else argv, args.workers, settings.metrics_dir
        )
    if args.server == "kserve":
        try:
            from riskserve.serving.kserve_runtime import run_kserve
        except ModuleNotFoundError as exc:
            log.error(
                "--server kserve needs KServe's server: pip install "
                f"'riskserve[kserve-server]' ({exc})"
            )
            return 2

        return run_kserve(args, settings, storage)

    from riskserve.serving.server import PredictorServer

    coroutine = PredictorServer(args, settings, storage).serve()
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
