"""The credit features' definitions on hand-computed histories
(`riskserve.features.customer`): each window, each status, missing as NaN."""

from __future__ import annotations

import math

import pytest
from riskserve.features.customer import (
    CREDIT_FEATURES,
    DAY_US,
    Checkout,
    CustomerState,
    PaymentEvent,
    advance,
    credit_features,
)

pytestmark = pytest.mark.inprocess

BASE = 1_767_261_600_000_000  # 2026-01-01 10:00 UTC, in microseconds
SECOND = 1_000_000
CUSTOMER = "cust-1"


def at(day: float) -> int:
    return BASE + int(day * DAY_US)


def history() -> list[Checkout | PaymentEvent]:
    """Invoice A (100, day 0) paid on time; B (50, day 10) paid after a reminder;
    C (200, day 50) through both reminders into debt collection, 80 recovered on day
    200, written off on day 321."""
    a, b, c = at(0), at(10), at(50)
    return [
        Checkout(CUSTOMER, a, 100.0, "Clothing & Shoes"),
        Checkout(CUSTOMER, b, 50.0, "Entertainment"),
        PaymentEvent(CUSTOMER, at(20), a, "payment", 100.0),
        PaymentEvent(CUSTOMER, at(20) + SECOND, a, "archived", status=1),
        PaymentEvent(CUSTOMER, at(41), b, "reminder"),
        PaymentEvent(CUSTOMER, at(45), b, "payment", 50.0),
        PaymentEvent(CUSTOMER, at(45) + SECOND, b, "archived", status=2),
        Checkout(CUSTOMER, c, 200.0, "Electronics"),
        PaymentEvent(CUSTOMER, at(81), c, "reminder"),
        PaymentEvent(CUSTOMER, at(111), c, "second_reminder"),
        PaymentEvent(CUSTOMER, at(141), c, "debt_collection"),
        PaymentEvent(CUSTOMER, at(200), c, "payment", 80.0),
        PaymentEvent(CUSTOMER, at(321), c, "archived", status=4),
    ]


def state_before(when: int) -> CustomerState:
    state = CustomerState()
    for event in history():
        if event.timestamp_us < when:
            state = advance(state, event)
    return state


def features_at(day: float, hour: float) -> dict:
    when = at(day) - 10 * 3_600 * SECOND + int(hour * 3_600 * SECOND)
    checkout = Checkout(CUSTOMER, when, 70.0, "Electronics")
    return credit_features(checkout, state_before(when))


def nan(value: float) -> bool:
    return isinstance(value, float) and math.isnan(value)


def test_features_after_seven_months_of_history() -> None:
    f = features_at(210, hour=12.5)
    assert list(f)[:24] == list(CREDIT_FEATURES)
    assert f["max_paid_inv_0_24m"] == 100.0
    assert f["avg_payment_span_0_12m"] == pytest.approx((20 + 35) / 2)
    assert f["sum_capital_paid_account_0_12m"] == 230.0  # 100 + 50 + 80 recovered
    assert f["sum_capital_paid_account_12_24m"] == 0.0
    assert f["time_hours"] == 12.5
    assert f["recovery_debt"] == 80.0
    assert f["num_active_div_by_paid_inv_0_12m"] == 0.5  # C open / A, B paid
    assert f["sum_paid_inv_0_12m"] == 150.0  # invoices paid in full only
    assert f["account_days_in_rem_12_24m"] == 0.0
    assert f["num_arch_ok_0_12m"] == 1.0
    assert f["account_amount_added_12_24m"] == 0.0
    assert f["account_status"] == 4.0  # C in debt collection
    assert f["account_worst_status_0_3m"] == 4.0  # days 120-210: 3, then 4
    assert f["account_worst_status_3_6m"] == 3.0  # days 30-120: B's 2, C's 3
    assert f["account_worst_status_6_12m"] == 1.0  # before day 30: A, B current
    assert nan(f["account_worst_status_12_24m"])  # no account then
    assert f["status_last_archived_0_24m"] == 2.0  # B
    assert f["status_2nd_last_archived_0_24m"] == 1.0  # A
    assert nan(f["status_3rd_last_archived_0_24m"])
    assert f["status_max_archived_0_6_months"] == 2.0  # A (190 days ago) is out
    assert f["status_max_archived_0_12_months"] == 2.0
    assert f["status_max_archived_0_24_months"] == 2.0
    assert f["has_paid"] == 1.0
    assert f["merchant_group"] == "Electronics"
    assert f["customer_checkouts"] == 3


