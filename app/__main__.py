"""`python -m riskserve.app` (and `riskserve app`): the analyst app on port 7860.

A missing or invalid setting ends the command with one line on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading

from riskserve.app.settings import SettingsError, load_settings


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m riskserve.app",
        description="The riskserve analyst app (Gradio) over the v2 model endpoints. "
        "Configured by RISKSERVE_APP_* variables (see docs/app.md).",
    )
    parser.add_argument("--host", help="address to listen on (RISKSERVE_APP_HOST)")
    parser.add_argument(
        "--port", type=int, help="port to listen on (RISKSERVE_APP_PORT)"
    )
    return parser


def close_on_sigterm(demo) -> threading.Event:
    """Stop serving on SIGTERM (`docker stop`, Kubernetes ending the pod); the returned
    event is set once the server is closed.

    In the container image Python is PID 1, for which the kernel has no default action
    for SIGTERM: without a handler the app ignores it and is killed after the grace
    period. Closing the server ends `launch()`.
    """
    closed = threading.Event()

    def close(signum: int, frame: object) -> None:
        print("riskserve app: SIGTERM received, stopping", flush=True)
        demo.close()
        closed.set()

    signal.signal(signal.SIGTERM, close)
    return closed


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    overrides = {k: v for k, v in (("host", args.host), ("port", args.port)) if v}
    try:
        settings = load_settings(**overrides)
    except SettingsError as exc:
        print(f"riskserve app: error: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    # One line per request from httpx would drown the app's own messages.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    from riskserve.app.examples import ExamplesError
    from riskserve.app.ui import (
        build_app,  # Gradio takes seconds to import: only when needed
    )

    try:
        demo = build_app(settings)
    except ExamplesError as exc:
        print(
            f"riskserve app: error: RISKSERVE_APP_EXAMPLES_FILE: {exc}", file=sys.stderr
        )
        return 2
    closed = close_on_sigterm(demo)
    print(f"riskserve app: http://{settings.host}:{settings.port}", flush=True)
    try:
        demo.launch(
            server_name=settings.host,
            server_port=settings.port,
            show_error=False,
            footer_links=[],
            quiet=True,
        )
    except OSError as exc:
        print(
            f"riskserve app: error: cannot listen on {settings.host}:{settings.port} "
            f"({exc})",
            file=sys.stderr,
        )
        return 1
    if closed.is_set():
        # The server is closed and nothing is left to save: skip the interpreter's
        # teardown of Gradio's module graph (measured 1.5-4 s on a loaded 2-core
        # machine, against the 5 s a stop may take).
        from riskserve.app.scored_files import close_all

        close_all()  # scored files hold customers' data: gone with the app
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
