"""A transformer calls its predictor revision directly while that revision alone
takes the predictor component's traffic (one hop fewer), and through the gateway's
predictor listener, which splits, whenever there is a split to play.

The end-to-end test runs the daemon, transformer and predictor processes; the
in-process tests hold which splits are direct and how a transformer reads the file."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest
from riskserve.localplatform.client import apply_yaml, status, traffic, wait_ready
from riskserve.localplatform.direct_routes import direct_predictors, write_routes
from riskserve.localplatform.state import InferenceServiceState, Revision
from riskserve.transformer.predictor_routes import DirectRoutes

from tests.localplatform.platform_helpers import Platform
from tests.localplatform.test_transformer_platform import (
    KEY,
    isvc_with_transformer,
    served,
)
from tests.transformer.transformer_helpers import (
    FeatureRepo,
    build_feature_repo,
)

# -- in-process -----------------------------------------------------------------------


@pytest.mark.inprocess
def test_only_a_one_revision_split_without_shadow_is_named_direct(
    tmp_path: Path,
) -> None:
    def service(
        routes: list[tuple[int, int]], transformer: bool = True, shadow: bool = False
    ) -> InferenceServiceState:
        state = InferenceServiceState(name="fraud", spec={})
        state.transformer = (
            InferenceServiceState(name="fraud", spec={}) if transformer else None
        )
        revisions = [
            Revision(
                name=f"fraud-predictor-{i:05d}",
                storage_uri="/m",
                predictor={},
                spec_hash="h",
                ready=True,
                http_port=port,
            )
            for i, (port, _) in enumerate(routes, 1)
        ]
        split = [(r, p) for r, (_, p) in zip(revisions, routes, strict=True)]
        state.routes = lambda: split  # type: ignore[method-assign]
        state.shadow_revision = lambda: revisions[-1] if shadow else None  # type: ignore[method-assign]
        return state

    assert direct_predictors([service([(4001, 100)])]) == {"fraud": "127.0.0.1:4001"}
    # A canary, a shadow, no transformer in front, nothing ready: the listener.
    assert direct_predictors([service([(4001, 90), (4002, 10)])]) == {}
    assert direct_predictors([service([(4001, 100)], shadow=True)]) == {}
    assert direct_predictors([service([(4001, 100)], transformer=False)]) == {}
    assert direct_predictors([service([])]) == {}

    path = tmp_path / "platform" / "routes.json"
    write_routes(path, {"fraud": "127.0.0.1:4001"})
    assert json.loads(path.read_text()) == {"predictors": {"fraud": "127.0.0.1:4001"}}
    assert [p.name for p in path.parent.iterdir()] == ["routes.json"]  # no leftovers


@pytest.mark.inprocess
def test_a_transformer_follows_the_routes_file_and_takes_loopback_only(
    tmp_path: Path,
) -> None:
    made: list[str] = []

    class Pool:
        def __init__(self, address: str) -> None:
            self.address, self.closed = address, False
            made.append(address)

        def close(self) -> None:
            self.closed = True

    path = tmp_path / "routes.json"
    routes = DirectRoutes(path, Pool)
    assert routes.refresh() is False  # no file: nothing direct
    assert routes.pool("fraud") is None

    path.write_text(
        json.dumps(
            {
                "predictors": {
                    "fraud": "127.0.0.1:4001",
                    "credit": "10.0.0.7:4002",  # not loopback: never taken
                    "other": "127.0.0.1:99999",
                }
            }
        )
    )
    assert routes.refresh() is True
    first = routes.pool("fraud")
    assert isinstance(first, Pool) and first.address == "127.0.0.1:4001"
    assert routes.pool("fraud") is first  # one pool per address
    assert routes.pool("credit") is None and routes.pool("other") is None

    # The split changed: the old address's connections are closed.
    path.write_text(json.dumps({"predictors": {"fraud": "127.0.0.1:4003"}}))
    os.utime(path, ns=(time.time_ns(), time.time_ns() + 1_000_000))
    assert routes.refresh() is True
    assert first.closed
    second = routes.pool("fraud")
    assert isinstance(second, Pool) and second.address == "127.0.0.1:4003"

    # A failed route is forgotten until the file changes; garbage means no route.
    routes.forget("fraud")
    assert routes.pool("fraud") is None
    path.write_text("{not json")
    os.utime(path, ns=(time.time_ns(), time.time_ns() + 2_000_000))
    assert routes.refresh() is True
    assert routes.pool("fraud") is None


# -- real processes -------------------------------------------------------------------


@pytest.fixture(scope="module")
def feature_repo(tmp_path_factory: pytest.TempPathFactory) -> FeatureRepo:
    return build_feature_repo(tmp_path_factory.mktemp("direct-route-features"))


def _predictor_requests(platform: Platform) -> dict[str, int]:
    """What the gateway's predictor listener relayed, per predictor revision."""
    listed = traffic(platform.settings)["inferenceservices"]["fraud"]["revisions"]
    return {r["name"]: r["requests"] for r in listed}


