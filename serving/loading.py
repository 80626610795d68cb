"""Fetching and opening the model at `--model_dir`, for either server (the lean one in
serving/server.py, KServe's in serving/kserve_runtime.py)."""

from __future__ import annotations

import asyncio
import shutil
import threading
from collections.abc import Callable

from riskserve.serving.model import OnnxRiskModel
from riskserve.serving.settings import ServingSettings, StorageSettings
from riskserve.serving.storage import fetch_model


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
    try:
        model.load()
    finally:
        # The session holds the model: a downloaded copy is not needed any more.
        if local.downloaded is not None:
            shutil.rmtree(local.downloaded, ignore_errors=True)
    return model


async def in_daemon_thread(function: Callable[[], None]) -> None:
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


def _settle(future: asyncio.Future[None], error: BaseException | None) -> None:
    if future.done():
        return
    if error is None:
        future.set_result(None)
    else:
        future.set_exception(error)
