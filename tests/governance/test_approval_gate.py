"""The approval gate against a real MLflow registry (a SQLite tracking store in a
temporary folder): draft -> validated -> approved | rejected in version tags, an
append-only trail, `riskserve approve | reject`, and the rollout controller refusing
to promote a version that is not approved."""

from __future__ import annotations

import contextlib
import copy
import os
from pathlib import Path

import pytest
import yaml
from riskserve.governance.approvals import ApprovalError, decide, record_report
from riskserve.governance.status import (
    APPROVED,
    REJECTED,
    REPORT_SHA_TAG,
    STATUS_TAG,
    VALIDATED,
    status_of,
    trail_of,
)
from riskserve.rollout.controller import (
    MODEL_VERSION_ANNOTATION,
    KServeBackend,
    Rollout,
    RolloutError,
)
from riskserve.rollout.settings import RolloutSettings

from riskserve.cli import main
from tests.rollout.test_kserve_backend import TESTDATA, RecordingApi

pytestmark = pytest.mark.inprocess

REPORT_A, REPORT_B = "a" * 64, "b" * 64


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> str:
    """One SQLite registry for the module (creating one takes seconds)."""
    folder = tmp_path_factory.mktemp("mlflow")
    return f"sqlite:///{folder}/mlflow.db"


