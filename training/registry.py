"""MLflow operations of a training job: reachability, logging, registering, aliases.

The order matters for "nothing half-registered": a job logs its run and artifacts
first and registers the version last, so a failure before that leaves a failed run,
never a registered version without its files, and never a moved alias.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import mlflow
import numpy as np
import onnx
import pandas as pd
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from riskserve.governance.status import DRAFT, PROTECTED_TAG, STATUS_TAG

if TYPE_CHECKING:
    from riskserve.training.competition.compete import Entry, Splits
    from riskserve.training.dataset import JobConfig, LoadedData
    from riskserve.training.evaluation import Evaluation
    from riskserve.training.winner import Winner

CHAMPION = "champion"
CHALLENGER = "challenger"


class RegistryError(RuntimeError):
    """MLflow (or the storage behind it) failed; the message says what and where."""


def check_reachable(tracking_uri: str, timeout_s: float) -> None:
    """Fail within `timeout_s` when the tracking server does not answer."""
    if not tracking_uri.startswith(("http://", "https://")):
        return  # a local store (sqlite:, file:) has nothing to reach
    url = tracking_uri.rstrip("/") + "/health"
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:  # noqa: S310
            if response.status != 200:
                raise RegistryError(
                    f"MLflow at {tracking_uri} answered {response.status}"
                )
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise RegistryError(
            f"MLflow at {tracking_uri} is unreachable ({reason})"
        ) from None


def check_artifact_store(tracking_uri: str, timeout_s: float) -> None:
    """Fail before training when the storage behind MLflow's artifact proxy (S3) does
    not answer, rather than after, half-way through uploading the run's files."""
    if not tracking_uri.startswith(("http://", "https://")):
        return
    url = tracking_uri.rstrip("/") + "/api/2.0/mlflow-artifacts/artifacts?path="
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:  # noqa: S310
            response.read()
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            return  # the server does not proxy artifacts; the client writes them itself
        raise RegistryError(
            f"MLflow at {tracking_uri} cannot reach its artifact store (S3?): an "
            f"artifact listing answered HTTP {exc.code} {exc.reason}"
        ) from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise RegistryError(
            f"MLflow at {tracking_uri} did not answer an artifact listing ({reason})"
        ) from None


@dataclass
class ChampionScore:
    version: str
    pr_auc: float | None
    reason: str = ""


def champion_pr_auc(
    model_name: str,
    holdout: dict[str, np.ndarray],
    y_true: np.ndarray,
    probability_output: str,
) -> ChampionScore | None:
    """The current champion's PR-AUC on this job's holdout, or None without a champion."""
    import onnxruntime as ort
    from sklearn.metrics import average_precision_score

    client = MlflowClient()
    try:
        version = client.get_model_version_by_alias(model_name, CHAMPION)
    except MlflowException:
        return None
    local = mlflow.artifacts.download_artifacts(f"models:/{model_name}@{CHAMPION}")
    files = sorted(Path(local).rglob("*.onnx"))
    if not files:
        return ChampionScore(version.version, None, "its artifacts hold no .onnx file")
    session = ort.InferenceSession(str(files[0]), providers=["CPUExecutionProvider"])
    wanted = {i.name for i in session.get_inputs()}
    if wanted != set(holdout):
        return ChampionScore(
            version.version, None, "it takes other features than the new version"
        )
    (probability,) = session.run([probability_output], holdout)
    return ChampionScore(
        version.version, float(average_precision_score(y_true, np.asarray(probability)))
    )


def next_version(model_name: str) -> str:
    """The version number the registry will give the next registration."""
    client = MlflowClient()
    try:
        versions = client.search_model_versions(f"name='{model_name}'")
    except MlflowException:
        return "1"
    return str(max((int(v.version) for v in versions), default=0) + 1)