def test_the_12_to_24_month_windows_after_a_write_off() -> None:
    f = features_at(500, hour=10)
    assert f["sum_capital_paid_account_0_12m"] == 80.0  # day 200
    assert f["sum_capital_paid_account_12_24m"] == 150.0  # days 20 and 45
    assert f["account_amount_added_12_24m"] == 350.0  # days 0, 10, 50
    # Window days -230 to 135: B in reminder days 41 to 45 (and the second before
    # its archive), C from day 81 to the window's end.
    assert f["account_days_in_rem_12_24m"] == pytest.approx(4 + 1 / 86_400 + 54)
    assert f["max_paid_inv_0_24m"] == 100.0
    assert nan(f["avg_payment_span_0_12m"])  # nothing paid in full in 12 months
    assert nan(f["num_active_div_by_paid_inv_0_12m"])
    assert f["sum_paid_inv_0_12m"] == 0.0
    assert f["num_arch_ok_0_12m"] == 0.0  # A was archived 480 days ago
    assert nan(f["account_status"])  # nothing open
    assert nan(f["account_worst_status_0_3m"])
    assert f["account_worst_status_6_12m"] == 4.0  # days 135-320: C in collection
    assert f["account_worst_status_12_24m"] == 3.0  # C's second reminder, day 111
    assert [
        f["status_last_archived_0_24m"],
        f["status_2nd_last_archived_0_24m"],
        f["status_3rd_last_archived_0_24m"],
    ] == [4.0, 2.0, 1.0]
    assert f["status_max_archived_0_6_months"] == 4.0  # C, 179 days ago
    assert f["recovery_debt"] == 80.0
    assert f["has_paid"] == 1.0


def test_a_customer_never_seen_gets_the_empty_history() -> None:
    f = credit_features(
        Checkout("new", at(3), 20.0, "Food & Beverage"), CustomerState()
    )
    assert f["customer_checkouts"] == 0
    assert f["has_paid"] == 0.0
    for name in (
        "max_paid_inv_0_24m",
        "sum_capital_paid_account_0_12m",
        "recovery_debt",
        "sum_paid_inv_0_12m",
        "num_arch_ok_0_12m",
        "account_amount_added_12_24m",
        "account_days_in_rem_12_24m",
    ):
        assert f[name] == 0.0, name
    assert nan(f["account_status"]) and nan(f["avg_payment_span_0_12m"])
    assert nan(f["status_max_archived_0_24_months"])
    assert f["time_hours"] == 10.0


def test_state_survives_the_store_and_history_older_than_two_years_is_dropped() -> None:
    state = state_before(at(330))
    assert CustomerState.from_row(state.as_row()) == state
    assert CustomerState.from_row({n: None for n in state.as_row()}) == CustomerState()
    before = state.as_row()
    later = advance(state, Checkout(CUSTOMER, at(1_100), 30.0, "Electronics"))
    assert state.as_row() == before  # advance leaves its input alone
    assert later.payment_us == [] and later.archived_us == []
    assert later.added_us == [at(1_100)]
    # The status before the horizon is kept (the status when a window opens).
    assert later.status_codes == [0, 1]
    assert later.checkouts == 4 and later.invoices_paid == 2


def test_an_unknown_payment_event_kind_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown payment event kind 'refund'"):
        advance(CustomerState(), PaymentEvent(CUSTOMER, at(1), at(0), "refund"))
