"""Payment events into the online store: the billing side's way in
(`python -m riskserve.features push-payments FILE --repo DIR`).

A customer's state (`customer_activity`) moves with checkouts, which the credit
transformer writes after each decision, and with what the payments ledger reports
about the invoices: payments, reminders, debt collection, archiving. This reads a
file of those events, checks every row first (one line naming the bad row and field,
nothing written), and advances each customer's latest state (staged or stored, as
the transformer's writes do) in batches: one SQLite transaction or one Redis
pipeline per `batch` events.

The file: Parquet with the event log's payment columns (`customer_id`,
`event_timestamp`, `checkout_timestamp`, `kind`, `amount`, `status`: what
`python -m riskserve.features generate` writes as payments.parquet), or JSON lines
with `PaymentEvent`'s fields (`customer_id`, `timestamp_us`, `invoice_issued_us`,
`kind`, `amount` for a payment, `status` 1-4 for archived). Each customer's events
in time order (a file out of order is refused: the state is advanced event by event).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pandas as pd
from feast import FeatureStore
from riskserve.features.customer import PaymentEvent
from riskserve.features.customer_offline import payments_of
from riskserve.features.customer_online import (
    CustomerReader,
    CustomerStateWriter,
    record_payment_event,
)
from riskserve.features.pending_states import pending_states
from riskserve.model.events import PAYMENT_KINDS

_PARQUET_COLUMNS = (
    "customer_id",
    "event_timestamp",
    "checkout_timestamp",
    "kind",
    "amount",
    "status",
)


class BadPaymentFile(ValueError):
    """The file, or one of its rows, is not a valid payment event (one line)."""


def read_payment_events(path: Path) -> list[PaymentEvent]:
    """Every event of the file, checked (`BadPaymentFile` names the row and field)."""
    if not path.is_file():
        raise BadPaymentFile(f"{path}: no such file")
    if path.suffix == ".parquet":
        frame = pd.read_parquet(path)
        missing = [c for c in _PARQUET_COLUMNS if c not in frame.columns]
        if missing:
            raise BadPaymentFile(
                f"{path}: missing column(s) {', '.join(missing)}; expected "
                + ", ".join(_PARQUET_COLUMNS)
            )
        try:
            events = list(payments_of(frame))
        except (TypeError, ValueError, AttributeError) as exc:
            raise BadPaymentFile(f"{path}: {type(exc).__name__}: {exc}") from None
        rows: Iterator[tuple[int, PaymentEvent]] = enumerate(events, start=1)
    else:
        rows = _json_lines(path)
    checked = []
    last: dict[str, int] = {}
    for row, event in rows:
        _check(path, row, event)
        if event.timestamp_us < last.get(event.customer_id, -1):
            raise BadPaymentFile(
                f"{path}: row {row}: timestamp: customer {event.customer_id!r}'s "
                "events are out of time order (sort each customer's events by time)"
            )
        last[event.customer_id] = event.timestamp_us
        checked.append(event)
    return checked


def _json_lines(path: Path) -> Iterator[tuple[int, PaymentEvent]]:
    with path.open("rb") as lines:
        for row, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                fields = orjson.loads(line)
            except orjson.JSONDecodeError as exc:
                raise BadPaymentFile(f"{path}: row {row}: not JSON: {exc}") from None
            if not isinstance(fields, dict):
                raise BadPaymentFile(f"{path}: row {row}: not a JSON object")
            yield row, _event(path, row, fields)


def _event(path: Path, row: int, fields: dict[str, Any]) -> PaymentEvent:
    def need(name: str, kind: type | tuple[type, ...], default: Any = None) -> Any:
        value = fields.get(name, default)
        if value is None or isinstance(value, bool) or not isinstance(value, kind):
            raise BadPaymentFile(
                f"{path}: row {row}: {name}: expected "
                f"{getattr(kind, '__name__', 'a number')}, got {value!r}"
            )
        return value

    unknown = set(fields) - {f for f in PaymentEvent.__dataclass_fields__}
    if unknown:
        raise BadPaymentFile(
            f"{path}: row {row}: unknown field(s) {', '.join(sorted(unknown))}"
        )
    return PaymentEvent(
        customer_id=need("customer_id", str),
        timestamp_us=need("timestamp_us", int),
        invoice_issued_us=need("invoice_issued_us", int),
        kind=need("kind", str),
        amount=float(need("amount", (int, float), 0.0)),
        status=need("status", int, 0),
    )


def _check(path: Path, row: int, event: PaymentEvent) -> None:
    def bad(field: str, why: str) -> BadPaymentFile:
        return BadPaymentFile(f"{path}: row {row}: {field}: {why}")

    if not event.customer_id:
        raise bad("customer_id", "empty")
    if event.timestamp_us < 0:
        raise bad("timestamp_us", f"negative ({event.timestamp_us})")
    if not 0 <= event.invoice_issued_us <= event.timestamp_us:
        raise bad(
            "invoice_issued_us",
            f"{event.invoice_issued_us} is not between 0 and the event's time",
        )
    if event.kind not in PAYMENT_KINDS:
        raise bad("kind", f"{event.kind!r}; expected one of {', '.join(PAYMENT_KINDS)}")
    if not math.isfinite(event.amount) or event.amount < 0:
        raise bad("amount", f"{event.amount} is not a finite amount >= 0")
    if event.kind == "payment" and event.amount == 0:
        raise bad("amount", "a payment needs an amount > 0")
    if event.kind == "archived" and event.status not in (1, 2, 3, 4):
        raise bad("status", f"{event.status}; an archived invoice's status is 1 to 4")


def push_payment_events(
    store: FeatureStore,
    events: list[PaymentEvent],
    batch: int = 1_000,
    progress: Callable[[int, int], None] | None = None,
) -> int:
    """Advance each event's customer in the online store, committing every `batch`
    events; `progress(done, total)` after each commit. Returns how many were pushed.
    A failed commit raises `WriteFailed` (the events of that batch are not in the
    store; those of earlier batches are)."""
    pending = pending_states(store)
    reader, writer = CustomerReader(store), CustomerStateWriter(store)
    was_batching, pending.batching = pending.batching, True
    done = 0
    try:
        for start in range(0, len(events), batch):
            for event in events[start : start + batch]:
                record_payment_event(writer, reader, event)
            pending.flush()
            done = min(start + batch, len(events))
            if progress is not None:
                progress(done, len(events))
    finally:
        pending.batching = was_batching
    return done