def log_run_artifacts(
    params: dict[str, Any],
    metrics: dict[str, float],
    files: Sequence[Path],
    tables: dict[str, pd.DataFrame],
    work_dir: Path,
    documents: Sequence[Path] = (),
) -> None:
    mlflow.log_params(
        {
            k: (json.dumps(v) if isinstance(v, list | dict) else v)
            for k, v in params.items()
        }
    )
    mlflow.log_metrics(metrics)
    for path in files:
        mlflow.log_artifact(str(path), artifact_path="plots")
    for name, table in tables.items():
        path = work_dir / name
        table.to_csv(path, index=False)
        mlflow.log_artifact(str(path), artifact_path="evaluation")
    for path in documents:
        mlflow.log_artifact(str(path), artifact_path="evaluation")


def log_and_register_onnx(
    proto: onnx.ModelProto,
    model_name: str,
    input_example: dict[str, np.ndarray],
    output_example: dict[str, np.ndarray],
    tags: dict[str, str],
) -> str:
    """Log the ONNX model with signature and example, register it, tag the version."""
    import onnxruntime
    from mlflow.models import infer_signature

    signature = infer_signature(input_example, output_example)
    info = mlflow.onnx.log_model(
        # Named, so MLflow does not load the model in a subprocess to guess them.
        pip_requirements=[
            f"onnx=={onnx.__version__}",
            f"onnxruntime=={onnxruntime.__version__}",
        ],
        onnx_model=proto,
        # MLflow's default lists CUDA first, and every load of the model on a CPU-only
        # machine (its own check of the input example, here) then warns that CUDA is
        # unavailable. The predictor runs on CPU (serving/model.py): say so.
        onnx_execution_providers=["CPUExecutionProvider"],
        name="model",
        signature=signature,
        input_example=input_example,
        registered_model_name=model_name,
        await_registration_for=60,
    )
    version = str(info.registered_model_version)
    client = MlflowClient()
    for key, value in tags.items():
        client.set_model_version_tag(model_name, version, key, value)
    return version


def set_aliases(model_name: str, version: str, champion: bool) -> list[str]:
    client = MlflowClient()
    client.set_registered_model_alias(model_name, CHALLENGER, version)
    aliases = [CHALLENGER]
    if champion:
        client.set_registered_model_alias(model_name, CHAMPION, version)
        aliases.append(CHAMPION)
    return aliases


def ui_url(tracking_uri: str, model_name: str, version: str) -> str:
    return f"{tracking_uri.rstrip('/')}/#/models/{model_name}/versions/{version}"


