"""Health probes and single-row requests while big gRPC batches run.

A predictor serves REST, gRPC and the health probes on one event loop. Two clients send
100,000-row gRPC requests back to back (typed contents, `fp32_contents`, one [rows, 1]
tensor per feature, as most gRPC clients send); meanwhile `GET /v2/health/live` and
single-row REST requests are timed every 20 ms. The same is measured with no batch
load, as the reference. The goal (issue 24): the liveness probe's p99 while the
batches run is at most half the batch's median.

`--source DIR` runs the predictor of another checkout (e.g. the commit before a
change), so before and after are measured in one sitting; `--rounds N` interleaves
them (before, after, before, after, ...) and reports the median of the rounds and
their spread:
    git worktree add /tmp/before HEAD
    python -m bench.probe_latency --source /tmp/before --source . --rounds 3

The venv has riskserve installed editable, pointing at this checkout, and a checkout
keeps its rooms as top-level folders (`serving/`, not `riskserve/serving/`): putting
it on PYTHONPATH would import its `riskserve/` and then, through the editable finder,
*this* checkout's `riskserve.serving`. So each source is imported through a tree of
links of the installed shape (`riskserve/serving -> DIR/serving`, ...), and the
predictor prints the file it imported `riskserve.serving` from; a run whose predictor
did not come from its source stops with an error.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import grpc
import numpy as np
from riskserve.localplatform.processes import ManagedProcess, free_port
from riskserve.serving.grpc_v2 import grpc_predict_v2_pb2 as pb

from bench import checkout
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
# The predictor's entry point, run by a child that first says where it imported
# riskserve.serving from.
BOOT = (
    "import os, runpy, riskserve.serving as s; "
    "print('riskserve.serving imported from', os.path.realpath(s.__file__), flush=True); "
    "runpy.run_module('riskserve.serving', run_name='__main__', alter_sys=True)"
)
IMPORTED_FROM = "riskserve.serving imported from "


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


def batch_load(
    grpc_port: int,
    body: bytes,
    rows: int,
    stop: threading.Event,
    took: list[float],
    errors: list[BaseException],
) -> None:
    """ModelInfer back to back. The request is serialised once and the answer is not
    parsed (but for the first, which is checked)."""
    try:
        with grpc.insecure_channel(
            f"127.0.0.1:{grpc_port}",
            options=[("grpc.max_receive_message_length", 64 << 20)],
        ) as channel:
            infer = channel.unary_unary(
                "/inference.GRPCInferenceService/ModelInfer",
                request_serializer=None,
                response_deserializer=None,
            )
            first = pb.ModelInferResponse.FromString(infer(body, timeout=60))
            assert list(first.outputs[0].shape) == [rows], first.outputs[0].shape
            while not stop.is_set():
                started = time.perf_counter()
                infer(body, timeout=60)
                took.append((time.perf_counter() - started) * 1000)
    except BaseException as error:  # reported by the caller
        errors.append(error)


def batch_clients(grpc_port: int, rows: int, clients: int = 2) -> None:
    """The batch load, in a process of its own (`start_batch_load`): its gRPC and
    protobuf work would otherwise share the probe client's GIL and be timed as the
    probes' latency. Prints "ready" once every client had an answer, stops at a line
    on stdin, then prints the batches' times (JSON)."""
    body = batch_request(rows).SerializeToString()
    stop, took, errors = threading.Event(), [], []
    threads = [
        threading.Thread(
            target=batch_load, args=(grpc_port, body, rows, stop, took, errors)
        )
        for _ in range(clients)
    ]
    for thread in threads:
        thread.start()
    while len(took) < clients and not errors:
        time.sleep(0.01)
    print("ready", flush=True)
    sys.stdin.readline()
    stop.set()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    print(json.dumps(took), flush=True)


def start_batch_load(grpc_port: int, rows: int) -> subprocess.Popen:
    process = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys; from bench.probe_latency import batch_clients; "
            "batch_clients(int(sys.argv[1]), int(sys.argv[2]))",
            str(grpc_port),
            str(rows),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=REPO_ROOT,
        start_new_session=True,  # its own scheduling group, as the predictor's
    )
    assert process.stdout is not None
    if process.stdout.readline().strip() != "ready":
        process.kill()
        raise SystemExit("the batch clients did not start (see above)")
    return process


def stop_batch_load(process: subprocess.Popen) -> list[float]:
    out, _ = process.communicate("stop\n", timeout=120)
    if process.returncode:
        raise SystemExit("the batch clients failed (see above)")
    return json.loads(out.strip().splitlines()[-1])


