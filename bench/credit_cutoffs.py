"""The credit cut-off on real public data: what the default policy approves, beside
the fixed score it replaced.

For each real credit data set of bench/real_credit.py, it runs the training job itself
(`riskserve.training.job.run`, as `riskserve train credit --data FILE --target COL` does, with
the default `--cutoff-policy`) against a throwaway MLflow (SQLite and artifacts in a
temporary folder), then runs the registered ONNX model on the job's own holdout (the
15% of `riskserve.training.job.split`) and reports, per data set, the approval rate, the bad rate
among the approved and the profit per applicant (the default policy's gain and loss)
at the cut-off the policy chose, at the policy's break-even score (PD =
GAIN/(GAIN+LOSS) on the job's score scaling: what the profit policy chooses when the
PDs are calibrated) and at `score:560`, the fixed default before it.

    python -m bench.credit_cutoffs [--data german,credit_data,hmda] [--seed 1]
                                   [--budget SECONDS] [--tables]
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from riskserve.training.cutoff_policy import (
    DEFAULT_POLICY,
    CutoffPolicy,
    format_strategy_table,
    outcome,
    parse_policy,
    strategy_table,
)

from bench.real_credit import DATA, RealData
from bench.throwaway_mlflow import create_experiment, use_throwaway_mlflow

FIXED = "score:560"  # the default before --cutoff-policy
HOLDOUT_KEYS = ("approval_rate", "approved_bad_rate", "profit_per_applicant")


def holdout_outputs(model_name: str, version: str, data: RealData, seed: int):
    """The registered graph's outputs on the job's holdout, its labels and cut-off."""
    import mlflow
    import onnx
    import onnxruntime as ort
    from onnx import numpy_helper
    from riskserve.training.competition.compete import onnx_feeds
    from riskserve.training.job import split

    spec, x, y = data.load()
    *_, test_x, test_y = split(x, y, seed)
    local = mlflow.artifacts.download_artifacts(f"models:/{model_name}/{version}")
    path = sorted(Path(local).rglob("*.onnx"))[0]
    proto = onnx.load(str(path))
    cutoff = next(
        float(numpy_helper.to_array(t))
        for t in proto.graph.initializer
        if t.name == "approval_cutoff"
    )
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    out = dict(zip(names, session.run(names, onnx_feeds(spec, test_x)), strict=True))
    return out, test_y.to_numpy(), cutoff


def run_one(data: RealData, seed: int, budget: float | None, folder: Path) -> dict:
    from riskserve.training.dataset import JobConfig, LoadedData
    from riskserve.training.job import run
    from riskserve.training.settings import TrainingSettings

    spec, x, y = data.load()
    name = f"bench-cutoffs-{data.name}-{seed}"
    create_experiment(name, folder)
    config = JobConfig(
        kind="credit",
        target=data.target,
        positive=data.positive,
        model_name=name,
        seed=seed,
        budget=budget,
        cutoff_policy=DEFAULT_POLICY,
    )
    started = time.monotonic()
    result = run(config, TrainingSettings(), LoadedData(spec, x, y, data.name))
    seconds = time.monotonic() - started
    out, y_true, cutoff = holdout_outputs(name, result.version, data, seed)
    scores = out["credit_score"]
    policy = parse_policy(DEFAULT_POLICY)
    chosen = outcome(y_true, scores, cutoff, policy)
    # score:560 priced with the default policy's gain and loss, to compare the two.
    fixed = outcome(y_true, scores, parse_policy(FIXED).value, policy)
    scaling = config.scaling
    break_even_score = scaling.offset + scaling.factor * math.log(
        policy.loss / policy.gain
    )
    break_even = outcome(y_true, scores, break_even_score, policy)
    if not np.array_equal(out["approved"], scores >= np.float32(cutoff)):
        print(f".. {data.name}: the graph's approved differs from score >= cut-off")
    return {
        "data": data,
        "rows": len(y),
        "bad_share": float(y.mean()),
        "holdout": len(y_true),
        "winner": result.winner,
        "cutoff": cutoff,
        "chosen": chosen,
        "fixed": fixed,
        "break_even": break_even,
        "break_even_score": break_even_score,
        "job": {k: result.metrics.get(k) for k in HOLDOUT_KEYS},
        "seconds": seconds,
        "table": strategy_table(
            y_true, out["default_probability"], scores, policy, cutoff
        ),
    }


def _rates(figures: dict[str, float]) -> str:
    bad = figures["approved_bad_rate"]
    bad_text = "     -" if np.isnan(bad) else f"{100 * bad:5.1f}%"
    return (
        f"{100 * figures['approval_rate']:6.1f}% {bad_text} "
        f"{figures['profit_per_applicant']:+8.3f}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.credit_cutoffs")
    parser.add_argument("--data", default=",".join(DATA))
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--budget", type=float, help="search seconds (default: the job's default)"
    )
    parser.add_argument(
        "--tables", action="store_true", help="print each holdout strategy table"
    )
    args = parser.parse_args(argv)
    chosen_data = [DATA[n.strip()] for n in args.data.split(",") if n.strip()]
    policy: CutoffPolicy = parse_policy(DEFAULT_POLICY)
    print(
        f"credit cut-offs on real data: the job's default policy {policy} against "
        f"{FIXED}, on the job's holdout (profit per applicant at gain {policy.gain:g}, "
        f"loss {policy.loss:g})",
        flush=True,
    )
    results = []
    with tempfile.TemporaryDirectory(prefix="riskserve-bench-cutoffs-") as tmp:
        use_throwaway_mlflow(Path(tmp))
        for data in chosen_data:
            result = run_one(data, args.seed, args.budget, Path(tmp))
            results.append(result)
            print(
                f".. {data.name}: {result['winner']} won; cut-off "
                f"{result['cutoff']:.1f}; {result['seconds']:.0f} s",
                flush=True,
            )
            if args.tables:
                print(format_strategy_table(result["table"]), flush=True)
    print()
    head = "approve   bad   profit"
    columns = [
        f"the job's cut-off ({policy})",
        f"break-even {results[0]['break_even_score']:.1f}" if results else "",
        FIXED,
    ]
    print(
        f"{'data':12} {'rows':>5} {'bad':>5} {'holdout':>7} {'cut-off':>7}  "
        + "  ".join(f"{c:^28}" for c in columns)
    )
    print(f"{'':12} {'':>5} {'':>5} {'':>7} {'':>7}  " + "  ".join([f"{head:^28}"] * 3))
    missing = set()
    for r in results:
        print(
            f"{r['data'].name:12} {r['rows']:>5} {100 * r['bad_share']:4.1f}% "
            f"{r['holdout']:>7} {r['cutoff']:>7.1f}  "
            + "  ".join(
                f"{_rates(r[key]):^28}" for key in ("chosen", "break_even", "fixed")
            )
        )
        missing |= {k for k, v in r["job"].items() if v is None}
        for key, value in r["job"].items():
            if value is not None and not np.isclose(
                value, r["chosen"][key], equal_nan=True
            ):
                print(
                    f"   the job reported {key} {value:.4f}, the graph gives "
                    f"{r['chosen'][key]:.4f}"
                )
    if any(r["cutoff"] == parse_policy(FIXED).value for r in results):
        print(
            f"(a cut-off of exactly {parse_policy(FIXED).value:g}: the job did not "
            "apply the policy; is --cutoff-policy wired into training/job.py?)"
        )
    if missing:
        print(
            f"(the job's metrics have no {', '.join(sorted(missing))}; the figures "
            "above come from the registered graph on the holdout)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