def log_and_register(
    config: JobConfig,
    data: LoadedData,
    winner: Winner,
    entries: list[Entry],
    evaluation: Evaluation,
    splits: Splits,
) -> tuple[str, str]:
    """One parent run (the winner's metrics, plots, comparison table, registered model)
    with a child run per candidate. Registering is the last step: a failure before it
    leaves runs, never a version."""
    from riskserve.training.competition.compete import PRIMARY_METRIC, onnx_feeds
    from riskserve.training.reference_profile import log_reference_profile

    spec = data.spec
    mlflow.set_experiment(config.experiment or config.name)
    tags = {
        **winner.metadata,
        **(winner.reasons.table.tags(winner.reasons.k) if winner.reasons else {}),
    }
    # New versions start as drafts; `riskserve report` validates them and a named
    # person approves (riskserve.governance).
    tags[STATUS_TAG] = DRAFT
    if config.protected:
        tags[PROTECTED_TAG] = ",".join(config.protected)
    if config.kind == "credit":
        tags["score_scaling"] = (
            f"score = {config.scaling.offset:.4f} + {config.scaling.factor:.4f} * ln(odds_good)"
        )
    params = {
        "model_kind": config.kind,
        "data_source": data.source,
        "rows": len(data.target),
        "target": data.spec.target,
        "positive": config.positive or "",
        "positive_rows": int(data.target.sum()),
        "protected_columns": config.protected,
        "seed": config.seed,
        "features": spec.feature_names,
        "data_hash": winner.metadata["data_hash"],
        "git_commit": winner.metadata["git_commit"],
        "winner": winner.name,
        "candidates": [e.name for e in entries],
        "calibrated": winner.native.calibration is not None,
        **winner.decision,
    }
    if config.kind == "credit":
        params["cutoff_policy"] = config.cutoff_policy
    if config.kind == "fraud":
        params["epochs"] = config.epochs
    metric_name = PRIMARY_METRIC[config.kind][0]
    metrics = {
        **evaluation.metrics,
        f"cv_{metric_name}": winner.entry.cv_score,
        f"cv_{metric_name}_std": winner.entry.cv_std,
        "brier_oof_uncalibrated": winner.entry.extra["brier_before"],
        "brier_oof_calibrated": winner.entry.extra["brier_after"],
    }
    plots = [*evaluation.plots, winner.entry.extra["calibration_plot"]]
    # Examples in the graph's own form (one [N, 1] tensor per feature), so MLflow's
    # ONNX flavor can run them when it validates the example.
    example = {k: v[:5] for k, v in onnx_feeds(spec, splits.valid_x.head(5)).items()}
    example_out = {k: v[:5] for k, v in winner.valid_out.items()}
    with mlflow.start_run() as parent:
        for entry in entries:
            log_candidate_run(entry, metric_name)
        log_run_artifacts(
            params,
            metrics,
            plots,
            evaluation.tables,
            evaluation.work_dir,
            evaluation.documents,
        )
        tags |= log_reference_profile(
            config, winner.proto, splits, evaluation, winner.decision
        )
        version = log_and_register_onnx(
            winner.proto, config.name, example, example_out, tags
        )
    return parent.info.run_id, version


def log_candidate_run(entry: Entry, metric_name: str) -> None:
    """A child run per candidate: its search's parameters and its CV figures, or why
    it failed."""
    with mlflow.start_run(run_name=entry.name, nested=True):
        mlflow.set_tag("candidate", entry.name)
        if entry.search is not None:
            mlflow.log_params({k: str(v) for k, v in entry.search.params.items()})
        if entry.error is not None:
            mlflow.set_tag("status", "failed")
            mlflow.set_tag("error", entry.error[:5000])
            return
        mlflow.set_tag("status", "ok")
        search = entry.searched
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


def decide_champion(
    config: JobConfig,
    champion: ChampionScore | None,
    pr_auc: float,
    version: str,
    allow_unapproved: bool,
) -> tuple[bool, str]:
    """Whether the new version becomes champion, and why, in one line.

    The approval gate (riskserve.governance): a new version is a draft, so it earns
    `champion` on merit only with the development override; otherwise it stays
    `challenger` and the line names the commands that approve it."""
    earned, why = _champion_on_merit(config, champion, pr_auc)
    if not earned:
        return False, why
    if allow_unapproved:
        return True, (
            f"{why} (unapproved: RISKSERVE_ROLLOUT_ALLOW_UNAPPROVED=true, development "
            "only)"
        )
    name = config.name
    approve = f"riskserve approve {name} {version} --by NAME --note TEXT"
    # A first version has no champion to run a canary against: approving it names it.
    then = (
        f"`{approve} --champion` makes it champion"
        if champion is None
        else f"`{approve}`, then `riskserve rollout promote` makes it champion"
    )
    return False, (
        f"{why.split(':', 1)[0]}, but v{version} is a draft: champion only once "
        f"approved (`riskserve report {name}/{version}`, {then})"
    )


def _champion_on_merit(
    config: JobConfig, champion: ChampionScore | None, pr_auc: float
) -> tuple[bool, str]:
    """Whether the new version would be champion on its figures alone, and why."""
    if champion is None:
        if config.promote_if_better:
            return True, "no champion yet: this version becomes champion"
        try:
            MlflowClient().get_model_version_by_alias(config.name, CHAMPION)
        except MlflowException:
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
