"""One registered model version as a validation report reads it: the version's tags,
its run's params and metrics, and the files the training job logged with it (the
comparison of candidates, the strategy table, the holdout predictions, the reference
profile and the ONNX graph)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd
from riskserve.model.reference_profile import ARTIFACT_NAME, ReferenceProfile

if TYPE_CHECKING:
    from mlflow import MlflowClient

HOLDOUT_PREDICTIONS = "evaluation/holdout_predictions.csv"
COMPARISON = "evaluation/comparison.csv"
STRATEGY_TABLE = "evaluation/strategy_table.csv"
LABEL_COLUMN = "__label__"  # training/job.py's holdout file: the 0/1 label

_REFERENCE = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9_.-]{0,127})(/(?P<v>\d+))?$")


class VersionError(LookupError):
    """The version, or a file its report needs, is not in the registry."""


@dataclass
class RegisteredVersion:
    name: str
    version: str
    run_id: str
    tags: dict[str, str]
    params: dict[str, str]
    metrics: dict[str, float]
    created_ms: int
    description: str
    folder: Path  # the downloaded artifacts
    model_path: Path
    holdout: pd.DataFrame
    comparison: pd.DataFrame | None
    strategy: pd.DataFrame | None
    profile: ReferenceProfile | None
    registered_tags: dict[str, str] = field(default_factory=dict)

    @property
    def kind(self) -> str:
        return self.tags.get("model_kind", self.params.get("model_kind", ""))

    @property
    def feature_names(self) -> list[str]:
        listed = self.tags.get("features", "")
        return [f for f in listed.split(",") if f]

    @property
    def protected_columns(self) -> list[str]:
        from riskserve.governance.status import PROTECTED_TAG

        return [c for c in self.tags.get(PROTECTED_TAG, "").split(",") if c]


def parse_reference(text: str) -> tuple[str, str | None]:
    """`MODEL` or `MODEL/VERSION`; ValueError says what is wrong."""
    match = _REFERENCE.match(text)
    if match is None:
        raise ValueError(
            f"model {text[:80]!r}: give MODEL or MODEL/VERSION (a registered model "
            "name, a version number)"
        )
    return match["name"], match["v"]


def resolve(client: MlflowClient, name: str, version: str | None) -> str:
    """The version number: the given one, or the newest registered."""
    from mlflow.exceptions import MlflowException

    try:
        if version is not None:
            client.get_model_version(name, version)
            return version
        versions = client.search_model_versions(f"name='{name}'")
    except MlflowException as exc:
        raise VersionError(f"{name}/{version or ''}: {exc.message}") from None
    if not versions:
        raise VersionError(f"no registered model {name!r}")
    return str(max(int(v.version) for v in versions))


def load(
    client: MlflowClient, name: str, version: str, folder: Path
) -> RegisteredVersion:
    """The version with its run and files, downloaded into `folder`."""
    import mlflow
    from mlflow.exceptions import MlflowException

    try:
        record = client.get_model_version(name, version)
        if not record.run_id:
            raise VersionError(f"{name} v{version} was not registered from a run")
        run_id = record.run_id
        registered = client.get_registered_model(name)
        run = client.get_run(run_id)
        evaluation = Path(client.download_artifacts(run_id, "evaluation", str(folder)))
        model_dir = Path(
            mlflow.artifacts.download_artifacts(
                f"models:/{name}/{version}", dst_path=str(folder / "model")
            )
        )
    except MlflowException as exc:
        raise VersionError(f"{name}/{version}: {exc.message}") from None
    holdout_path = evaluation / Path(HOLDOUT_PREDICTIONS).name
    if not holdout_path.exists():
        raise VersionError(
            f"{name} v{version} has no {HOLDOUT_PREDICTIONS} (it was trained before "
            "jobs logged their holdout): retrain it to report on it"
        )
    models = sorted(model_dir.rglob("*.onnx"))
    if not models:
        raise VersionError(f"{name} v{version}: its artifacts hold no .onnx file")
    profile = None
    try:
        profile_path = client.download_artifacts(run_id, ARTIFACT_NAME, str(folder))
        profile = ReferenceProfile.load(Path(profile_path))
    except (MlflowException, OSError, ValueError):
        profile = None  # the report says the stability section is incomplete
    return RegisteredVersion(
        name=name,
        version=version,
        run_id=run_id,
        tags=dict(record.tags),
        params=dict(run.data.params),
        metrics=dict(run.data.metrics),
        created_ms=int(record.creation_timestamp or 0),
        description=registered.description or "",
        folder=folder,
        model_path=models[0],
        holdout=pd.read_csv(holdout_path, keep_default_na=False, na_values=[""]),
        comparison=_table(evaluation / Path(COMPARISON).name),
        strategy=_table(evaluation / Path(STRATEGY_TABLE).name),
        profile=profile,
        registered_tags=dict(registered.tags),
    )


def _table(path: Path) -> pd.DataFrame | None:
    return pd.read_csv(path) if path.exists() else None
