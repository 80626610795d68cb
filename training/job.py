"""One training job, from data to a registered ONNX model version.

Stages: data -> split -> candidates (tuned and ranked by CV on train + validation,
refitted there, exported) -> winner (calibrated on its out-of-fold margins when that
helps) -> decision outputs (threshold or cut-off chosen on out-of-fold predictions) ->
parity -> evaluate on the holdout -> log (a child run per candidate) -> register ->
aliases. Anything that fails before registering leaves the registry as it was.
"""

from __future__ import annotations

import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pandas as pd
from riskserve.model.data import data_hash
from riskserve.model.specs import (
    APPROVED,
    CREDIT_SCORE,
    IS_FRAUD,
    PROBABILITY_OUTPUT,
    ModelSpec,
)
from riskserve.training import candidates
from riskserve.training.candidates.margin import sigmoid
from riskserve.training.competition.calibration import calibrate
from riskserve.training.competition.compete import (
    PARITY_TOLERANCE,
    PRIMARY_METRIC,
    CompetitionError,
    Entry,
    Splits,
    calibration_plot,
    comparison_table,
    compete,
    format_table,
    lift_curve,
    onnx_feeds,
)
from riskserve.training.cutoff_policy import (
    choose_cutoff,
    format_strategy_table,
    outcome,
    parse_policy,
    strategy_table,
)
from riskserve.training.dataset import JobConfig, LoadedData
from riskserve.training.decision_graph import (
    add_credit_decision,
    add_fraud_decision,
    finalize,
    set_metadata,
)
from riskserve.training.evaluation import (
    Evaluation,
    choose_threshold,
    classification_metrics,
    credit_plots,
    ks_statistic,
    score_bands,
    standard_plots,
)
from riskserve.training.progress import Progress
from riskserve.training.scorecard.candidate import BINS_TENSOR
from riskserve.training.scorecard.reason_codes import CreditReasons, add_reason_codes
from riskserve.training.scorecard.stage import (
    reason_scorecard,
    scorecard_report,
    winner_reasons,
)
from riskserve.training.settings import TrainingSettings
from riskserve.training.winner import NativeModel, Winner
from sklearn.model_selection import train_test_split

__all__ = ["JobResult", "NativeModel", "ParityError", "run", "split"]


class ParityError(RuntimeError):
    """The exported ONNX graph does not reproduce the native model."""


@dataclass
class JobResult:
    model_name: str
    version: str
    aliases: list[str]
    metrics: dict[str, float]
    run_id: str
    parity: float
    ui_url: str
    winner: str = ""


def git_commit(settings: TrainingSettings) -> str:
    if settings.git_commit:
        return settings.git_commit
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short=12", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            cwd=Path(__file__).resolve().parent,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return out.stdout.strip() or "unknown"


def split(
    features: pd.DataFrame, target: pd.Series, seed: int
) -> tuple[pd.DataFrame, pd.Series, pd.DataFrame, pd.Series, pd.DataFrame, pd.Series]:
    """70% train, 15% validation (early stopping, threshold, parity), 15% holdout:
    (train_x, train_y, valid_x, valid_y, test_x, test_y), the fields of `Splits`."""
    train_x, rest_x, train_y, rest_y = train_test_split(
        features, target, test_size=0.30, stratify=target, random_state=seed
    )
    valid_x, test_x, valid_y, test_y = train_test_split(
        rest_x, rest_y, test_size=0.50, stratify=rest_y, random_state=seed
    )
    return train_x, train_y, valid_x, valid_y, test_x, test_y


def run_onnx(
    proto: onnx.ModelProto, feeds: dict[str, np.ndarray]
) -> dict[str, np.ndarray]:
    session = ort.InferenceSession(
        proto.SerializeToString(), providers=["CPUExecutionProvider"]
    )
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(names, feeds), strict=True))


