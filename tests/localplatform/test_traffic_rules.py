"""KServe's traffic rules as the local platform applies them (no processes)."""

from __future__ import annotations

import pytest
from riskserve.localplatform.state import InferenceServiceState, PlatformState, Revision

pytestmark = pytest.mark.inprocess


def service(canary: int | None = None, shadow: bool = False) -> InferenceServiceState:
    predictor = {"model": {"storageUri": "s3://m/1"}}
    if canary is not None:
        predictor["canaryTrafficPercent"] = canary
    annotations = {"riskserve.io/shadow": "true"} if shadow else {}
    return InferenceServiceState(
        "fraud", {"predictor": predictor, "_annotations": annotations}
    )


def add(state: InferenceServiceState, ready: bool = True) -> Revision:
    revision = Revision(state.next_revision_name(), "s3://m", {}, "h", ready=ready)
    state.revisions.append(revision)
    state.settle()
    return revision


def split(state: InferenceServiceState) -> list[tuple[str, int, str | None]]:
    return [(t.revision_name[-1], t.percent, t.tag) for t in state.traffic()]


def routes(state: InferenceServiceState) -> list[tuple[str, int]]:
    return [(r.name[-1], p) for r, p in state.routes()]


def test_first_revision_takes_everything_once_ready():
    state = service(
        canary=20
    )  # a canary percent means nothing without a stable revision
    first = add(state, ready=False)
    assert split(state) == [] and routes(state) == []
    first.ready = True
    state.settle()
    assert state.latest_rolledout == first.name
    assert split(state) == [("1", 100, None)]


def test_canary_split_and_not_ready_canary_gets_nothing():
    state = service()
    add(state)
    state.spec["predictor"]["canaryTrafficPercent"] = 30
    canary = add(state, ready=False)
    assert split(state) == [("2", 0, "latest"), ("1", 100, "prev")]
    canary.ready = True
    assert split(state) == [("2", 30, "latest"), ("1", 70, "prev")]
    assert routes(state) == [("2", 30), ("1", 70)]
    assert state.latest_rolledout.endswith("1")  # a canary does not roll out


def test_promote_and_rollback():
    state = service()
    add(state)
    state.spec["predictor"]["canaryTrafficPercent"] = 0  # rolled back
    add(state)
    assert routes(state) == [("1", 100)]
    del state.spec["predictor"]["canaryTrafficPercent"]  # promoted
    assert state.settle()
    assert split(state) == [("2", 100, None)]
    assert (state.latest_rolledout[-1], state.previous_rolledout[-1]) == ("2", "1")


def test_a_dead_revision_hands_its_share_to_the_ready_one():
    state = service()
    stable = add(state)
    state.spec["predictor"]["canaryTrafficPercent"] = 50
    canary = add(state)
    assert routes(state) == [("2", 50), ("1", 50)]
    canary.ready = False
    assert routes(state) == [("1", 100)]
    canary.ready, stable.ready = True, False
    assert routes(state) == [("2", 50)]


def test_a_shadow_serves_nothing_and_gets_copies_once_ready():
    state = service(canary=0, shadow=True)  # what `rollout start --shadow` sets
    add(state)
    shadow = add(state, ready=False)
    assert state.shadow_revision() is None  # not ready: no copies either
    shadow.ready = True
    state.settle()
    assert state.shadow_revision() is shadow
    assert routes(state) == [("1", 100)]
    assert split(state) == [("2", 0, "latest"), ("1", 100, "prev")]


def test_state_survives_a_round_trip(tmp_path):
    state = service(canary=10)
    add(state)
    add(state)
    platform = PlatformState({"fraud": state})
    platform.save(tmp_path / "state.json")
    again = PlatformState.load(tmp_path / "state.json").services["fraud"]
    assert (
        split(again) == split(state)
        and again.latest_rolledout == state.latest_rolledout
    )
