"""`riskserve train fraud|credit --events DIR` as a user runs it: a model trained on the
event log's point-in-time features is registered (fraud: the seven features of a card's
transactions; credit: the 24 of a customer's payment history)."""

from __future__ import annotations

from pathlib import Path

import pytest
from mlflow import MlflowClient
from riskserve.features.__main__ import main as features_main

from tests.training.conftest import run_job

pytestmark = pytest.mark.training


def test_a_fraud_model_trained_from_events_is_registered(
    mlflow_server: dict[str, str], tmp_path: Path
) -> None:
    events = tmp_path / "events"
    # ~0.4% fraud of about 30,000 transactions: enough positives for 3 folds.
    assert (
        features_main(["generate", str(events), "--cards", "600", "--days", "30"]) == 0
    )
    job = run_job(
        [
            "fraud",
            "--events",
            str(events),
            "--model-name",
            "fraud-from-events",
            "--candidates",
            "logreg",
            "--budget",
            "10",
        ],
        mlflow_server,
        timeout=600,
    )
    assert job.code == 0, f"{job.stdout[-3000:]}\n{job.stderr[-3000:]}"
    assert f"event log {events}" in job.stdout
    client = MlflowClient(mlflow_server["MLFLOW_TRACKING_URI"])
    versions = client.search_model_versions("name='fraud-from-events'")
    assert len(versions) == 1
    run = client.get_run(versions[0].run_id)
    # The holdout holds about 15 frauds at a base rate of 0.3%: a model that learned
    # nothing scores PR-AUC ~0.003 and ROC-AUC ~0.5 (seen: 0.22 and 0.94).
    metrics = run.data.metrics
    assert metrics["pr_auc"] > 0.05, metrics
    assert metrics["roc_auc"] > 0.85, metrics
    assert metrics["parity_max_abs_diff"] <= 1e-5


def test_a_credit_model_trained_from_events_is_registered(
    mlflow_server: dict[str, str], tmp_path: Path
) -> None:
    events = tmp_path / "events"
    # About 24,000 checkouts of 800 customers over two years, ~2% defaulted.
    assert (
        features_main(
            ["generate", str(events), "--cards", "5", "--days", "1"]
            + ["--customers", "800"]
        )
        == 0
    )
    job = run_job(
        [
            "credit",
            "--events",
            str(events),
            "--model-name",
            "credit-from-events",
            "--candidates",
            "logreg",
            "--budget",
            "10",
        ],
        mlflow_server,
        timeout=600,
    )
    assert job.code == 0, f"{job.stdout[-3000:]}\n{job.stderr[-3000:]}"
    assert f"event log {events}, point-in-time features" in job.stdout
    client = MlflowClient(mlflow_server["MLFLOW_TRACKING_URI"])
    versions = client.search_model_versions("name='credit-from-events'")
    assert len(versions) == 1
    run = client.get_run(versions[0].run_id)
    # The payment history carries the customers' risk: a model that learned nothing
    # scores ROC-AUC ~0.5 on the holdout.
    metrics = run.data.metrics
    assert metrics["roc_auc"] > 0.7, metrics
    assert metrics["parity_max_abs_diff"] <= 1e-5
