"""The inference log: every answered request and its response as JSON lines.

Like KServe's payload logger or a Databricks inference table: optional, per model,
published to a local folder or an S3 prefix as `.jsonl` files under
`<root>/<model>/<YYYY-MM-DD>/`.

A decision record that can vanish is not a record, so `submit()` does not queue: it
serialises the record and appends it, as one line and one `write(2)`, to this process's
spool segment (a file opened `O_APPEND`), before the transport sends the answer. Once
`write(2)` returns the kernel holds the line, so a SIGKILL or a crash of the process
loses nothing it answered; only a power loss can (see `fsync`). A background thread
rotates segments (by records, bytes or age) and publishes them: a rename into the
final name on a local disk (same filesystem, so readers never see half a file), or an
upload to S3 after which the segment is deleted. A segment that cannot be published
(S3 down) stays in the spool and is retried.

Every segment is held under `flock` by the process writing it. At start, and every
half minute, a log takes over the segments no live process holds (a crashed
predictor's, or a `--workers` sibling's that died): it drops a torn last line and
publishes the rest.

A full or read-only disk never fails inference: the record is counted as a write error
(`riskserve_inference_log_write_errors`), logged once, and writing resumes when the
disk does.
"""

from __future__ import annotations

import datetime as dt
import errno
import fcntl
import hashlib
import logging
import os
import re
import socket
import tempfile
import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Protocol

import numpy as np
import orjson
from riskserve.serving.metrics import (
    INFERENCE_LOG_DROPPED,
    INFERENCE_LOG_PENDING,
    INFERENCE_LOG_RECOVERED,
    INFERENCE_LOG_WRITE_ERRORS,
    INFERENCE_LOG_WRITTEN,
)
from riskserve.serving.settings import StorageSettings
from riskserve.serving.tensors import InputTensor, OutputTensor

log = logging.getLogger("riskserve.serving.inference_log")

SEGMENT_SUFFIX = ".seg"
"""Spool segments end so; readers of the log take `*.jsonl` only."""

SPOOL_FOLDER = ".spool"
"""A local log's spool, under its root (the same filesystem, so publishing is a
rename). It has no day folders, so the monitor's model listing skips it."""

ORPHAN_SCAN_SECONDS = 30.0
SAFE_MODEL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,252}")

FsyncPolicy = Literal["never", "interval"]


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
    stage: str | None = None
    """Who wrote it: None (the key left out) for the predictor, whose `inputs` are
    the model's inputs as received; `transformer` for a transformer (KServe's
    `spec.transformer`), whose `inputs` are the model inputs it sent (the features as
    served) and which adds `raw_inputs` and `features` (docs/transformer.md)."""
    raw_inputs: Mapping[str, list] = field(default_factory=dict)
    """A transformer's: the raw request's fields as sent (card, amount, ...), a list
    of JSON values per field (Python values already: no array to convert)."""
    features: Sequence[OutputTensor] = ()
    """A transformer's: the features it used beyond the model inputs (context
    columns, the unknown-entity and features-unavailable flags)."""

    def to_json(self) -> bytes:
        if self.stage is not None:
            return orjson.dumps(
                {
                    **self._fields(),
                    "stage": self.stage,
                    "raw_inputs": self.raw_inputs,
                    "features": {t.name: _column(t.array) for t in self.features},
                },
                option=orjson.OPT_SERIALIZE_NUMPY,
            )
        return orjson.dumps(self._fields(), option=orjson.OPT_SERIALIZE_NUMPY)

    def _fields(self) -> dict[str, object]:
        return {
            "timestamp": dt.datetime.fromtimestamp(self.timestamp, dt.UTC).isoformat(),
            "request_id": self.request_id,
            "model_name": self.model_name,
            "model_version": self.model_version,
            "protocol": self.protocol,
            "latency_ms": round(self.latency_seconds * 1000, 3),
            "inputs": {t.name: _column(t.array) for t in self.inputs},
            "outputs": {t.name: _column(t.array) for t in self.outputs},
        }


def _column(array: np.ndarray) -> object:
    if array.ndim == 2 and array.shape[1] == 1:
        array = array[:, 0]
    if array.dtype == object:
        return array.tolist()
    return np.ascontiguousarray(array)


# -- sinks: where a finished segment goes ----------------------------------------------
class Sink(Protocol):
    def publish(self, segment: Path, relative: str, durable: bool) -> None:
        """Make the segment file visible as `relative` under the log's root, and take
        it out of the spool. Raise when it could not; the segment is then retried."""


class LocalSink:
    def __init__(self, root: Path) -> None:
        self.root = root

    def publish(self, segment: Path, relative: str, durable: bool) -> None:
        target = self.root / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        os.rename(segment, target)  # atomic: readers never see half a file
        if durable:
            _fsync_folder(target.parent)
            _fsync_folder(segment.parent)


