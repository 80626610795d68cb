"""`--workers N`: N predictor processes sharing the HTTP and gRPC ports.

The parent starts N copies of itself (`python -m riskserve.serving ... --workers 1`) that bind
the ports with SO_REUSEPORT (the kernel spreads connections over them; gRPC binds that
way by default on Linux), each loading the model once and writing its own inference
log files (named by host and PID, so none collide or are lost). Metrics use
prometheus_client's multiprocess mode: every worker writes its values to a shared
folder (`PROMETHEUS_MULTIPROC_DIR`, made fresh for each start), and `/metrics` in any
worker sums them. SIGTERM or SIGINT to the parent is passed to every worker, which
drains and flushes as a single process does; the parent exits when all have. A worker
that dies on its own takes the others down and the parent exits non-zero, so the pod
restarts as a whole rather than serving with fewer workers than asked.
"""

from __future__ import annotations

import logging
import shutil
import signal
import subprocess
import sys
import tempfile
import time

from riskserve.serving.settings import worker_environment

log = logging.getLogger("riskserve.serving.workers")

REUSE_PORT_ENV = "RISKSERVE_SERVING_REUSE_PORT"
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def single_worker_argv(argv: list[str]) -> list[str]:
    """The same arguments, with `--workers 1` in place of `--workers N`."""
    out, skip = [], False
    for arg in argv:
        if skip:
            skip = False
            continue
        if arg == "--workers":
            skip = True
            continue
        if arg.startswith("--workers="):
            continue
        out.append(arg)
    return [*out, "--workers", "1"]


def run_workers(argv: list[str], workers: int, metrics_root: str | None) -> int:
    metrics_dir = tempfile.mkdtemp(prefix="riskserve-metrics-", dir=metrics_root)
    env = worker_environment({REUSE_PORT_ENV: "true", MULTIPROC_ENV: metrics_dir})
    command = [sys.executable, "-m", "riskserve.serving", *single_worker_argv(argv)]
    children = [subprocess.Popen(command, env=env) for _ in range(workers)]
    log.info(
        "started workers",
        extra={"workers": workers, "pids": [c.pid for c in children]},
    )
    stopping = False

    def forward(signum, _frame) -> None:
        nonlocal stopping
        stopping = True
        for child in children:
            if child.poll() is None:
                child.send_signal(signum)

    for handled in (signal.SIGTERM, signal.SIGINT):
        signal.signal(handled, forward)
    try:
        while True:
            codes = [child.poll() for child in children]
            if all(code is not None for code in codes):
                break
            died = [c for c, code in zip(children, codes, strict=True) if code]
            if died and not stopping:
                log.error(
                    "a worker died; stopping the others",
                    extra={"pid": died[0].pid, "exit_code": died[0].returncode},
                )
                forward(signal.SIGTERM, None)
            time.sleep(0.1)
    finally:
        shutil.rmtree(metrics_dir, ignore_errors=True)
    failed = [code for code in codes if code]
    return failed[0] if failed and not stopping else 0
