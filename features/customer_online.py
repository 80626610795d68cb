"""The credit online side (the counterpart of `riskserve.features.online`): the
features of one checkout from the online store and the on-demand view, and the write
of the customer's new state, after a scored checkout (`record_checkout`, by the
transformer) or a payment event (`record_payment_event`, by whatever reads the
payments ledger; the transformer sees checkouts only).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from feast import FeatureStore
from feast.protos.feast.types.EntityKey_pb2 import EntityKey as EntityKeyProto
from feast.protos.feast.types.Value_pb2 import DoubleList, Int64List
from feast.protos.feast.types.Value_pb2 import Value as ValueProto
from riskserve.features.customer import (
    CREDIT_FEATURES,
    CUSTOMER_CONTEXT,
    LIST_FIELDS,
    STATE_FIELDS,
    Checkout,
    CustomerState,
    PaymentEvent,
    advance,
    credit_features,
)
from riskserve.features.entity_rows import EntityRows
from riskserve.features.online import own_redis_writes
from riskserve.features.pending_states import pending_states
from riskserve.features.repo import CREDIT_FEATURE_VIEW
from riskserve.features.sqlite_wal import use_wal

_OUTPUTS = (*CREDIT_FEATURES, *CUSTOMER_CONTEXT)
_REFS = [
    *(f"{CREDIT_FEATURE_VIEW}:{n}" for n in _OUTPUTS),
    *(f"customer_activity:{n}" for n in STATE_FIELDS),
]
_INT_LISTS = frozenset(
    n for n in LIST_FIELDS if n.endswith(("_us", "_stages", "_statuses", "_codes"))
)


@dataclass
class CustomerLookup:
    features: dict[str, Any]  # the credit view's outputs, CREDIT_FEATURES first
    state: CustomerState  # the customer's state before this checkout


def request_row(checkout: Checkout) -> dict[str, Any]:
    return {
        "customer_id": checkout.customer_id,
        "basket_amount": float(checkout.basket_amount),
        "checkout_merchant_group": checkout.merchant_group,
        "checkout_timestamp_us": int(checkout.timestamp_us),
    }


def lookup(store: FeatureStore, checkout: Checkout) -> CustomerLookup:
    """One online lookup through Feast: the customer's state and the on-demand view."""
    found = store.get_online_features(
        features=_REFS, entity_rows=[request_row(checkout)]
    ).to_dict()
    features = {n: found[n][0] for n in _OUTPUTS}
    state = CustomerState.from_row({n: found[n][0] for n in STATE_FIELDS})
    return CustomerLookup(features, state)


def _key(customer_id: str) -> EntityKeyProto:
    return EntityKeyProto(
        join_keys=["customer_id"], entity_values=[ValueProto(string_val=customer_id)]
    )


class CustomerReader:
    """`lookup` without Feast's per-request machinery (as `CardReader`): the
    customer's row read in one statement (`EntityRows`), a staged state not yet
    committed taking its place, `credit_features` applied."""

    def __init__(self, store: FeatureStore) -> None:
        self._rows = EntityRows(store, ("customer_activity",), "customer_id")
        self._pending = pending_states(store)

    def stored(self, customer_id: str) -> CustomerState:
        """The customer's state as the store holds it (nothing staged)."""
        (activity,) = self._rows.read(customer_id)
        return CustomerState.from_row(activity) if activity else CustomerState()

    def state(self, customer_id: str) -> CustomerState:
        """The customer's latest state: staged by a write not yet committed, else
        stored."""
        staged = self._pending.get("customer_activity", customer_id)
        return staged if staged is not None else self.stored(customer_id)

    def lookup(self, checkout: Checkout) -> CustomerLookup:
        state = self.state(checkout.customer_id)
        return CustomerLookup(credit_features(checkout, state), state)


class CustomerStateWriter:
    """Writes a customer's state to the online store's `customer_activity` row, the
    row a push through `customer_activity_push` writes (see `CardStateWriter`: staged
    while the transformer batches, else committed at once)."""

    def __init__(self, store: FeatureStore) -> None:
        self._view = store.get_feature_view("customer_activity")
        self._pending = pending_states(store)
        self.reader = CustomerReader(store)
        if store.config.online_store.type == "sqlite":
            use_wal(store)
        own_redis_writes(store)

    def latest(self, customer_id: str) -> CustomerState:
        return self.reader.state(customer_id)

    def write(self, customer_id: str, timestamp_us: int, state: CustomerState) -> None:
        row = state.as_row()
        values = {
            "checkouts": ValueProto(int64_val=row["checkouts"]),
            "invoices_paid": ValueProto(int64_val=row["invoices_paid"]),
            "recovered_debt": ValueProto(double_val=row["recovered_debt"]),
        }
        for name in LIST_FIELDS:
            values[name] = (
                ValueProto(int64_list_val=Int64List(val=row[name]))
                if name in _INT_LISTS
                else ValueProto(double_list_val=DoubleList(val=row[name]))
            )
        when = datetime.fromtimestamp(timestamp_us / 1e6, tz=UTC)
        self._pending.write(
            self._view, customer_id, _key(customer_id), values, when, state
        )


def record_checkout(
    writer: CustomerStateWriter, checkout: Checkout, state: CustomerState
) -> CustomerState:
    """Write the customer's state after `checkout`; call it after answering. Returns
    the new state. As for cards (`record_transaction`), the write advances the
    customer's latest state (staged or stored), not `state` (the lookup's), so
    concurrent checkouts and payment events of one customer in one process all
    count."""
    del state  # the lookup's; possibly older than the latest
    new = advance(writer.latest(checkout.customer_id), checkout)
    writer.write(checkout.customer_id, checkout.timestamp_us, new)
    return new


def record_payment_event(
    writer: CustomerStateWriter, reader: CustomerReader, event: PaymentEvent
) -> CustomerState:
    """Advance the customer's latest state (staged or stored) by a payment event and
    write it (`python -m riskserve.features push-payments` feeds a file of them)."""
    new = advance(reader.state(event.customer_id), event)
    writer.write(event.customer_id, event.timestamp_us, new)
    return new
