"""`--workers 2`: two predictor processes on one port, metrics summed over both, every
inference log record written once, and a graceful stop on SIGTERM to the parent alone
(as Kubernetes sends it to PID 1)."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import grpc
import httpx
import pytest
from riskserve.serving.grpc_v2 import grpc_predict_v2_pb2 as pb
from riskserve.serving.grpc_v2 import grpc_predict_v2_pb2_grpc as pb_grpc

from tests.serving.predictor_helpers import load_testdata, start_predictor

pytestmark = pytest.mark.e2e
REQUESTS = 200


def children_of(pid: int) -> set[int]:
    found = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.add(int(entry))
    return found


def requests_total(text: str) -> float:
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("riskserve_requests_total{") and 'status="200"' in line
    )


def test_two_workers_share_the_port_the_metrics_and_lose_no_record(
    models_dir, tmp_path
):
    log_dir = tmp_path / "inference-log"
    predictor = start_predictor(
        tmp_path,
        "workers",
        "fraud",
        models_dir / "fraud",
        env={
            "RISKSERVE_SERVING_INFERENCE_LOG_URI": str(log_dir),
            "RISKSERVE_SERVING_INFERENCE_LOG_FLUSH_SECONDS": "5",
            "RISKSERVE_SERVING_METRICS_DIR": str(tmp_path),
        },
        args=("--workers", "2"),
    )
    parent = predictor.process.pid
    workers = children_of(parent)
    assert len(workers) == 2, workers
    body = load_testdata("fraud_infer_request.json")
    # A new connection per request, so the kernel spreads them over both workers.
    for i in range(REQUESTS):
        body["id"] = f"worker-probe-{i}"
        answer = httpx.post(f"{predictor.url}/v2/models/fraud/infer", json=body)
        assert answer.status_code == 200, answer.text
    with grpc.insecure_channel(predictor.grpc_target) as channel:
        stub = pb_grpc.GRPCInferenceServiceStub(channel)
        assert stub.ModelReady(pb.ModelReadyRequest(name="fraud")).ready
    # Whichever worker answers /metrics, it reports both workers' requests.
    for _ in range(4):
        text = httpx.get(f"{predictor.url}/metrics").text
        assert requests_total(text) == REQUESTS
    # SIGTERM to the parent only: it stops both, which flush what they still hold.
    os.kill(parent, signal.SIGTERM)
    predictor.process.popen.wait(timeout=30)
    assert predictor.process.popen.returncode == 0
    assert not any(os.path.exists(f"/proc/{pid}") for pid in workers)
    ids, writers = [], set()
    for path in log_dir.rglob("*.jsonl"):
        for line in path.read_text().splitlines():
            record = json.loads(line)
            ids.append(record["request_id"])
        writers |= {pid for pid in workers if f"-{pid}-" in path.name}
    assert sorted(ids) == sorted(f"worker-probe-{i}" for i in range(REQUESTS))
    assert writers == workers  # both served, each wrote its own files
    assert not list(tmp_path.glob("riskserve-metrics-*"))  # cleaned up
    predictor.client.close()
