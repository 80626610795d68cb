"""A throwaway MLflow for the benches that run the training job in process: a SQLite
store and the artifacts in a temporary folder, nothing in the working directory."""

from __future__ import annotations

import os
from pathlib import Path


def use_throwaway_mlflow(folder: Path) -> None:
    """MLflow on a SQLite file in `folder`; runs and models are written there too."""
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{folder / 'mlflow.db'}"
    os.environ.pop("RISKSERVE_TRAINING_MLFLOW_TRACKING_URI", None)
    os.environ.setdefault("RISKSERVE_TRAINING_GIT_COMMIT", "bench")


def create_experiment(name: str, folder: Path) -> None:
    """The job's experiment, created first so that its artifacts land in `folder`
    rather than in ./mlruns of the working directory."""
    import mlflow
    from mlflow import MlflowClient

    mlflow.set_tracking_uri(os.environ["MLFLOW_TRACKING_URI"])
    MlflowClient().create_experiment(
        name, artifact_location=(folder / "artifacts" / name).as_uri()
    )
