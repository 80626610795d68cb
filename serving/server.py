"""Running the predictor: uvicorn (REST) and grpc.aio (gRPC) on one event loop."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import socket
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import uvicorn

from serving.dataplane import DataPlane
from serving.errors import ModelLoadError
from serving.http_limits import ConcurrencyLimit, HttpTimeouts, timeout_protocol
from serving.inference_log import InferenceLog
from serving.metrics import HTTP_REJECTED, HTTP_TIMEOUTS
from serving.model import OnnxRiskModel
from serving.rest import RestApp
from serving.settings import ServingSettings, StorageSettings
from serving.storage import fetch_model

log = logging.getLogger("serving")


def load_model(
    model_name: str, model_dir: str, settings: ServingSettings, storage: StorageSettings
) -> OnnxRiskModel:
    """Fetch and open the model; the version is the override, the registry's, the
    ONNX metadata's or "1", in that order."""
    local = fetch_model(model_dir, storage, settings.download_dir)
    model = OnnxRiskModel(
        model_name,
        local.onnx_path,
        version=settings.model_version,
        max_batch_size=settings.max_batch_size,
        threads=settings.onnx_threads,
    )
    if local.registry_version is not None:
        model.set_registry_version(local.registry_version)
    model.load()
    return model


def reuse_port_socket(host: str, port: int) -> socket.socket:
    """The HTTP socket of one of `--workers N` processes: all bind the same port."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    return sock


async def _in_daemon_thread(function) -> None:  # noqa: ANN001
    """Run `function` on a daemon thread: a download stuck on a dead endpoint must not
    keep the process from stopping (an executor thread would be joined at exit)."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[None] = loop.create_future()

    def run() -> None:
        try:
            function()
        except BaseException as exc:  # handed to the awaiting coroutine
            loop.call_soon_threadsafe(_settle, done, exc)
        else:
            loop.call_soon_threadsafe(_settle, done, None)

    threading.Thread(target=run, name="model-load", daemon=True).start()
    await done


def _settle(future: asyncio.Future, error: BaseException | None) -> None:
    if future.done():
        return
    if error is None:
        future.set_result(None)
    else:
        future.set_exception(error)


async def serve(
    args: argparse.Namespace, settings: ServingSettings, storage: StorageSettings
) -> int:
    # Until the model is loaded, a placeholder answers "not ready" (503).
    placeholder = OnnxRiskModel(args.model_name, Path(args.model_dir))
    inference_log = None
    if settings.inference_log_uri:
        inference_log = InferenceLog(
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
    dataplane = DataPlane(
        placeholder,
        api_key=settings.api_key.get_secret_value() if settings.api_key else None,
        inference_log=inference_log,
        inline_max_rows=settings.inline_max_rows,
    )
    app = RestApp(
        dataplane,
        max_body_bytes=settings.max_body_bytes,
        revision=settings.revision,
        multiprocess_metrics=settings.prometheus_multiproc_dir is not None,
    )
    limited = ConcurrencyLimit(
        app,
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
    config = uvicorn.Config(
        limited,
        host=settings.host,
        port=args.http_port,
        loop="none",
        http=timeout_protocol(timeouts),
        lifespan="off",
        access_log=False,
        log_config=args.log_config_file,
        timeout_keep_alive=args.timeout_keep_alive,
        ssl_certfile=args.ssl_certfile or settings.tls_cert_file,
        ssl_keyfile=args.ssl_keyfile or settings.tls_key_file,
        server_header=False,
    )
    server = uvicorn.Server(config)
    loop = asyncio.get_running_loop()
    loop.set_default_executor(
        ThreadPoolExecutor(max(1, args.max_threads), thread_name_prefix="infer")
    )

    exit_code = 0
    grpc_server = None

    def load() -> None:
        dataplane.model = load_model(args.model_name, args.model_dir, settings, storage)

    async def load_in_background() -> None:
        nonlocal exit_code
        try:
            await _in_daemon_thread(load)
        except ModelLoadError as exc:
            log.error("cannot load the model", extra={"error": str(exc)})
            exit_code = 1
            server.should_exit = True
        except Exception:
            log.exception("cannot load the model")
            exit_code = 1
            server.should_exit = True
        else:
            log.info(
                "serving",
                extra={
                    "model_name": dataplane.model.name,
                    "model_version": dataplane.model.version,
                    "http_port": args.http_port,
                    "grpc_port": args.grpc_port if args.enable_grpc else None,
                    "auth": dataplane.auth_enabled,
                    "inference_log": settings.inference_log_uri,
                },
            )

    if settings.reuse_port:
        # With --workers N every worker listens on the same ports (SO_REUSEPORT): one
        # that listened while loading would take its share of connections and answer
        # 503 after another worker's readiness said yes. So a worker joins the ports
        # only once its model is loaded (the others serve meanwhile).
        await load_in_background()
        if exit_code:
            if inference_log is not None:
                await loop.run_in_executor(None, inference_log.close)
            return exit_code
    if args.enable_grpc:
        from serving.grpc_server import create_server

        grpc_server = create_server(
            dataplane,
            args.grpc_port,
            max(
                args.grpc_max_receive_message_length, args.grpc_max_send_message_length
            ),
            revision=settings.revision,
            host="[::]" if settings.host in ("0.0.0.0", "::") else settings.host,
        )
        await grpc_server.start()

    loading = (
        asyncio.create_task(asyncio.sleep(0))  # loaded above
        if settings.reuse_port
        else asyncio.create_task(load_in_background())
    )
    # uvicorn re-raises the SIGTERM it caught once it has stopped; a no-op handler
    # lets the cleanup below (gRPC drain, inference log flush) run first.
    for handled in (signal.SIGTERM, signal.SIGINT):
        signal.signal(handled, lambda *_: None)
    try:
        await server.serve(
            sockets=[reuse_port_socket(settings.host, args.http_port)]
            if settings.reuse_port
            else None
        )
    finally:
        if not loading.done():
            loading.cancel()
        if grpc_server is not None:
            await grpc_server.stop(grace=5)
        if inference_log is not None:
            await loop.run_in_executor(None, inference_log.close)
    return exit_code or (1 if not server.started else 0)
