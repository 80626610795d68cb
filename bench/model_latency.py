"""`make bench`, part two: a gradient-boosting fraud model against the DNN, served.

Trains both candidates on the same synthetic fraud data (the GBM with its default 800
trees), builds each full contract graph (decision outputs included), and measures:
onnxruntime alone (median of single-row calls, one thread) and this predictor over v2
REST (closed-loop single-row requests, as part one measures it). Goal: the GBM's served
single-row p50 within 1.2x the DNN's.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

from bench.runner import measure, request_body
from bench.targets import TARGETS

GOAL_RATIO = 1.2


def build_models(workdir: Path, rows: int, seed: int) -> dict[str, Path]:
    from model.specs import FRAUD
    from model.synthetic import generate
    from tests.serving.contract_models import write_onnx
    from training import candidates
    from training.candidates.competition import latency_per_row_us, onnx_feeds, session
    from training.decision_graph import add_fraud_decision, finalize

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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.model_latency")
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--rows", type=int, default=20_000)
    args = parser.parse_args(argv)
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    workdir = Path(tempfile.mkdtemp(prefix="riskserve-bench-models-"))
    built = build_models(workdir, args.rows, seed=42)
    bodies = {"single": workdir / "single.json", "batch": workdir / "batch.json"}
    bodies["single"].write_bytes(request_body(1))
    bodies["batch"].write_bytes(request_body(10_000))
    predictor = next(t for t in TARGETS if t.name == "riskserve")
    served = {}
    for name in ("dnn", "gbm"):
        print(f".. serving {name} with {predictor.name}", flush=True)
        served[name] = measure(predictor, built[name], workdir, args.duration, bodies)
    print()
    print(f"{'model':6} {'ORT us/row':>10} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8}")
    for name in ("dnn", "gbm"):
        r = served[name]
        print(
            f"{name:6} {built[f'{name}_onnxruntime_us']:>10.1f} {r['rps']:>8,.0f} "
            f"{r['p50_ms']:>8.3f} {r['p99_ms']:>8.3f}"
        )
    ratio = served["gbm"]["p50_ms"] / served["dnn"]["p50_ms"]
    ort_ratio = built["gbm_onnxruntime_us"] / built["dnn_onnxruntime_us"]
    verdict = "met" if ratio <= GOAL_RATIO else "NOT met"
    print(
        f"\ngbm / dnn served single-row p50: {ratio:.2f}x (goal <= {GOAL_RATIO}x: "
        f"{verdict}); onnxruntime alone: {ort_ratio:.2f}x"
    )
    return 0 if np.isfinite(ratio) else 1


if __name__ == "__main__":
    sys.exit(main())