def run(config: JobConfig, settings: TrainingSettings, data: LoadedData) -> JobResult:
    from riskserve.training import registry

    progress = Progress(config.name)
    settings.apply_client_limits()
    spec, features, target = data.spec, data.features, data.target

    progress.stage(f"checking MLflow at {settings.mlflow_tracking_uri}")
    registry.check_reachable(settings.mlflow_tracking_uri, settings.registry_timeout_s)
    registry.check_artifact_store(
        settings.mlflow_tracking_uri, settings.registry_timeout_s
    )

    splits = Splits(*split(features, target, config.seed))
    names = config.candidates or candidates.names(config.kind)
    budget = config.budget or default_budget(len(target), len(spec.features))
    progress.stage(
        f"training {config.kind} candidates {', '.join(names)}: {config.folds}-fold "
        f"CV on train + validation ({len(splits.fit_y)} rows, "
        f"{int(splits.fit_y.sum())} positives), holdout {len(splits.test_y)} rows "
        f"for the reported figures; search budget {budget:.0f} s"
    )
    winner, entries = compete(
        config.kind,
        names,
        spec,
        splits,
        budget,
        config.folds,
        config.seed,
        {"dnn": {"epochs": config.epochs}},
        progress.detail,
    )
    progress.stage(
        f"winner: {winner.name} (cv {PRIMARY_METRIC[config.kind][0]} "
        f"{winner.cv_score:.4f} +- {winner.cv_std:.4f} on {winner.cv_folds} folds)"
    )
    # The plots and tables are logged to MLflow; the folder is gone after the job.
    with tempfile.TemporaryDirectory(prefix=f"riskserve-{config.name}-") as tmp:
        work_dir = Path(tmp)
        native = calibrate_winner(winner, splits, config, work_dir, progress)
        progress.detail(
            f"{winner.name} refitted on train + validation ({len(splits.fit_y)} rows)"
        )
        proto, decision = decision_outputs(config, native, progress)
        reasons = None
        if config.kind == "credit":
            scorecard = reason_scorecard(spec, entries, splits, config.seed, progress)
            reasons = winner_reasons(scorecard, native, config, progress)
            proto = add_reason_codes(
                proto,
                reasons.table,
                reasons.k,
                reasons.with_points,
                BINS_TENSOR if reasons.with_points else None,
            )
        metadata = version_metadata(
            config, spec, winner.name, decision, git_commit(settings), data
        )
        proto = finalize(
            set_metadata(
                proto,
                {
                    "model_name": config.name,
                    "model_version": registry.next_version(config.name),
                    **metadata,
                    **(reasons.table.metadata(reasons.k) if reasons else {}),
                },
            )
        )
        valid_out, parity = check_parity(config, spec, proto, native, splits, progress)
        if reasons is not None:
            check_reasons(reasons, splits, valid_out, progress)
        exported = Winner(native, proto, decision, reasons, metadata, valid_out, parity)
        evaluation = evaluate(config, spec, exported, splits, work_dir, progress)
        if reasons is not None:
            report = scorecard_report(reasons, native, config.scaling, work_dir)
            evaluation.add(
                tables=report.tables,
                documents=(report.document,),
                metrics=report.metrics,
            )
        table = comparison_table(config.kind, entries, winner, splits.test_y)
        evaluation.add(
            plots=(lift_curve(entries, splits.test_y, work_dir, config.name),),
            tables={"comparison.csv": table},
            metrics={"parity_max_abs_diff": parity},
        )

        champion_check = None
        if config.promote_if_better:
            progress.stage("scoring the current champion on the same holdout")
            champion_check = registry.champion_pr_auc(
                config.name,
                evaluation.holdout_feeds,
                splits.test_y.to_numpy(),
                PROBABILITY_OUTPUT[config.kind],
            )

        progress.stage("logging the run and registering the model in MLflow")
        run_id, version = registry.log_and_register(
            config, data, exported, entries, evaluation, splits
        )
        is_champion, why = registry.decide_champion(
            config,
            champion_check,
            evaluation.metrics["pr_auc"],
            version,
            settings.allow_unapproved,
        )
        aliases = registry.set_aliases(config.name, version, is_champion)
        progress.detail(why)
        progress.detail("candidates compared (holdout columns for information only):")
        for line in format_table(table).splitlines():
            progress.detail("  " + line)
        return JobResult(
            model_name=config.name,
            version=version,
            aliases=aliases,
            metrics=evaluation.metrics,
            run_id=run_id,
            parity=parity,
            ui_url=registry.ui_url(settings.mlflow_tracking_uri, config.name, version),
            winner=winner.name,
        )


def version_metadata(
    config: JobConfig,
    spec: ModelSpec,
    candidate: str,
    decision: dict[str, float],
    commit: str,
    data: LoadedData,
) -> dict[str, str]:
    """The keys the ONNX metadata and the registered version's tags share. The
    training frame is hashed here, once."""
    return {
        "model_kind": config.kind,
        "features": ",".join(spec.feature_names),
        "data_hash": data_hash(data.features, data.target),
        "git_commit": commit,
        "candidate": candidate,
        **{k: repr(float(v)) for k, v in decision.items()},
        **({"cutoff_policy": config.cutoff_policy} if config.kind == "credit" else {}),
    }


