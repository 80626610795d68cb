"""The feature layer's per-request costs (SQLite online store), not a timed test:

- lookup: `riskserve.features.online.lookup`, one card's profile and state from the
  online store plus the on-demand view (the seven fraud features, velocity, context);
- the direct reader (`CardReader`): the same rows and the same function without
  Feast's per-request conversion and on-demand machinery;
- compute only: `riskserve.features.card.fraud_features` on a state in memory;
- write: the card's new state after a scored transaction (`record_transaction`:
  `advance` + `CardStateWriter`), and the same through Feast's `store.push`;
- the training set: Feast's `get_historical_features` over the event log, and the
  job's `merge_asof` join with the same on-demand view, rows per second.

    python -m bench.feature_lookup [--cards 2000] [--days 30] [--calls 2000]
"""

from __future__ import annotations

import argparse
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
from riskserve.features.card import CardState, advance, fraud_features
from riskserve.features.offline import (
    card_activity_log,
    fraud_training_set,
    fraud_training_set_asof,
    transactions,
    write_offline_store,
)
from riskserve.features.online import (
    CardReader,
    CardStateWriter,
    lookup,
    push_transaction,
    record_transaction,
)
from riskserve.features.repo import open_store
from riskserve.model.events import card_transactions


def percentiles(samples: list[float]) -> str:
    ms = np.array(samples) * 1e3
    return (
        f"p50 {np.percentile(ms, 50):.3f} ms, p99 {np.percentile(ms, 99):.3f} ms "
        f"({len(ms)} calls)"
    )


def timed(calls: int, fn: Callable[[int], object]) -> list[float]:
    out = []
    for i in range(calls):
        t0 = time.perf_counter()
        fn(i)
        out.append(time.perf_counter() - t0)
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.feature_lookup")
    parser.add_argument("--cards", type=int, default=2_000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--calls", type=int, default=2_000)
    parser.add_argument(
        "--feast-rows",
        type=int,
        default=2_000,
        help="rows of the get_historical_features timing (its cost grows with "
        "rows x history per card: 20,000 rows took 529 s)",
    )
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore", RuntimeWarning)  # Feast: ODFVs "experimental"

    events = card_transactions(args.cards, args.days, seed=7)
    log = events.transactions
    print(f"{args.cards} cards, {len(log)} transactions over {args.days} days")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        write_offline_store(root / "offline", events.cards, log)
        store = open_store(root / "repo", root / "offline")
        store.write_to_online_store(
            "card_profile", events.cards.assign(event_timestamp=events.cards.issued_at)
        )
        # Every card's latest state online, as after a replay of the log.
        writer = CardStateWriter(store)
        states = card_activity_log(log, events.cards).groupby("card_id").tail(1)
        for row in states.to_dict("records"):
            ts = int(row["event_timestamp"].value // 1_000)
            writer.write(row["card_id"], ts, CardState.from_row(row))

        # Requests: the last day's transactions, scored against the stored state.
        recent = list(transactions(log.tail(args.calls)))
        for txn in recent[:100]:  # warm the registry cache and SQLite pages
            lookup(store, txn)
        looked = timed(len(recent), lambda i: lookup(store, recent[i]))
        print(f"lookup + on-demand view (one card, SQLite): {percentiles(looked)}")

        reader = CardReader(store)
        direct = timed(len(recent), lambda i: reader.lookup(recent[i]))
        print(f"lookup, direct reader (same rows, same code): {percentiles(direct)}")

        found = [lookup(store, t) for t in recent]
        compute = timed(
            len(recent),
            lambda i: fraud_features(recent[i], found[i].state, 48.0, 2.0),
        )
        print(f"compute only (fraud_features in memory): {percentiles(compute)}")
        advanced = timed(len(recent), lambda i: advance(found[i].state, recent[i]))
        print(f"advance only (the new state in memory): {percentiles(advanced)}")

        wrote = timed(
            len(recent), lambda i: record_transaction(writer, recent[i], found[i].state)
        )
        print(f"write (record_transaction, WAL): {percentiles(wrote)}")
        pushes = min(200, len(recent))
        pushed = timed(
            pushes, lambda i: push_transaction(store, recent[i], found[i].state)
        )
        print(f"write through Feast's store.push: {percentiles(pushed)}")

        rows = min(len(log), args.feast_rows)
        t0 = time.perf_counter()
        fraud_training_set(store, log.head(rows))
        took = time.perf_counter() - t0
        print(
            f"training set, Feast get_historical_features ({rows} rows): "
            f"{took:.1f} s, {rows / took:,.0f} rows/s"
        )
        t0 = time.perf_counter()
        fraud_training_set_asof(store, root / "offline", log)
        took = time.perf_counter() - t0
        print(
            f"training set, merge_asof + the on-demand view ({len(log)} rows): "
            f"{took:.1f} s, {len(log) / took:,.0f} rows/s"
        )


if __name__ == "__main__":
    main()
