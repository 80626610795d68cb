"""The online side, what a transformer calls per request: the features of one
transaction from the online store and the on-demand view, and the push of the card's
new state after the answer has left.

`lookup` returns the features and the state it read; `record_transaction` advances
the card's latest state (staged or stored), so concurrent transactions of one card
all count.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pandas as pd
from feast import FeatureStore
from feast.data_source import PushMode
from feast.protos.feast.types.EntityKey_pb2 import EntityKey as EntityKeyProto
from feast.protos.feast.types.Value_pb2 import DoubleList, Int64List, StringList
from feast.protos.feast.types.Value_pb2 import Value as ValueProto
from feast.type_map import feast_value_type_to_python_type
from riskserve.features.card import (
    CONTEXT_FEATURES,
    FRAUD_FEATURES,
    STATE_FIELDS,
    VELOCITY_FEATURES,
    CardState,
    Transaction,
    advance,
    fraud_features,
)
from riskserve.features.entity_rows import EntityRows
from riskserve.features.pending_states import pending_states
from riskserve.features.repo import CARD_ACTIVITY_PUSH, FRAUD_FEATURE_VIEW
from riskserve.features.sqlite_wal import use_wal

_OUTPUTS = (*FRAUD_FEATURES, *VELOCITY_FEATURES, *CONTEXT_FEATURES)
_REFS = [
    *(f"{FRAUD_FEATURE_VIEW}:{n}" for n in _OUTPUTS),
    *(f"card_activity:{n}" for n in STATE_FIELDS),
]


@dataclass
class CardLookup:
    features: dict[str, Any]  # the fraud view's outputs, FRAUD_FEATURES first
    state: CardState  # the card's state before this transaction


def request_row(txn: Transaction) -> dict[str, Any]:
    return {
        "card_id": txn.card_id,
        "amount": float(txn.amount),
        "merchant_id": txn.merchant_id,
        "merchant_latitude": float(txn.merchant_latitude),
        "merchant_longitude": float(txn.merchant_longitude),
        "chip": int(txn.chip),
        "pin": int(txn.pin),
        "online": int(txn.online),
        "transaction_timestamp_us": int(txn.timestamp_us),
    }


def lookup(store: FeatureStore, txn: Transaction) -> CardLookup:
    """One online lookup: the card's profile and state, and the on-demand view."""
    found = store.get_online_features(
        features=_REFS, entity_rows=[request_row(txn)]
    ).to_dict()
    features = {n: found[n][0] for n in _OUTPUTS}
    state = CardState.from_row({n: found[n][0] for n in STATE_FIELDS})
    return CardLookup(features, state)


class CardStateWriter:
    """Writes a card's state to the online store's `card_activity` rows directly.

    What `FeatureStore.push` does, without its per-call work: push resolves the push
    source's feature views from the registry's protobufs on every call (tens of
    milliseconds here), while this resolves the view once and hands the provider the
    values as Feast's own protobufs. The rows are the ones a push writes.

    While the transformer batches (`riskserve.features.pending_states`) a write is
    staged and committed with the others of its loop pass; otherwise it commits now.
    `latest` is the card's state as the next write must advance it: staged, else
    stored."""

    def __init__(self, store: FeatureStore) -> None:
        self._store = store
        self._view = store.get_feature_view("card_activity")
        self._pending = pending_states(store)
        self._rows = EntityRows(store, ("card_activity",), "card_id")
        if store.config.online_store.type == "sqlite":
            use_wal(store)
        own_redis_writes(store)

    def latest(self, card_id: str) -> CardState:
        staged = self._pending.get("card_activity", card_id)
        if staged is not None:
            return staged
        (activity,) = self._rows.read(card_id)
        return CardState.from_row(activity) if activity else CardState()

    def write(self, card_id: str, timestamp_us: int, state: CardState) -> None:
        key = EntityKeyProto(
            join_keys=["card_id"], entity_values=[ValueProto(string_val=card_id)]
        )
        row = state.as_row()
        values = {
            "last_latitude": _double(row["last_latitude"]),
            "last_longitude": _double(row["last_longitude"]),
            "last_timestamp_us": _int(row["last_timestamp_us"]),
            "median_purchase": _double(row["median_purchase"]),
            "transactions": _int(row["transactions"]),
            "merchants_seen": ValueProto(
                string_list_val=StringList(val=row["merchants_seen"])
            ),
            "recent_amounts": ValueProto(
                double_list_val=DoubleList(val=row["recent_amounts"])
            ),
            "recent_timestamps_us": ValueProto(
                int64_list_val=Int64List(val=row["recent_timestamps_us"])
            ),
            "recent_window_amounts": ValueProto(
                double_list_val=DoubleList(val=row["recent_window_amounts"])
            ),
        }
        when = datetime.fromtimestamp(timestamp_us / 1e6, tz=UTC)
        self._pending.write(self._view, card_id, key, values, when, state)


