"""Binary tensors against JSON, and `--workers 2` against one process.

1. A 10,000-row fraud request, end to end from this client (encode, send, answer,
   decode) with JSON inputs and outputs and with binary ones (tritonclient's codec, the
   way its users send it): the median of 20 each, and the answers compared.
2. Single-row requests, JSON and binary, closed loop from bench/loadgen.py in another
   process (8 connections): req/s and p50/p99.
3. `--workers 1` against `--workers 2`: the same load generator. On a 2-core machine
   the load generator needs a core of its own to send single-row requests fast enough,
   so workers are compared where the server's work dominates the generator's: 500-row
   requests (the generator's cost per request is the same as for one row, the server's
   is not). The single-row figure is printed too, for what it shows on this machine.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
import tritonclient.http as triton
from riskserve.localplatform.processes import ManagedProcess, free_port
from riskserve.model.specs import FRAUD

from bench.runner import REPO_ROOT, fraud_model_dir, request_body

INFER = "/v2/models/fraud/infer"


def start(model_dir: Path, workdir: Path, workers: int) -> tuple[ManagedProcess, int]:
    port = free_port()
    process = ManagedProcess(
        name=f"predictor x{workers}",
        argv=[
            sys.executable,
            "-m",
            "riskserve.serving",
            "--model_name",
            "fraud",
            "--model_dir",
            str(model_dir),
            "--http_port",
            str(port),
            "--grpc_port",
            str(free_port()),
            "--workers",
            str(workers),
        ],
        log_path=workdir / f"predictor-{workers}.log",
        env={
            **os.environ,
            "RISKSERVE_SERVING_HOST": "127.0.0.1",
            "RISKSERVE_SERVING_MAX_BODY_BYTES": str(64 << 20),
        },
        cwd=REPO_ROOT,
    ).start()
    process.wait_ready(f"http://127.0.0.1:{port}/v2/health/ready", 60)
    # Every worker loads its model; give the others a moment to be ready too.
    time.sleep(1.0 if workers > 1 else 0)
    return process, port


def binary_body(rows: np.ndarray, binary_outputs: bool) -> tuple[bytes, int]:
    inputs = []
    for i, name in enumerate(FRAUD.feature_names):
        tensor = triton.InferInput(name, [len(rows), 1], "FP32")
        tensor.set_data_from_numpy(np.ascontiguousarray(rows[:, [i]]))
        inputs.append(tensor)
    outputs = [
        triton.InferRequestedOutput(n, binary_data=binary_outputs)
        for n in ("fraud_probability", "is_fraud")
    ]
    return triton.InferenceServerClient.generate_request_body(inputs, outputs=outputs)


def big_request(port: int, rows: int) -> dict:
    data = np.random.default_rng(11).gamma(2.0, 5.0, (rows, 7)).astype(np.float32)
    client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60)
    times = {"json": [], "binary": []}
    answers = {}
    for _ in range(20):
        started = time.perf_counter()
        request = {
            "inputs": [
                {
                    "name": name,
                    "datatype": "FP32",
                    "shape": [rows, 1],
                    "data": data[:, i].tolist(),
                }
                for i, name in enumerate(FRAUD.feature_names)
            ]
        }
        answer = client.post(INFER, json=request).json()
        answers["json"] = np.asarray(
            next(
                o["data"] for o in answer["outputs"] if o["name"] == "fraud_probability"
            ),
            dtype=np.float32,
        )
        times["json"].append(time.perf_counter() - started)

        started = time.perf_counter()
        body, json_size = binary_body(data, True)
        response = client.post(
            INFER,
            content=body,
            headers={"Inference-Header-Content-Length": str(json_size)},
        )
        result = triton.InferenceServerClient.parse_response_body(
            response.content,
            header_length=int(response.headers["inference-header-content-length"]),
        )
        answers["binary"] = result.as_numpy("fraud_probability")
        times["binary"].append(time.perf_counter() - started)
    client.close()
    return {
        "json_ms": float(np.median(times["json"]) * 1000),
        "binary_ms": float(np.median(times["binary"]) * 1000),
        "identical": bool(np.array_equal(answers["json"], answers["binary"])),
    }


def loadgen(port: int, body: bytes, workdir: Path, seconds: float, headers=()) -> dict:
    body_file = workdir / f"body-{len(body)}-{len(headers)}.bin"
    body_file.write_bytes(body)
    argv = [
        sys.executable,
        "-m",
        "bench.loadgen",
        "--port",
        str(port),
        "--path",
        INFER,
        "--body-file",
        str(body_file),
        "--duration",
        str(seconds),
    ]
    for header in headers:
        argv += ["--header", header]
    done = subprocess.run(
        argv, capture_output=True, text=True, check=True, cwd=REPO_ROOT, timeout=300
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def rows_body(rows: int) -> bytes:
    return request_body(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.binary_and_workers")
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="riskserve-bench-") as tmp:
        workdir = Path(tmp)
        model_dir = fraud_model_dir(workdir, None)
        process, port = start(model_dir, workdir, 1)
        try:
            big = big_request(port, 10_000)
            one = np.array([[12.5, 0.3, 4.2, 1, 0, 0, 1]], np.float32)
            body, json_size = binary_body(one, False)
            header = [f"Inference-Header-Content-Length: {json_size}"]
            single_json = loadgen(port, rows_body(1), workdir, args.seconds)
            single_binary = loadgen(port, body, workdir, args.seconds, header)
            one_worker = {
                rows: loadgen(port, rows_body(rows), workdir, args.seconds)
                for rows in (1, 500)
            }
        finally:
            process.stop()
        process, port = start(model_dir, workdir, 2)
        try:
            two_workers = {
                rows: loadgen(port, rows_body(rows), workdir, args.seconds)
                for rows in (1, 500)
            }
        finally:
            process.stop()
    speedup = big["json_ms"] / big["binary_ms"]
    print("\nbinary tensors against JSON (one predictor process)")
    print(
        f"  10,000 rows end to end: JSON {big['json_ms']:.1f} ms, binary "
        f"{big['binary_ms']:.1f} ms: {speedup:.1f}x (goal >= 3x); identical answers: "
        f"{big['identical']}"
    )

    def line(label: str, r: dict) -> str:
        return (
            f"  {label:<28} {r['rps']:8,.0f} req/s  p50 {r['p50_ms']:.2f} ms  "
            f"p99 {r['p99_ms']:.2f} ms"
        )

    print(line("single row, JSON", single_json))
    print(line("single row, binary", single_binary))
    print("\n--workers 2 against 1 (load generator in its own process, 8 connections)")
    for rows in (1, 500):
        ratio = two_workers[rows]["rps"] / one_worker[rows]["rps"]
        print(line(f"{rows} row(s), 1 worker", one_worker[rows]))
        print(line(f"{rows} row(s), 2 workers", two_workers[rows]))
        goal = " (goal >= 1.5x)" if rows == 500 else " (generator-bound on 2 cores)"
        print(f"  {'':<28} {ratio:.2f}x{goal}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
