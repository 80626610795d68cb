"""The inference log never blocks: a full queue drops and counts; write faults count."""

from __future__ import annotations

import json
import threading
import time

import numpy as np

from serving.inference_log import InferenceLog, InferenceRecord
from serving.metrics import (
    INFERENCE_LOG_DROPPED,
    INFERENCE_LOG_WRITE_ERRORS,
    INFERENCE_LOG_WRITTEN,
)
from serving.settings import StorageSettings
from serving.tensors import InputTensor, OutputTensor


def _record(request_id: str) -> InferenceRecord:
    return InferenceRecord(
        timestamp=time.time(),
        request_id=request_id,
        model_name="credit",
        model_version="7",
        inputs=[
            InputTensor(
                "merchant_group", "BYTES", (1, 1), np.array([["Electronics"]], object)
            ),
            InputTensor("time_hours", "FP32", (1, 1), np.array([[13.0]], np.float32)),
        ],
        outputs=[OutputTensor("approved", "BOOL", np.array([True]))],
        latency_seconds=0.0004,
        protocol="rest",
    )


class _BlockedSink:
    def __init__(self) -> None:
        self.release = threading.Event()
        self.batches: list[bytes] = []

    def write(self, relative: str, payload: bytes) -> None:
        self.release.wait(10)
        self.batches.append(payload)


class _BrokenSink:
    def __init__(self) -> None:
        self.calls = 0

    def write(self, relative: str, payload: bytes) -> None:
        self.calls += 1
        raise OSError("disk full")


def test_full_queue_drops_and_counts_without_blocking(tmp_path):
    log = InferenceLog(
        str(tmp_path), StorageSettings(), queue_size=2, batch_size=1, flush_seconds=0.05
    )
    sink = log.sink = _BlockedSink()
    log.start()
    dropped_before = INFERENCE_LOG_DROPPED._value.get()
    started = time.perf_counter()
    for i in range(20):
        log.submit(_record(f"r{i}"))
    assert time.perf_counter() - started < 0.1  # submit never waits for the writer
    dropped = INFERENCE_LOG_DROPPED._value.get() - dropped_before
    assert 17 <= dropped <= 18  # one in the writer's hands, two queued
    sink.release.set()
    log.close()
    written = [
        json.loads(line) for batch in sink.batches for line in batch.splitlines()
    ]
    assert len(written) == 20 - dropped
    assert written[0]["inputs"] == {
        "merchant_group": ["Electronics"],
        "time_hours": [13.0],
    }
    assert written[0]["outputs"] == {"approved": [True]}


def test_write_errors_are_counted_and_logged_once(tmp_path, caplog):
    log = InferenceLog(
        str(tmp_path), StorageSettings(), batch_size=1, flush_seconds=0.01
    )
    sink = log.sink = _BrokenSink()
    errors_before = INFERENCE_LOG_WRITE_ERRORS._value.get()
    log.start()
    for i in range(3):
        log.submit(_record(f"r{i}"))
    log.close()
    assert sink.calls == 3
    assert INFERENCE_LOG_WRITE_ERRORS._value.get() - errors_before == 3
    failures = [
        r for r in caplog.records if "inference log write failed" in r.getMessage()
    ]
    assert len(failures) == 1


def test_local_files_hold_whole_batches(tmp_path):
    written_before = INFERENCE_LOG_WRITTEN._value.get()
    log = InferenceLog(
        str(tmp_path), StorageSettings(), batch_size=100, flush_seconds=0.2
    ).start()
    for i in range(5):
        log.submit(_record(f"r{i}"))
    log.close()
    files = list(tmp_path.rglob("*.jsonl"))
    assert files and all(p.relative_to(tmp_path).parts[0] == "credit" for p in files)
    ids = [
        json.loads(line)["request_id"]
        for p in files
        for line in p.read_text().splitlines()
    ]
    assert sorted(ids) == [f"r{i}" for i in range(5)]
    assert not list(tmp_path.rglob("*.tmp"))
    assert INFERENCE_LOG_WRITTEN._value.get() - written_before == 5
