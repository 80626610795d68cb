"""`riskserve demo` (`make demo`): the platform on one machine, from a fresh clone.

Starts MLflow, trains and registers both models with the demo defaults, prints where
to see everything, and stops what it started on Ctrl-C.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time

from riskserve import local_services
from serving.platform_settings import PlatformSettings


def train(kind: str, env: dict[str, str], extra: list[str]) -> None:
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "training", kind, *extra],
        env={**os.environ, **env},
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(
            f"training {kind} failed (exit {result.returncode}); see above"
        )
    print(
        f"[demo] {kind} trained and registered in {time.monotonic() - started:.0f} s",
        flush=True,
    )


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="riskserve demo")
    parser.add_argument(
        "--s3",
        action="store_true",
        help="store artifacts in a local S3-compatible server",
    )
    parser.add_argument(
        "--no-wait",
        action="store_true",
        help="stop the services and exit after training",
    )
    args = parser.parse_args(argv)
    settings = PlatformSettings()
    started_here = not any(
        state.startswith("running")
        for state in local_services.status(settings).values()
    )
    env = local_services.up(
        settings, args.s3, say=lambda m: print(f"[demo] {m}", flush=True)
    )
    try:
        train("fraud", env, [])
        train("credit", env, [])
        print(
            "\n[demo] ready:\n"
            f"  MLflow UI:        {settings.mlflow_url}\n"
            f"  fraud versions:   {settings.mlflow_url}/#/models/fraud\n"
            f"  credit versions:  {settings.mlflow_url}/#/models/credit\n",
            flush=True,
        )
        if not args.no_wait:
            print("[demo] press Ctrl-C to stop", flush=True)
            signal.signal(signal.SIGTERM, _interrupt)
            while True:
                time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        if started_here:
            local_services.down(
                settings, say=lambda m: print(f"[demo] {m}", flush=True)
            )
    return 0
