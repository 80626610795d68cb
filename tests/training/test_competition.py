"""A candidate that fails to fit is named in one line and the others still compete;
when every candidate fails the job fails and nothing is registered. The job runs
in-process against the real MLflow server, with a failing candidate added to the
registry the way a new candidate is added."""

from __future__ import annotations

import mlflow
import pytest
from mlflow import MlflowClient
from riskserve.training import candidates
from riskserve.training.__main__ import main

pytestmark = pytest.mark.e2e

BROKEN = "tests.training.broken_candidates:SingularCandidate"


@pytest.fixture
def with_broken_candidate(monkeypatch, mlflow_server):
    for key, value in mlflow_server.items():
        monkeypatch.setenv(key, value)
    mlflow.set_tracking_uri(mlflow_server["MLFLOW_TRACKING_URI"])
    monkeypatch.setitem(candidates.REGISTRY["credit"], "singular", BROKEN)
    return MlflowClient(mlflow_server["MLFLOW_TRACKING_URI"])


def test_a_failing_candidate_is_named_and_the_others_compete(
    with_broken_candidate, capsys
):
    name = "credit-one-broken"
    code = main(
        [
            "credit",
            "--rows",
            "3000",
            "--model-name",
            name,
            "--budget",
            "2",
            "--candidates",
            "singular,logreg",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0
    failed = [line for line in out.splitlines() if "candidate singular failed" in line]
    assert len(failed) == 1
    assert "ValueError: the design matrix is singular" in failed[0]
    version = with_broken_candidate.get_model_version_by_alias(name, "challenger")
    assert version.tags["candidate"] == "logreg"


def test_when_every_candidate_fails_nothing_is_registered(
    with_broken_candidate, capsys
):
    name = "credit-all-broken"
    code = main(
        [
            "credit",
            "--rows",
            "3000",
            "--model-name",
            name,
            "--budget",
            "2",
            "--candidates",
            "singular",
        ]
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1
    assert len(err) == 1
    assert (
        "every candidate failed (singular: no trial could be fitted: ValueError: "
        in err[0]
    )
    assert "nothing was registered" in err[0]
    assert with_broken_candidate.search_registered_models(f"name='{name}'") == []
