"""A sticky experiment on the local platform, all real processes: three predictor
InferenceServices (the champion's `fraud`, model version 1; `fraud-challenger`,
version 2; `fraud-gbm`, version 9, a shadow) and the transformer of `fraud` with an
experiment file. Each card's answers name one arm and come from that arm's
predictor, the inference log records the arms, and the shadow's decisions are in the
log (shadow=true, same request id), never in an answer."""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from riskserve.localplatform.client import apply_yaml, wait_ready

from tests.localplatform.platform_helpers import (
    Platform,
    contract_models,
    isvc_yaml,
    shifted,
)
from tests.localplatform.test_transformer_platform import isvc_with_transformer
from tests.transformer.transformer_helpers import (
    FeatureRepo,
    build_feature_repo,
    outputs,
    raw_request,
)

pytestmark = pytest.mark.e2e

EXPERIMENT = """\
name: fraud-model-b
salt: e2e
arms:
  - {name: champion, share: 0.5}
  - {name: challenger, share: 0.5, predictor: fraud-challenger}
  - {name: gbm, shadow: true, predictor: fraud-gbm}
"""
VERSION_OF_ARM = {"champion": "1", "challenger": "2"}


@pytest.fixture(scope="module")
def model_dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Three fraud models the platform tells apart by their version."""
    root = tmp_path_factory.mktemp("experiment-models")
    write = contract_models.write_onnx
    return {
        "v1": write(contract_models.fraud_model(version="1"), root / "v1").parent,
        "v2": write(contract_models.fraud_model(version="2"), root / "v2").parent,
        "shifted": write(
            shifted(contract_models.fraud_model(version="9"), 3.0), root / "shifted"
        ).parent,
    }


@pytest.fixture(scope="module")
def feature_repo(tmp_path_factory: pytest.TempPathFactory) -> FeatureRepo:
    return build_feature_repo(tmp_path_factory.mktemp("experiment-features"), cards=30)


@pytest.fixture
def logged_platform(tmp_path: Path) -> Iterator[tuple[Platform, Path]]:
    log_root = tmp_path / "inference-log"
    running = Platform(tmp_path / "state")
    running.env["RISKSERVE_SERVING_INFERENCE_LOG_URI"] = str(log_root)
    running.env["RISKSERVE_SERVING_INFERENCE_LOG_FLUSH_SECONDS"] = "0.2"
    running.start()
    try:
        yield running, log_root
    finally:
        running.stop()
        running.client.close()


def transformer_records(log_root: Path, wanted: int, timeout: float = 30) -> list:
    """The transformer's published records of model fraud, once there are `wanted`."""
    deadline = time.monotonic() + timeout
    while True:
        records = [
            record
            for path in sorted((log_root / "fraud").rglob("*.jsonl"))
            for line in path.read_bytes().splitlines()
            if (record := orjson.loads(line)).get("stage") == "transformer"
        ]
        if len(records) >= wanted or time.monotonic() > deadline:
            return records
        time.sleep(0.2)


def test_each_card_is_answered_by_its_arm_and_the_shadow_only_logged(
    logged_platform: tuple[Platform, Path],
    model_dirs: dict[str, Path],
    feature_repo: FeatureRepo,
    tmp_path: Path,
) -> None:
    platform, log_root = logged_platform
    experiment = tmp_path / "experiment.yaml"
    experiment.write_text(EXPERIMENT)
    env = (
        "        env:\n"
        "          - name: RISKSERVE_TRANSFORMER_EXPERIMENT_URI\n"
        f"            value: {experiment}\n"
    )
    apply_yaml(
        platform.settings,
        "---\n".join(
            [
                isvc_yaml("fraud-challenger", model_dirs["v2"]),
                isvc_yaml("fraud-gbm", model_dirs["shifted"]),
                isvc_with_transformer(
                    model_dirs["v1"], feature_repo.repo, transformer_env=env
                ),
            ]
        ),
    )
    wait_ready(platform.settings, ["fraud-challenger", "fraud-gbm", "fraud"], 240)

    cards = [str(c) for c in feature_repo.events.cards["card_id"].iloc[:12]]
    when = int(feature_repo.events.transactions["event_timestamp"].max().value // 1000)
    answered: dict[str, set[tuple[str, str]]] = defaultdict(set)
    request_ids = set()
    for round_ in range(3):
        for i, card in enumerate(cards):
            request = raw_request(card, when + (round_ * 100 + i + 1) * 1_000_000)
            request["id"] = f"r{round_}-{i}"
            answer = platform.client.post("/v2/models/fraud/infer", json=request)
            assert answer.status_code == 200, answer.text
            got = outputs(answer)
            assert got["experiment"] == ["fraud-model-b"]
            (arm,) = got["arm"]
            version = answer.json()["model_version"]
            answered[card].add((arm, version))
            request_ids.add(request["id"])
    # sticky: one (arm, the arm predictor's version) per card, over three rounds
    for card, seen in answered.items():
        assert len(seen) == 1, (card, seen)
        ((arm, version),) = seen
        assert VERSION_OF_ARM[arm] == version  # the arm's own predictor answered
    assert {arm for ((arm, _),) in answered.values()} == {"champion", "challenger"}

    # the log: every answer's record names its arm; the shadow's, only the log
    records = transformer_records(log_root, 2 * len(request_ids))
    live = {r["request_id"]: r for r in records if not r["shadow"]}
    shadows = {r["request_id"]: r for r in records if r["shadow"]}
    assert set(live) == request_ids
    for record in live.values():
        card = record["raw_inputs"]["card_id"][0]
        ((arm, version),) = answered[card]
        assert (record["experiment"], record["arms"], record["arm"]) == (
            "fraud-model-b",
            [arm],
            arm,
        )
        assert record["model_version"] == version
    assert set(shadows) == request_ids  # the shadow decided every request
    for record in shadows.values():
        assert (record["arm"], record["model_version"]) == ("gbm", "9")
        assert record["inputs"] == live[record["request_id"]]["inputs"]
