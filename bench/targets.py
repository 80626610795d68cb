"""The servers the benchmark compares. Add a target by appending to `TARGETS`
(or calling `register`): a name, how to start it on a port, and its URLs."""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Target:
    name: str
    description: str
    # (model_dir, http_port, free port for anything else) -> argv
    argv: Callable[[Path, int, int], list[str]]
    ready_path: str
    infer_path: str = "/v2/models/fraud/infer"
    env: dict[str, str] = field(default_factory=dict)
    baseline: str | None = None  # "stock" or "floor": what the ratios compare against


def _predictor(model_dir: Path, port: int, grpc_port: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        "serving",
        "--model_name",
        "fraud",
        "--model_dir",
        str(model_dir),
        "--http_port",
        str(port),
        "--grpc_port",
        str(grpc_port),
    ]


def _stock(model_dir: Path, port: int, grpc_port: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        "bench.stock_kserve",
        "--model_name",
        "fraud",
        "--model_dir",
        str(model_dir),
        "--http_port",
        str(port),
        "--grpc_port",
        str(grpc_port),
    ]


def _bare(model_dir: Path, port: int, grpc_port: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        "bench.bare_asgi",
        "--model_dir",
        str(model_dir),
        "--http_port",
        str(port),
    ]


def _gateway(model_dir: Path, port: int, grpc_port: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        "bench.gateway_target",
        "--model_dir",
        str(model_dir),
        "--http_port",
        str(port),
    ]


TARGETS: list[Target] = [
    Target(
        "riskserve",
        "this predictor (python -m serving), REST + gRPC, metrics on",
        _predictor,
        "/v2/health/ready",
    ),
    Target(
        "gateway",
        "the local platform's gateway in front of that predictor (one revision)",
        _gateway,
        "/v2/models/fraud/ready",
        baseline="direct",
    ),
    Target(
        "kserve-stock",
        "KServe ModelServer + plain kserve.Model over onnxruntime",
        _stock,
        "/v2/health/ready",
        baseline="stock",
    ),
    Target(
        "bare-asgi",
        "bare ASGI handler calling onnxruntime (the floor)",
        _bare,
        "/ready",
        baseline="floor",
    ),
]


def register(target: Target) -> None:
    TARGETS.append(target)