def measure(
    source: Path, model_dir: Path, workdir: Path, seconds: float, rows: int
) -> dict[str, list[float]]:
    http_port, grpc_port = free_port(), free_port()
    root = checkout.importable(source, workdir)
    log_path = workdir / f"probe-{abs(hash(str(source)))}-{time.monotonic_ns()}.log"
    process = ManagedProcess(
        name=f"predictor ({source})",
        argv=[
            sys.executable,
            "-c",
            BOOT,
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
        log_path=log_path,
        env={**os.environ, "PYTHONPATH": str(root)},
        cwd=root,
    ).start()
    try:
        process.wait_ready(f"http://127.0.0.1:{http_port}/v2/health/ready", 60)
        imported = imported_from(log_path)
        if not Path(imported).is_relative_to(source):
            raise SystemExit(
                f"the predictor for {source} imported riskserve.serving from {imported}"
            )
        quiet = probe(http_port, seconds / 2)
        load = start_batch_load(grpc_port, rows)
        try:
            time.sleep(1.0)
            loaded = probe(http_port, seconds)
        finally:
            took = stop_batch_load(load)
    finally:
        process.stop()
    return {
        "imported": [imported],
        "live_quiet": quiet["live"],
        "live": loaded["live"],
        "single_row": loaded["single_row"],
        "batch": took,
    }


def imported_from(log_path: Path) -> str:
    for line in log_path.read_text().splitlines():
        if line.startswith(IMPORTED_FROM):
            return line[len(IMPORTED_FROM) :].strip()
    raise SystemExit(f"the predictor did not say where it imported from ({log_path})")


def percentiles(values: list[float]) -> tuple[float, float]:
    return float(np.percentile(values, 50)), float(np.percentile(values, 99))


def spread(values: list[float]) -> str:
    """The median of the rounds, with their range when there are several."""
    median = float(np.median(values))
    if len(values) == 1:
        return f"{median:6.2f}"
    return f"{median:6.2f} ({min(values):.2f}-{max(values):.2f})"


def report(source: Path, rounds: list[dict[str, list[float]]]) -> list[str]:
    lines = [f"  {source}", f"    riskserve.serving from {rounds[0]['imported'][0]}"]
    for i, figures in enumerate(rounds, 1):
        live, one, batch = (
            percentiles(figures[k]) for k in ("live", "single_row", "batch")
        )
        lines.append(
            f"    round {i}: live p50 {live[0]:5.2f} p99 {live[1]:6.2f} | 1-row REST "
            f"p50 {one[0]:5.2f} p99 {one[1]:6.2f} | batch p50 {batch[0]:6.2f} ms "
            f"(n={len(figures['batch'])})"
        )
    label = "median of rounds (range)" if len(rounds) > 1 else "ms"
    lines.append(f"    {label}:")
    for key, name in (
        ("live_quiet", "live, no load:        "),
        ("live", "live, batches running:"),
        ("single_row", "1-row REST, batches:  "),
        ("batch", "the batch itself:     "),
    ):
        p50s, p99s = zip(
            *(percentiles(figures[key]) for figures in rounds), strict=True
        )
        lines.append(f"      {name} p50 {spread(p50s)}  p99 {spread(p99s)}")
    live_p99 = float(np.median([percentiles(f["live"])[1] for f in rounds]))
    batch_p50 = float(np.median([percentiles(f["batch"])[0] for f in rounds]))
    verdict = "PASS" if live_p99 <= batch_p50 / 2 else "FAIL"
    lines.append(
        f"    goal: live p99 under load {live_p99:.2f} ms <= half the batch median "
        f"({batch_p50:.2f} / 2 = {batch_p50 / 2:.2f} ms): {verdict}"
    )
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.probe_latency")
    parser.add_argument("--source", action="append", type=Path, default=[])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=1)
    args = parser.parse_args(argv)
    sources = [s.resolve() for s in args.source] or [REPO_ROOT]
    with tempfile.TemporaryDirectory(prefix="riskserve-probe-") as tmp:
        workdir = Path(tmp)
        model_dir = fraud_model_dir(workdir, None)
        print(
            f"\nprobes while two clients send {args.rows:,}-row gRPC batches "
            f"back to back ({args.seconds:g} s each, {args.rounds} round(s), "
            f"sources interleaved; {os.cpu_count()} cores)",
            flush=True,
        )
        results: dict[Path, list[dict[str, list[float]]]] = {s: [] for s in sources}
        for _ in range(args.rounds):
            for source in sources:
                results[source].append(
                    measure(source, model_dir, workdir, args.seconds, args.rows)
                )
        for source in sources:
            print("\n".join(report(source, results[source])))
    return 0


if __name__ == "__main__":
    sys.exit(main())
