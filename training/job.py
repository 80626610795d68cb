"""One training job, from data to a registered ONNX model version.

Stages: data -> split -> train -> threshold -> ONNX export -> parity -> evaluate ->
log to MLflow -> register -> aliases. Anything that fails before registering leaves
the registry as it was.
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
from sklearn.model_selection import train_test_split

from model.data import (
    data_hash,
)
from model.specs import ModelSpec
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


def onnx_feeds(spec: ModelSpec, features: pd.DataFrame) -> dict[str, np.ndarray]:
    feeds = {}
    for feature in spec.features:
        column = features[feature.name]
        if feature.kind == "categorical":
            feeds[feature.name] = column.astype(str).to_numpy(object).reshape(-1, 1)
        else:
            feeds[feature.name] = column.to_numpy(np.float32).reshape(-1, 1)
    return feeds


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

    spec, features, target, source = data.spec, data.features, data.target, data.source
    digest = data_hash(features, target)

    progress.stage(f"checking MLflow at {settings.mlflow_tracking_uri}")
    registry.check_reachable(settings.mlflow_tracking_uri, settings.registry_timeout_s)
    registry.check_artifact_store(
        settings.mlflow_tracking_uri, settings.registry_timeout_s
    )

    train_x, train_y, valid_x, valid_y, test_x, test_y = split(
        features, target, config.seed
    )
    progress.stage(
        f"training {config.kind} model on {len(train_y)} rows "
        f"(validation {len(valid_y)}, holdout {len(test_y)})"
    )
    if config.kind == "fraud":
        from training.fraud_model import train_network

        native = train_network(
            spec,
            train_x,
            train_y,
            valid_x,
            valid_y,
            config.epochs,
            config.seed,
            progress.detail,
        )
    else:
        from training.credit_model import train_pipeline

        native = train_pipeline(spec, train_x, train_y, config.seed)

    valid_p = native.predict_proba(valid_x)
    progress.stage("exporting to ONNX")
    proto, probability_name = native.to_onnx()
    if config.kind == "fraud":
        threshold = choose_threshold(
            valid_y.to_numpy(), valid_p, config.target_precision
        )
        proto = add_fraud_decision(proto, probability_name, None, threshold)
        decision = {"threshold": threshold}
    else:
        proto = add_credit_decision(
            proto, probability_name, 1, config.scaling, config.cutoff
        )
        decision = {
            "cutoff": config.cutoff,
            "base_score": config.scaling.base_score,
            "base_odds": config.scaling.base_odds,
            "pdo": config.scaling.pdo,
        }
    commit = git_commit(settings)
    version_guess = registry.next_version(config.name)
    metadata = {
        "model_kind": config.kind,
        "model_name": config.name,
        "model_version": version_guess,
        "features": ",".join(spec.feature_names),
        "data_hash": digest,
        "git_commit": commit,
        **{k: repr(float(v)) for k, v in decision.items()},
    }
    proto = finalize(set_metadata(proto, metadata))

    progress.stage("checking ONNX parity with the native model on the validation set")
    valid_out = run_onnx(proto, onnx_feeds(spec, valid_x))
    parity = float(np.max(np.abs(valid_out[PROBABILITY_OUTPUT[config.kind]] - valid_p)))
    if not parity <= PARITY_TOLERANCE:
        raise ParityError(
            f"ONNX and native probabilities differ by {parity:.2e} (> {PARITY_TOLERANCE:.0e})"
        )
    progress.detail(f"parity: max |onnx - native| = {parity:.2e}")

    progress.stage("evaluating on the holdout")
    holdout_feeds = onnx_feeds(spec, test_x)
    test_out = run_onnx(proto, holdout_feeds)
    y_true = test_y.to_numpy()
    probability = test_out[PROBABILITY_OUTPUT[config.kind]]
    decided = test_out["is_fraud"] if config.kind == "fraud" else ~test_out["approved"]
    metrics = classification_metrics(y_true, probability, decided.astype(int))
    metrics["parity_max_abs_diff"] = parity
    tables = {}
    work_dir = Path(tempfile.mkdtemp(prefix=f"riskserve-{config.name}-"))
    plots = standard_plots(
        y_true, probability, decided.astype(int), work_dir, config.name
    )
    if config.kind == "credit":
        metrics["ks"] = ks_statistic(y_true, probability)
        scores = test_out["credit_score"]
        metrics["approval_rate"] = float(test_out["approved"].mean())
        plots += credit_plots(y_true, probability, scores, config.cutoff, work_dir)
        tables["score_bands.csv"] = score_bands(y_true, scores)

    champion_check = None
    if config.promote_if_better:
        progress.stage("scoring the current champion on the same holdout")
        champion_check = registry.champion_pr_auc(
            config.name, holdout_feeds, y_true, PROBABILITY_OUTPUT[config.kind]
        )

    progress.stage("logging the run and registering the model in MLflow")
    import mlflow

    mlflow.set_experiment(config.experiment or config.name)
    tags = {
        **{k: repr(float(v)) for k, v in decision.items()},
        "features": ",".join(spec.feature_names),
        "data_hash": digest,
        "git_commit": commit,
        "model_kind": config.kind,
    }
    if config.kind == "credit":
        tags["score_scaling"] = (
            f"score = {config.scaling.offset:.4f} + {config.scaling.factor:.4f} * ln(odds_good)"
        )
    params = {
        "model_kind": config.kind,
        "data_source": source,
        "rows": len(target),
        "seed": config.seed,
        "features": spec.feature_names,
        "data_hash": digest,
        "git_commit": commit,
        **decision,
    }
    if config.kind == "fraud":
        params["epochs"] = config.epochs
    # Examples in the graph's own form (one [N, 1] tensor per feature), so MLflow's
    # ONNX flavor can run them when it validates the example.
    example = {k: v[:5] for k, v in onnx_feeds(spec, valid_x.head(5)).items()}
    example_out = {k: v[:5] for k, v in valid_out.items()}
    with mlflow.start_run() as run:
        registry.log_run_artifacts(params, metrics, plots, tables, work_dir)
        version = registry.log_and_register_onnx(
            proto, config.name, example, example_out, tags
        )

    is_champion, why = _decide_champion(config, champion_check, metrics["pr_auc"])
    aliases = registry.set_aliases(config.name, version, is_champion)
    progress.detail(why)
    return JobResult(
        model_name=config.name,
        version=version,
        aliases=aliases,
        metrics=metrics,
        run_id=run.info.run_id,
        parity=parity,
        ui_url=registry.ui_url(settings.mlflow_tracking_uri, config.name, version),
    )


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
