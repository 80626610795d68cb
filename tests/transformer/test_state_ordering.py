"""Per-entity write ordering: concurrent transactions of one card, each scored from
the state its lookup read, all count in the card's final state (no lost update), and
a lookup of a card whose push is staged but not committed sees the staged state."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from riskserve.features.card import CardState, Transaction
from riskserve.features.online import CardReader, CardStateWriter, record_transaction
from riskserve.features.pending_states import pending_states
from riskserve.transformer.features_source import (
    PushHooks,
    PushWorker,
    open_feature_store,
)

from tests.asyncio_runner import run
from tests.fixtures.contract_models import fraud_model, write_onnx
from tests.transformer.transformer_helpers import (
    FeatureRepo,
    TransformerStack,
    build_feature_repo,
    counter,
    raw_request,
    transformer_stack,
    wait_for_pushes,
)

CONCURRENT = 40


def _txn(card: str, at_us: int, amount: float) -> Transaction:
    return Transaction(card, at_us, amount, f"m-{int(amount)}", 48.85, 2.35, 1, 0, 0)


@pytest.mark.inprocess
def test_staged_pushes_are_read_back_and_all_count(tmp_path: Path) -> None:
    """The push worker's loop mode, on a real SQLite store: lookups all made before
    any push (as concurrent requests are), pushes staged in one pass and flushed in
    the next; a lookup in between sees the staged state."""
    repo = build_feature_repo(tmp_path, cards=5, days=1)
    store = open_feature_store(repo.repo)
    pending = pending_states(store)
    pending.batching = True
    reader, writer = CardReader(store), CardStateWriter(store)
    pushed: list[float] = []
    failed: list[str] = []
    worker = PushWorker(
        lambda txn, state: record_transaction(writer, txn, state),
        100,
        PushHooks(pushed.append, failed.append, lambda _: None),
        in_thread=False,
        flush=pending.flush,
    )
    card = "card-ordering-1"
    base = 1_800_000_000_000_000
    txns = [_txn(card, base + i * 1_000_000, 10.0 + i) for i in range(10)]

    async def scenario() -> CardState:
        found = [reader.lookup(t) for t in txns]  # all read the empty state
        assert {f.features["card_transactions"] for f in found} == {0}
        for t, f in zip(txns, found, strict=True):
            worker.submit(t, f.state)
        # Staged, not committed: a lookup sees all ten.
        assert len(pending) == 1
        staged = reader.lookup(_txn(card, base + 20_000_000, 1.0))
        assert staged.features["card_transactions"] == 10
        await asyncio.sleep(0)  # the next pass: the flush
        assert len(pending) == 0 and len(pushed) == 10
        return writer.latest(card)

    final = run(scenario())
    assert failed == []
    assert final.transactions == 10
    assert final.recent_amounts == [10.0 + i for i in range(10)]
    # Committed: a fresh reader (nothing staged) reads the same from the store.
    pending.batching = False
    fresh = CardReader(open_feature_store(repo.repo))
    assert (
        fresh.lookup(_txn(card, base + 30_000_000, 1.0)).features["card_transactions"]
        == 10
    )


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TransformerStack]:
    folder = tmp_path_factory.mktemp("ordering")
    repo: FeatureRepo = build_feature_repo(folder, cards=10, days=1)
    write_onnx(fraud_model(), folder / "model")
    with transformer_stack(folder, "fraud", folder / "model", repo.repo) as started:
        yield started


@pytest.mark.e2e
def test_concurrent_requests_of_one_card_all_count(stack: TransformerStack) -> None:
    """Forty transactions of one new card sent at once to a transformer process:
    every answer scored, and the card's final state counts all forty."""
    transformer = stack.transformer
    card = "card-concurrent-1"
    base = 1_800_000_000_000_000
    pushed = counter(transformer, "riskserve_transformer_pushes_total")

    async def send_all() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=transformer.url, timeout=30) as client:
            return await asyncio.gather(
                *(
                    client.post(
                        "/v2/models/fraud/infer",
                        json=raw_request(card, base + i * 1_000_000, 10.0 + i),
                    )
                    for i in range(CONCURRENT)
                )
            )

    answers = run(send_all())
    assert [a.status_code for a in answers] == [200] * CONCURRENT
    wait_for_pushes(transformer, pushed + CONCURRENT)
    after = transformer.client.post(
        "/v2/models/fraud/infer",
        json=raw_request(card, base + 3_600_000_000, 5.0),
    )
    seen = {o["name"]: o["data"] for o in after.json()["outputs"]}
    assert seen["card_transactions"] == [CONCURRENT]
    assert counter(transformer, "riskserve_transformer_push_failures_total") == 0


@pytest.mark.inprocess
def test_the_push_thread_commits_what_it_drained(tmp_path: Path) -> None:
    """`STORE_IO=thread`: the push thread stages what it drains from its queue and
    commits it; every transaction counts once the worker is closed."""
    repo = build_feature_repo(tmp_path, cards=5, days=1)
    store = open_feature_store(repo.repo)
    pending = pending_states(store)
    pending.batching = True
    reader, writer = CardReader(store), CardStateWriter(store)
    pushed: list[float] = []
    failed: list[str] = []
    worker = PushWorker(
        lambda txn, state: record_transaction(writer, txn, state),
        100,
        PushHooks(pushed.append, failed.append, lambda _: None),
        in_thread=True,
        flush=pending.flush,
    )
    card = "card-ordering-thread"
    base = 1_800_000_000_000_000
    for i in range(20):
        txn = _txn(card, base + i * 1_000_000, 5.0 + i)
        worker.submit(txn, reader.lookup(txn).state)
    assert worker.close(drain_seconds=10.0) == 0
    assert failed == [] and len(pushed) == 20 and len(pending) == 0
    assert writer.latest(card).transactions == 20


@pytest.mark.inprocess
def test_a_failed_commit_counts_every_state_of_the_batch(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The store refuses the batch (its table is gone): each staged state is counted
    as failed, one log line names how many and which cards, nothing stays staged."""
    repo = build_feature_repo(tmp_path, cards=5, days=1)
    store = open_feature_store(repo.repo)
    pending = pending_states(store)
    pending.batching = True
    writer = CardStateWriter(store)
    pushed: list[float] = []
    failed: list[str] = []
    worker = PushWorker(
        lambda txn, state: record_transaction(writer, txn, state),
        100,
        PushHooks(pushed.append, failed.append, lambda _: None),
        in_thread=False,
        flush=pending.flush,
    )
    base = 1_800_000_000_000_000
    conn = store._get_provider().online_store._get_conn(store.config)  # type: ignore[attr-defined]

    async def scenario() -> None:
        for i, card in enumerate(("card-a", "card-b", "card-c")):
            worker.submit(_txn(card, base + i, 10.0), CardState())
        assert len(pending) == 3  # staged in this pass
        conn.execute('ALTER TABLE "riskserve_card_activity" RENAME TO "gone"')
        await asyncio.sleep(0)  # the next pass: the flush, refused

    with caplog.at_level(logging.ERROR, logger="transformer"):
        run(scenario())
    assert failed == ["error"] * 3 and pushed == [] and len(pending) == 0
    (record,) = caplog.records
    assert record.getMessage() == "state updates failed"
    assert "3 state write(s) lost (card-a, card-b, card-c)" in record.__dict__["error"]
