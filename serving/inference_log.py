"""The inference log: every scored request and response as JSON lines, in the background.

Like KServe's payload logger or a Databricks inference table: optional, per model,
appended to a local folder or an S3 prefix as one `.jsonl` file per batch under
`<root>/<model>/<YYYY-MM-DD>/`. `submit()` only puts a reference on a bounded queue:
serialising and writing happen on a background thread, and when the queue is full the
record is dropped and counted, so the log never slows or fails inference.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import queue
import socket
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import orjson

from serving.metrics import (
    INFERENCE_LOG_DROPPED,
    INFERENCE_LOG_WRITE_ERRORS,
    INFERENCE_LOG_WRITTEN,
)
from serving.settings import StorageSettings
from serving.tensors import InputTensor, OutputTensor

log = logging.getLogger("serving.inference_log")


@dataclass(slots=True)
class InferenceRecord:
    timestamp: float
    request_id: str
    model_name: str
    model_version: str
    inputs: Sequence[InputTensor]
    outputs: Sequence[OutputTensor]
    latency_seconds: float
    protocol: str

    def to_json(self) -> bytes:
        return orjson.dumps(
            {
                "timestamp": dt.datetime.fromtimestamp(
                    self.timestamp, dt.UTC
                ).isoformat(),
                "request_id": self.request_id,
                "model_name": self.model_name,
                "model_version": self.model_version,
                "protocol": self.protocol,
                "latency_ms": round(self.latency_seconds * 1000, 3),
                "inputs": {t.name: _column(t.array) for t in self.inputs},
                "outputs": {t.name: _column(t.array) for t in self.outputs},
            },
            option=orjson.OPT_SERIALIZE_NUMPY,
        )


def _column(array: np.ndarray) -> object:
    if array.ndim == 2 and array.shape[1] == 1:
        array = array[:, 0]
    if array.dtype == object:
        return array.tolist()
    return np.ascontiguousarray(array)


class LocalSink:
    def __init__(self, root: Path) -> None:
        self.root = root

    def write(self, relative: str, payload: bytes) -> None:
        path = self.root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(payload)
        tmp.rename(path)  # readers never see half a batch


class S3Sink:
    def __init__(self, uri: str, storage: StorageSettings) -> None:
        from serving.storage import s3_client

        self.bucket, _, prefix = uri.removeprefix("s3://").partition("/")
        self.prefix = prefix.strip("/")
        self.client = s3_client(storage)

    def write(self, relative: str, payload: bytes) -> None:
        key = f"{self.prefix}/{relative}" if self.prefix else relative
        self.client.put_object(Bucket=self.bucket, Key=key, Body=payload)


class InferenceLog:
    """A bounded queue drained by one writer thread."""

    def __init__(
        self,
        uri: str,
        storage: StorageSettings,
        queue_size: int = 10_000,
        batch_size: int = 500,
        flush_seconds: float = 1.0,
    ) -> None:
        self.uri = uri
        self.sink = (
            S3Sink(uri, storage) if uri.startswith("s3://") else LocalSink(Path(uri))
        )
        self.batch_size = batch_size
        self.flush_seconds = flush_seconds
        self._queue: queue.Queue[InferenceRecord | None] = queue.Queue(queue_size)
        self._thread = threading.Thread(
            target=self._run, name="inference-log", daemon=True
        )
        self._writer_id = f"{socket.gethostname()}-{os.getpid()}"
        self._failing = False
        self._sequence = 0

    def start(self) -> InferenceLog:
        self._thread.start()
        return self

    def submit(self, record: InferenceRecord) -> None:
        try:
            self._queue.put_nowait(record)
        except queue.Full:
            INFERENCE_LOG_DROPPED.inc()

    def close(self, timeout: float = 10.0) -> None:
        """Write what is queued, then stop the thread."""
        if not self._thread.is_alive():
            return
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                self._queue.put(None, timeout=0.1)
                break
            except queue.Full:
                continue
        self._thread.join(max(0.0, deadline - time.monotonic()))

    def _run(self) -> None:
        stopping = False
        while not stopping:
            batch: list[InferenceRecord] = []
            try:
                first = self._queue.get()
            except Exception:  # pragma: no cover - queue.get does not fail
                continue
            if first is None:
                break
            batch.append(first)
            deadline = time.monotonic() + self.flush_seconds
            while len(batch) < self.batch_size:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                try:
                    item = self._queue.get(timeout=remaining)
                except queue.Empty:
                    break
                if item is None:
                    stopping = True
                    break
                batch.append(item)
            self._write(batch)

    def _write(self, batch: list[InferenceRecord]) -> None:
        try:
            payload = b"\n".join(record.to_json() for record in batch) + b"\n"
            first = batch[0]
            day = dt.datetime.fromtimestamp(first.timestamp, dt.UTC).strftime(
                "%Y-%m-%d"
            )
            self._sequence += 1
            name = (
                f"{first.model_name}/{day}/"
                f"{int(first.timestamp * 1000)}-{self._writer_id}-{self._sequence:06d}-"
                f"{uuid.uuid4().hex[:8]}.jsonl"
            )
            self.sink.write(name, payload)
        except Exception as exc:  # a write fault must never reach inference
            INFERENCE_LOG_WRITE_ERRORS.inc(len(batch))
            if not self._failing:
                self._failing = True
                log.error(
                    "inference log write failed; further failures are only counted",
                    extra={"uri": self.uri, "error": str(exc), "records": len(batch)},
                )
            return
        INFERENCE_LOG_WRITTEN.inc(len(batch))
        if self._failing:
            self._failing = False
            log.info("inference log writes recovered", extra={"uri": self.uri})
