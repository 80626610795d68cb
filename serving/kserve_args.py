"""KServe's model-server arguments, mirrored so `python -m riskserve.serving` starts fast.

A ServingRuntime passes KServe's container arguments (`--model_name`, `--http_port`,
...). `kserve.model_server.parser` defines them, but importing anything under `kserve`
pulls in pandas, FastAPI and the Kubernetes client: 2 to 4 s and ~200 MB before the
first request. This module declares the same arguments (names, defaults, types,
choices); `tests/serving/test_contracts.py` fails when they drift from the installed
KServe's parser.
"""

from __future__ import annotations

import argparse

DEFAULT_HTTP_PORT = 8080
DEFAULT_GRPC_PORT = 8081
MAX_GRPC_MESSAGE_LENGTH = 8388608


def strtobool(value: str) -> bool:
    """KServe's boolean argument parser (distutils' strtobool)."""
    lowered = value.lower()
    if lowered in ("y", "yes", "t", "true", "on", "1"):
        return True
    if lowered in ("n", "no", "f", "false", "off", "0"):
        return False
    raise ValueError(f"invalid truth value {value!r}")


def kserve_parser() -> argparse.ArgumentParser:
    """A parent parser with exactly the arguments of `kserve.model_server.parser`."""
    parser = argparse.ArgumentParser(
        add_help=False, formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    add = parser.add_argument
    add("--http_port", default=DEFAULT_HTTP_PORT, type=int, help="HTTP port.")
    add("--grpc_port", default=DEFAULT_GRPC_PORT, type=int, help="gRPC port.")
    add("--workers", default=1, type=int, help="Accepted; scale with replicas instead.")
    add("--max_threads", default=4, type=int, help="Threads for large batches.")
    add("--max_asyncio_workers", default=None, type=int, help="Accepted, unused.")
    add("--enable_grpc", default=True, type=strtobool, help="Serve v2 gRPC too.")
    add("--enable_docs_url", default=False, type=strtobool, help="Accepted, unused.")
    add(
        "--enable_latency_logging",
        default=True,
        type=strtobool,
        help="Accepted; latency goes to /metrics, not to a log line per request.",
    )
    add("--configure_logging", default=True, type=strtobool, help="Configure logs.")
    add("--log_config_file", default=None, type=str, help="uvicorn log config file.")
    add("--access_log_format", default=None, type=str, help="Accepted, unused.")
    add(
        "--event-loop",
        dest="event_loop",
        default="auto",
        type=str,
        choices=["auto", "asyncio", "uvloop"],
        help="Event loop (auto: uvloop when installed).",
    )
    add(
        "--timeout-keep-alive",
        dest="timeout_keep_alive",
        default=65,
        type=int,
        help="Keep-alive timeout in seconds.",
    )
    add("--model_name", default="model", type=str, help="Model name in the URL path.")
    add("--predictor_host", default=None, type=str, help="Transformer only; unused.")
    protocols = ["v1", "v2", "grpc-v2"]
    add("--protocol", default="v1", type=str, choices=protocols, help="Unused.")
    add(
        "--predictor_protocol",
        default="v1",
        type=str,
        choices=protocols,
        help="Unused.",
    )
    add("--predictor_use_ssl", default=False, type=strtobool, help="Unused.")
    add("--predictor_request_timeout_seconds", default=600, type=int, help="Unused.")
    add(
        "--grpc_max_send_message_length",
        default=MAX_GRPC_MESSAGE_LENGTH,
        type=int,
        help="Largest gRPC message sent.",
    )
    add(
        "--grpc_max_receive_message_length",
        default=MAX_GRPC_MESSAGE_LENGTH,
        type=int,
        help="Largest gRPC message received.",
    )
    add("--predictor_request_retries", default=0, type=int, help="Unused.")
    add("--enable_predictor_health_check", action="store_true", help="Unused.")
    add("--ssl_certfile", default=None, type=str, help="TLS certificate (HTTPS).")
    add("--ssl_keyfile", default=None, type=str, help="TLS private key (HTTPS).")
    return parser
