"""`python -m riskserve.localplatform.daemon`: the local platform's long-running process.

One asyncio loop runs the controller (predictor processes, readiness, restarts) and
the gateway: HTTP on port 8000 and gRPC on port 8001 by default. On SIGTERM or Ctrl-C it stops every predictor it
started, by PID, and saves its state.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import socket
import sys

import uvicorn
from riskserve.localplatform.controller import LocalPlatform
from riskserve.localplatform.gateway import Gateway, PredictorListener
from riskserve.localplatform.grpc_gateway import GrpcGateway
from riskserve.localplatform.processes import port_open
from riskserve.localplatform.settings import PlatformSettings, inherited_environment
from riskserve.serving.browser_guard import BrowserGuard
from riskserve.serving.http_limits import (
    ConcurrencyLimit,
    HttpTimeouts,
    timeout_protocol,
)
from riskserve.serving.memory import freeze_startup_heap


class _Server(uvicorn.Server):
    """uvicorn re-raises SIGTERM after serving, which would kill this process before it
    stops its predictors; the daemon handles the signals itself instead."""

    @contextlib.contextmanager
    def capture_signals(self):
        yield


class PortTaken(Exception):
    """A port the daemon must listen on is taken."""


async def run(settings: PlatformSettings) -> None:
    platform = LocalPlatform(settings, env=inherited_environment())
    platform.adopt_or_clear_stale()
    gateway = Gateway(platform)
    # Slow clients are closed and overload is a 503 with Retry-After, with the
    # predictor's own pieces (riskserve.serving.http_limits).
    limited = ConcurrencyLimit(
        # The data plane refuses what a web page sends; the control plane and
        # /metrics have their own guard (Origin, Host, keys).
        BrowserGuard(gateway, applies=lambda path: path.startswith("/v2")),
        max_requests=settings.gateway_max_concurrent_requests,
        max_body_bytes=settings.gateway_max_in_flight_bytes,
    )
    timeouts = HttpTimeouts(
        header_seconds=settings.gateway_header_timeout_s,
        body_seconds=settings.gateway_body_timeout_s,
    )
    config = uvicorn.Config(
        limited,
        host=settings.host,
        port=settings.gateway_port,
        log_level="warning",
        access_log=False,
        lifespan="off",
        http=timeout_protocol(timeouts, one_write=True),
        loop="none",
    )
    server = _Server(config)
    # The predictor components' own address, for transformers: loopback only,
    # bound here so that the controller knows its port before any transformer starts.
    predictor_socket = _bind_loopback(settings.gateway_predictor_port)
    platform.predictor_port = predictor_socket.getsockname()[1]
    predictor_config = uvicorn.Config(
        ConcurrencyLimit(
            BrowserGuard(PredictorListener(gateway)),
            max_requests=settings.gateway_max_concurrent_requests,
            max_body_bytes=settings.gateway_max_in_flight_bytes,
        ),
        log_level="warning",
        access_log=False,
        lifespan="off",
        http=timeout_protocol(timeouts, one_write=True),
        loop="none",
    )
    predictor_server = _Server(predictor_config)
    grpc_gateway = GrpcGateway(gateway)
    grpc_server = None
    if settings.gateway_grpc_port:
        taken = PortTaken(
            f"port {settings.gateway_grpc_port} (the gateway's gRPC) is taken on "
            f"{settings.host}; set RISKSERVE_GATEWAY_GRPC_PORT to a free port, or 0 to "
            "turn the gateway's gRPC off"
        )
        # Asked first, so that grpc's own bind error (a C++ log line) never shows.
        if port_open(settings.host, settings.gateway_grpc_port):
            raise taken
        try:
            grpc_server = grpc_gateway.server(settings.host, settings.gateway_grpc_port)
        except RuntimeError:
            raise taken from None
        await grpc_server.start()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, lambda: _exit(server, predictor_server))
    stop = asyncio.Event()
    # What starting built (the platform's state, the schemas, grpc) lives as long as
    # the daemon: out of the full collections that would pause routing (memory.py).
    freeze_startup_heap()
    controller = asyncio.create_task(platform.run(stop))
    internal = asyncio.create_task(predictor_server.serve(sockets=[predictor_socket]))
    try:
        await server.serve()
    finally:
        predictor_server.should_exit = True
        await internal
        if grpc_server is not None:
            await grpc_server.stop(grace=5)
        await grpc_gateway.close()
        stop.set()
        await controller
        gateway.apply_worker.close()
        platform.shutdown()
        logging.getLogger("riskserve.platform").info(
            "stopped every predictor; state saved"
        )


def _exit(*servers: uvicorn.Server) -> None:
    for server in servers:
        server.should_exit = True


def _bind_loopback(port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.bind(("127.0.0.1", port))
    except OSError:
        sock.close()
        raise PortTaken(
            f"port {port} (the gateway's predictor listener) is taken on 127.0.0.1; "
            "set RISKSERVE_GATEWAY_PREDICTOR_PORT to a free port, or 0 to pick one"
        ) from None
    sock.listen(1024)
    sock.set_inheritable(False)
    return sock


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m riskserve.localplatform.daemon")
    parser.parse_args(argv)
    settings = PlatformSettings()
    problem = settings.exposure_problem()
    if problem:
        print(f"riskserve platform: {problem}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        serve_forever(settings)
    except PortTaken as exc:
        print(f"riskserve platform: {exc}", file=sys.stderr)
        return 2
    return 0


def serve_forever(settings: PlatformSettings) -> None:
    """Run the daemon until SIGTERM or Ctrl-C, on uvloop when it is installed."""
    try:
        import uvloop
    except ImportError:
        asyncio.run(run(settings))
    else:
        uvloop.run(run(settings))


if __name__ == "__main__":
    sys.exit(main())
