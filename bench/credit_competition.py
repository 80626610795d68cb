"""The credit competition on real public data: is the winner as good as the better of
logistic regression and gradient boosting, under the job's own protocol?

On the three real credit data sets of bench/real_credit.py, for each data set and seed it runs exactly what `riskserve train credit --data FILE
--target COL` runs before registering: the 70/15/15 split, every credit candidate tuned
by Optuna over stratified CV within the default budget, the winner chosen by CV on
train + validation, and reports the holdout ROC-AUC of the winner and of each candidate.

    python -m bench.credit_competition [--seeds 3] [--data german,credit_data,hmda]
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np
import pandas as pd
from riskserve.training import candidates
from riskserve.training.competition.compete import Splits, compete
from riskserve.training.job import default_budget, split
from sklearn.metrics import roc_auc_score

from bench.real_credit import DATA, RealData


def run_once(data: RealData, seed: int) -> dict[str, float]:
    spec, x, y = data.load()
    splits = Splits(*split(x, y, seed))
    budget = default_budget(len(y), len(spec.features))
    names = candidates.names("credit")
    winner, entries = compete(
        "credit", names, spec, splits, budget, 3, seed, {}, lambda _m: None
    )
    test_y = splits.test_y.to_numpy()
    row = {"winner": winner.name}
    for e in entries:
        row[e.name] = (
            float(roc_auc_score(test_y, e.holdout_p)) if e.ok else float("nan")
        )
    row["winner_auc"] = row[winner.name]
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.credit_competition")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--data", default=",".join(DATA))
    args = parser.parse_args(argv)
    chosen = [DATA[n.strip()] for n in args.data.split(",") if n.strip()]
    names = candidates.names("credit")
    print(
        f"credit competition on real data: {len(chosen)} data sets x {args.seeds} seeds "
        f"(holdout ROC-AUC; the winner is chosen by CV on train + validation)",
        flush=True,
    )
    summary = []
    for data in chosen:
        rows = []
        for seed in range(1, args.seeds + 1):
            started = time.monotonic()
            row = run_once(data, seed)
            rows.append(row)
            scores = "  ".join(f"{n} {row[n]:.4f}" for n in names)
            print(
                f".. {data.name} seed {seed}: winner {row['winner']} "
                f"{row['winner_auc']:.4f}  ({scores})  {time.monotonic() - started:.0f} s",
                flush=True,
            )
        table = pd.DataFrame(rows)
        means = {n: float(table[n].mean()) for n in [*names, "winner_auc"]}
        best_single = max(means[n] for n in ("logreg", "gbm"))
        summary.append((data.name, means, best_single))
    print()
    header = f"{'data':12} " + " ".join(f"{n:>9}" for n in names)
    print(header + f" {'winner':>9} {'best of logreg/gbm':>19} {'winner - best':>13}")
    for name, means, best in summary:
        print(
            f"{name:12} "
            + " ".join(f"{means[n]:>9.4f}" for n in names)
            + f" {means['winner_auc']:>9.4f} {best:>19.4f} "
            f"{means['winner_auc'] - best:>+13.4f}"
        )
    return 0 if all(np.isfinite(m["winner_auc"]) for _, m, _ in summary) else 1


if __name__ == "__main__":
    sys.exit(main())
