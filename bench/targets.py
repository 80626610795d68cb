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
    # The working directory (default: this checkout); a target run from another
    # checkout sets it and `env` with bench/checkout.py.
    cwd: Path | None = None


def _module(module: str, kserve_args: bool) -> Callable[[Path, int, int], list[str]]:
    """`python -m <module>` on the model: with KServe's model name and gRPC port
    arguments, or just the model folder and HTTP port."""

    def argv(model_dir: Path, port: int, grpc_port: int) -> list[str]:
        args = [sys.executable, "-m", module]
        if kserve_args:
            args += ["--model_name", "fraud"]
        args += ["--model_dir", str(model_dir), "--http_port", str(port)]
        if kserve_args:
            args += ["--grpc_port", str(grpc_port)]
        return args

    return argv


_predictor = _module("riskserve.serving", kserve_args=True)
_stock = _module("bench.stock_kserve", kserve_args=True)
_bare = _module("bench.bare_asgi", kserve_args=False)
_gateway = _module("bench.gateway_target", kserve_args=False)


TARGETS: list[Target] = [
    Target(
        "riskserve",
        "this predictor (python -m riskserve.serving), REST + gRPC, metrics on",
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


def predictor_from(name: str, root: Path, env: dict[str, str]) -> Target:
    """This predictor as another checkout has it (`root`: bench/checkout.py's link
    tree of that checkout, `env` its PYTHONPATH), to be measured beside this one."""
    return Target(
        name,
        f"the predictor of {root.name} (python -m riskserve.serving)",
        _predictor,
        "/v2/health/ready",
        env=env,
        cwd=root,
    )
