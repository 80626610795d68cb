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
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pandas as pd
from sklearn.model_selection import train_test_split

from model.data import data_hash
from training import candidates
from training.candidates.calibration import PlattCalibration, calibrate
from training.candidates.competition import (
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
from training.candidates.margin import sigmoid
from training.candidates.scorecard import BINS_TENSOR
from training.cutoff_policy import (
    choose_cutoff,
    format_strategy_table,
    outcome,
    parse_policy,
    strategy_table,
)
from training.dataset import JobConfig, LoadedData
from training.decision_graph import (
    add_credit_decision,
    add_fraud_decision,
    finalize,
    set_metadata,
)
from training.evaluation import (
    choose_threshold,
    classification_metrics,
    credit_plots,
    ks_statistic,
    score_bands,
    standard_plots,
)
from training.progress import Progress
from training.reason_codes import CreditReasons, add_reason_codes
from training.reason_stage import add_credit_reasons, log_scorecard
from training.reference_profile import log_reference_profile
from training.settings import TrainingSettings

PARITY_TOLERANCE = 1e-5
PROBABILITY_OUTPUT = {"fraud": "fraud_probability", "credit": "default_probability"}


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


def split(features: pd.DataFrame, target: pd.Series, seed: int):
    """70% train, 15% validation (early stopping, threshold, parity), 15% holdout."""
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
    from training import registry

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
            reasons = add_credit_reasons(
                config, spec, entries, native, splits, progress
            )
            proto = add_reason_codes(
                proto,
                reasons.table,
                reasons.k,
                reasons.with_points,
                BINS_TENSOR if reasons.with_points else None,
            )
        commit = git_commit(settings)
        metadata = {
            "model_kind": config.kind,
            "model_name": config.name,
            "model_version": registry.next_version(config.name),
            "features": ",".join(spec.feature_names),
            "data_hash": data_hash(features, target),
            "git_commit": commit,
            "candidate": winner.name,
            **{k: repr(float(v)) for k, v in decision.items()},
            **(
                {"cutoff_policy": config.cutoff_policy}
                if config.kind == "credit"
                else {}
            ),
            **(reasons.table.metadata(reasons.k) if reasons else {}),
        }
        proto = finalize(set_metadata(proto, metadata))
        valid_out, parity = check_parity(config, spec, proto, native, splits, progress)
        if reasons is not None:
            check_reasons(reasons, splits, valid_out, progress)
        evaluation = evaluate(config, spec, proto, splits, work_dir, progress, decision)
        if reasons is not None:
            log_scorecard(reasons, config, winner, native, evaluation)
        table = comparison_table(config.kind, entries, winner, splits.test_y)
        evaluation.plots.append(
            lift_curve(entries, splits.test_y, work_dir, config.name)
        )
        evaluation.tables["comparison.csv"] = table
        evaluation.metrics["parity_max_abs_diff"] = parity

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
        run_id, version = log_and_register(
            config,
            data,
            winner,
            entries,
            native,
            proto,
            decision,
            commit,
            evaluation,
            valid_out,
            splits,
            reasons.table.tags(reasons.k) if reasons else {},
        )
        is_champion, why = _decide_champion(
            config, champion_check, evaluation.metrics["pr_auc"]
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


def default_budget(rows: int, features: int) -> float:
    """Seconds of search: 67 s per million feature values, 10 s to 900 s.

    Cross-validating the GBM's defaults (800 trees, 3 folds) on 230,000 rows of 30
    features takes about 90 s on 2 cores, the DNN's about as much: the old 20 s per
    million (137 s for that data, 46 s a candidate) ended every search inside its
    first trial. Now 456 s there, shared by the candidates still to run (the DNN's
    unspent share goes to the GBM and the logistic regression); about 93 s for the
    demo's 200,000 rows of 7 features; the 10 s floor for small data."""
    return float(min(900.0, max(10.0, rows * features / 15_000)))


@dataclass
class NativeModel:
    """The winner as the job scores it natively: candidate, then calibration, and
    its out-of-fold predictions (the rows the threshold or cut-off is chosen on)."""

    entry: Entry
    calibration: PlattCalibration | None
    proto: onnx.ModelProto
    probability: str
    column: int | None
    oof_p: np.ndarray  # calibrated out-of-fold probabilities
    oof_y: np.ndarray  # their labels

    def predict_proba(self, x: pd.DataFrame) -> np.ndarray:
        if self.calibration is None:
            return self.entry.candidate.predict_proba(x)
        return self.calibration.apply(self.entry.candidate.margin(x))


def calibrate_winner(
    winner: Entry, splits: Splits, config: JobConfig, work_dir: Path, progress
) -> NativeModel:
    progress.stage(
        "calibrating the winner on its out-of-fold CV margins (kept if Brier improves)"
    )
    oof = winner.search.oof_margin
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
    proto, probability, column = winner.proto, winner.probability, winner.column
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
    margin_tensor = winner.candidate.onnx_margin(proto)
    proto, probability, column = result.calibration.append_to(proto, margin_tensor)
    oof_p = result.calibration.apply(margin)
    return NativeModel(winner, result.calibration, proto, probability, column, oof_p, y)


def decision_outputs(
    config: JobConfig, native: NativeModel, progress
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


def check_reasons(reasons: CreditReasons, splits: Splits, valid_out, progress) -> None:
    bad = reasons.check(splits.valid_x, valid_out)
    if bad:
        raise ParityError(
            f"the graph's reason codes differ from the scorecard's on {bad} "
            "validation rows"
        )
    progress.detail("reason codes: the graph matches the scorecard on every row")


def check_parity(config, spec, proto, native: NativeModel, splits: Splits, progress):
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


@dataclass
class Evaluation:
    metrics: dict[str, float]
    plots: list[Path]
    tables: dict[str, pd.DataFrame]
    holdout_feeds: dict[str, np.ndarray]
    work_dir: Path
    documents: list[Path] = field(default_factory=list)  # logged under evaluation/


def evaluate(
    config, spec, proto, splits: Splits, work_dir: Path, progress, decision
) -> Evaluation:
    progress.stage("evaluating on the holdout")
    holdout_feeds = onnx_feeds(spec, splits.test_x)
    test_out = run_onnx(proto, holdout_feeds)
    y_true = splits.test_y.to_numpy()
    probability = test_out[PROBABILITY_OUTPUT[config.kind]]
    decided = test_out["is_fraud"] if config.kind == "fraud" else ~test_out["approved"]
    metrics = classification_metrics(y_true, probability, decided.astype(int))
    tables = {}
    plots = standard_plots(
        y_true, probability, decided.astype(int), work_dir, config.name
    )
    if config.kind == "credit":
        metrics["ks"] = ks_statistic(y_true, probability)
        scores = test_out["credit_score"]
        cutoff = decision["cutoff"]
        policy = parse_policy(config.cutoff_policy)
        metrics |= outcome(y_true, scores, cutoff, policy)
        plots += credit_plots(y_true, probability, scores, cutoff, work_dir)
        tables["score_bands.csv"] = score_bands(y_true, scores)
        strategy = strategy_table(y_true, probability, scores, policy, cutoff)
        tables["strategy_table.csv"] = strategy
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
    return Evaluation(metrics, plots, tables, holdout_feeds, work_dir)


def log_and_register(
    config: JobConfig,
    data: LoadedData,
    winner: Entry,
    entries: list[Entry],
    native: NativeModel,
    proto: onnx.ModelProto,
    decision: dict[str, float],
    commit: str,
    evaluation: Evaluation,
    valid_out: dict[str, np.ndarray],
    splits: Splits,
    extra_tags: dict[str, str] | None = None,
) -> tuple[str, str]:
    """One parent run (the winner's metrics, plots, comparison table, registered model)
    with a child run per candidate. Registering is the last step: a failure before it
    leaves runs, never a version."""
    import mlflow

    from training import registry

    spec = data.spec
    mlflow.set_experiment(config.experiment or config.name)
    tags = {
        **{k: repr(float(v)) for k, v in decision.items()},
        "features": ",".join(spec.feature_names),
        "data_hash": data_hash(data.features, data.target),
        "git_commit": commit,
        "model_kind": config.kind,
        "candidate": winner.name,
        **(extra_tags or {}),
    }
    if config.kind == "credit":
        tags["cutoff_policy"] = config.cutoff_policy
        tags["score_scaling"] = (
            f"score = {config.scaling.offset:.4f} + {config.scaling.factor:.4f} * ln(odds_good)"
        )
    params = {
        "model_kind": config.kind,
        "data_source": data.source,
        "rows": len(data.target),
        "seed": config.seed,
        "features": spec.feature_names,
        "data_hash": tags["data_hash"],
        "git_commit": commit,
        "winner": winner.name,
        "candidates": [e.name for e in entries],
        "calibrated": native.calibration is not None,
        **decision,
    }
    if config.kind == "credit":
        params["cutoff_policy"] = config.cutoff_policy
    if config.kind == "fraud":
        params["epochs"] = config.epochs
    metrics = {
        **evaluation.metrics,
        f"cv_{PRIMARY_METRIC[config.kind][0]}": winner.cv_score,
        f"cv_{PRIMARY_METRIC[config.kind][0]}_std": winner.cv_std,
        "brier_oof_uncalibrated": winner.extra["brier_before"],
        "brier_oof_calibrated": winner.extra["brier_after"],
    }
    plots = [*evaluation.plots, winner.extra["calibration_plot"]]
    # Examples in the graph's own form (one [N, 1] tensor per feature), so MLflow's
    # ONNX flavor can run them when it validates the example.
    example = {k: v[:5] for k, v in onnx_feeds(spec, splits.valid_x.head(5)).items()}
    example_out = {k: v[:5] for k, v in valid_out.items()}
    with mlflow.start_run() as parent:
        for entry in entries:
            log_candidate_run(entry, config.kind)
        registry.log_run_artifacts(
            params,
            metrics,
            plots,
            evaluation.tables,
            evaluation.work_dir,
            evaluation.documents,
        )
        tags |= log_reference_profile(config, proto, splits, evaluation, decision)
        version = registry.log_and_register_onnx(
            proto, config.name, example, example_out, tags
        )
    return parent.info.run_id, version


def log_candidate_run(entry: Entry, kind: str) -> None:
    import mlflow

    metric_name = PRIMARY_METRIC[kind][0]
    with mlflow.start_run(run_name=entry.name, nested=True):
        mlflow.set_tag("candidate", entry.name)
        if entry.search is not None:
            mlflow.log_params({k: str(v) for k, v in entry.search.params.items()})
        if not entry.ok:
            mlflow.set_tag("status", "failed")
            mlflow.set_tag("error", entry.error[:5000])
            return
        mlflow.set_tag("status", "ok")
        search = entry.search
        values = {
            f"cv_{metric_name}": entry.cv_score,
            "cv_folds": entry.cv_folds,
            "fit_seconds": entry.fit_seconds,
            "onnx_latency_us_per_row": entry.onnx_latency_us,
            "parity_max_abs_diff": entry.parity,
            "search_trials": search.trials,
            "search_pruned": search.pruned,
            "search_seconds": search.seconds,
        }
        values[f"cv_{metric_name}_std"] = entry.cv_std
        values[f"best_trial_cv_{metric_name}_mean"] = search.cv_mean
        mlflow.log_metrics(values)
        for fold, score in enumerate(search.cv_scores):
            mlflow.log_metric(f"cv_{metric_name}_fold", score, step=fold)


def _decide_champion(config: JobConfig, champion, pr_auc: float) -> tuple[bool, str]:
    from training import registry

    if champion is None:
        if config.promote_if_better:
            return True, "no champion yet: this version becomes champion"
        try:
            registry.MlflowClient().get_model_version_by_alias(
                config.name, registry.CHAMPION
            )
        except registry.MlflowException:
            return True, "no champion yet: this version becomes champion"
        return False, "champion unchanged (use --promote-if-better to compete for it)"
    if champion.pr_auc is None:
        return (
            False,
            f"champion v{champion.version} kept: cannot compare, {champion.reason}",
        )
    if pr_auc > champion.pr_auc:
        return True, (
            f"PR-AUC {pr_auc:.4f} beats champion v{champion.version} ({champion.pr_auc:.4f}) "
            "on the same holdout: promoted to champion"
        )
    return False, (
        f"PR-AUC {pr_auc:.4f} does not beat champion v{champion.version} "
        f"({champion.pr_auc:.4f}) on the same holdout: champion kept"
    )
