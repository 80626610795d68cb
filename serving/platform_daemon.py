"""`python -m serving.platform_daemon`: the local platform's long-running process.

One asyncio loop runs the controller (predictor processes, readiness, restarts) and
the gateway (port 8000 by default). On SIGTERM or Ctrl-C it stops every predictor it
started, by PID, and saves its state.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys

import uvicorn

from serving.gateway import Gateway
from serving.platform import LocalPlatform
from serving.platform_settings import PlatformSettings, inherited_environment


async def run(settings: PlatformSettings) -> None:
    platform = LocalPlatform(settings, env=inherited_environment())
    platform.adopt_or_clear_stale()
    gateway = Gateway(platform)
    config = uvicorn.Config(
        gateway,
        host=settings.host,
        port=settings.gateway_port,
        log_level="warning",
        access_log=False,
        lifespan="off",
        http="httptools",
        loop="none",
    )
    server = uvicorn.Server(config)
    stop = asyncio.Event()
    controller = asyncio.create_task(platform.run(stop))
    try:
        await server.serve()
    finally:
        stop.set()
        await controller
        platform.shutdown()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m serving.platform_daemon")
    parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    settings = PlatformSettings()
    try:
        import uvloop

        uvloop.run(run(settings))
    except ImportError:
        asyncio.run(run(settings))
    return 0


if __name__ == "__main__":
    sys.exit(main())
