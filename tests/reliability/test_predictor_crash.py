"""A predictor SIGKILLed under load: its inference log holds every decision it answered.

Clients over REST and gRPC count each 200 they receive, by request id; the predictor is
SIGKILLed mid-load; a new predictor on the same log folder takes over what the dead one
left in its spool. Every answered id must then be in a published `.jsonl` file; the
only records allowed beyond the answers are those of requests in flight at the kill
(written, but their answer never arrived).
"""

from __future__ import annotations

import collections
import json
import os
import signal
import threading
import time

import grpc
import httpx
import numpy as np
from riskserve.model.specs import FRAUD
from riskserve.serving.grpc_v2 import grpc_predict_v2_pb2 as pb
from riskserve.serving.grpc_v2 import grpc_predict_v2_pb2_grpc as pb_grpc

from tests.localplatform.platform_helpers import fraud_request
from tests.reliability.test_faults import metrics_of
from tests.serving.predictor_helpers import start_predictor

REST_CLIENTS = 6
GRPC_CLIENTS = 2


def _rest_client(url: str, name: str, stop: threading.Event, answered: list) -> None:
    body = fraud_request(1)
    with httpx.Client(base_url=url, timeout=10) as client:
        for i in range(10**9):
            if stop.is_set():
                return
            body["id"] = f"{name}-{i}"
            try:
                response = client.post("/v2/models/fraud/infer", json=body)
            except httpx.HTTPError:
                return  # the predictor is gone
            if response.status_code == 200:
                answered.append(response.json()["id"])


def _grpc_client(target: str, name: str, stop: threading.Event, answered: list) -> None:
    row = np.array([12.5, 0.3, 4.2, 1, 0, 0, 1], np.float32)
    with grpc.insecure_channel(target) as channel:
        stub = pb_grpc.GRPCInferenceServiceStub(channel)
        for i in range(10**9):
            if stop.is_set():
                return
            request = pb.ModelInferRequest(model_name="fraud", id=f"{name}-{i}")
            for k, feature in enumerate(FRAUD.feature_names):
                tensor = request.inputs.add(name=feature, datatype="FP32", shape=[1, 1])
                tensor.contents.fp32_contents.append(float(row[k]))
            try:
                answer = stub.ModelInfer(request, timeout=10)
            except grpc.RpcError:
                return
            answered.append(answer.id)


def _logged_ids(root) -> collections.Counter:
    return collections.Counter(
        json.loads(line)["request_id"]
        for path in root.rglob("*.jsonl")
        for line in path.read_bytes().splitlines()
    )


def test_sigkilled_predictor_loses_no_answered_decision(
    tmp_path, rel_models, rel_logs, ledger
):
    log_dir = tmp_path / "inference-log"
    env = {
        "RISKSERVE_SERVING_INFERENCE_LOG_URI": str(log_dir),
        # Both paths at the kill: files already published and a spool being written.
        "RISKSERVE_SERVING_INFERENCE_LOG_BATCH_SIZE": "300",
        "RISKSERVE_SERVING_INFERENCE_LOG_FLUSH_SECONDS": "1.0",
    }
    predictor = start_predictor(
        rel_logs, "crash-victim", "fraud", rel_models["fraud-v1"], env=env
    )
    stop = threading.Event()
    answered: list[str] = []  # list.append is atomic under the GIL
    clients = [
        threading.Thread(
            target=_rest_client, args=(predictor.url, f"rest{k}", stop, answered)
        )
        for k in range(REST_CLIENTS)
    ] + [
        threading.Thread(
            target=_grpc_client,
            args=(predictor.grpc_target, f"grpc{k}", stop, answered),
        )
        for k in range(GRPC_CLIENTS)
    ]
    try:
        for client in clients:
            client.start()
        time.sleep(2.5)
        assert len(answered) > 500, "the load did not start"
        os.kill(predictor.process.pid, signal.SIGKILL)
        predictor.process.popen.wait(timeout=10)
        for client in clients:
            client.join(15)
        assert not any(c.is_alive() for c in clients)
    finally:
        stop.set()
        predictor.stop()
    left_in_spool = list((log_dir / ".spool").glob("*.seg"))
    assert left_in_spool, "nothing was left to recover: the test proves nothing"

    # The next predictor on the same folder publishes what the dead one left.
    successor = start_predictor(
        rel_logs, "crash-successor", "fraud", rel_models["fraud-v1"], env=env
    )
    try:
        deadline = time.monotonic() + 20
        while list((log_dir / ".spool").glob("*.seg")) and time.monotonic() < deadline:
            time.sleep(0.2)
        seen = metrics_of(successor.url)
        dropped = int(seen["riskserve_inference_log_dropped_total"])  # torn lines
    finally:
        successor.stop()

    logged = _logged_ids(log_dir)
    duplicates = [i for i, n in logged.items() if n > 1]
    missing = set(answered) - set(logged)
    extra = set(logged) - set(answered)
    print(
        f"SIGKILL under load: {len(answered)} answered, {len(logged)} logged, "
        f"{len(left_in_spool)} spool segments recovered, {dropped} torn lines dropped"
    )
    ledger.record_count(
        "predictor SIGKILLed under load",
        len(answered),
        len(set(answered) & set(logged)),
        dropped,
    )
    assert not duplicates, duplicates[:10]
    assert not missing, (
        f"{len(missing)} answered decisions lost: {sorted(missing)[:10]}"
    )
    # Written, but killed before the answer left: at most one per client.
    assert len(extra) <= REST_CLIENTS + GRPC_CLIENTS, sorted(extra)
