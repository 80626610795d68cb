"""Running the predictor: uvicorn (REST) and grpc.aio (gRPC) on one event loop."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import socket
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

import uvicorn
from riskserve.serving.browser_guard import BrowserGuard
from riskserve.serving.dataplane import DataPlane
from riskserve.serving.errors import ModelLoadError
from riskserve.serving.http_limits import (
    ConcurrencyLimit,
    HttpTimeouts,
    timeout_protocol,
)
from riskserve.serving.inference_log import InferenceLog
from riskserve.serving.loading import in_daemon_thread, load_model
from riskserve.serving.memory import freeze_startup_heap, keep_freed_memory
from riskserve.serving.metrics import (
    HTTP_BROWSER_REFUSED,
    HTTP_REJECTED,
    HTTP_TIMEOUTS,
)
from riskserve.serving.model import OnnxRiskModel
from riskserve.serving.rest import RestApp
from riskserve.serving.settings import ServingSettings, StorageSettings

if TYPE_CHECKING:
    import grpc

log = logging.getLogger("serving")


def reuse_port_socket(host: str, port: int) -> socket.socket:
    """The HTTP socket of one of `--workers N` processes: all bind the same port."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    return sock


class PredictorServer:
    """One predictor process: REST and (with --enable_grpc) gRPC over one data plane.

    `start()` opens the transports and loads the model in the background; until it is
    loaded a placeholder answers "not ready" (503). `serve()` runs until a signal, a
    failed load or the end of uvicorn, and `stop()` drains gRPC and flushes the
    inference log. `exit_code` is 1 when the model could not be loaded.
    """

    def __init__(
        self,
        args: argparse.Namespace,
        settings: ServingSettings,
        storage: StorageSettings,
    ) -> None:
        self.args = args
        self.settings = settings
        self.storage = storage
        self.exit_code = 0
        self.inference_log = _inference_log(settings, storage)
        self.dataplane = DataPlane(
            OnnxRiskModel(args.model_name, Path(args.model_dir)),
            api_key=settings.api_key.get_secret_value() if settings.api_key else None,
            inference_log=self.inference_log,
            inline_max_rows=settings.inline_max_rows,
        )
        self.http = uvicorn.Server(_http_config(args, settings, self.dataplane))
        self.grpc: grpc.aio.Server | None = None
        self._loading: asyncio.Task[None] | None = None

    async def start(self) -> bool:
        """Open the transports and start loading; False when a `--workers N` worker,
        which loads before it joins the shared ports, could not load its model."""
        args, settings = self.args, self.settings
        keep_freed_memory()  # big requests: no page faults on the loop (memory.py)
        asyncio.get_running_loop().set_default_executor(
            ThreadPoolExecutor(max(1, args.max_threads), thread_name_prefix="infer")
        )
        if settings.reuse_port:
            # With --workers N every worker listens on the same ports (SO_REUSEPORT):
            # one that listened while loading would take its share of connections and
            # answer 503 after another worker's readiness said yes. So a worker joins
            # the ports only once its model is loaded (the others serve meanwhile).
            await self._load()
            if self.exit_code:
                return False
        if args.enable_grpc:
            from riskserve.serving.grpc_server import create_server

            grpc_server = create_server(
                self.dataplane,
                args.grpc_port,
                max(
                    args.grpc_max_receive_message_length,
                    args.grpc_max_send_message_length,
                ),
                revision=settings.revision,
                host="[::]" if settings.host in ("0.0.0.0", "::") else settings.host,
                max_concurrent_rpcs=settings.max_concurrent_rpcs,
            )
            await grpc_server.start()
            self.grpc = grpc_server
        if not settings.reuse_port:
            self._loading = asyncio.create_task(self._load())
        # uvicorn re-raises the SIGTERM it caught once it has stopped; a no-op handler
        # lets stop() (gRPC drain, inference log flush) run first.
        for handled in (signal.SIGTERM, signal.SIGINT):
            signal.signal(handled, lambda *_: None)
        return True

    async def serve(self) -> int:
        """start(), answer until told to stop, stop(); the process's exit code."""
        try:
            if not await self.start():
                return self.exit_code
            await self.http.serve(
                sockets=[reuse_port_socket(self.settings.host, self.args.http_port)]
                if self.settings.reuse_port
                else None
            )
        finally:
            await self.stop()
        return self.exit_code or (1 if not self.http.started else 0)

    async def stop(self) -> None:
        if self._loading is not None and not self._loading.done():
            self._loading.cancel()
        if self.grpc is not None:
            await self.grpc.stop(grace=5)
        if self.inference_log is not None:
            await asyncio.get_running_loop().run_in_executor(
                None, self.inference_log.close
            )

    async def _load(self) -> None:
        args = self.args

        def load() -> None:
            self.dataplane.model = load_model(
                args.model_name, args.model_dir, self.settings, self.storage
            )

        try:
            await in_daemon_thread(load)
        except ModelLoadError as exc:
            log.error("cannot load the model", extra={"error": str(exc)})
            self._failed()
        except Exception:
            log.exception("cannot load the model")
            self._failed()
        else:
            # What loading built lives as long as the process: out of the full
            # collections from now on (memory.py).
            frozen = freeze_startup_heap()
            log.info(
                "serving",
                extra={
                    "model_name": self.dataplane.model.name,
                    "model_version": self.dataplane.model.version,
                    "http_port": args.http_port,
                    "grpc_port": args.grpc_port if args.enable_grpc else None,
                    "auth": self.dataplane.auth_enabled,
                    "inference_log": self.settings.inference_log_uri,
                    "frozen_objects": frozen,
                },
            )

    def _failed(self) -> None:
        self.exit_code = 1
        self.http.should_exit = True