def default_budget(rows: int, features: int) -> float:
    """Seconds of search: 67 s per million feature values, 10 s to 900 s.

    Cross-validating the GBM's defaults (800 trees, 3 folds) on 230,000 rows of 30
    features takes about 90 s on 2 cores, the DNN's about as much: the old 20 s per
    million (137 s for that data, 46 s a candidate) ended every search inside its
    first trial. Now 456 s there, shared by the candidates still to run (the DNN's
    unspent share goes to the GBM and the logistic regression); about 93 s for the
    demo's 200,000 rows of 7 features; the 10 s floor for small data."""
    return float(min(900.0, max(10.0, rows * features / 15_000)))


def calibrate_winner(
    winner: Entry,
    splits: Splits,
    config: JobConfig,
    work_dir: Path,
    progress: Progress,
) -> NativeModel:
    progress.stage(
        "calibrating the winner on its out-of-fold CV margins (kept if Brier improves)"
    )
    oof = winner.searched.oof_margin
    if oof is None:  # every trial's folds scored NaN: nothing to calibrate on
        raise CompetitionError(
            f"{winner.name} has no out-of-fold predictions to calibrate and choose "
            "its threshold on"
        )
    scored = ~np.isnan(oof)
    margin, y = oof[scored], splits.fit_y.to_numpy()[scored]
    result = calibrate(margin, y, config.seed)
    before = sigmoid(margin)
    winner.extra["calibration_plot"] = calibration_plot(
        y, before, result.out_of_fold, work_dir, config.name
    )
    winner.extra["brier_before"] = result.brier_before
    winner.extra["brier_after"] = result.brier_after
    proto, probability, column = winner.graph, winner.probability, winner.column
    rows = f"{int(scored.sum())} out-of-fold rows, {int(y.sum())} positives"
    if result.calibration is None:
        progress.detail(
            f"calibration not kept: Brier {result.brier_before:.5f} -> "
            f"{result.brier_after:.5f} ({rows})"
        )
        return NativeModel(winner, None, proto, probability, column, before, y)
    progress.detail(
        f"calibrated (Platt on the margin): Brier {result.brier_before:.5f} -> "
        f"{result.brier_after:.5f} ({rows})"
    )
    margin_tensor = winner.fitted.onnx_margin(proto)
    proto, probability, column = result.calibration.append_to(proto, margin_tensor)
    oof_p = result.calibration.apply(margin)
    return NativeModel(winner, result.calibration, proto, probability, column, oof_p, y)


def decision_outputs(
    config: JobConfig, native: NativeModel, progress: Progress
) -> tuple[onnx.ModelProto, dict[str, float]]:
    """The threshold (fraud) or cut-off (credit), chosen on the winner's calibrated
    out-of-fold predictions, and the graph with the decision outputs."""
    if config.kind == "fraud":
        threshold = choose_threshold(
            native.oof_y, native.oof_p, config.target_precision
        )
        proto = add_fraud_decision(
            native.proto, native.probability, native.column, threshold
        )
        return proto, {"threshold": threshold}
    policy = parse_policy(config.cutoff_policy)
    # The scores as the graph computes them (float32), so ties fall alike.
    oof_scores = config.scaling.score(native.oof_p).astype(np.float32)
    choice = choose_cutoff(policy, native.oof_p, oof_scores)
    progress.stage(
        f"cut-off {choice.score:.1f} ({choice.policy}): expected approval rate "
        f"{choice.approval_rate:.1%}, bad rate among the approved "
        f"{choice.bad_rate:.1%}, profit per applicant "
        f"{choice.profit_per_applicant:+.3f} on {len(native.oof_p)} out-of-fold rows"
    )
    proto = add_credit_decision(
        native.proto, native.probability, native.column, config.scaling, choice.score
    )
    return proto, {
        "cutoff": choice.score,
        "base_score": config.scaling.base_score,
        "base_odds": config.scaling.base_odds,
        "pdo": config.scaling.pdo,
    }


def check_reasons(
    reasons: CreditReasons,
    splits: Splits,
    valid_out: dict[str, np.ndarray],
    progress: Progress,
) -> None:
    bad = reasons.check(splits.valid_x, valid_out)
    if bad:
        raise ParityError(
            f"the graph's reason codes differ from the scorecard's on {bad} "
            "validation rows"
        )
    progress.detail("reason codes: the graph matches the scorecard on every row")


