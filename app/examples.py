"""Example inputs an analyst can load into a form with one click."""

from __future__ import annotations

FRAUD_EXAMPLES: dict[str, dict[str, object]] = {
    "Ordinary: in-store, chip and PIN, usual amount": {
        "distance_from_home": 8.5,
        "distance_from_last_transaction": 0.6,
        "ratio_to_median_purchase_price": 0.9,
        "repeat_retailer": 1,
        "used_chip": 1,
        "used_pin_number": 1,
        "online_order": 0,
    },
    "Fraud-like: online, far from home, 6x the usual amount": {
        "distance_from_home": 160.0,
        "distance_from_last_transaction": 45.0,
        "ratio_to_median_purchase_price": 6.2,
        "repeat_retailer": 0,
        "used_chip": 0,
        "used_pin_number": 0,
        "online_order": 1,
    },
}

_GOOD_PAYER: dict[str, object] = {
    "max_paid_inv_0_24m": 6800.0,
    "avg_payment_span_0_12m": 11.0,
    "sum_capital_paid_account_0_12m": 1200.0,
    "sum_capital_paid_account_12_24m": 900.0,
    "time_hours": 14.0,
    "recovery_debt": 0.0,
    "num_active_div_by_paid_inv_0_12m": 0.05,
    "sum_paid_inv_0_12m": 15000.0,
    "account_days_in_rem_12_24m": 0.0,
    "num_arch_ok_0_12m": 12.0,
    "account_amount_added_12_24m": 8000.0,
    "account_status": 1,
    "account_worst_status_0_3m": 1,
    "account_worst_status_3_6m": 1,
    "account_worst_status_6_12m": 1,
    "account_worst_status_12_24m": 1,
    "status_last_archived_0_24m": 1,
    "status_2nd_last_archived_0_24m": 1,
    "status_3rd_last_archived_0_24m": 1,
    "status_max_archived_0_6_months": 1,
    "status_max_archived_0_12_months": 1,
    "status_max_archived_0_24_months": 1,
    "has_paid": 1,
    "merchant_group": "Clothing & Shoes",
}

CREDIT_EXAMPLES: dict[str, dict[str, object]] = {
    "Long history, always paid on time": _GOOD_PAYER,
    "New customer: no history (missing values)": {
        **{name: None for name in _GOOD_PAYER},
        "time_hours": 21.0,
        "has_paid": 0,
        "merchant_group": "Entertainment",
    },
    "In debt recovery, reminders, worst statuses": {
        **_GOOD_PAYER,
        "avg_payment_span_0_12m": 38.0,
        "recovery_debt": 2500.0,
        "num_active_div_by_paid_inv_0_12m": 1.0,
        "account_days_in_rem_12_24m": 90.0,
        "num_arch_ok_0_12m": 0.0,
        "account_status": 3,
        "account_worst_status_0_3m": 4,
        "account_worst_status_3_6m": 4,
        "account_worst_status_6_12m": 3,
        "status_last_archived_0_24m": 4,
        "status_max_archived_0_6_months": 4,
        "status_max_archived_0_12_months": 4,
        "status_max_archived_0_24_months": 4,
        "has_paid": 0,
        "merchant_group": "Intangible products",
    },
}
