"""Does SMOTE help? Class weights against SMOTE against nothing, measured.

The PeerLoan work this project grew from recommends SMOTE for imbalanced data. This
compares, under the same stratified 5-fold CV and the kind's primary metric, each
candidate's pipeline with: no reweighting, balanced class weights, and SMOTE
(imbalanced-learn) inside the folds, after the feature step and before the model.

    python -m bench.resampling                       # synthetic fraud and credit
    python -m bench.resampling --data FILE --target COL --kind credit
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
from imblearn.over_sampling import SMOTE
from imblearn.pipeline import Pipeline as ResamplingPipeline
from riskserve.training.candidates.gbm import DEFAULTS, GbmCandidate
from riskserve.training.candidates.logreg import LogisticCandidate, native_input
from riskserve.training.competition.compete import PRIMARY_METRIC
from sklearn.impute import SimpleImputer
from sklearn.model_selection import StratifiedKFold, cross_val_score

SCORERS = {"pr_auc": "average_precision", "roc_auc": "roc_auc"}


def variants(candidate, params: dict, y: pd.Series) -> dict:
    weighted = candidate.build({**params, "class_weight": "balanced"}, y.to_numpy())
    plain = candidate.build({**params, "class_weight": "none"}, y.to_numpy())
    steps = list(plain.steps)
    resampled = ResamplingPipeline(
        [
            steps[0],
            # SMOTE interpolates between rows: it needs numbers without gaps
            ("impute", SimpleImputer(strategy="median")),
            ("smote", SMOTE(random_state=0)),
            *steps[1:],
        ]
    )
    return {"none": plain, "class weights": weighted, "SMOTE": resampled}


def measure(kind: str, spec, x: pd.DataFrame, y: pd.Series, folds: int) -> list[dict]:
    metric = PRIMARY_METRIC[kind][0]
    rows = []
    gbm_params = {**DEFAULTS, "n_estimators": 300, "learning_rate": 0.05}
    for candidate, params in (
        (LogisticCandidate(spec, 0), {"C": 0.5}),
        (GbmCandidate(spec, 0), gbm_params),
    ):
        for label, pipeline in variants(candidate, params, y).items():
            started = time.monotonic()
            scores = cross_val_score(
                pipeline,
                native_input(spec, x),
                y.to_numpy(),
                scoring=SCORERS[metric],
                cv=StratifiedKFold(folds, shuffle=True, random_state=0),
            )
            rows.append(
                {
                    "data": kind,
                    "candidate": candidate.name,
                    "imbalance": label,
                    f"cv_{metric}": f"{scores.mean():.4f} +- {scores.std():.4f}",
                    "seconds": round(time.monotonic() - started, 1),
                }
            )
            print(rows[-1], flush=True)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.resampling")
    parser.add_argument("--data", type=Path)
    parser.add_argument("--target")
    parser.add_argument("--kind", choices=["fraud", "credit"], default="credit")
    parser.add_argument("--rows", type=int, default=30_000)
    parser.add_argument("--folds", type=int, default=5)
    args = parser.parse_args(argv)
    from riskserve.model.data import binary_target, infer_spec, read_csv, validate
    from riskserve.model.specs import get_spec
    from riskserve.model.synthetic import generate

    results = []
    if args.data:
        frame = read_csv(args.data)
        y = binary_target(frame, args.target, str(args.data))
        spec = infer_spec(frame, args.kind, args.target, [], [], [])
        x = validate(frame, spec, str(args.data))
        results += measure(args.kind, spec, x, y, args.folds)
    else:
        for kind in ("fraud", "credit"):
            spec = get_spec(kind)
            frame = generate(kind, args.rows, 1)
            y = frame[spec.target].astype(np.int64)
            results += measure(kind, spec, frame[spec.feature_names], y, args.folds)
    print()
    print(pd.DataFrame(results).to_string(index=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
