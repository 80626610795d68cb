"""A BNPL customer's state and the credit features, as plain Python over plain values.

The credit counterpart of `riskserve.features.card`, with the same three callers: the
on-demand view (per checkout online, per row in a training set), the push after a
scored checkout (and after each payment event of the ledger), and the state log that
backs the push source offline.

The state changes with two kinds of events (`riskserve.model.events.bnpl_events`):
a `Checkout` opens an invoice of its basket amount; a `PaymentEvent` moves an invoice
on (`reminder`, `second_reminder`, `debt_collection`), pays it (`payment`, in full or,
in debt collection, in part) or closes it (`archived`, with its status). An invoice is
known by its customer and its issue time (the checkout's timestamp).

Status codes (1 good to 4 bad): an open invoice is at stage 1 (current), 2 (after a
reminder), 3 (after a second reminder) or 4 (in debt collection); an archived
invoice's status is the worst stage it reached. The account status at a moment is the
worst stage of the customer's open invoices then, none when nothing is open.

The features of a checkout at time t, from the events strictly before t. Windows are
by age (t minus the event's time): `0_3m` is 0 < age <= 90 days, `3_6m` 90 to 180,
`6_12m` 180 to 365, `12_24m` 365 to 730, `0_12m` 0 to 365, `0_24m` 0 to 730 days
(each lower bound exclusive, upper inclusive). Missing is NaN, normal input that the
credit model imputes; sums and counts are 0 when nothing happened.

| feature | events | window | missing (NaN) when |
|---|---|---|---|
| `max_paid_inv_0_24m` | largest invoice amount paid in full (its last payment) | 0_24m | never: 0 |
| `avg_payment_span_0_12m` | mean days from checkout to full payment of invoices paid | 0_12m | none paid |
| `sum_capital_paid_account_0_12m` | sum of all payments, partial ones too | 0_12m | never: 0 |
| `sum_capital_paid_account_12_24m` | the same | 12_24m | never: 0 |
| `time_hours` | the checkout's UTC time of day in hours (19.5 = 19:30) | - | never |
| `recovery_debt` | sum paid on invoices while in debt collection | all time | never: 0 |
| `num_active_div_by_paid_inv_0_12m` | open invoices now / invoices paid in full | 0_12m | none paid |
| `sum_paid_inv_0_12m` | sum of the amounts of invoices paid in full | 0_12m | never: 0 |
| `account_days_in_rem_12_24m` | days the account status was 2 or worse | 12_24m | never: 0 |
| `num_arch_ok_0_12m` | invoices archived with status 1 | 0_12m | never: 0 |
| `account_amount_added_12_24m` | sum of checkout (invoice) amounts | 12_24m | never: 0 |
| `account_status` | the account status now | now | nothing open |
| `account_worst_status_0_3m` (`3_6m`, `6_12m`, `12_24m`) | worst account status at any moment | window | nothing open all through it |
| `status_last_archived_0_24m` (`2nd_`, `3rd_`) | status of the latest (2nd, 3rd latest) archived invoice | 0_24m | fewer archived |
| `status_max_archived_0_6_months` (`0_12`, `0_24`) | worst archived status | 0_6m, 0_12m, 0_24m | none archived |
| `has_paid` | 1 if the customer ever paid an invoice in full, else 0 | all time | never |
| `merchant_group` | the checkout's merchant group | - | never |

Context beside them: `customer_checkouts`, the customer's earlier checkouts (0 for a
customer never seen: the transformer's `unknown_entity`). An unknown customer gets
the values of the table's empty history: zeros, `has_paid` 0 and the rest missing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from riskserve.model.events import PAYMENT_KINDS

DAY_US = 86_400_000_000
HOUR_US = 3_600_000_000
HORIZON_US = 730 * DAY_US  # the longest window: older history is dropped
# Window bounds in days, by age: (lower exclusive, upper inclusive).
M0_3, M3_6, M6_12, M12_24 = (0, 90), (90, 180), (180, 365), (365, 730)
M0_6, M0_12, M0_24 = (0, 180), (0, 365), (0, 730)
_STAGE_OF = {"reminder": 2, "second_reminder": 3, "debt_collection": 4}

# The credit model's 24 features, in model/specs.py CREDIT order.
CREDIT_FEATURES = (
    "max_paid_inv_0_24m",
    "avg_payment_span_0_12m",
    "sum_capital_paid_account_0_12m",
    "sum_capital_paid_account_12_24m",
    "time_hours",
    "recovery_debt",
    "num_active_div_by_paid_inv_0_12m",
    "sum_paid_inv_0_12m",
    "account_days_in_rem_12_24m",
    "num_arch_ok_0_12m",
    "account_amount_added_12_24m",
    "account_status",
    "account_worst_status_0_3m",
    "account_worst_status_3_6m",
    "account_worst_status_6_12m",
    "account_worst_status_12_24m",
    "status_last_archived_0_24m",
    "status_2nd_last_archived_0_24m",
    "status_3rd_last_archived_0_24m",
    "status_max_archived_0_6_months",
    "status_max_archived_0_12_months",
    "status_max_archived_0_24_months",
    "has_paid",
    "merchant_group",
)
CUSTOMER_CONTEXT = ("customer_checkouts",)


@dataclass
class Checkout:
    """The raw request of a credit decision (what a BNPL checkout sends)."""

    customer_id: str
    timestamp_us: int  # microseconds since the Unix epoch, UTC
    basket_amount: float
    merchant_group: str


@dataclass
class PaymentEvent:
    """What the payments ledger reports about one invoice (`PAYMENT_KINDS`)."""

    customer_id: str
    timestamp_us: int
    invoice_issued_us: int  # the checkout's timestamp: the invoice's key
    kind: str
    amount: float = 0.0  # kind payment
    status: int = 0  # kind archived: 1 to 4


@dataclass
class CustomerState:
    """What the online store keeps per customer (the `customer_activity` view's
    fields). Lists of one kind run in parallel, oldest first; dated lists keep the
    last 730 days (the account status list also the last change before them)."""

    checkouts: int = 0  # ever
    invoices_paid: int = 0  # paid in full, ever
    recovered_debt: float = 0.0  # paid while in debt collection, ever
    open_issued_us: list[int] = field(default_factory=list)  # open invoices
    open_amounts: list[float] = field(default_factory=list)  # still owed
    open_totals: list[float] = field(default_factory=list)  # invoice amounts
    open_stages: list[int] = field(default_factory=list)  # 1 to 4
    added_us: list[int] = field(default_factory=list)  # checkouts
    added_amounts: list[float] = field(default_factory=list)
    paid_us: list[int] = field(default_factory=list)  # invoices paid in full
    paid_amounts: list[float] = field(default_factory=list)
    paid_spans_days: list[float] = field(default_factory=list)
    payment_us: list[int] = field(default_factory=list)  # every payment
    payment_amounts: list[float] = field(default_factory=list)
    archived_us: list[int] = field(default_factory=list)
    archived_statuses: list[int] = field(default_factory=list)
    status_us: list[int] = field(default_factory=list)  # account status changes
    status_codes: list[int] = field(default_factory=list)  # 0 = nothing open

    def as_row(self) -> dict[str, Any]:
        return {
            name: list(value) if isinstance(value, list) else value
            for name, value in self.__dict__.items()
        }

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> CustomerState:
        """From the stored fields; a customer never seen has them all None (or NaN)."""
        if _missing(row.get("checkouts")):
            return cls()
        return cls(
            checkouts=int(row["checkouts"]),
            invoices_paid=int(row["invoices_paid"]),
            recovered_debt=float(row["recovered_debt"]),
            **{
                name: [kind(v) for v in row[name] or []]
                for name, kind in _LIST_FIELDS.items()
            },
        )


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


_LIST_FIELDS: dict[str, type] = {
    "open_issued_us": int,
    "open_amounts": float,
    "open_totals": float,
    "open_stages": int,
    "added_us": int,
    "added_amounts": float,
    "paid_us": int,
    "paid_amounts": float,
    "paid_spans_days": float,
    "payment_us": int,
    "payment_amounts": float,
    "archived_us": int,
    "archived_statuses": int,
    "status_us": int,
    "status_codes": int,
}
STATE_FIELDS = tuple(CustomerState().as_row())
LIST_FIELDS = tuple(_LIST_FIELDS)


def advance(state: CustomerState, event: Checkout | PaymentEvent) -> CustomerState:
    """The customer's state after `event` (a new object; `state` is left as it was).

    A payment event for an invoice the state does not hold (opened before the state
    began) changes only what it can: payments and archived statuses count, stages do
    not."""
    s = CustomerState(**state.as_row())
    now = event.timestamp_us
    if isinstance(event, Checkout):
        s.checkouts += 1
        s.open_issued_us.append(now)
        s.open_amounts.append(float(event.basket_amount))
        s.open_totals.append(float(event.basket_amount))
        s.open_stages.append(1)
        s.added_us.append(now)
        s.added_amounts.append(float(event.basket_amount))
    else:
        _apply_payment_event(s, event)
    code = max(s.open_stages, default=0)
    if not s.status_codes or s.status_codes[-1] != code:
        s.status_us.append(now)
        s.status_codes.append(code)
    _prune(s, now - HORIZON_US)
    return s


def _apply_payment_event(s: CustomerState, event: PaymentEvent) -> None:
    now = event.timestamp_us
    try:
        i = s.open_issued_us.index(event.invoice_issued_us)
    except ValueError:
        i = -1
    if event.kind in _STAGE_OF:
        if i >= 0:
            s.open_stages[i] = max(s.open_stages[i], _STAGE_OF[event.kind])
    elif event.kind == "payment":
        paid = float(event.amount)
        s.payment_us.append(now)
        s.payment_amounts.append(paid)
        if i >= 0:
            if s.open_stages[i] == 4:
                s.recovered_debt += paid
            s.open_amounts[i] -= paid
            if s.open_amounts[i] <= 0.005:  # paid in full (amounts are in cents)
                s.invoices_paid += 1
                s.paid_us.append(now)
                s.paid_amounts.append(s.open_totals[i])
                s.paid_spans_days.append((now - event.invoice_issued_us) / DAY_US)
    elif event.kind == "archived":
        s.archived_us.append(now)
        s.archived_statuses.append(int(event.status))
        if i >= 0:
            for name in (
                "open_issued_us",
                "open_amounts",
                "open_totals",
                "open_stages",
            ):
                del getattr(s, name)[i]
    else:
        raise ValueError(
            f"unknown payment event kind {event.kind!r}; expected one of "
            + ", ".join(PAYMENT_KINDS)
        )


def _prune(s: CustomerState, horizon: int) -> None:
    for stamps, *values in (
        ("added_us", "added_amounts"),
        ("paid_us", "paid_amounts", "paid_spans_days"),
        ("payment_us", "payment_amounts"),
        ("archived_us", "archived_statuses"),
    ):
        times = getattr(s, stamps)
        drop = 0
        while drop < len(times) and times[drop] < horizon:
            drop += 1
        if drop:
            for name in (stamps, *values):
                del getattr(s, name)[:drop]
    # The account status: keep the last change before the horizon (the status then).
    drop = 0
    while drop + 1 < len(s.status_us) and s.status_us[drop + 1] <= horizon:
        drop += 1
    if drop:
        del s.status_us[:drop]
        del s.status_codes[:drop]


def _in(age_us: int, window: tuple[int, int]) -> bool:
    return window[0] * DAY_US < age_us <= window[1] * DAY_US


def _worst_status(s: CustomerState, now: int, window: tuple[int, int]) -> int | None:
    """The worst account status at any moment of the window, None if nothing was
    open all through it."""
    start, end = now - window[1] * DAY_US, now - window[0] * DAY_US
    worst = 0
    for t, code in zip(s.status_us, s.status_codes, strict=True):
        if t <= start:
            worst = code  # the status when the window opens (the last one so far)
        elif t < end:
            worst = max(worst, code)
    return worst or None


def _days_in_reminder(s: CustomerState, now: int, window: tuple[int, int]) -> float:
    """Days of the window the account status was 2 or worse."""
    start, end = now - window[1] * DAY_US, now - window[0] * DAY_US
    total = 0
    for k, (t, code) in enumerate(zip(s.status_us, s.status_codes, strict=True)):
        if code < 2:
            continue
        until = s.status_us[k + 1] if k + 1 < len(s.status_us) else now
        lo, hi = max(t, start), min(until, end)
        if hi > lo:
            total += hi - lo
    return total / DAY_US


def credit_features(checkout: Checkout, state: CustomerState) -> dict[str, Any]:
    """The credit model's 24 features (and the context) for `checkout`, given the
    customer's state before it. See the module's table."""
    now = checkout.timestamp_us
    paid_0_12 = [
        (a, span)
        for t, a, span in zip(
            state.paid_us, state.paid_amounts, state.paid_spans_days, strict=True
        )
        if _in(now - t, M0_12)
    ]
    paid_0_24 = [
        a
        for t, a in zip(state.paid_us, state.paid_amounts, strict=True)
        if _in(now - t, M0_24)
    ]
    capital_0_12 = capital_12_24 = 0.0
    for t, a in zip(state.payment_us, state.payment_amounts, strict=True):
        if _in(now - t, M0_12):
            capital_0_12 += a
        elif _in(now - t, M12_24):
            capital_12_24 += a
    archived = [
        (t, st)
        for t, st in zip(state.archived_us, state.archived_statuses, strict=True)
        if _in(now - t, M0_24)
    ]
    last = [st for _, st in reversed(archived)]

    def archived_max(window: tuple[int, int]) -> int | None:
        return max((st for t, st in archived if _in(now - t, window)), default=None)

    current = state.status_codes[-1] if state.status_codes else 0
    day_us = now % DAY_US
    values: dict[str, Any] = {
        "max_paid_inv_0_24m": max(paid_0_24, default=0.0),
        "avg_payment_span_0_12m": (
            sum(span for _, span in paid_0_12) / len(paid_0_12) if paid_0_12 else None
        ),
        "sum_capital_paid_account_0_12m": capital_0_12,
        "sum_capital_paid_account_12_24m": capital_12_24,
        "time_hours": day_us / HOUR_US,
        "recovery_debt": state.recovered_debt,
        "num_active_div_by_paid_inv_0_12m": (
            len(state.open_issued_us) / len(paid_0_12) if paid_0_12 else None
        ),
        "sum_paid_inv_0_12m": sum(a for a, _ in paid_0_12),
        "account_days_in_rem_12_24m": _days_in_reminder(state, now, M12_24),
        "num_arch_ok_0_12m": sum(
            1 for t, st in archived if st == 1 and _in(now - t, M0_12)
        ),
        "account_amount_added_12_24m": sum(
            a
            for t, a in zip(state.added_us, state.added_amounts, strict=True)
            if _in(now - t, M12_24)
        ),
        "account_status": current or None,
        "account_worst_status_0_3m": _worst_status(state, now, M0_3),
        "account_worst_status_3_6m": _worst_status(state, now, M3_6),
        "account_worst_status_6_12m": _worst_status(state, now, M6_12),
        "account_worst_status_12_24m": _worst_status(state, now, M12_24),
        "status_last_archived_0_24m": last[0] if len(last) > 0 else None,
        "status_2nd_last_archived_0_24m": last[1] if len(last) > 1 else None,
        "status_3rd_last_archived_0_24m": last[2] if len(last) > 2 else None,
        "status_max_archived_0_6_months": archived_max(M0_6),
        "status_max_archived_0_12_months": archived_max(M0_12),
        "status_max_archived_0_24_months": archived_max(M0_24),
        "has_paid": 1 if state.invoices_paid > 0 else 0,
        "merchant_group": checkout.merchant_group,
    }
    # Floats for the model's numeric inputs, missing as NaN: the feature view's
    # Float64 (Feast infers a python view's types from its values; None has none) and
    # the model's FP32, where NaN is missing.
    out: dict[str, Any] = {
        name: value
        if name == "merchant_group"
        else (math.nan if value is None else float(value))
        for name, value in values.items()
    }
    out["customer_checkouts"] = state.checkouts
    return out
