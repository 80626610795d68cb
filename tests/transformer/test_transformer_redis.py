"""The transformer on the Redis online store (`riskserve services up --redis`):
Debian's redis-server as a real process on loopback with a password, the feature
store opened through the feature layer's settings (RISKSERVE_FEATURES_*), a raw
transaction answered, and the state one request pushes read by the next."""

from __future__ import annotations

import secrets
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis
from riskserve.features.offline import write_offline_store
from riskserve.features.repo import open_store
from riskserve.localplatform.processes import ManagedProcess, free_port
from riskserve.localplatform.settings import PlatformSettings
from riskserve.model.events import card_transactions

from riskserve.services import RedisEndpoint, start_redis
from tests.fixtures.contract_models import fraud_model, write_onnx
from tests.serving.predictor_helpers import Predictor, start_predictor
from tests.transformer.transformer_helpers import (
    MATERIALISE_FROM,
    MATERIALISE_TO,
    FeatureRepo,
    TransformerProcess,
    outputs,
    raw_request,
    start_transformer,
)

pytestmark = pytest.mark.e2e


@dataclass
class RedisStack:
    redis: RedisEndpoint
    redis_process: ManagedProcess
    repo: FeatureRepo
    predictor: Predictor
    transformer: TransformerProcess

    @property
    def last_time_us(self) -> int:
        return int(self.repo.events.transactions["event_timestamp"].max().value // 1000)


def card_feature_repo(folder: Path) -> FeatureRepo:
    """The cards' register and activity log materialised into the online store the
    settings name (the card views only: what the fraud transformer reads)."""
    events = card_transactions(cards=50, days=3, seed=11)
    repo, offline = folder / "repo", folder / "offline"
    write_offline_store(offline, events.cards, events.transactions)
    store = open_store(repo, offline)
    store.materialize(
        MATERIALISE_FROM,
        MATERIALISE_TO,
        feature_views=["card_profile", "card_activity"],
    )
    return FeatureRepo(repo, events)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisStack]:
    folder = tmp_path_factory.mktemp("transformer-redis")
    patch = pytest.MonkeyPatch()
    process, endpoint = start_redis(
        folder / "redis", free_port(), "r" + secrets.token_hex(12)
    )
    started: list = [process]
    try:
        # The repository built and materialised into Redis, as the cluster's Jobs
        # do: the feature layer reads where the online store is from its settings.
        for key, value in endpoint.client_env().items():
            patch.setenv(key, value)
        repo = card_feature_repo(folder)
        assert not (repo.repo / "online.db").exists()  # nothing went to SQLite
        for name in ("PROMETHEUS_MULTIPROC_DIR", "PROMETHEUS_MULTIPROCESS_DIR"):
            patch.delenv(name, raising=False)
        write_onnx(fraud_model(), folder / "model")
        predictor = start_predictor(folder, "predictor", "fraud", folder / "model")
        started.append(predictor)
        transformer = start_transformer(
            folder,
            "transformer",
            "fraud",
            f"127.0.0.1:{predictor.http_port}",
            repo.repo,
            env=endpoint.client_env(),
        )
        started.append(transformer)
        yield RedisStack(endpoint, process, repo, predictor, transformer)
    finally:
        for item in reversed(started):
            item.stop()
        patch.undo()


def test_redis_runs_with_a_password_on_loopback_only(stack: RedisStack) -> None:
    config = Path(stack.redis_process.argv[-1])
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    # The password is in the file, not on the command line `ps` shows.
    assert stack.redis.password not in " ".join(stack.redis_process.argv)
    with pytest.raises(redis.AuthenticationError):
        redis.Redis(port=stack.redis.port, password="wrong").ping()
    with pytest.raises(redis.AuthenticationError, match="required"):
        redis.Redis(port=stack.redis.port).ping()


def test_a_raw_transaction_is_scored_from_redis_and_its_state_read_next(
    stack: RedisStack,
) -> None:
    client = redis.Redis(port=stack.redis.port, password=stack.redis.password)
    assert client.dbsize() > 0  # the materialised profiles and states
    card = str(stack.repo.events.cards["card_id"].iloc[2])
    first_at = stack.last_time_us + 3_600_000_000
    first = stack.transformer.client.post(
        "/v2/models/fraud/infer",
        json=raw_request(card, first_at, 120.0, "m-redis-1", 44.0, 8.0),
    )
    assert first.status_code == 200, first.text
    got = outputs(first)
    assert got["card_registered"] == [1] and got["unknown_entity"] == [False]
    assert got["features_unavailable"] == [False]
    assert got["repeat_retailer"] == [0.0]
    assert 0.0 <= got["fraud_probability"][0] <= 1.0
    # The push lands in Redis after the answer; the next request reads it.
    second = None
    for _ in range(100):
        second = outputs(
            stack.transformer.client.post(
                "/v2/models/fraud/infer",
                json=raw_request(
                    card, first_at + 60_000_000, 30.0, "m-redis-1", 44.1, 8.1
                ),
            )
        )
        if second["card_transactions"][0] > got["card_transactions"][0]:
            break
    assert second is not None
    assert second["card_transactions"] == [got["card_transactions"][0] + 1]
    assert second["repeat_retailer"] == [1.0]
    assert second["transactions_1h"][0] >= 1


def test_a_card_never_seen_gets_the_defaults_from_redis(stack: RedisStack) -> None:
    answer = stack.transformer.client.post(
        "/v2/models/fraud/infer",
        json=raw_request("card-not-in-redis", stack.last_time_us + 1),
    )
    assert answer.status_code == 200, answer.text
    assert outputs(answer)["unknown_entity"] == [True]


def test_services_up_redis_starts_and_stops_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`riskserve services up --redis` / `down`: the pidfile, the password kept
    mode 600 in the state folder, the client variables it hands back."""
    from riskserve import local_services

    port = free_port()
    monkeypatch.setenv("RISKSERVE_FEATURES_REDIS_PORT", str(port))
    settings = PlatformSettings(state_dir=tmp_path / "state", mlflow_port=free_port())
    monkeypatch.setattr(local_services, "start_mlflow", lambda *a, **k: None)
    try:
        env = local_services.up(
            settings, use_s3=False, say=lambda _: None, use_redis=True
        )
        password_file = settings.state_dir / "local-redis-password"
        assert stat.S_IMODE(password_file.stat().st_mode) == 0o600
        assert (
            env["RISKSERVE_FEATURES_REDIS_PASSWORD"]
            == password_file.read_text().strip()
        )
        assert env["RISKSERVE_FEATURES_REDIS_PORT"] == str(port)
        assert local_services.status(settings)["redis"].startswith("running")
        assert redis.Redis(
            port=port, password=env["RISKSERVE_FEATURES_REDIS_PASSWORD"]
        ).ping()
    finally:
        local_services.down(settings, say=lambda _: None)
    assert local_services.status(settings)["redis"] == "stopped"
    with pytest.raises(redis.ConnectionError):
        redis.Redis(port=port, socket_connect_timeout=0.5).ping()
