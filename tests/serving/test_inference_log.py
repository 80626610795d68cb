"""The inference log: a record is in the kernel before submit() returns; segments rotate
into whole `.jsonl` files; a dead writer's segments are taken over, torn line dropped;
write and publish faults are counted, never raised."""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from riskserve.serving.inference_log import (
    SEGMENT_SUFFIX,
    InferenceLog,
    InferenceRecord,
)
from riskserve.serving.metrics import (
    INFERENCE_LOG_DROPPED,
    INFERENCE_LOG_RECOVERED,
    INFERENCE_LOG_WRITE_ERRORS,
    INFERENCE_LOG_WRITTEN,
)
from riskserve.serving.settings import StorageSettings
from riskserve.serving.tensors import InputTensor, OutputTensor

pytestmark = pytest.mark.inprocess


def _record(request_id: str, rows: int = 1) -> InferenceRecord:
    return InferenceRecord(
        timestamp=time.time(),
        request_id=request_id,
        model_name="credit",
        model_version="7",
        inputs=[
            InputTensor(
                "merchant_group",
                "BYTES",
                (rows, 1),
                np.array([["Electronics"]] * rows, object),
            ),
            InputTensor(
                "time_hours", "FP32", (rows, 1), np.full((rows, 1), 13.0, np.float32)
            ),
        ],
        outputs=[OutputTensor("approved", "BOOL", np.array([True] * rows))],
        latency_seconds=0.0004,
        protocol="rest",
    )


def _published(root: Path) -> list[dict]:
    return [
        json.loads(line)
        for path in sorted(root.rglob("*.jsonl"))
        for line in path.read_bytes().splitlines()
    ]


def _segments(root: Path) -> list[Path]:
    return sorted((root / ".spool").glob(f"*{SEGMENT_SUFFIX}"))


def _value(counter) -> float:
    return counter._value.get()


def test_a_record_is_on_disk_when_submit_returns(tmp_path):
    """What a SIGKILL right after submit() would leave: the line, in the spool."""
    log = InferenceLog(str(tmp_path), StorageSettings(), flush_seconds=600)
    log.submit(_record("r0"))
    (segment,) = _segments(tmp_path)
    (line,) = segment.read_bytes().splitlines()
    record = json.loads(line)
    assert record["request_id"] == "r0"
    assert record["inputs"] == {"merchant_group": ["Electronics"], "time_hours": [13.0]}
    assert record["outputs"] == {"approved": [True]}
    assert not list(tmp_path.rglob("*.jsonl"))  # published only on rotation
    log.close()
    assert [r["request_id"] for r in _published(tmp_path)] == ["r0"]
    assert not _segments(tmp_path)


def test_segments_rotate_by_records_and_age_into_whole_files(tmp_path):
    written_before = _value(INFERENCE_LOG_WRITTEN)
    log = InferenceLog(
        str(tmp_path), StorageSettings(), batch_size=100, flush_seconds=0.2
    ).start()
    for i in range(250):
        log.submit(_record(f"r{i}"))
    # Two full files at once, the last 50 once their segment is 0.2 s old.
    deadline = time.monotonic() + 5
    while len(_published(tmp_path)) < 250 and time.monotonic() < deadline:
        time.sleep(0.05)
    files = sorted(tmp_path.rglob("*.jsonl"))
    sizes = sorted(len(p.read_bytes().splitlines()) for p in files)
    assert sizes == [50, 100, 100]
    assert all(p.relative_to(tmp_path).parts[0] == "credit" for p in files)
    assert all(f"-{os.getpid()}-" in p.name for p in files)  # the writer's id
    log.close()
    ids = [r["request_id"] for r in _published(tmp_path)]
    assert sorted(ids) == sorted(f"r{i}" for i in range(250))
    assert _value(INFERENCE_LOG_WRITTEN) - written_before == 250
    assert not _segments(tmp_path)


def test_rotates_by_bytes(tmp_path):
    log = InferenceLog(
        str(tmp_path), StorageSettings(), flush_seconds=600, max_file_bytes=4096
    )
    for i in range(3):
        log.submit(_record(f"big{i}", rows=200))  # ~5 kB a line: one per file
    log.close()
    files = list(tmp_path.rglob("*.jsonl"))
    assert len(files) == 3
    assert all(len(p.read_bytes().splitlines()) == 1 for p in files)


