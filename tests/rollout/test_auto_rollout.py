"""`rollout start --auto` and `--shadow` on the local platform, under live traffic."""

from __future__ import annotations

import collections
import threading
import time

import httpx
import pytest
from riskserve.localplatform.client import apply_yaml, wait_ready
from riskserve.rollout.controller import LocalBackend, Rollout
from riskserve.rollout.settings import RolloutSettings

from tests.localplatform.platform_helpers import fraud_request, isvc_yaml

pytestmark = pytest.mark.e2e


class Traffic:
    """Steady load on the gateway from a background thread, bounded in time."""

    def __init__(self, url: str, rows: int = 8, pause: float = 0.004) -> None:
        self.url, self.rows, self.pause = url, rows, pause
        self.codes: collections.Counter = collections.Counter()
        self.revisions: collections.Counter = collections.Counter()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with httpx.Client(base_url=self.url, timeout=10) as client:
            for _ in range(200_000):  # bounded: the test stops it long before
                if self._stop.is_set():
                    return
                response = client.post(
                    "/v2/models/fraud/infer", json=fraud_request(self.rows)
                )
                self.codes[response.status_code] += 1
                self.revisions[response.headers.get("x-riskserve-revision")] += 1
                self._stop.wait(self.pause)

    def __enter__(self) -> Traffic:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=15)


@pytest.fixture
def deployed(platform, model_dirs):
    apply_yaml(platform.settings, isvc_yaml("fraud", model_dirs["v1"]))
    wait_ready(platform.settings, ["fraud"], 60)
    return platform


def auto_rollout(platform, messages: list[str], **gates) -> Rollout:
    # The canaries are model folders, not registry versions: the approval gate
    # (tests/governance) is not what these tests are about.
    settings = RolloutSettings(
        window_s=3,
        min_requests=20,
        steps="20,60,100",
        allow_unapproved=True,
        **gates,
    )
    return Rollout(LocalBackend(platform.settings), settings, say=messages.append)


def current(platform):
    return Rollout(LocalBackend(platform.settings), RolloutSettings()).status("fraud")


def test_auto_promotes_a_good_canary(deployed, model_dirs):
    messages: list[str] = []
    # The same model again: every gate holds. Latency is given room here because a
    # 3 s window of one client's traffic on a shared CI machine is a few dozen canary
    # requests, whose p99 is their slowest; the latency gate's arithmetic is proved on
    # recorded windows in test_rollout_gates.py.
    with Traffic(deployed.settings.gateway_url) as traffic:
        promoted = auto_rollout(deployed, messages, p99_slack_ms=25).auto(
            "fraud", str(model_dirs["v2"]), [20, 60, 100]
        )
    print("\n".join(messages))
    assert promoted, messages
    status = current(deployed)
    assert status.latest_rolledout == "fraud-predictor-00002"
    assert status.split() == "fraud-predictor-00002 100%"
    assert set(traffic.codes) == {200}


@pytest.mark.parametrize(
    ("bad", "why"), [("shifted", "PSI"), ("erroring", "error rate")]
)
def test_auto_rolls_back_a_bad_canary_and_says_why(deployed, model_dirs, bad, why):
    messages: list[str] = []
    with Traffic(deployed.settings.gateway_url):
        promoted = auto_rollout(deployed, messages).auto(
            "fraud", str(model_dirs[bad]), [20, 60, 100]
        )
    print("\n".join(messages))
    assert not promoted
    assert (
        why in messages[-1] and "rolled back to fraud-predictor-00001" in messages[-1]
    )
    status = current(deployed)
    assert status.latest_rolledout == "fraud-predictor-00001"
    assert status.canary_percent == 0
    with httpx.Client(base_url=deployed.settings.gateway_url) as client:
        served = {
            client.post("/v2/models/fraud/infer", json=fraud_request(3)).headers[
                "x-riskserve-revision"
            ]
            for _ in range(50)
        }
    assert served == {"fraud-predictor-00001"}


def test_shadow_gets_copies_and_never_answers(deployed, model_dirs):
    rollout = Rollout(
        LocalBackend(deployed.settings), RolloutSettings(), say=lambda m: None
    )
    rollout.start("fraud", str(model_dirs["shifted"]), 0, shadow=True)
    wait_ready(deployed.settings, ["fraud"], 60)
    with httpx.Client(base_url=deployed.settings.gateway_url) as client:
        served = collections.Counter(
            client.post("/v2/models/fraud/infer", json=fraud_request(4)).headers[
                "x-riskserve-revision"
            ]
            for _ in range(200)
        )
    assert served == {"fraud-predictor-00001": 200}
    time.sleep(0.5)  # the last copies are still on their way
    metrics = LocalBackend(deployed.settings).revision_metrics("fraud")
    shadow = metrics["fraud-predictor-00002"]
    assert shadow["shadow"] is True and shadow["percent"] == 0
    comparison = shadow["shadow_comparison"]
    assert comparison["compared"] >= 190  # copies are sent in the background
    assert comparison["errors"] == 0
    # The shifted model scores higher: its answers differ, and none reached a client.
    assert comparison["sum_abs_diff"] / comparison["compared"] > 0.05


def test_auto_rolls_back_when_the_canary_process_dies(deployed, model_dirs):
    import os
    import signal

    from riskserve.localplatform.client import status

    messages: list[str] = []
    killed: list[int] = []

    def kill_canary_once_watched() -> None:
        for _ in range(600):  # bounded: at most 60 s
            if any("watching" in m for m in messages):
                pid = status(deployed.settings)["revisions"]["fraud-predictor-00002"][
                    "pid"
                ]
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
                return
            time.sleep(0.1)

    killer = threading.Thread(target=kill_canary_once_watched, daemon=True)
    with Traffic(deployed.settings.gateway_url) as traffic:
        killer.start()
        promoted = auto_rollout(deployed, messages).auto(
            "fraud", str(model_dirs["v2"]), [20, 60, 100]
        )
    killer.join(timeout=5)
    print("\n".join(messages))
    assert killed and not promoted
    assert (
        "ready" in messages[-1]
        and "rolled back to fraud-predictor-00001" in messages[-1]
    )
    assert current(deployed).latest_rolledout == "fraud-predictor-00001"
    failed = sum(n for code, n in traffic.codes.items() if code != 200)
    assert failed <= 1  # one client: at most its request in flight on the dead process
