"""The fraud job on data shaped like real card fraud, beside a tuned LightGBM and a
logistic regression on the same split.

285,000 rows of `riskserve.model.synthetic.card_fraud_pca` (0.17% fraud, 28 heavy-tailed
components, Time, Amount), written to a CSV. On the job's own split
(`riskserve.training.job.split`, seed 42: 70% train, 15% validation, 15% holdout), holdout
PR-AUC and ROC-AUC of:

  (a) the training job with default options, in process (`riskserve.training.job.run`, what
      `riskserve train fraud --data FILE --target Class` runs), against a throwaway
      MLflow (SQLite and artifacts in a temporary folder);
  (b) LightGBM tuned by Optuna: fitted on train, early stopping and selection on
      validation PR-AUC;
  (c) logistic regression on standardised features, C chosen on validation.

    python -m bench.fraud_realistic [--rows 285000] [--seed 0] [--trials 20]
                                    [--timeout 360] [--no-job]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from riskserve.model.synthetic import card_fraud_pca
from riskserve.training.dataset import JobConfig, LoadedData, load_data
from riskserve.training.job import split

from bench.throwaway_mlflow import create_experiment, use_throwaway_mlflow

# LightGBM, scikit-learn and Optuna are imported inside the functions, after
# `training`: importing that package sets OMP_WAIT_POLICY=PASSIVE, which OpenMP reads
# once, when LightGBM or scikit-learn first loads it (fits several times slower
# otherwise on a busy 2-core machine; training/settings.py has the figures).


@dataclass
class Row:
    model: str
    pr_auc: float
    roc_auc: float
    seconds: float
    note: str


@dataclass
class Split:
    train_x: pd.DataFrame
    train_y: np.ndarray
    valid_x: pd.DataFrame
    valid_y: np.ndarray
    test_x: pd.DataFrame
    test_y: np.ndarray


def scores(y: np.ndarray, p: np.ndarray) -> tuple[float, float]:
    from sklearn.metrics import average_precision_score, roc_auc_score

    return float(average_precision_score(y, p)), float(roc_auc_score(y, p))


def job_split(data: LoadedData, seed: int) -> Split:
    """The job's split of the data it loaded, labels as arrays."""
    train_x, train_y, valid_x, valid_y, test_x, test_y = split(
        data.features, data.target, seed
    )
    return Split(
        train_x,
        train_y.to_numpy(),
        valid_x,
        valid_y.to_numpy(),
        test_x,
        test_y.to_numpy(),
    )


def training_job(config: JobConfig, data: LoadedData, folder: Path) -> Row:
    """(a) The job, in process, as `riskserve train` runs it."""
    from riskserve.training.job import run
    from riskserve.training.settings import TrainingSettings

    create_experiment(config.name, folder)
    started = time.monotonic()
    try:
        result = run(config, TrainingSettings(), data)
    except Exception as exc:  # noqa: BLE001 - the bench reports it and goes on
        seconds = time.monotonic() - started
        traceback.print_exc()
        message = (
            f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        )
        print(
            f".. the training job failed after {seconds:.0f} s: {message}", flush=True
        )
        return Row("training job", np.nan, np.nan, seconds, f"failed: {message}")
    seconds = time.monotonic() - started
    print(f".. the training job took {seconds:.0f} s", flush=True)
    note = (
        f"winner {result.winner}, parity {result.parity:.1e}, version "
        f"{result.version} registered"
    )
    pr_auc, roc_auc = result.metrics["pr_auc"], result.metrics["roc_auc"]
    return Row("training job (defaults)", pr_auc, roc_auc, seconds, note)


