"""The local platform end to end, on real processes: deploy, canary split, rollback,
promote, restart, a canary killed under load, and bad input."""

from __future__ import annotations

import collections
import concurrent.futures
import os
import signal
import time

import pytest
from riskserve.localplatform.client import (
    PlatformError,
    apply_yaml,
    patch,
    status,
    wait_ready,
)

from tests.localplatform.platform_helpers import Platform, isvc_yaml

pytestmark = pytest.mark.e2e


def deploy(platform: Platform, yaml_text: str) -> list[str]:
    messages = apply_yaml(platform.settings, yaml_text)
    wait_ready(platform.settings, ["fraud"], 60)
    return messages


def predictor_status(platform: Platform) -> dict:
    (item,) = [
        i
        for i in status(platform.settings)["inferenceservices"]
        if i["metadata"]["name"] == "fraud"
    ]
    return item["status"]


def revisions_served(
    platform: Platform, requests: int, workers: int = 8
) -> collections.Counter:
    def one(_):
        response = platform.infer()
        assert response.status_code == 200, response.text
        revision = response.headers["x-riskserve-revision"]
        return revision, response.json()["model_version"]

    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        return collections.Counter(pool.map(one, range(requests)))


def test_canary_split_rollback_promote_and_restart(platform, model_dirs):
    deploy(platform, isvc_yaml("fraud", model_dirs["v1"]))
    assert revisions_served(platform, 50) == {("fraud-predictor-00001", "1"): 50}

    deploy(platform, isvc_yaml("fraud", model_dirs["v2"], canary=30))
    st = predictor_status(platform)["components"]["predictor"]
    assert st["latestCreatedRevision"] == "fraud-predictor-00002"
    assert st["latestRolledoutRevision"] == "fraud-predictor-00001"
    assert [(t["revisionName"], t["percent"], t.get("tag")) for t in st["traffic"]] == [
        ("fraud-predictor-00002", 30, "latest"),
        ("fraud-predictor-00001", 70, "prev"),
    ]
    served = revisions_served(platform, 2000)
    canary_share = served[("fraud-predictor-00002", "2")] / 2000
    print(f"canary share over 2000 requests: {canary_share:.3f} ({dict(served)})")
    # Each request picks its revision at random, as Knative's split does: over 2,000
    # requests the share's standard deviation is 1.0 point, and 0.25-0.35 is 4.9 of
    # them (a good split falls outside once in a million runs; 20% or 40% never in).
    assert 0.25 <= canary_share <= 0.35
    assert sum(served.values()) == 2000 and len(served) == 2

    patch(platform.settings, "fraud", {"canaryTrafficPercent": 0})  # roll back
    assert revisions_served(platform, 200) == {("fraud-predictor-00001", "1"): 200}

    patch(platform.settings, "fraud", {"canaryTrafficPercent": 30})
    patch(platform.settings, "fraud", {"canaryTrafficPercent": None})  # promote
    assert revisions_served(platform, 200) == {("fraud-predictor-00002", "2"): 200}
    st = predictor_status(platform)["components"]["predictor"]
    assert st["latestRolledoutRevision"] == "fraud-predictor-00002"
    assert st["previousRolledoutRevision"] == "fraud-predictor-00001"

    before = predictor_status(platform)
    platform.stop()
    platform.start()
    wait_ready(platform.settings, ["fraud"], 60)
    after = predictor_status(platform)
    assert after["components"] == before["components"]
    assert revisions_served(platform, 100) == {("fraud-predictor-00002", "2"): 100}


