"""The retraining loop stops at validated: it trains, generates the version's
validation report (draft -> validated), and leaves approval to a person; the rollout
it starts refuses the unapproved version before any traffic moves, and the loop says
so in one line. Real MLflow (tests/conftest.py), real training, report and rollout
processes."""

from __future__ import annotations

import pytest
from mlflow import MlflowClient
from riskserve.model.synthetic import generate
from riskserve.monitoring.retrain import run_loop

# A training job, a report and a rollout as processes: a minute or two.
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

NAME = "credit-retrain-gate"
TINY_JOB = ["--budget", "2", "--candidates", "logreg"]


def test_the_loop_validates_and_stops_before_an_unapproved_rollout(
    mlflow_server, tmp_path, monkeypatch
):
    for key, value in mlflow_server.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("RISKSERVE_ROLLOUT_ALLOW_UNAPPROVED", raising=False)
    # No platform runs: the gate refuses before the rollout asks for one.
    data = tmp_path / "recent.csv"
    generate("credit", 3000, seed=11).to_csv(data, index=False)
    said: list[str] = []

    code = run_loop("credit", "credit", NAME, data, True, said.append, TINY_JOB)

    assert code == 0, said
    client = MlflowClient(mlflow_server["MLFLOW_TRACKING_URI"])
    version = client.get_model_version(NAME, "1")
    assert version.tags["validation_status"] == "validated"
    assert version.tags["validation_report_sha256"]
    assert dict(client.get_registered_model(NAME).aliases) == {"challenger": "1"}
    assert any(s.startswith(f"validating: -m riskserve report {NAME}/1") for s in said)
    assert any(
        s.startswith(
            f"rolling out: -m riskserve rollout start credit --model models:/{NAME}/1"
        )
        for s in said
    )
    assert said[-1] == (
        f"not rolled out: {NAME} v1 is validated, not approved, and the rollout "
        "refused it; the loop stops there: a person approves it: `riskserve approve "
        f"{NAME} 1 --by NAME --note TEXT`, then `riskserve rollout start credit "
        f"--model models:/{NAME}/1 --auto`"
    )