def own_redis_writes(store: FeatureStore) -> None:
    """Feast's Redis store skips a write whose event time is not later than the
    stored row's (its dedup read). A state write advances the entity's latest state
    (`latest`), whatever the event's own time: two transactions of a card scored out
    of time order must both count, so the writer turns the check off for its store
    (`skip_dedup`, which also saves the read: one round trip per batch)."""
    if store.config.online_store.type == "redis":
        store.config.online_store.skip_dedup = True


def _double(value: float | None) -> ValueProto:
    return ValueProto() if value is None else ValueProto(double_val=value)


def _int(value: int | None) -> ValueProto:
    return ValueProto() if value is None else ValueProto(int64_val=value)


class CardReader:
    """`lookup` without Feast's per-request machinery: the card's two rows
    (`card_profile`, `card_activity`) read in one statement (`EntityRows`), a state
    staged by a write not yet committed taking the stored one's place, and
    `fraud_features` applied, the function the on-demand view runs. The same stored
    values and the same code, so the same features (tests/features/test_skew.py
    holds it so); a fraction of the time."""

    def __init__(self, store: FeatureStore) -> None:
        self._rows = EntityRows(store, ("card_profile", "card_activity"), "card_id")
        self._pending = pending_states(store)

    def lookup(self, txn: Transaction) -> CardLookup:
        home, activity = self._rows.read(txn.card_id)
        staged = self._pending.get("card_activity", txn.card_id)
        if staged is not None:
            state = staged
        else:
            state = CardState.from_row(activity) if activity else CardState()
        features = fraud_features(
            txn,
            state,
            home.get("home_latitude") if home else None,
            home.get("home_longitude") if home else None,
        )
        return CardLookup(features, state)


def _python(values: dict[str, ValueProto]) -> dict[str, Any]:
    return {name: feast_value_type_to_python_type(v) for name, v in values.items()}


def record_transaction(
    writer: CardStateWriter, txn: Transaction, state: CardState
) -> CardState:
    """Write the card's state after `txn` to the online store; call it after
    answering. Returns the new state.

    `state` is the state the lookup read; the write advances the card's latest state
    instead (`CardStateWriter.latest`: staged or stored), which is `state` unless
    another transaction of the card was written since the lookup. So two transactions
    of one card scored at once in one process both count (no lost update). Across
    processes (several transformer replicas) two read-advance-writes of one card can
    still interleave: docs/transformer.md says what holds."""
    del state  # the lookup's; possibly older than the latest (see above)
    new = advance(writer.latest(txn.card_id), txn)
    writer.write(txn.card_id, txn.timestamp_us, new)
    return new


def push_transaction(
    store: FeatureStore, txn: Transaction, state: CardState
) -> CardState:
    """The same update through Feast's push API (`card_activity_push`): slower, for
    callers that hold no `CardStateWriter`."""
    new = advance(state, txn)
    row = {
        "card_id": [txn.card_id],
        "event_timestamp": [pd.Timestamp(txn.timestamp_us, unit="us", tz="UTC")],
        **{k: [v] for k, v in new.as_row().items()},
    }
    store.push(CARD_ACTIVITY_PUSH, pd.DataFrame(row), to=PushMode.ONLINE)
    return new