def test_killed_canary_loses_its_share_and_failures_stay_bounded(platform, model_dirs):
    deploy(platform, isvc_yaml("fraud", model_dirs["v1"]))
    deploy(platform, isvc_yaml("fraud", model_dirs["v2"], canary=50))
    canary_pid = status(platform.settings)["revisions"]["fraud-predictor-00002"]["pid"]

    outcomes: collections.Counter = collections.Counter()
    killed_at = None

    def one(index):
        nonlocal killed_at
        if index == 300:
            os.kill(canary_pid, signal.SIGKILL)
            killed_at = time.monotonic()
        response = platform.infer()
        return response.status_code, response.headers.get("x-riskserve-revision")

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        for code, revision in pool.map(one, range(1500)):
            outcomes[(code, revision)] += 1
    failures = sum(n for (code, _), n in outcomes.items() if code != 200)
    print(f"killed the canary under load: {failures} failed of 1500 ({dict(outcomes)})")
    assert failures <= 8  # at most the requests in flight on the dead process

    # Its share went to the stable revision at once; status says what happened.
    deadline = killed_at + 1.0
    st = status(platform.settings)
    assert (
        time.monotonic() > deadline
        or st["revisions"]["fraud-predictor-00002"]["pid"] != canary_pid
    )
    revision = st["revisions"]["fraud-predictor-00002"]
    assert revision["pid"] != canary_pid  # restarted, as a kubelet would
    wait_ready(platform.settings, ["fraud"], 60)  # and it rejoins once ready
    served = revisions_served(platform, 200)
    assert {r for r, _ in served} == {"fraud-predictor-00001", "fraud-predictor-00002"}


@pytest.mark.parametrize("bad", ["missing", "broken"])
def test_a_revision_that_cannot_load_gets_no_traffic(platform, model_dirs, bad):
    deploy(platform, isvc_yaml("fraud", model_dirs["v1"]))
    apply_yaml(platform.settings, isvc_yaml("fraud", model_dirs[bad], canary=50))
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        revision = status(platform.settings)["revisions"]["fraud-predictor-00002"]
        if revision["failed"]:
            break
        time.sleep(0.2)
    assert revision["failed"] and not revision["ready"]
    st = predictor_status(platform)
    conditions = {c["type"]: c for c in st["conditions"]}
    assert conditions["Ready"]["status"] == "True"  # the old revision still serves
    assert conditions["LatestDeploymentReady"]["status"] == "False"
    assert "fraud-predictor-00002" in conditions["LatestDeploymentReady"]["message"]
    message = conditions["LatestDeploymentReady"]["message"]
    print("status says:", message)
    assert "cannot load the model" in message or "cannot" in message.lower()
    assert (
        ("Protobuf" in message)
        if bad == "broken"
        else (str(model_dirs[bad]) in message)
    )
    assert revisions_served(platform, 100) == {("fraud-predictor-00001", "1"): 100}
    traffic = {
        t["revisionName"]: t["percent"]
        for t in st["components"]["predictor"]["traffic"]
    }
    assert traffic == {"fraud-predictor-00002": 0, "fraud-predictor-00001": 100}


def test_an_invalid_inferenceservice_changes_nothing(platform, model_dirs):
    deploy(platform, isvc_yaml("fraud", model_dirs["v1"]))
    typo = isvc_yaml("fraud", model_dirs["v2"]).replace(
        "      protocolVersion", "      protocolVersoin"
    )
    with pytest.raises(PlatformError, match="protocolVersoin"):
        apply_yaml(platform.settings, typo)
    st = predictor_status(platform)
    ready = next(c for c in st["conditions"] if c["type"] == "Ready")
    assert ready["reason"] == "InvalidSpec" and "protocolVersoin" in ready["message"]
    assert (
        st["components"]["predictor"]["latestCreatedRevision"]
        == "fraud-predictor-00001"
    )
    assert revisions_served(platform, 50) == {("fraud-predictor-00001", "1"): 50}


def test_bad_requests_to_the_platform_are_refused_clearly(platform, model_dirs):
    deploy(platform, isvc_yaml("fraud", model_dirs["v1"]))
    with pytest.raises(PlatformError, match="from 0 to 100"):
        patch(platform.settings, "fraud", {"canaryTrafficPercent": 101})
    with pytest.raises(PlatformError, match="unknown InferenceService 'credit'"):
        patch(platform.settings, "credit", {"canaryTrafficPercent": 10})
    with pytest.raises(PlatformError, match="no InferenceService"):
        apply_yaml(platform.settings, "kind: ConfigMap\napiVersion: v1\n")
    response = platform.client.post("/v2/models/credit/infer", json={})
    assert response.status_code == 404 and "credit" in response.json()["error"]
    assert (
        predictor_status(platform)["components"]["predictor"]["latestCreatedRevision"]
        == "fraud-predictor-00001"
    )