def _routes_file(platform: Platform) -> dict:
    path = platform.settings.state_dir / "platform" / "predictor-routes.json"
    return json.loads(path.read_text())["predictors"]


def _wait(predicate, what: str, seconds: float = 60) -> None:  # noqa: ANN001
    deadline = time.monotonic() + seconds
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


@pytest.mark.e2e
def test_the_transformer_skips_the_listener_only_while_one_revision_serves(
    tmp_path: Path, model_dirs: dict[str, Path], feature_repo: FeatureRepo
) -> None:
    platform = Platform(tmp_path / "state").use_key(KEY).start()
    try:
        repo = feature_repo.repo
        apply_yaml(platform.settings, isvc_with_transformer(model_dirs["v1"], repo))
        wait_ready(platform.settings, ["fraud"], 180)
        port = status(platform.settings)["revisions"]["fraud-predictor-00001"][
            "httpPort"
        ]
        _wait(
            lambda: _routes_file(platform) == {"fraud": f"127.0.0.1:{port}"},
            "the direct route",
        )
        time.sleep(0.3)  # the transformer's poll

        # One predictor revision: answered without the listener relaying any of it
        # (it relayed the transformer's metadata request at its start).
        before = _predictor_requests(platform)
        split = served(platform, feature_repo, 40)
        assert split == {("fraud-transformer-00001", "1"): 40}
        assert _predictor_requests(platform) == before

        # A predictor canary: the listener splits again, as KServe's service does.
        apply_yaml(
            platform.settings,
            isvc_with_transformer(model_dirs["v2"], repo, canary=50),
        )
        wait_ready(platform.settings, ["fraud"], 180)
        _wait(lambda: _routes_file(platform) == {}, "the split to leave the file")
        time.sleep(0.3)
        split = served(platform, feature_repo, 300)
        share = split[("fraud-transformer-00001", "2")] / 300
        print(f"predictor canary share with direct routes on: {share:.3f}")
        assert 0.38 <= share <= 0.62  # sd 2.9 points over 300: four of them
        relayed = _predictor_requests(platform)
        v1_relayed = relayed["fraud-predictor-00001"] - before["fraud-predictor-00001"]
        assert v1_relayed + relayed["fraud-predictor-00002"] == 300

        # Promoted: one revision again, direct again.
        apply_yaml(platform.settings, isvc_with_transformer(model_dirs["v2"], repo))
        wait_ready(platform.settings, ["fraud"], 180)
        _wait(lambda: bool(_routes_file(platform)), "the direct route back")
        time.sleep(0.3)
        before = _predictor_requests(platform)
        assert set(served(platform, feature_repo, 40)) == {
            ("fraud-transformer-00001", "2")
        }
        assert _predictor_requests(platform) == before

        # The predictor is SIGKILLed and restarted on another port: the transformer
        # follows the file to it; nothing stays pointed at the dead port.
        revision = status(platform.settings)["revisions"]["fraud-predictor-00002"]
        os.kill(revision["pid"], signal.SIGKILL)

        def restarted() -> bool:
            now = status(platform.settings)["revisions"]["fraud-predictor-00002"]
            return bool(now["ready"]) and now["pid"] != revision["pid"]

        _wait(restarted, "the predictor's restart", 120)
        new_port = status(platform.settings)["revisions"]["fraud-predictor-00002"][
            "httpPort"
        ]
        _wait(
            lambda: _routes_file(platform) == {"fraud": f"127.0.0.1:{new_port}"},
            "the new port in the file",
        )
        time.sleep(0.3)
        assert set(served(platform, feature_repo, 20)) == {
            ("fraud-transformer-00001", "2")
        }
    finally:
        platform.stop()
        platform.client.close()
