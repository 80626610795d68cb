"""Class weighting at extreme imbalance, measured: none, sqrt and balanced for every
fraud candidate (the DNN included), on data shaped like real card fraud (0.17%
positives, 30 heavy-tailed features: riskserve.model.synthetic.card_fraud_pca).

The same stratified folds for every candidate and weighting; each candidate with its
job defaults, only the weighting changed. PR-AUC (the fraud job's primary metric)
mean and spread over the folds, and the fit time. The candidates' default weightings
(training/candidates/*.py) follow this table.

    python -m bench.class_weights [--rows 150000] [--folds 3] [--candidates dnn,gbm,logreg]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from riskserve.model.data import infer_spec, validate
from riskserve.model.synthetic import card_fraud_pca
from riskserve.training import candidates
from riskserve.training.candidates.class_weights import CLASS_WEIGHTS
from sklearn.metrics import average_precision_score
from sklearn.model_selection import StratifiedKFold


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.class_weights")
    parser.add_argument("--rows", type=int, default=150_000)
    parser.add_argument("--folds", type=int, default=3)
    parser.add_argument("--candidates", default="gbm,logreg,dnn")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    frame = card_fraud_pca(args.rows, args.seed)
    spec = infer_spec(frame, "fraud", "Class")
    x = validate(frame, spec, "card_fraud_pca")
    y = frame["Class"].astype(int)
    folds = list(
        StratifiedKFold(args.folds, shuffle=True, random_state=args.seed).split(x, y)
    )
    print(
        f"[class weights] {len(y)} rows, {int(y.sum())} positives "
        f"({y.mean():.3%}), {args.folds} folds; PR-AUC mean +- std over the folds",
        flush=True,
    )
    results = []
    for name in args.candidates.split(","):
        for scheme in CLASS_WEIGHTS:
            scores, seconds = [], 0.0
            for fit_rows, score_rows in folds:
                candidate = candidates.create("fraud", name, spec, args.seed)
                params = {
                    **candidate.default_params(len(fit_rows)),
                    "class_weight": scheme,
                }
                started = time.monotonic()
                candidate.fit(x.iloc[fit_rows], y.iloc[fit_rows], None, None, params)
                seconds += time.monotonic() - started
                margin = candidate.margin(x.iloc[score_rows])
                scores.append(average_precision_score(y.iloc[score_rows], margin))
            results.append((name, scheme, np.mean(scores), np.std(scores), seconds))
            print(
                f"[class weights] {name:7s} {scheme:9s} PR-AUC {np.mean(scores):.4f} "
                f"+- {np.std(scores):.4f}  fit {seconds:.0f} s",
                flush=True,
            )
    print("\ncandidate  weighting  PR-AUC mean  std     fit s")
    for name, scheme, mean, std, seconds in results:
        print(f"{name:10s} {scheme:10s} {mean:.4f}       {std:.4f}  {seconds:.0f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
