"""The outcomes gate: the monitor's outcomes report (`riskserve monitor outcomes
--json`, made here by the real pass over a log of experiment records) promotes a
challenger that made more money with the chosen confidence, rolls back one that made
less, waits on an undecided one, and refuses a report it cannot trust."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
from riskserve.rollout.controller import Rollout, RolloutError
from riskserve.rollout.settings import RolloutSettings

from tests.monitoring.outcomes_helpers import outcomes_report
from tests.rollout.test_rollout_gates import CANARY, STABLE, RecordedPlatform, steady

pytestmark = pytest.mark.inprocess


def canary_platform() -> RecordedPlatform:
    platform = RecordedPlatform(steady(1.0), steady(1.0))
    platform.canary_created, platform.percent = True, 10
    return platform


def gate(platform, report: Path, **kwargs) -> tuple[str, list[str]]:
    messages: list[str] = []
    # A model folder, not a registry version: the gate, not the approval gate
    # (tests/governance), is under test.
    settings = RolloutSettings(allow_unapproved=True)
    decision = Rollout(platform, settings, say=messages.append).gate_on_outcomes(
        "credit", report, **kwargs
    )
    return decision, messages


def traffic(platform: RecordedPlatform) -> dict[str, int]:
    predictor = platform.get("credit")["status"]["components"]["predictor"]
    return {t["revisionName"]: t["percent"] for t in predictor["traffic"]}


@pytest.mark.parametrize(
    "bad_rates, decision, split, said",
    [
        ({"champion": 0.12, "challenger": 0.06}, "promote", {CANARY: 100}, "better"),
        (
            {"champion": 0.06, "challenger": 0.12},
            "stop",
            {STABLE: 100, CANARY: 0},
            "worse",
        ),
        (
            {"champion": 0.08, "challenger": 0.08},
            "wait",
            {STABLE: 90, CANARY: 10},
            "not yet significant",
        ),
    ],
)
def test_the_gate_promotes_stops_or_waits(tmp_path, bad_rates, decision, split, said):
    report = outcomes_report(tmp_path, bad_rates, rows=3000, seed=5)
    platform = canary_platform()
    got, messages = gate(platform, report)
    assert got == decision
    assert traffic(platform) == split
    assert said in " ".join(messages)


def test_a_stale_or_foreign_report_is_refused(tmp_path):
    report = outcomes_report(
        tmp_path, {"champion": 0.1, "challenger": 0.05}, rows=3000, seed=5
    )
    platform = canary_platform()
    days_later = dt.datetime.now(dt.UTC).timestamp() + 3 * 86400
    with pytest.raises(RolloutError, match="ended 7[0-9].[0-9] h ago"):
        gate(platform, report, now=days_later)
    with pytest.raises(RolloutError, match="no challenger arm 'gbm'"):
        gate(platform, report, arm="gbm")
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"drifted": []}))
    with pytest.raises(RolloutError, match="not an outcomes report"):
        gate(platform, other)
    assert traffic(platform) == {STABLE: 90, CANARY: 10}