def check_parity(
    config: JobConfig,
    spec: ModelSpec,
    proto: onnx.ModelProto,
    native: NativeModel,
    splits: Splits,
    progress: Progress,
) -> tuple[dict[str, np.ndarray], float]:
    """The finished graph against the native winner on validation + holdout rows.
    Returns the graph's outputs on the validation rows and the largest difference."""
    progress.stage("checking ONNX parity with the native model (validation + holdout)")
    rows = pd.concat([splits.valid_x, splits.test_x])
    out = run_onnx(proto, onnx_feeds(spec, rows))
    native_p = np.asarray(native.predict_proba(rows), np.float64)
    diff = np.abs(out[PROBABILITY_OUTPUT[config.kind]] - native_p)
    parity = float(np.max(diff))
    if not parity <= PARITY_TOLERANCE:
        worst = int(np.argmax(diff))
        step = "Platt calibration on the margin" if native.calibration else "none"
        raise ParityError(
            f"ONNX and native probabilities of {native.entry.name} (calibration: "
            f"{step}) differ by {parity:.2e} (> {PARITY_TOLERANCE:.0e}) at a row "
            f"with p = {native_p[worst]:.3e}; the rows' probabilities range from "
            f"{native_p.min():.1e} to {native_p.max():.1e}"
        )
    progress.detail(
        f"parity: max |onnx - native| = {parity:.2e} on {len(rows)} rows, "
        f"probabilities {native_p.min():.1e} to {native_p.max():.1e}"
    )
    valid_out = {k: v[: len(splits.valid_x)] for k, v in out.items()}
    return valid_out, parity


def evaluate(
    config: JobConfig,
    spec: ModelSpec,
    winner: Winner,
    splits: Splits,
    work_dir: Path,
    progress: Progress,
) -> Evaluation:
    """The finished graph on the holdout: metrics, plots and, for credit, the score
    bands and the strategy table around the cut-off."""
    progress.stage("evaluating on the holdout")
    holdout_feeds = onnx_feeds(spec, splits.test_x)
    test_out = run_onnx(winner.proto, holdout_feeds)
    y_true = splits.test_y.to_numpy()
    probability = test_out[PROBABILITY_OUTPUT[config.kind]]
    decided = test_out[IS_FRAUD] if config.kind == "fraud" else ~test_out[APPROVED]
    metrics = classification_metrics(y_true, probability, decided.astype(int))
    tables = {}
    plots = standard_plots(
        y_true, probability, decided.astype(int), work_dir, config.name
    )
    if config.kind == "credit":
        metrics["ks"] = ks_statistic(y_true, probability)
        scores = test_out[CREDIT_SCORE]
        cutoff = winner.decision["cutoff"]
        policy = parse_policy(config.cutoff_policy)
        metrics |= outcome(y_true, scores, cutoff, policy)
        plots += credit_plots(y_true, probability, scores, cutoff, work_dir)
        tables["score_bands.csv"] = score_bands(y_true, scores)
        strategy = strategy_table(y_true, probability, scores, policy, cutoff)
        tables["strategy_table.csv"] = strategy
        tables[HOLDOUT_PREDICTIONS] = holdout_predictions(splits, test_out)
        progress.detail(
            f"strategy table on the holdout ({len(y_true)} applicants; profit at "
            f"{policy.gain:g} per good, -{policy.loss:g} per bad approved):"
        )
        for line in format_strategy_table(strategy).splitlines():
            progress.detail("  " + line)
        progress.detail(
            f"at the cut-off {cutoff:.1f}: approval rate {metrics['approval_rate']:.1%}"
            f", bad rate among the approved {metrics['approved_bad_rate']:.1%}, profit "
            f"per applicant {metrics['profit_per_applicant']:+.3f} (holdout)"
        )
    if config.kind == "fraud":
        tables[HOLDOUT_PREDICTIONS] = holdout_predictions(splits, test_out)
    return Evaluation(metrics, plots, tables, holdout_feeds, work_dir)


# The holdout, as the registered graph scores it: the validation report's
# discrimination, calibration and stability figures are computed from this file
# (logged under evaluation/), so they can be recomputed, bootstrapped and plotted
# without retraining. Features, label and every output, one row per holdout row.
HOLDOUT_PREDICTIONS = "holdout_predictions.csv"
LABEL_COLUMN = "__label__"


def holdout_predictions(splits: Splits, outputs: dict[str, np.ndarray]) -> pd.DataFrame:
    frame = splits.test_x.reset_index(drop=True).copy()
    frame[LABEL_COLUMN] = splits.test_y.to_numpy().astype(int)
    for name, values in outputs.items():
        column = f"__{name}__"
        frame[column] = (
            [" | ".join(map(_text, row)) for row in values]
            if values.ndim == 2
            else values
        )
    return frame


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
