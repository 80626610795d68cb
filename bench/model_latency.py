"""`make bench`, part two: a gradient-boosting fraud model against the DNN, served.

Trains both candidates on the same synthetic fraud data (the GBM with its default 800
trees), builds each full contract graph (decision outputs included), and measures:
onnxruntime alone (median of single-row calls, one thread), and this predictor over v2
REST: one client sending single-row requests one after the other (the latency a caller
sees; the two models alternate in rounds, median of rounds), and 8 connections in a closed loop (throughput, as part one measures it).
Goal: the GBM's served single-row p50 within 1.2x the DNN's.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
from riskserve.localplatform.processes import ManagedProcess, free_port, http_ok

from bench.runner import loadgen, request_body
from bench.targets import TARGETS, Target

GOAL_RATIO = 1.2
ROUNDS = 6  # alternating one-client runs per model


def build_models(workdir: Path, rows: int, seed: int) -> dict[str, Path]:
    from riskserve.model.specs import FRAUD
    from riskserve.model.synthetic import generate
    from riskserve.training import candidates
    from riskserve.training.competition.compete import (
        latency_per_row_us,
        onnx_feeds,
        session,
    )
    from riskserve.training.decision_graph import add_fraud_decision, finalize

    from tests.fixtures.contract_models import write_onnx

    frame = generate("fraud", rows, seed)
    x, y = frame[FRAUD.feature_names], frame[FRAUD.target].astype(int)
    folders = {}
    for name in ("dnn", "gbm"):
        candidate = candidates.create("fraud", name, FRAUD, seed)
        params = candidate.default_params(rows)
        if name == "dnn":
            params["epochs"] = 3
        print(f".. training {name} on {rows} rows", flush=True)
        candidate.fit(x, y, None, None, params)
        proto, probability, column = candidate.to_onnx()
        proto = finalize(add_fraud_decision(proto, probability, column, 0.5))
        sess = session(proto)
        us = latency_per_row_us(sess, "fraud_probability", onnx_feeds(FRAUD, x[:200]))
        print(f"   {name}: onnxruntime alone {us:.1f} us per single-row call")
        folders[name] = write_onnx(proto, workdir / name).parent
        folders[f"{name}_onnxruntime_us"] = us
    return folders


def start_predictor(target: Target, model_dir: Path, workdir: Path) -> tuple:
    import os
    import time

    port, grpc_port = free_port(), free_port()
    process = ManagedProcess(
        name=f"{target.name}-{model_dir.name}",
        argv=target.argv(model_dir, port, grpc_port),
        log_path=workdir / f"{model_dir.name}.log",
        env={**os.environ, **target.env},
        cwd=Path(__file__).resolve().parent.parent,
    )
    process.start()
    started = time.monotonic()
    while not http_ok(f"http://127.0.0.1:{port}{target.ready_path}", timeout=0.5):
        if not process.alive() or time.monotonic() - started > 120:
            process.stop()
            raise RuntimeError(f"{model_dir.name} not ready:\n{process.log_tail()}")
        time.sleep(0.05)
    return process, port


def serve_and_measure(
    target: Target, model_dirs: dict[str, Path], workdir: Path, duration: float, body
) -> dict[str, dict]:
    """Both predictors up at once; the one-client runs alternate between them in
    rounds (dnn, gbm, dnn, gbm, ...) so that other load on the machine falls on both
    alike, and each model's p50 is the median of its rounds."""
    running = {}
    try:
        for name, folder in model_dirs.items():
            print(f".. serving {name} with {target.name}", flush=True)
            running[name] = start_predictor(target, folder, workdir)
        rounds: dict[str, list[dict]] = {name: [] for name in model_dirs}
        for _ in range(ROUNDS):
            for name, (_, port) in running.items():
                rounds[name].append(
                    loadgen(
                        port,
                        target.infer_path,
                        body,
                        connections=1,
                        duration=duration / ROUNDS,
                    )
                )
        results = {}
        for name, (_, port) in running.items():
            closed = loadgen(port, target.infer_path, body, duration=duration)
            results[name] = {
                "p50_ms": float(np.median([r["p50_ms"] for r in rounds[name]])),
                "p99_ms": float(np.median([r["p99_ms"] for r in rounds[name]])),
                "rps": closed["rps"],
                "closed_p50_ms": closed["p50_ms"],
            }
        return results
    finally:
        for process, _ in running.values():
            process.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.model_latency")
    parser.add_argument("--duration", type=float, default=12.0)
    parser.add_argument("--rows", type=int, default=20_000)
    args = parser.parse_args(argv)
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    workdir = Path(tempfile.mkdtemp(prefix="riskserve-bench-models-"))
    built = build_models(workdir, args.rows, seed=42)
    body = workdir / "single.json"
    body.write_bytes(request_body(1))
    predictor = next(t for t in TARGETS if t.name == "riskserve")
    served = serve_and_measure(
        predictor, {n: built[n] for n in ("dnn", "gbm")}, workdir, args.duration, body
    )
    print()
    print(
        f"{'model':6} {'ORT us/row':>10} {'p50 ms':>8} {'p99 ms':>8} "
        f"{'8-conn req/s':>12} {'8-conn p50 ms':>13}"
    )
    for name in ("dnn", "gbm"):
        r = served[name]
        print(
            f"{name:6} {built[f'{name}_onnxruntime_us']:>10.1f} {r['p50_ms']:>8.3f} "
            f"{r['p99_ms']:>8.3f} {r['rps']:>12,.0f} {r['closed_p50_ms']:>13.3f}"
        )
    ratio = served["gbm"]["p50_ms"] / served["dnn"]["p50_ms"]
    ort_ratio = built["gbm_onnxruntime_us"] / built["dnn_onnxruntime_us"]
    verdict = "met" if ratio <= GOAL_RATIO else "NOT met"
    print(
        f"\ngbm / dnn single-row p50, one client: {ratio:.2f}x (goal <= {GOAL_RATIO}x: "
        f"{verdict}); onnxruntime alone: {ort_ratio:.2f}x"
    )
    return 0 if np.isfinite(ratio) else 1


if __name__ == "__main__":
    sys.exit(main())
