"""The gates of `rollout --auto`, judged on recorded windows of gateway counters.

The live tests (test_auto_rollout.py) prove the rollout on a running platform; the
latency they see is whatever a shared machine gives. Here each window's traffic is
written down, counted by the gateway's own `RevisionStats`, so the gates' arithmetic
is checked exactly: the interpolated p99, the same-window comparison, the one extra
window a latency blip gets, and the rollbacks that must not wait for one.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from riskserve.localplatform.gateway import LATENCY_BOUNDS_MS, RevisionStats
from riskserve.rollout.controller import UNCHANGED, Rollout
from riskserve.rollout.gates import quantile_ms
from riskserve.rollout.settings import RolloutSettings

pytestmark = pytest.mark.inprocess

STABLE, CANARY = "fraud-predictor-00001", "fraud-predictor-00002"
SCORES = [40, 30, 20, 10]  # one score histogram for both: PSI 0


def histogram(latencies_ms: list[float]) -> dict:
    stats = RevisionStats()
    for ms in latencies_ms:
        stats.record(200, ms / 1000)
    return stats.snapshot()


def test_p99_is_interpolated_inside_its_bucket() -> None:
    # 100 requests between 5 and 7.5 ms: bucket edges alone would call all of them 7.5.
    assert quantile_ms(histogram([5.5] * 100), 0.99) == pytest.approx(5 + 2.5 * 0.99)
    assert quantile_ms(histogram([5.5] * 100), 0.5) == pytest.approx(6.25)
    # One slow request in a hundred moves p99 only inside its own bucket.
    assert 5 < quantile_ms(histogram([3.5] * 98 + [6.0] * 2), 0.99) < 7.5
    # A tail beyond the last edge is reported as that edge, not invented.
    assert quantile_ms(histogram([9_000.0] * 10), 0.99) == LATENCY_BOUNDS_MS[-1]
    assert quantile_ms(histogram([]), 0.99) == 0.0


Latencies = Callable[[int], list[float]]


class RecordedPlatform:
    """A platform whose gateway counters advance by a script: every read of the
    metrics is one more slice of traffic, `stable(n)` and `canary(n)` giving the
    latencies (ms) of the requests each revision answered in slice n."""

    name = "recorded"

    def __init__(
        self, stable: Latencies, canary: Latencies, canary_errors: int = 0
    ) -> None:
        self.latencies = {STABLE: stable, CANARY: canary}
        self.canary_errors = canary_errors
        self.stats = {STABLE: RevisionStats(), CANARY: RevisionStats()}
        self.percent: int | None = None
        self.canary_created = False
        self.reads = 0
        self.patches: list[int | None] = []

    def patch(self, isvc, storage_uri, percent, annotations) -> None:
        if storage_uri:
            self.canary_created = True
        if percent is not UNCHANGED:
            self.percent = percent
            self.patches.append(percent)

    def get(self, isvc) -> dict:
        promoted = self.canary_created and self.percent is None
        rolled_out = CANARY if promoted else STABLE
        traffic = [{"revisionName": rolled_out, "percent": 100}]
        if self.canary_created and not promoted:
            traffic = [
                {"revisionName": STABLE, "percent": 100 - self.percent},
                {"revisionName": CANARY, "percent": self.percent},
            ]
        latest = CANARY if self.canary_created else STABLE
        return {
            "metadata": {"name": isvc, "annotations": {}},
            "spec": {"predictor": {"canaryTrafficPercent": self.percent}},
            "status": {
                "conditions": [{"type": "LatestDeploymentReady", "status": "True"}],
                "components": {
                    "predictor": {
                        "latestCreatedRevision": latest,
                        "latestReadyRevision": latest,
                        "latestRolledoutRevision": rolled_out,
                        "traffic": traffic,
                    }
                },
            },
        }

    def revision_metrics(self, isvc) -> dict:
        self.reads += 1
        for name, stats in self.stats.items():
            if name == CANARY and not self.canary_created:
                continue
            for ms in self.latencies[name](self.reads):
                stats.record(200, ms / 1000)
        for _ in range(self.canary_errors if self.canary_created else 0):
            self.stats[CANARY].record(503, 0.001)
        return {
            name: {
                "ready": True,
                **stats.snapshot(),
                "score_counts": [n * stats.requests for n in SCORES],
            }
            for name, stats in self.stats.items()
        }


def steady(ms: float, count: int = 200) -> Latencies:
    return lambda read: [ms] * count


class FakeClock:
    """Time that passes only when the rollout waits: no real sleeping in these tests."""

    def __init__(self) -> None:
        self.now = 0.0

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def roll(platform: RecordedPlatform, steps=(10, 50, 100), **gates) -> tuple[bool, list]:
    messages: list[str] = []
    # A model folder, not a registry version: the gates, not the approval gate
    # (tests/governance), are under test.
    settings = RolloutSettings(
        window_s=0.5, min_requests=20, allow_unapproved=True, **gates
    )
    promoted = Rollout(platform, settings, say=messages.append, clock=FakeClock()).auto(
        "fraud", "/models/fraud/v2", list(steps)
    )
    return promoted, messages


def test_a_canary_as_fast_as_stable_is_promoted() -> None:
    platform = RecordedPlatform(steady(3.5), steady(3.8))
    promoted, messages = roll(platform)
    assert promoted, messages
    assert platform.patches == [10, 50, 100, None]
    assert "promoted fraud-predictor-00002" in messages[-1]
    assert not any("one more window" in m for m in messages)


def test_one_slow_window_is_watched_again_and_the_canary_promoted() -> None:
    # A 40 ms stall of the canary alone in one window: the second step's (reads: 1 the
    # baseline, 2-3 the first window, 4-5 the second).
    def canary(read: int) -> list[float]:
        return [3.8] * 190 + [40.0] * 10 if read == 5 else [3.8] * 200

    platform = RecordedPlatform(steady(3.5), canary)
    promoted, messages = roll(platform)
    assert promoted, messages
    rechecked = [m for m in messages if "one more window" in m]
    assert len(rechecked) == 1 and "canary p99" in rechecked[0]


def test_a_slow_canary_is_rolled_back_after_one_more_window() -> None:
    platform = RecordedPlatform(steady(3.5), steady(12.0))
    promoted, messages = roll(platform)
    assert not promoted
    assert platform.patches == [10, 0]  # never stepped past its first step
    assert sum("one more window" in m for m in messages) == 1
    assert "rolled back to fraud-predictor-00001 (canary p99" in messages[-1]
    assert "champion alias unchanged" in messages[-1]


def test_no_extra_window_when_rechecks_are_off() -> None:
    platform = RecordedPlatform(steady(3.5), steady(12.0))
    promoted, messages = roll(platform, latency_rechecks=0)
    assert not promoted
    assert not any("one more window" in m for m in messages)
    assert platform.reads == 3  # the baseline, then one window: start and end


def test_errors_roll_back_at_once_and_every_broken_gate_is_named() -> None:
    platform = RecordedPlatform(steady(3.5), steady(12.0), canary_errors=50)
    promoted, messages = roll(platform)
    assert not promoted
    assert not any("one more window" in m for m in messages)
    assert "canary error rate" in messages[-1] and "canary p99" in messages[-1]


def test_a_busy_host_that_slows_both_revisions_breaks_no_gate() -> None:
    # In the third window (reads 6-7) a busy host delays 5% of everyone's requests:
    # the canary is compared with the stable revision over the same seconds, not with
    # the quieter seconds before, in which that stall is under 1% of what stable served.
    def stall_in_third_window(read: int) -> list[float]:
        return [3.5] * 190 + [14.0] * 10 if read == 7 else [3.5] * 200

    platform = RecordedPlatform(stall_in_third_window, stall_in_third_window)
    promoted, messages = roll(platform, steps=(10, 20, 50, 100), latency_rechecks=0)
    assert promoted, messages


def test_at_100_percent_the_canary_is_compared_with_what_stable_served_before() -> None:
    # At the last step the stable revision serves nothing; a canary slower than all
    # it served since the rollout began is still caught.
    def canary(read: int) -> list[float]:
        return [3.8] * 200 if read < 6 else [12.0] * 200

    def stable(read: int) -> list[float]:
        return [3.5] * 200 if read < 6 else []

    platform = RecordedPlatform(stable, canary)
    promoted, messages = roll(platform)
    assert not promoted
    assert platform.patches == [10, 50, 100, 0]
    assert "canary p99" in messages[-1]