def tuned_lightgbm(splits: Split, trials: int, timeout: float) -> Row:
    """(b) Optuna over LightGBM, early stopping and selection on validation PR-AUC;
    the job's GBM defaults are the first trial."""
    import lightgbm as lgb
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    best: dict = {"score": -1.0}
    started = time.monotonic()

    def objective(trial: optuna.Trial) -> float:
        params = {
            "learning_rate": trial.suggest_float("learning_rate", 0.02, 0.3, log=True),
            "num_leaves": trial.suggest_int("num_leaves", 4, 63, log=True),
            "min_child_samples": trial.suggest_int(
                "min_child_samples", 5, 300, log=True
            ),
            "reg_lambda": trial.suggest_float("reg_lambda", 1e-3, 10.0, log=True),
            "colsample_bytree": trial.suggest_float("colsample_bytree", 0.5, 1.0),
            "scale_pos_weight": trial.suggest_float(
                "scale_pos_weight", 1.0, 30.0, log=True
            ),
        }
        trial_started = time.monotonic()
        model = lgb.LGBMClassifier(
            n_estimators=1000,
            metric="average_precision",
            random_state=0,
            n_jobs=2,
            verbose=-1,
            **params,
        )
        model.fit(
            splits.train_x,
            splits.train_y,
            eval_X=splits.valid_x,
            eval_y=splits.valid_y,
            callbacks=[lgb.early_stopping(50, verbose=False)],
        )
        p = model.predict_proba(splits.valid_x)[:, 1]
        score = scores(splits.valid_y, p)[0]
        print(
            f".. lightgbm trial {trial.number}: validation PR-AUC {score:.4f} "
            f"({model.best_iteration_} trees, {time.monotonic() - trial_started:.0f} s)",
            flush=True,
        )
        if score > best["score"]:
            best.update(score=score, model=model, params=params)
        return score

    study = optuna.create_study(
        direction="maximize", sampler=optuna.samplers.TPESampler(seed=0)
    )
    study.enqueue_trial(
        {
            "learning_rate": 0.02,
            "num_leaves": 15,
            "min_child_samples": 100,
            "reg_lambda": 3.0,
            "colsample_bytree": 1.0,
            "scale_pos_weight": 1.0,
        }
    )
    study.optimize(objective, n_trials=trials, timeout=timeout)
    seconds = time.monotonic() - started
    model = best["model"]
    p = model.predict_proba(splits.test_x)[:, 1]
    pr_auc, roc_auc = scores(splits.test_y, p)
    params = best["params"]
    note = (
        f"{len(study.trials)} trials; best: {model.best_iteration_} trees, lr "
        f"{params['learning_rate']:.3f}, {params['num_leaves']} leaves, min leaf "
        f"{params['min_child_samples']}, pos weight {params['scale_pos_weight']:.1f}; "
        f"validation {best['score']:.4f}; holdout p < 1e-5: "
        f"{np.mean(p < 1e-5):.0%}, frauds p > 1 - 1e-5: "
        f"{np.mean(p[splits.test_y == 1] > 1 - 1e-5):.0%}"
    )
    return Row("LightGBM + Optuna", pr_auc, roc_auc, seconds, note)


def logistic_regression(splits: Split) -> Row:
    """(c) Standardised features, C chosen on validation PR-AUC."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    started = time.monotonic()
    fitted = {}
    for c in (0.001, 0.01, 0.1, 1.0, 10.0):
        model = make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=2000))
        model.fit(splits.train_x, splits.train_y)
        score = scores(splits.valid_y, model.predict_proba(splits.valid_x)[:, 1])[0]
        fitted[c] = (score, model)
    c, (valid_score, model) = max(fitted.items(), key=lambda item: item[1][0])
    p = model.predict_proba(splits.test_x)[:, 1]
    pr_auc, roc_auc = scores(splits.test_y, p)
    seconds = time.monotonic() - started
    note = f"C {c:g} (validation {valid_score:.4f})"
    return Row("logistic regression", pr_auc, roc_auc, seconds, note)


def format_table(rows: list[Row]) -> str:
    lines = [f"{'model':24} {'PR-AUC':>7} {'ROC-AUC':>8} {'seconds':>8}  note"]
    for r in rows:
        lines.append(
            f"{r.model:24} {r.pr_auc:>7.4f} {r.roc_auc:>8.4f} {r.seconds:>8.0f}  {r.note}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.fraud_realistic")
    parser.add_argument("--rows", type=int, default=285_000)
    parser.add_argument("--seed", type=int, default=0, help="the generator's seed")
    parser.add_argument("--trials", type=int, default=20, help="LightGBM trials")
    parser.add_argument(
        "--timeout", type=float, default=360.0, help="LightGBM search seconds"
    )
    parser.add_argument(
        "--no-job", action="store_true", help="only the LightGBM and the logistic"
    )
    args = parser.parse_args(argv)
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="riskserve-bench-fraud-") as tmp:
        folder = Path(tmp)
        use_throwaway_mlflow(folder)
        frame = card_fraud_pca(args.rows, seed=args.seed)
        csv = folder / "card_fraud.csv"
        frame.to_csv(csv, index=False)
        # The job's defaults (seed 42) but for the model's name.
        config = JobConfig(
            kind="fraud", data=csv, target="Class", model_name="bench-fraud-realistic"
        )
        data = load_data(config)
        splits = job_split(data, config.seed)
        print(
            f"realistic card fraud: {len(frame)} rows, {int(frame['Class'].sum())} "
            f"frauds ({frame['Class'].mean():.3%}), generator seed {args.seed}; the "
            f"job's split (seed {config.seed}): train {len(splits.train_y)} rows "
            f"({int(splits.train_y.sum())} frauds), validation {len(splits.valid_y)} "
            f"({int(splits.valid_y.sum())}), holdout {len(splits.test_y)} "
            f"({int(splits.test_y.sum())})",
            flush=True,
        )
        if not args.no_job:
            rows.append(training_job(config, data, folder))
        rows.append(tuned_lightgbm(splits, args.trials, args.timeout))
        rows.append(logistic_regression(splits))
    print()
    print(format_table(rows))
    return 0 if all(np.isfinite(r.pr_auc) for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
