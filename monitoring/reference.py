"""The reference profile of each served version: from the MLflow registry (the artifact
the training job logged and named in the version's `reference_profile` tag), or built
from a CSV (`--reference-data`) for a version registered before profiles existed."""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
from riskserve.model.reference_profile import (
    VERSION_TAG,
    ProfileError,
    ReferenceProfile,
    build_profile,
)
from riskserve.model.specs import SCORE_OUTPUTS
from riskserve.monitoring.log_reader import BadInput
from riskserve.monitoring.settings import MonitorSettings


class NoReference(BadInput):
    """A version has no profile (exit 2)."""


def _client(settings: MonitorSettings):
    if not settings.mlflow_tracking_uri:
        raise NoReference(
            "no MLflow server to read reference profiles from (set "
            "MLFLOW_TRACKING_URI), and no --reference-data CSV given"
        )
    settings.apply_mlflow_client()
    from mlflow import MlflowClient

    return MlflowClient(settings.mlflow_tracking_uri)


def registry_profile(
    registered_model: str, version: str, settings: MonitorSettings
) -> ReferenceProfile:
    import mlflow
    from mlflow.exceptions import MlflowException

    client = _client(settings)
    try:
        info = client.get_model_version(registered_model, version)
    except MlflowException as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise NoReference(
            f"{registered_model} v{version} is not in the registry at "
            f"{settings.mlflow_tracking_uri} ({first[:200]})"
        ) from None
    artifact = (info.tags or {}).get(VERSION_TAG)
    if not artifact:
        raise NoReference(
            f"{registered_model} v{version} has no reference profile (it was registered "
            "before profiles existed): build one with --reference-data FILE (a CSV of "
            "its training data)"
        )
    with tempfile.TemporaryDirectory(prefix="riskserve-profile-") as folder:
        try:
            local = mlflow.artifacts.download_artifacts(
                run_id=info.run_id, artifact_path=artifact, dst_path=folder
            )
        except (MlflowException, OSError) as exc:
            raise NoReference(
                f"cannot download the reference profile of {registered_model} "
                f"v{version}: {str(exc).splitlines()[0][:200]}"
            ) from None
        try:
            return ReferenceProfile.load(Path(local))
        except ProfileError as exc:
            raise NoReference(f"{registered_model} v{version}: {exc}") from None


def version_tags(
    registered_model: str, version: str, settings: MonitorSettings
) -> dict[str, str]:
    from mlflow.exceptions import MlflowException

    try:
        return dict(
            _client(settings).get_model_version(registered_model, version).tags or {}
        )
    except MlflowException:
        return {}


def csv_profile(
    path: Path,
    registered_model: str,
    version: str,
    settings: MonitorSettings | None,
) -> ReferenceProfile:
    """A profile of a CSV of training data: the features the version takes (its
    `features` tag, else every column but a target-like one), scored by the version's
    own ONNX model when the registry can hand it over (else without scores)."""
    path = Path(path)
    if not path.is_file():
        raise BadInput(f"{path}: no such reference data file")
    if (
        path.suffix.lower() == ".json"
    ):  # a profile saved before (reference_profile.json)
        try:
            return ReferenceProfile.load(path)
        except ProfileError as exc:
            raise BadInput(str(exc)) from None
    try:
        frame = pd.read_csv(path, skipinitialspace=True)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise BadInput(f"{path}: not a readable CSV ({exc})") from None
    if frame.empty:
        raise BadInput(f"{path}: no rows")
    tags = (
        version_tags(registered_model, version, settings)
        if settings and settings.mlflow_tracking_uri
        else {}
    )
    features = [f for f in tags.get("features", "").split(",") if f]
    if features:
        absent = [f for f in features if f not in frame.columns]
        if absent:
            raise BadInput(
                f"{path}: column {absent[0]!r}, a feature of {registered_model} "
                f"v{version}, is missing"
            )
        frame = frame[features]
    text = {c for c in frame.columns if frame[c].dtype == object}
    outputs = _score(frame, registered_model, version, settings) if features else {}
    return build_profile(
        registered_model,
        version,
        frame,
        outputs=outputs,
        source=f"reference data {path} ({len(frame)} rows)",
        categorical=text,
    )


def _score(frame, registered_model, version, settings) -> dict[str, np.ndarray]:
    """The version's scores on the reference rows, by its ONNX model (no scores, and a
    profile of features only, when it cannot be had)."""
    try:
        import mlflow
        import onnxruntime as ort

        with tempfile.TemporaryDirectory(prefix="riskserve-model-") as folder:
            local = mlflow.artifacts.download_artifacts(
                f"models:/{registered_model}/{version}", dst_path=folder
            )
            files = sorted(Path(local).rglob("*.onnx"))
            if not files:
                return {}
            session = ort.InferenceSession(
                str(files[0]), providers=["CPUExecutionProvider"]
            )
    except Exception:  # a profile without scores beats none; the report says so
        return {}
    feeds = {}
    for item in session.get_inputs():
        column = frame[item.name]
        if item.type == "tensor(string)":
            feeds[item.name] = column.fillna("").astype(str).to_numpy(object)
        else:
            feeds[item.name] = pd.to_numeric(column, errors="coerce").to_numpy(
                np.float32
            )
        feeds[item.name] = feeds[item.name].reshape(-1, 1)
    names = [o.name for o in session.get_outputs() if o.name in SCORE_OUTPUTS]
    return dict(zip(names, session.run(names, feeds), strict=True))


class References:
    """Each version's profile, fetched once: the registry's, else the CSV's."""

    def __init__(
        self,
        registered: str,
        csv: Path | None,
        settings: MonitorSettings,
        progress: Callable[[str], None] = lambda _: None,
    ) -> None:
        self.registered, self.csv, self.settings = registered, csv, settings
        self.progress = progress
        self.cache: dict[str, ReferenceProfile] = {}

    def __call__(self, version: str) -> ReferenceProfile:
        if version not in self.cache:
            self.cache[version] = self._load(version)
        return self.cache[version]

    def _load(self, version: str) -> ReferenceProfile:
        if self.settings.mlflow_tracking_uri:
            try:
                return registry_profile(self.registered, version, self.settings)
            except NoReference:
                if self.csv is None:
                    raise
        if self.csv is None:
            raise NoReference(
                f"no reference profile for {self.registered} v{version}: set "
                "MLFLOW_TRACKING_URI to read the registry's, or give --reference-data "
                "FILE (a CSV of its training data)"
            )
        self.progress(f"building v{version}'s reference profile from {self.csv}")
        return csv_profile(self.csv, self.registered, version, self.settings)