class S3Sink:
    def __init__(self, uri: str, storage: StorageSettings) -> None:
        # The model contract's S3 client, not serving.storage's re-export: the
        # transformer's image writes this log and ships no model loading.
        from riskserve.model.s3_client import s3_client

        self.bucket, _, prefix = uri.removeprefix("s3://").partition("/")
        self.prefix = prefix.strip("/")
        self.client = s3_client(storage)

    def publish(self, segment: Path, relative: str, durable: bool) -> None:
        key = f"{self.prefix}/{relative}" if self.prefix else relative
        self.client.put_object(Bucket=self.bucket, Key=key, Body=segment.read_bytes())
        segment.unlink()


def _fsync_folder(folder: Path) -> None:
    descriptor = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def default_spool_dir(uri: str) -> Path:
    """`<root>/.spool` for a local log; for S3 a folder per log URI under the system's
    temporary folder (set `RISKSERVE_SERVING_INFERENCE_LOG_SPOOL_DIR` to a volume that
    outlives the container, e.g. an emptyDir, so a restart publishes what a crash
    left)."""
    if not uri.startswith("s3://"):
        return Path(uri) / SPOOL_FOLDER
    digest = hashlib.sha256(uri.encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / "riskserve-inference-spool" / digest


# -- segments ---------------------------------------------------------------------------
@dataclass(slots=True, eq=False)
class _Segment:
    path: Path
    fd: int
    relative: str
    """Its published name: `<model>/<day of its first record>/<ms>-<stem>.jsonl`."""
    opened: float
    records: int = 0
    size: int = 0
    damaged: bool = False
    """A short write could not be undone: publish only its whole lines."""
    recovered: bool = False
    """Left by a dead process; counted as recovered, not as written."""


def _published_name(model: str, timestamp: float, stem: str) -> str:
    if not SAFE_MODEL_NAME.fullmatch(model):
        model = "unknown-model"
    day = dt.datetime.fromtimestamp(timestamp, dt.UTC).strftime("%Y-%m-%d")
    return f"{model}/{day}/{int(timestamp * 1000)}-{stem}.jsonl"


def _whole_records(data: bytes) -> tuple[bytes, int, int, dict | None]:
    """The lines of a segment that are whole JSON records, how many, how many were
    not (a torn last line), and the first record."""
    kept: list[bytes] = []
    torn = 0
    first = None
    for line in data.split(b"\n"):
        if not line.strip(b"\0 \t\r"):
            continue
        try:
            record = orjson.loads(line)
        except orjson.JSONDecodeError:
            torn += 1
            continue
        if not isinstance(record, dict):
            torn += 1
            continue
        if first is None:
            first = record
        kept.append(line)
    return b"".join(line + b"\n" for line in kept), len(kept), torn, first


class InferenceLog:
    """Appends each record to a spool segment in the request's thread; one background
    thread rotates, publishes, fsyncs (when asked) and takes over orphans."""

    def __init__(
        self,
        uri: str,
        storage: StorageSettings,
        batch_size: int = 500,
        flush_seconds: float = 1.0,
        max_file_bytes: int = 64 * 1024 * 1024,
        spool_dir: Path | None = None,
        max_spool_bytes: int = 1024 * 1024 * 1024,
        fsync: FsyncPolicy = "never",
        fsync_seconds: float = 1.0,
    ) -> None:
        self.uri = uri
        self.sink: Sink = (
            S3Sink(uri, storage) if uri.startswith("s3://") else LocalSink(Path(uri))
        )
        self.batch_size = batch_size
        self.flush_seconds = flush_seconds
        self.max_file_bytes = max_file_bytes
        self.spool_dir = spool_dir or default_spool_dir(uri)
        self.max_spool_bytes = max_spool_bytes
        self.fsync = fsync
        self.fsync_seconds = fsync_seconds
        self._writer_id = f"{socket.gethostname()}-{os.getpid()}"
        self._lock = threading.Lock()
        self._segment: _Segment | None = None
        self._retired: list[_Segment] = []
        self._spooled_bytes = 0
        self._sequence = 0
        self._failing = False
        self._publish_failing = False
        self._publish_retry_at = 0.0
        self._publish_backoff = 0.0
        self._stopping = False
        self._wake = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name="inference-log", daemon=True
        )

    # -- the request path ---------------------------------------------------------------
    def start(self) -> InferenceLog:
        self._thread.start()
        return self

    def submit(self, record: InferenceRecord) -> None:
        """Append the record before the caller answers; never raise."""
        try:
            line = record.to_json()
        except Exception as exc:  # a record that cannot be serialised is a write error
            with self._lock:
                self._write_failed(exc)
            return
        with self._lock:
            if self._spooled_bytes > self.max_spool_bytes:
                INFERENCE_LOG_DROPPED.inc()  # S3 has been down for a long time
                return
            try:
                segment = self._segment
                if segment is None:
                    segment = self._segment = self._open_segment(record)
                expected = len(line) + 1
                # One write(2) per record: O_APPEND keeps concurrent ones whole.
                written = os.writev(segment.fd, (line, b"\n"))
                if written != expected:
                    self._undo_short_write(segment, written)
            except OSError as exc:
                self._write_failed(exc)
                return
            segment.records += 1
            segment.size += expected
            self._spooled_bytes += expected
            INFERENCE_LOG_PENDING.inc()
            if self._failing:
                self._failing = False
                log.info("inference log writes recovered", extra={"uri": self.uri})
            if (
                segment.records >= self.batch_size
                or segment.size >= self.max_file_bytes
            ):
                self._retire_current()

    def _open_segment(self, record: InferenceRecord) -> _Segment:
        self._sequence += 1
        stem = f"{self._writer_id}-{self._sequence:06d}-{uuid.uuid4().hex[:8]}"
        path = self.spool_dir / f"{stem}{SEGMENT_SUFFIX}"
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC
        try:
            fd = os.open(path, flags, 0o640)
        except FileNotFoundError:
            self.spool_dir.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, flags, 0o640)
        try:
            # Held until the segment is published: a live writer's segments are
            # never taken over (the kernel drops the lock when the process dies).
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise
        return _Segment(
            path,
            fd,
            _published_name(record.model_name, record.timestamp, stem),
            time.monotonic(),
        )

    def _undo_short_write(self, segment: _Segment, written: int) -> None:
        """A short write (a full disk) must not leave half a line before the next
        record: cut it off, or, if even that fails, publish only whole lines."""
        if written > 0:
            try:
                os.ftruncate(segment.fd, segment.size)
            except OSError:
                segment.damaged = True
                self._retire_current()
        raise OSError(errno.ENOSPC, f"short write of an inference record ({written})")

    def _write_failed(self, error: Exception) -> None:
        INFERENCE_LOG_WRITE_ERRORS.inc()
        if not self._failing:
            self._failing = True
            log.error(
                "inference log write failed; further failures are only counted",
                extra={"uri": self.uri, "error": str(error)},
            )

    def _retire_current(self) -> None:
        """Hand the open segment to the background thread (under the lock)."""
        segment, self._segment = self._segment, None
        if segment is None:
            return
        self._retired.append(segment)
        self._wake.set()

    def write_batch(self, records: Sequence[InferenceRecord]) -> None:
        """Write `records` and publish them at once, in the caller's thread (as one
        file when they fit `batch_size`): for tools and tests that make a log offline."""
        for record in records:
            self.submit(record)
        with self._lock:
            self._retire_current()
        self._publish(deadline=time.monotonic() + 10.0)

    _write = write_batch  # the name the monitoring tests and bench call

    # -- the background thread ---------------------------------------------------------
    def close(self, timeout: float = 10.0) -> None:
        """Publish every segment, then stop the thread. What cannot be published in
        `timeout` stays in the spool for the next start."""
        with self._lock:
            self._stopping = True
            self._retire_current()
        if self._thread.is_alive():
            self._wake.set()
            self._thread.join(timeout)
        elif self._thread.ident is None:  # never started
            self._publish(deadline=time.monotonic() + timeout)
            self._release_unpublished()

    def _run(self) -> None:
        tick = max(0.01, min(self.flush_seconds / 4, 1.0))
        if self.fsync == "interval":
            tick = min(tick, self.fsync_seconds)
        next_fsync = time.monotonic() + self.fsync_seconds
        next_scan = 0.0  # at once: publish what a dead predictor left
        while True:
            self._wake.wait(tick)
            self._wake.clear()
            now = time.monotonic()
            stopping = self._stopping
            with self._lock:
                current = self._segment
                if current is not None and now - current.opened >= self.flush_seconds:
                    self._retire_current()
                    current = None
            if self.fsync == "interval" and now >= next_fsync:
                next_fsync = now + self.fsync_seconds
                self._fsync(current)
            if now >= next_scan and not stopping:
                next_scan = now + ORPHAN_SCAN_SECONDS
                self._take_over_orphans()
            if stopping:
                self._publish(deadline=now + 10.0)
                self._release_unpublished()
                return
            self._publish()

    def _fsync(self, current: _Segment | None) -> None:
        # Segments are closed only by this thread, so the descriptor is still valid.
        try:
            if current is not None:
                os.fdatasync(current.fd)
            _fsync_folder(self.spool_dir)
        except OSError as exc:
            log.debug("inference log fsync failed", extra={"error": str(exc)})

    def _publish(self, deadline: float | None = None) -> None:
        while True:
            now = time.monotonic()
            if deadline is None and now < self._publish_retry_at:
                return
            with self._lock:
                if not self._retired:
                    return
                segment = self._retired[0]
            try:
                self._publish_one(segment)
            except Exception as exc:
                self._publish_backoff = min(max(self._publish_backoff * 2, 0.5), 30.0)
                self._publish_retry_at = now + self._publish_backoff
                if not self._publish_failing:
                    self._publish_failing = True
                    log.error(
                        "inference log publish failed; the records stay in the spool "
                        "and are retried",
                        extra={
                            "uri": self.uri,
                            "error": str(exc),
                            "segment": str(segment.path),
                        },
                    )
                if deadline is None or time.monotonic() >= deadline:
                    return
                time.sleep(min(0.2, max(0.0, deadline - time.monotonic())))
                continue
            self._publish_backoff = 0.0
            if self._publish_failing:
                self._publish_failing = False
                log.info("inference log publishing recovered", extra={"uri": self.uri})

    def _publish_one(self, segment: _Segment) -> None:
        if segment.damaged:
            self._keep_whole_lines(segment)
        if segment.records:
            if self.fsync == "interval":
                os.fdatasync(segment.fd)
            self.sink.publish(segment.path, segment.relative, self.fsync == "interval")
        else:
            segment.path.unlink(missing_ok=True)
        os.close(segment.fd)
        with self._lock:
            self._retired.remove(segment)
            if not segment.recovered:
                self._spooled_bytes -= segment.size
                INFERENCE_LOG_PENDING.dec(segment.records)
        if segment.recovered:
            INFERENCE_LOG_RECOVERED.inc(segment.records)
        else:
            INFERENCE_LOG_WRITTEN.inc(segment.records)

    def _keep_whole_lines(self, segment: _Segment) -> None:
        data = segment.path.read_bytes()
        kept, records, torn, _ = _whole_records(data)
        if torn or len(kept) != len(data):
            with open(segment.path, "r+b") as rewrite:
                rewrite.truncate(0)
                rewrite.write(kept)
        segment.damaged = False
        if not segment.recovered:
            with self._lock:
                self._spooled_bytes -= segment.size - len(kept)
                INFERENCE_LOG_PENDING.dec(segment.records - records)
        segment.size, segment.records = len(kept), records

    def _release_unpublished(self) -> None:
        """At close: give up the segments that could not be published (their locks
        go with the descriptors), so the next start takes them over."""
        with self._lock:
            left, self._retired = self._retired, []
        for segment in left:
            os.close(segment.fd)
        if left:
            log.warning(
                "inference log segments left in the spool for the next start",
                extra={"uri": self.uri, "segments": len(left)},
            )

    def _take_over_orphans(self) -> None:
        """Publish the segments of processes that died: no live writer holds their
        lock. A torn last line (the process died inside a write) is dropped; it was
        never answered, since the answer leaves only after the write returns."""
        try:
            paths = sorted(self.spool_dir.glob(f"*{SEGMENT_SUFFIX}"))
        except OSError:
            return
        with self._lock:
            mine = {s.path for s in self._retired}
            if self._segment is not None:
                mine.add(self._segment.path)
        for path in paths:
            if path in mine:
                continue
            try:
                segment = self._adopt(path)
            except OSError as exc:
                log.warning(
                    "cannot take over an inference log segment",
                    extra={"segment": str(path), "error": str(exc)},
                )
                continue
            if segment is not None:
                with self._lock:
                    self._retired.append(segment)

    def _adopt(self, path: Path) -> _Segment | None:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
        except FileNotFoundError:
            return None  # published meanwhile
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            # The lock may have come after its owner renamed or deleted it.
            if os.fstat(fd).st_ino != os.stat(path).st_ino:
                raise FileNotFoundError(path)
        except (BlockingIOError, FileNotFoundError):
            os.close(fd)
            return None  # alive, or already published
        try:
            data = path.read_bytes()
            kept, records, torn, first = _whole_records(data)
            if torn or len(kept) != len(data):
                os.ftruncate(fd, 0)
                os.pwrite(fd, kept, 0)
        except OSError:
            os.close(fd)
            raise
        if torn:
            INFERENCE_LOG_DROPPED.inc(torn)
        relative = ""
        if first is not None:
            try:
                timestamp = dt.datetime.fromisoformat(first["timestamp"]).timestamp()
            except (KeyError, TypeError, ValueError):
                timestamp = os.fstat(fd).st_mtime
            relative = _published_name(
                str(first.get("model_name", "")), timestamp, path.stem
            )
        log.info(
            "taking over an inference log segment left by a stopped process",
            extra={"segment": str(path), "records": records, "torn": torn},
        )
        return _Segment(
            path, fd, relative, time.monotonic(), records, len(kept), recovered=True
        )
