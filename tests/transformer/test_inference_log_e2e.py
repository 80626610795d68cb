"""The transformer's inference log as it runs: a real predictor, a Feast repository
with the SQLite online store, and `python -m riskserve.transformer` logging to a
folder. Raw transactions go in from several clients, the transformer is SIGKILLed
while they do, a new one starts on the same log, and every request that was answered
is in the published log; then `riskserve monitor` reads it."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import orjson
import pytest
from riskserve.features.card import FRAUD_FEATURES
from riskserve.monitoring.cli import main as monitor_main

from tests.fixtures.contract_models import fraud_model, write_onnx
from tests.monitoring.log_helpers import fraud_profile
from tests.serving.predictor_helpers import Predictor, start_predictor
from tests.transformer.transformer_helpers import (
    FeatureRepo,
    build_feature_repo,
    raw_request,
    start_transformer,
)

pytestmark = pytest.mark.e2e

CLIENTS = 4


@dataclass
class Stack:
    folder: Path
    repo: FeatureRepo
    predictor: Predictor
    log_root: Path

    @property
    def env(self) -> dict[str, str]:
        # A long flush: nothing is published before the kill, so what the log holds
        # afterwards came from the spool the killed process left.
        return {
            "RISKSERVE_TRANSFORMER_INFERENCE_LOG_URI": str(self.log_root),
            "RISKSERVE_TRANSFORMER_INFERENCE_LOG_FLUSH_SECONDS": "600",
        }


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    monkeypatch_env = pytest.MonkeyPatch()
    folder = tmp_path_factory.mktemp("transformer-log")
    repo = build_feature_repo(folder, cards=20, days=2)
    write_onnx(fraud_model(), folder / "model")
    for name in ("PROMETHEUS_MULTIPROC_DIR", "PROMETHEUS_MULTIPROCESS_DIR"):
        monkeypatch_env.delenv(name, raising=False)
    predictor = start_predictor(folder, "predictor", "fraud", folder / "model")
    try:
        yield Stack(folder, repo, predictor, folder / "log")
    finally:
        predictor.stop()
        monkeypatch_env.undo()


def published_records(root: Path) -> dict[str, dict]:
    return {
        record["request_id"]: record
        for path in root.glob("fraud/*/*.jsonl")
        for record in map(orjson.loads, path.read_bytes().splitlines())
    }


def send_until_killed(stack: Stack, url: str, pid: int) -> set[str]:
    """Raw transactions from CLIENTS threads; SIGKILL `pid` once 60 are answered;
    the ids that got their 200."""
    cards = list(stack.repo.events.cards["card_id"].astype(str))
    start_us = int(
        stack.repo.events.transactions["event_timestamp"].max().value // 1000
    )
    answered: set[str] = set()
    lock = threading.Lock()
    killed = threading.Event()

    def client(number: int) -> None:
        with httpx.Client(base_url=url, timeout=10) as session:
            for i in range(10_000):
                if killed.is_set():
                    return
                request = raw_request(
                    cards[(number + i) % len(cards)], start_us + i * 1_000_000
                )
                request["id"] = f"c{number}-{i}"
                try:
                    answer = session.post(
                        "/v2/models/fraud/infer", content=orjson.dumps(request)
                    )
                except httpx.HTTPError:
                    return  # the transformer is gone: this one was not answered
                assert answer.status_code == 200, answer.text
                with lock:
                    answered.add(answer.json()["id"])
                    if len(answered) >= 60 and not killed.is_set():
                        os.kill(pid, signal.SIGKILL)
                        killed.set()

    threads = [threading.Thread(target=client, args=(n,)) for n in range(CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert killed.is_set(), "the transformer was never killed"
    return answered


def test_every_answered_request_survives_a_sigkill_and_the_monitor_reads_it(
    stack: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    host = f"127.0.0.1:{stack.predictor.http_port}"
    first = start_transformer(
        stack.folder, "logged", "fraud", host, stack.repo.repo, env=stack.env
    )
    try:
        answered = send_until_killed(stack, first.url, first.process.pid)
        first.process.popen.wait(10)  # type: ignore[union-attr]
        assert first.process.returncode == -signal.SIGKILL
        assert published_records(stack.log_root) == {}  # all still in the spool
    finally:
        first.stop()
    # A new transformer on the same log publishes what the killed one left.
    second = start_transformer(
        stack.folder, "restarted", "fraud", host, stack.repo.repo, env=stack.env
    )
    try:
        deadline = time.monotonic() + 30
        while not answered <= set(published_records(stack.log_root)):
            assert time.monotonic() < deadline, (
                f"{len(answered - set(published_records(stack.log_root)))} answered "
                "requests are not in the published log"
            )
            time.sleep(0.2)
    finally:
        second.stop()
    records = published_records(stack.log_root)
    assert answered <= set(records)
    record = records[min(answered)]
    assert record["stage"] == "transformer" and record["model_name"] == "fraud"
    assert list(record["inputs"]) == list(FRAUD_FEATURES)
    assert record["raw_inputs"]["card_id"][0] in set(
        stack.repo.events.cards["card_id"].astype(str)
    )
    assert set(record["outputs"]) == {"fraud_probability", "is_fraud"}
    assert {"unknown_entity", "features_unavailable"} <= set(record["features"])

    # The monitor reads the transformer's records: the features as served.
    profile = fraud_profile().save(stack.folder / "reference_profile.json")
    code = monitor_main(
        ["fraud", "--log", str(stack.log_root), "--reference-data", str(profile)]
        + ["--json", "--no-report", "--since", "1h"]
    )
    out, err = capsys.readouterr()
    assert code in (0, 3), err
    result = json.loads(out)
    assert result["rows"] == len(records)
    assert f"{len(records)} transformer records" in err
    assert {f["name"] for f in result["features"]} == set(FRAUD_FEATURES)