def test_concurrent_writers_never_interleave_a_line(tmp_path):
    log = InferenceLog(
        str(tmp_path), StorageSettings(), batch_size=97, flush_seconds=0.05
    ).start()

    def write(thread: int) -> None:
        for i in range(300):
            log.submit(_record(f"t{thread}-{i}", rows=1 + i % 50))

    threads = [threading.Thread(target=write, args=(t,)) for t in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    log.close()
    ids = [r["request_id"] for r in _published(tmp_path)]  # every line parses
    assert sorted(ids) == sorted(f"t{t}-{i}" for t in range(6) for i in range(300))


def test_a_dead_writers_segment_is_published_without_its_torn_line(tmp_path):
    """A predictor SIGKILLed inside a write leaves a segment with a half last line and
    no lock on it; the next log on the folder publishes its whole lines."""
    dead = InferenceLog(str(tmp_path), StorageSettings(), flush_seconds=600)
    for i in range(5):
        dead.submit(_record(f"answered-{i}"))
    (segment,) = _segments(tmp_path)
    with open(segment, "ab") as torn:
        torn.write(b'{"request_id": "in-flight", "inpu')
    os.close(dead._segment.fd)  # what the kernel does when the process dies
    dead._segment = None

    recovered_before = _value(INFERENCE_LOG_RECOVERED)
    dropped_before = _value(INFERENCE_LOG_DROPPED)
    log = InferenceLog(str(tmp_path), StorageSettings(), flush_seconds=0.1).start()
    deadline = time.monotonic() + 5
    while _segments(tmp_path) and time.monotonic() < deadline:
        time.sleep(0.05)
    log.close()
    records = _published(tmp_path)
    assert [r["request_id"] for r in records] == [f"answered-{i}" for i in range(5)]
    (published,) = tmp_path.rglob("*.jsonl")
    assert published.parent.parent.name == "credit"
    assert segment.stem in published.name  # keeps the dead writer's id
    assert _value(INFERENCE_LOG_RECOVERED) - recovered_before == 5
    assert _value(INFERENCE_LOG_DROPPED) - dropped_before == 1


def test_a_live_writers_segment_is_left_alone(tmp_path):
    alive = InferenceLog(str(tmp_path), StorageSettings(), flush_seconds=600)
    alive.submit(_record("mine"))
    other = InferenceLog(str(tmp_path), StorageSettings(), flush_seconds=0.05)
    other._take_over_orphans()
    other.close()
    assert not list(tmp_path.rglob("*.jsonl"))
    assert len(_segments(tmp_path)) == 1
    alive.close()
    assert [r["request_id"] for r in _published(tmp_path)] == ["mine"]


def test_an_unwritable_spool_counts_errors_logs_once_and_recovers(tmp_path, caplog):
    """A spool that cannot be created (here a file in its place, as a read-only or
    full disk would refuse it): inference goes on, each record is a counted error."""
    caplog.set_level(logging.INFO, logger="riskserve.serving.inference_log")
    spool = tmp_path / "spool"
    spool.write_bytes(b"")
    errors_before = _value(INFERENCE_LOG_WRITE_ERRORS)
    log = InferenceLog(
        str(tmp_path), StorageSettings(), flush_seconds=0.05, spool_dir=spool
    ).start()
    for i in range(3):
        log.submit(_record(f"lost-{i}"))  # never raises
    assert _value(INFERENCE_LOG_WRITE_ERRORS) - errors_before == 3
    spool.unlink()
    log.submit(_record("kept"))
    log.close()
    assert [r["request_id"] for r in _published(tmp_path)] == ["kept"]
    messages = [r.getMessage() for r in caplog.records]
    assert sum("inference log write failed" in m for m in messages) == 1
    assert sum("inference log writes recovered" in m for m in messages) == 1


class _FailingSink:
    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.published: list[str] = []

    def publish(self, segment: Path, relative: str, durable: bool) -> None:
        if self.failures:
            self.failures -= 1
            raise OSError("S3 is down")
        self.published.append(segment.read_text())
        segment.unlink()


def test_a_failed_publish_keeps_the_records_and_retries(tmp_path, caplog):
    log = InferenceLog(str(tmp_path), StorageSettings(), batch_size=2)
    sink = log.sink = _FailingSink(failures=2)
    for i in range(4):
        log.submit(_record(f"r{i}"))
    log.close(timeout=5)
    lines = [json.loads(x) for text in sink.published for x in text.splitlines()]
    assert [r["request_id"] for r in lines] == ["r0", "r1", "r2", "r3"]
    failures = [r for r in caplog.records if "publish failed" in r.getMessage()]
    assert len(failures) == 1


def test_fsync_interval_publishes_the_same_records(tmp_path):
    log = InferenceLog(
        str(tmp_path),
        StorageSettings(),
        flush_seconds=0.1,
        fsync="interval",
        fsync_seconds=0.05,
    ).start()
    for i in range(10):
        log.submit(_record(f"r{i}"))
    time.sleep(0.2)
    log.close()
    assert sorted(r["request_id"] for r in _published(tmp_path)) == sorted(
        f"r{i}" for i in range(10)
    )


def test_a_full_spool_drops_and_counts(tmp_path):
    log = InferenceLog(
        str(tmp_path), StorageSettings(), flush_seconds=600, max_spool_bytes=1024
    )
    dropped_before = _value(INFERENCE_LOG_DROPPED)
    for i in range(20):
        log.submit(_record(f"r{i}"))  # ~200 bytes each
    dropped = _value(INFERENCE_LOG_DROPPED) - dropped_before
    log.close()
    assert len(_published(tmp_path)) == 20 - dropped
    assert 10 <= dropped <= 15