@pytest.fixture
def registry(store, tmp_path, monkeypatch, request):
    """A registered model `credit` of two draft versions, champion v1. Each test has
    its model to itself: the store's earlier models are renamed out of the way."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    monkeypatch.setenv("MLFLOW_TRACKING_URI", store)
    monkeypatch.chdir(tmp_path)
    client = MlflowClient(store)
    with contextlib.suppress(MlflowException):  # the module's first test: none
        client.rename_registered_model("credit", f"done-{request.node.name}")
    client.create_registered_model("credit")
    for _ in range(2):
        version = client.create_model_version("credit", source=str(tmp_path))
        client.set_model_version_tag("credit", version.version, STATUS_TAG, "draft")
    client.set_registered_model_alias("credit", "champion", "1")
    return client, store


def tags(client, version: str = "2") -> dict[str, str]:
    return dict(client.get_model_version("credit", version).tags)


def champion(client) -> str:
    return str(client.get_model_version_by_alias("credit", "champion").version)


def test_the_trail_only_grows(registry) -> None:
    client, _ = registry
    with pytest.raises(ApprovalError, match="no validation report"):
        decide(client, "credit", "2", APPROVED, "ana", "looks fine")
    assert record_report(client, "credit", "2", REPORT_A, "validation/a.html", "val")
    assert status_of(tags(client)) == VALIDATED
    seen = tags(client)
    decide(client, "credit", "2", APPROVED, "ana", "report reviewed")
    # A changed report takes the approval back: the approval named the old hash.
    assert record_report(client, "credit", "2", REPORT_B, "validation/b.html", "val")
    after = tags(client)
    assert status_of(after) == VALIDATED
    earlier = {k: v for k, v in seen.items() if k.startswith("validation_trail.")}
    assert earlier and all(after[k] == v for k, v in earlier.items())
    trail = trail_of(after)
    assert [(e.status, e.by, e.report_sha256) for e in trail] == [
        (VALIDATED, "val", REPORT_A),
        (APPROVED, "ana", REPORT_A),
        (VALIDATED, "val", REPORT_B),
    ]
    assert trail[1].note == "report reviewed" and trail[1].at.endswith("+00:00")
    decide(client, "credit", "2", REJECTED, "bo", "AIR 0.7 for women")
    assert status_of(tags(client)) == REJECTED
    with pytest.raises(ApprovalError, match="rejected"):
        record_report(client, "credit", "2", REPORT_A, "validation/a.html", "val")
    with pytest.raises(ApprovalError, match="only a validated version"):
        decide(client, "credit", "2", APPROVED, "ana", "again")
    assert len(trail_of(tags(client))) == 4


def test_approve_and_reject_commands(registry, capsys) -> None:
    client, _ = registry
    code = main(["approve", "credit", "2", "--by", "ana", "--note", "ok"])
    out, err = capsys.readouterr()
    assert (
        code == 2 and "has no validation report" in err and len(err.splitlines()) == 1
    )
    record_report(client, "credit", "2", REPORT_A, "validation/a.html", "val")
    code = main(["approve", "credit", "2", "--by", "ana", "--note", "<b>ok</b>"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "approved by ana" in out and REPORT_A[:16] in out
    assert tags(client)[REPORT_SHA_TAG] == REPORT_A
    assert main(["approve", "credit", "2", "--by", " ", "--note", "x"]) == 2
    assert "--by" in capsys.readouterr().err
    assert main(["reject", "credit", "9", "--by", "bo", "--note", "x"]) == 2
    assert "credit/9" in capsys.readouterr().err
    assert main(["reject", "credit", "1", "--by", "bo", "--note", "old"]) == 0
    assert status_of(tags(client, "1")) == REJECTED


def test_approve_names_the_champion_only_when_it_approves(registry, capsys) -> None:
    """A first version has no canary to promote: `approve --champion` names it
    champion once approved, and never a version it could not approve."""
    client, _ = registry
    assert main(["approve", "credit", "2", "--by", "ana", "--note", "x", "--champion"])
    assert "has no validation report" in capsys.readouterr().err
    assert champion(client) == "1"  # unchanged
    record_report(client, "credit", "2", REPORT_A, "validation/a.html", "val")
    code = main(
        ["approve", "credit", "2", "--by", "ana", "--note", "first", "--champion"]
    )
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "champion -> v2" in out
    assert champion(client) == "2"
    assert status_of(tags(client)) == APPROVED
    with pytest.raises(SystemExit):  # a rejection names no champion
        main(["reject", "credit", "1", "--by", "bo", "--note", "x", "--champion"])


def canary_of(version: str | None) -> RecordingApi:
    isvc = yaml.safe_load((TESTDATA / "canary-10.yaml").read_text())
    annotations = isvc["metadata"]["annotations"]
    if version is None:
        annotations.pop(MODEL_VERSION_ANNOTATION, None)
    else:
        annotations[MODEL_VERSION_ANNOTATION] = f"credit/{version}"
    return RecordingApi({"fraud": copy.deepcopy(isvc)})


def rollout(api: RecordingApi, uri: str | None, **settings) -> Rollout:
    return Rollout(
        KServeBackend("riskserve", api),
        RolloutSettings(backend="kserve", mlflow_tracking_uri=uri, **settings),
        say=lambda m: None,
    )


def test_promotion_needs_an_approved_version(registry) -> None:
    client, uri = registry
    api = canary_of("2")
    with pytest.raises(RolloutError) as refused:
        rollout(api, uri).promote("fraud")
    message = str(refused.value)
    assert "credit v2 is draft, not approved" in message and "\n" not in message
    assert "RISKSERVE_ROLLOUT_ALLOW_UNAPPROVED" in message
    assert api.patches == []  # nothing changed on the cluster
    assert champion(client) == "1"

    record_report(client, "credit", "2", REPORT_A, "validation/a.html", "val")
    with pytest.raises(RolloutError, match="is validated, not approved"):
        rollout(api, uri).promote("fraud")
    decide(client, "credit", "2", APPROVED, "ana", "report reviewed")
    rollout(api, uri).promote("fraud")
    assert "canaryTrafficPercent" not in api.objects["fraud"]["spec"]["predictor"]
    assert champion(client) == "2"


def test_rejected_and_unregistered_canaries_are_refused(registry) -> None:
    client, uri = registry
    decide(client, "credit", "2", REJECTED, "bo", "AIR below 0.8")
    with pytest.raises(RolloutError, match="credit v2 was rejected"):
        rollout(canary_of("2"), uri).promote("fraud")
    api = canary_of(None)  # a folder or s3:// location, not a registry version
    with pytest.raises(RolloutError, match="not a registry version"):
        rollout(api, uri).promote("fraud")
    assert api.patches == []
    # The development override: promoted, champion untouched (no version to move).
    rollout(api, uri, allow_unapproved=True).promote("fraud")
    assert (
        api.patches
        and "canaryTrafficPercent" not in (api.objects["fraud"]["spec"]["predictor"])
    )
    assert champion(client) == "1"


def test_auto_refuses_before_any_traffic_moves(registry) -> None:
    _, uri = registry
    api = canary_of(None)
    auto = Rollout(
        RecordingLocal(api),
        RolloutSettings(mlflow_tracking_uri=uri),
        say=lambda m: None,
    )
    with pytest.raises(RolloutError, match="credit v2 is draft, not approved"):
        auto.auto("fraud", "models:/credit/2", [10, 100])
    assert api.patches == []


class RecordingLocal(KServeBackend):
    """A backend with revision metrics, as `--auto` needs, that records patches."""

    name = "local"

    def __init__(self, api: RecordingApi) -> None:
        super().__init__("riskserve", api)

    def revision_metrics(self, isvc: str) -> dict:
        raise AssertionError("the gate must refuse before any window is read")


def test_env_override_is_read(monkeypatch) -> None:
    monkeypatch.setenv("RISKSERVE_ROLLOUT_ALLOW_UNAPPROVED", "true")
    assert RolloutSettings().allow_unapproved
    monkeypatch.delenv("RISKSERVE_ROLLOUT_ALLOW_UNAPPROVED")
    assert not RolloutSettings().allow_unapproved
    assert os.environ.get("RISKSERVE_ROLLOUT_ALLOW_UNAPPROVED") is None
    assert Path(TESTDATA).is_dir()