def _inference_log(
    settings: ServingSettings, storage: StorageSettings
) -> InferenceLog | None:
    if not settings.inference_log_uri:
        return None
    return InferenceLog(
        settings.inference_log_uri,
        storage,
        batch_size=settings.inference_log_batch_size,
        flush_seconds=settings.inference_log_flush_seconds,
        max_file_bytes=settings.inference_log_max_file_bytes,
        spool_dir=settings.inference_log_spool_dir,
        max_spool_bytes=settings.inference_log_max_spool_bytes,
        fsync=settings.inference_log_fsync,
        fsync_seconds=settings.inference_log_fsync_seconds,
    ).start()


def _http_config(
    args: argparse.Namespace, settings: ServingSettings, dataplane: DataPlane
) -> uvicorn.Config:
    """The REST app inside its limits (concurrency, in-flight bodies, slow clients)."""
    app = RestApp(
        dataplane,
        max_body_bytes=settings.max_body_bytes,
        revision=settings.revision,
        multiprocess_metrics=settings.prometheus_multiproc_dir is not None,
    )
    limited = ConcurrencyLimit(
        BrowserGuard(app, on_refuse=HTTP_BROWSER_REFUSED.inc),
        max_requests=settings.max_concurrent_requests,
        max_body_bytes=settings.max_in_flight_body_bytes,
        retry_after_seconds=settings.retry_after_seconds,
        on_reject=lambda limit: HTTP_REJECTED.labels(limit).inc(),
        headers=[(b"x-riskserve-revision", settings.revision.encode())]
        if settings.revision
        else (),
    )
    timeouts = HttpTimeouts(
        header_seconds=settings.http_header_timeout_seconds,
        body_seconds=settings.http_body_timeout_seconds,
        on_timeout=lambda phase: HTTP_TIMEOUTS.labels(phase).inc(),
    )
    return uvicorn.Config(
        limited,
        host=settings.host,
        port=args.http_port,
        loop="none",
        # The app sends each answer's body right after its head: one write for both.
        http=timeout_protocol(timeouts, one_write=True),
        lifespan="off",
        access_log=False,
        log_config=args.log_config_file,
        timeout_keep_alive=args.timeout_keep_alive,
        ssl_certfile=args.ssl_certfile or settings.tls_cert_file,
        ssl_keyfile=args.ssl_keyfile or settings.tls_key_file,
        server_header=False,
    )
