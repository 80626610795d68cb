"""`riskserve up | apply | status | delete | down`: the local platform from the command line.

`up` starts the platform daemon (gateway on port 8000 and the controller) in the
background, applies the given InferenceService YAML and waits until each service is
ready; `apply` sends changed YAML to the running platform; `status` prints each
InferenceService in KServe's shape; `delete NAME` removes one; `down` stops the daemon, which stops every
predictor it started.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import yaml

from riskserve.localplatform.client import (
    PlatformError,
    apply_yaml,
    delete,
    start_daemon,
    status,
    stop_daemon,
    summary_lines,
    wait_ready,
)
from riskserve.localplatform.settings import PlatformSettings


def main(command: str, argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog=f"riskserve {command}")
    if command in ("up", "apply"):
        parser.add_argument(
            "-f",
            "--filename",
            action="append",
            default=[],
            type=Path,
            help="InferenceService YAML (helm template / kubectl kustomize "
            "output, or your own); '-' reads standard input",
        )
        parser.add_argument("--timeout", type=float, default=180.0)
    if command == "status":
        parser.add_argument(
            "-o", "--output", choices=["summary", "yaml", "json"], default="summary"
        )
    if command == "delete":
        parser.add_argument("name", help="the InferenceService to delete")
    args = parser.parse_args(argv)
    settings = PlatformSettings()
    if command == "up":
        started = start_daemon(settings)
        print(
            ("started" if started else "already running:")
            + f" gateway {settings.gateway_url}"
        )
    if command in ("up", "apply"):
        if command == "apply" and not args.filename:
            parser.error("give at least one -f FILE")
        names = []
        for path in args.filename:
            text = sys.stdin.read() if str(path) == "-" else _read(path)
            for message in apply_yaml(settings, text):
                print(message)
                names.append(message.split(":", 1)[0])
        if names:
            wait_ready(settings, names, args.timeout)
        for line in summary_lines(status(settings)):
            print(line)
        return 0
    if command == "status":
        report = status(settings)
        if args.output == "json":
            print(json.dumps(report, indent=2))
        elif args.output == "yaml":
            print(yaml.safe_dump_all(report["inferenceservices"], sort_keys=False))
        else:
            for line in summary_lines(report):
                print(line)
        return 0
    if command == "delete":
        for message in delete(settings, args.name):
            print(f"{message}; its predictors stop within a second")
        return 0
    if command == "down":
        shutdown = stop_daemon(settings)
        message = (
            "stopped the platform"
            if shutdown.daemon_stopped
            else "the platform was not running"
        )
        if orphans := shutdown.orphans_stopped:
            plural = "s" if len(orphans) > 1 else ""
            pids = ", ".join(map(str, orphans))
            message += (
                f"; stopped {len(orphans)} orphaned predictor{plural} "
                f"(PID{plural} {pids})"
            )
        print(message)
        return 0
    raise AssertionError(command)


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError as exc:
        raise PlatformError(f"{path}: {exc.strerror}") from None
