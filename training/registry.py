"""MLflow operations of a training job: reachability, logging, registering, aliases.

The order matters for "nothing half-registered": a job logs its run and artifacts
first and registers the version last, so a failure before that leaves a failed run,
never a registered version without its files, and never a moved alias.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import mlflow
import numpy as np
import onnx
import pandas as pd
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

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
    params: dict,
    metrics: dict[str, float],
    files: list[Path],
    tables: dict[str, pd.DataFrame],
    work_dir: Path,
    documents: list[Path] = (),
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
