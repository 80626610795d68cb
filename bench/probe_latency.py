"""Health probes and single-row requests while big gRPC batches run.

A predictor serves REST, gRPC and the health probes on one event loop. Two clients send
100,000-row gRPC requests back to back (typed contents, as most gRPC clients send);
meanwhile `GET /v2/health/live` and single-row REST requests are timed every 20 ms.
The same is measured with no batch load, as the reference.

`--source DIR` runs the predictor of another checkout (e.g. the commit before a
change), so before and after are measured in one sitting:
    python -m bench.probe_latency --source ../before --source .
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

import grpc
import numpy as np
from riskserve.localplatform.processes import ManagedProcess, free_port
from riskserve.serving.grpc_v2 import grpc_predict_v2_pb2 as pb
from riskserve.serving.grpc_v2 import grpc_predict_v2_pb2_grpc as pb_grpc

from bench.runner import REPO_ROOT, fraud_model_dir

FEATURES = 7
SINGLE_ROW = json.dumps(
    {
        "inputs": [
            {
                "name": "dense_input",
                "datatype": "FP32",
                "shape": [1, FEATURES],
                "data": [12.5, 0.3, 4.2, 1, 0, 0, 1],
            }
        ]
    }
).encode()


def batch_request(rows: int) -> pb.ModelInferRequest:
    from riskserve.model.specs import FRAUD

    rng = np.random.default_rng(3)
    request = pb.ModelInferRequest(model_name="fraud")
    for name in FRAUD.feature_names:
        tensor = request.inputs.add(name=name, datatype="FP32", shape=[rows, 1])
        tensor.contents.fp32_contents.extend(rng.gamma(2.0, 5.0, rows).tolist())
    return request


def timed_get(conn: http.client.HTTPConnection, method: str, path: str, body=None):
    started = time.perf_counter()
    conn.request(method, path, body=body, headers={"content-type": "application/json"})
    response = conn.getresponse()
    response.read()
    assert response.status == 200, response.status
    return (time.perf_counter() - started) * 1000


def probe(port: int, seconds: float) -> dict[str, list[float]]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    times: dict[str, list[float]] = {"live": [], "single_row": []}
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        times["live"].append(timed_get(conn, "GET", "/v2/health/live"))
        times["single_row"].append(
            timed_get(conn, "POST", "/v2/models/fraud/infer", SINGLE_ROW)
        )
        time.sleep(0.02)
    conn.close()
    return times


def batch_load(grpc_port: int, request, stop: threading.Event, took: list[float]):
    with grpc.insecure_channel(
        f"127.0.0.1:{grpc_port}",
        options=[("grpc.max_receive_message_length", 64 << 20)],
    ) as channel:
        stub = pb_grpc.GRPCInferenceServiceStub(channel)
        while not stop.is_set():
            started = time.perf_counter()
            stub.ModelInfer(request, timeout=60)
            took.append((time.perf_counter() - started) * 1000)


def summary(values: list[float]) -> str:
    a = np.asarray(values)
    return (
        f"p50 {np.percentile(a, 50):6.2f}  p99 {np.percentile(a, 99):6.2f}  "
        f"max {a.max():6.2f} ms  (n={len(a)})"
    )


def measure(source: Path, model_dir: Path, workdir: Path, seconds: float, rows: int):
    http_port, grpc_port = free_port(), free_port()
    process = ManagedProcess(
        name=f"predictor ({source})",
        argv=[
            sys.executable,
            "-m",
            "riskserve.serving",
            "--model_name",
            "fraud",
            "--model_dir",
            str(model_dir),
            "--http_port",
            str(http_port),
            "--grpc_port",
            str(grpc_port),
            "--grpc_max_receive_message_length",
            str(64 << 20),
            "--grpc_max_send_message_length",
            str(64 << 20),
        ],
        log_path=workdir / f"probe-{abs(hash(str(source)))}.log",
        env={**os.environ, "PYTHONPATH": str(source)},
        cwd=source,
    ).start()
    try:
        process.wait_ready(f"http://127.0.0.1:{http_port}/v2/health/ready", 60)
        quiet = probe(http_port, seconds / 2)
        request = batch_request(rows)
        stop, took = threading.Event(), []
        clients = [
            threading.Thread(target=batch_load, args=(grpc_port, request, stop, took))
            for _ in range(2)
        ]
        for client in clients:
            client.start()
        time.sleep(1.0)
        loaded = probe(http_port, seconds)
        stop.set()
        for client in clients:
            client.join()
    finally:
        process.stop()
    return quiet, loaded, took


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.probe_latency")
    parser.add_argument("--source", action="append", type=Path, default=[])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rows", type=int, default=100_000)
    args = parser.parse_args(argv)
    sources = [s.resolve() for s in args.source] or [REPO_ROOT]
    with tempfile.TemporaryDirectory(prefix="riskserve-probe-") as tmp:
        workdir = Path(tmp)
        model_dir = fraud_model_dir(workdir, None)
        print(
            f"\nprobes while two clients send {args.rows:,}-row gRPC batches "
            f"back to back ({args.seconds:.0f} s each)"
        )
        for source in sources:
            quiet, loaded, took = measure(
                source, model_dir, workdir, args.seconds, args.rows
            )
            print(f"  {source}")
            print(f"    live, no load:         {summary(quiet['live'])}")
            print(f"    live, batches running: {summary(loaded['live'])}")
            print(f"    1-row REST, batches:   {summary(loaded['single_row'])}")
            print(f"    the batch itself:      {summary(took)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
