"""Issue 27's done-when: the records of 10,000 decisions are queryable by id after a
restart. Real processes: a predictor, a transformer with the starter fraud policy and
the inference log on (a Feast repository with the SQLite online store in front), 1,000
requests of 10 transactions answered, the transformer SIGKILLed before it published
any of them, a new one started on the same log (it publishes what the killed one
spooled), the records pass run (twice), then every decision looked up by its request
id and compared with the answer its client got; a sample through the CLI."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import orjson
import pytest
from riskserve.governance.records_compaction import count_decisions
from riskserve.governance.records_location import open_location
from riskserve.governance.records_query import find
from riskserve.governance.settings import GovernanceSettings
from riskserve.transformer.policy import load_policy

from tests.fixtures.contract_models import fraud_model, write_onnx
from tests.serving.predictor_helpers import Predictor, start_predictor
from tests.transformer.transformer_helpers import (
    REPO_ROOT,
    FeatureRepo,
    build_feature_repo,
    raw_request,
    start_transformer,
)

pytestmark = pytest.mark.e2e

FRAUD_POLICY = REPO_ROOT / "policies" / "fraud.yaml"
REQUESTS = 1_000
ROWS = 10
CLIENTS = 4
POLICY_OUTPUTS = ("action", "policy_version", "policy_rule", "reason_code")


@dataclass
class Stack:
    folder: Path
    repo: FeatureRepo
    predictor: Predictor


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    monkeypatch_env = pytest.MonkeyPatch()
    folder = tmp_path_factory.mktemp("decision-records")
    repo = build_feature_repo(folder, cards=20, days=2)
    write_onnx(fraud_model(), folder / "model")
    for name in ("PROMETHEUS_MULTIPROC_DIR", "PROMETHEUS_MULTIPROCESS_DIR"):
        monkeypatch_env.delenv(name, raising=False)
    predictor = start_predictor(folder, "predictor", "fraud", folder / "model")
    try:
        yield Stack(folder, repo, predictor)
    finally:
        predictor.stop()
        monkeypatch_env.undo()


def batch(cards: list[str], first: int, start_us: int) -> dict:
    """ROWS raw transactions in one request (amounts from 5 to 9,000: the policy's
    allow, challenge and block all occur)."""
    rows = [
        raw_request(
            cards[(first + i) % len(cards)],
            start_us + (first + i) * 1_000_000,
            amount=float(5 + ((first + i) * 37) % 9_000),
        )
        for i in range(ROWS)
    ]
    inputs = []
    for column, tensor in enumerate(rows[0]["inputs"]):
        inputs.append(
            {
                **tensor,
                "shape": [ROWS],
                "data": [row["inputs"][column]["data"][0] for row in rows],
            }
        )
    return {"inputs": inputs}


def answer_all(stack: Stack, url: str) -> dict[tuple[str, int], dict]:
    """REQUESTS requests from CLIENTS threads; per (request id, row) what its client
    got: the card and the policy's outputs."""
    cards = list(stack.repo.events.cards["card_id"].astype(str))
    start_us = int(
        stack.repo.events.transactions["event_timestamp"].max().value // 1000
    )
    answered: dict[tuple[str, int], dict] = {}
    lock = threading.Lock()
    failures: list[str] = []

    def client(number: int) -> None:
        with httpx.Client(base_url=url, timeout=30) as session:
            for i in range(number, REQUESTS, CLIENTS):
                request = {"id": f"d-{i:04d}", **batch(cards, i * ROWS, start_us)}
                answer = session.post(
                    "/v2/models/fraud/infer", content=orjson.dumps(request)
                )
                if answer.status_code != 200:
                    failures.append(answer.text[:200])
                    return
                got = {o["name"]: o["data"] for o in answer.json()["outputs"]}
                card_ids = request["inputs"][0]["data"]
                with lock:
                    for row in range(ROWS):
                        answered[(request["id"], row)] = {
                            "card_id": card_ids[row],
                            **{name: got[name][row] for name in POLICY_OUTPUTS},
                        }

    threads = [threading.Thread(target=client, args=(n,)) for n in range(CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(600)
    assert not failures, failures[0]
    return answered


def published_lines(root: Path) -> int:
    return sum(
        len(path.read_bytes().splitlines()) for path in root.glob("fraud/*/*.jsonl")
    )


def test_ten_thousand_decisions_are_queryable_by_id_after_a_sigkill_and_a_restart(
    stack: Stack,
) -> None:
    log, records = stack.folder / "log", stack.folder / "records"
    env = {
        "RISKSERVE_TRANSFORMER_POLICY_URI": f"file://{FRAUD_POLICY}",
        "RISKSERVE_TRANSFORMER_INFERENCE_LOG_URI": str(log),
        # Nothing is published before the kill: every record comes from the spool
        # the killed process left.
        "RISKSERVE_TRANSFORMER_INFERENCE_LOG_FLUSH_SECONDS": "600",
        "RISKSERVE_TRANSFORMER_INFERENCE_LOG_BATCH_SIZE": "100000",
    }
    host = f"127.0.0.1:{stack.predictor.http_port}"
    first = start_transformer(
        stack.folder, "records-first", "fraud", host, stack.repo.repo, env=env
    )
    try:
        answered = answer_all(stack, first.url)
        os.kill(first.process.pid, signal.SIGKILL)
        first.process.popen.wait(10)  # type: ignore[union-attr]
        assert first.process.returncode == -signal.SIGKILL
    finally:
        first.stop()
    assert len(answered) == REQUESTS * ROWS
    assert published_lines(log) == 0
    second = start_transformer(
        stack.folder, "records-restarted", "fraud", host, stack.repo.repo, env=env
    )
    try:
        deadline = time.monotonic() + 60
        while published_lines(log) < REQUESTS:
            assert time.monotonic() < deadline, (
                f"{published_lines(log)} of {REQUESTS} requests published"
            )
            time.sleep(0.2)
    finally:
        second.stop()

    compact = [
        sys.executable,
        "-m",
        "riskserve.governance",
        "records",
        "compact",
        "--log",
        str(log),
        "--records",
        str(records),
    ]
    for expected in (f"{REQUESTS * ROWS} new", "0 new"):  # the second adds nothing
        done = subprocess.run(
            compact, capture_output=True, text=True, timeout=300, cwd=REPO_ROOT
        )
        assert done.returncode == 0, done.stderr
        assert done.stdout.startswith(f"{expected} decision records"), done.stdout
        assert f"{REQUESTS * ROWS} decisions recorded" in done.stdout
        assert "log files in" in done.stderr  # progress
    location = open_location(str(records), GovernanceSettings())
    assert count_decisions(location) == REQUESTS * ROWS

    # Every decision, by its request id, against what its client was answered.
    version = load_policy(str(FRAUD_POLICY)).version
    actions = set()
    for request in sorted({request_id for request_id, _ in answered}):
        found = find(location, request)
        assert [d.row for d in found] == list(range(ROWS)), request
        for decision in found:
            got = answered[(request, decision.row)]
            assert decision.entity_id == got["card_id"]
            assert decision.action == got["action"]
            assert decision.policy_version == got["policy_version"] == version
            assert decision.policy_rule == got["policy_rule"]
            assert decision.reason_code == got["reason_code"]
            assert decision.model_name == "fraud" and decision.model_version
            assert decision.raw_inputs["card_id"] == got["card_id"]
            assert "fraud_probability" in decision.outputs
            assert "unknown_entity" in decision.features
            actions.add(decision.action)
    assert {"allow", "challenge"} <= actions

    # A sample through the CLI, as an analyst runs it.
    for request in ("d-0000", "d-0517", f"d-{REQUESTS - 1:04d}"):
        shown = subprocess.run(
            [
                sys.executable,
                "-m",
                "riskserve",
                "decisions",
                "show",
                request,
                "--records",
                str(records),
            ],
            capture_output=True,
            text=True,
            timeout=120,
            cwd=REPO_ROOT,
        )
        assert shown.returncode == 0, shown.stderr
        got = answered[(request, 3)]
        notice = shown.stdout.split("\n\n")[3]
        assert notice.startswith(f"decision {request} (row 3)")
        assert f"decision:        {got['action']} (rule {got['policy_rule']})" in notice
        assert f"applicant:       {got['card_id']}" in notice
        assert f"policy version:  {version}" in notice
        assert f"1. {got['reason_code']}" in notice
