"""Example inputs an analyst can load into a form with one click."""

from __future__ import annotations

import json
import secrets
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

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


# -- raw events (a model behind a transformer) --------------------------------------

# A fresh id per app process: the transformer remembers a card once it has scored
# it, so a fixed id would be unknown for its first transaction only, ever.
UNKNOWN_CARD_EXAMPLE: dict[str, object] = {
    "card_id": f"card-new-{secrets.token_hex(4)}",
    "amount": 80.0,
    "merchant_id": "web-001",
    "merchant_latitude": 48.85,
    "merchant_longitude": 2.35,
    "used_chip": 0,
    "used_pin_number": 0,
    "online_order": 1,
    "timestamp": "",
}
UNKNOWN_CARD_LABEL = (
    "A card never seen (unknown on its first transaction: the documented defaults)"
)


class ExamplesError(ValueError):
    """The examples file cannot be used; the message is one line."""


def raw_fraud_examples(
    cards: pd.DataFrame, transactions: pd.DataFrame, count: int = 2
) -> dict[str, dict[str, object]]:
    """Raw transactions of real cards of a generated history (the demo's): for each
    of the `count` busiest cards, one at the shop it uses most, with chip and PIN at
    its median amount, and one like fraud on it: online, at a merchant it never used
    in the city farthest from its home, at eight times its median. The time is left
    empty (now), after the card's history."""
    examples: dict[str, dict[str, object]] = {}
    busiest = transactions["card_id"].value_counts().index[:count]
    homes = cards.set_index("card_id")
    shops = transactions.drop_duplicates("merchant_id").set_index("merchant_id")
    for card_id in busiest:
        own = transactions[transactions["card_id"] == card_id]
        median = float(own["amount"].median())
        in_store = own[own["online"] == 0]
        favourite = (in_store if len(in_store) else own)["merchant_id"].mode().iloc[0]
        home = homes.loc[card_id]
        strangers = shops[
            ~shops.index.isin(own["merchant_id"]) & shops.index.str.startswith("web-")
        ]
        distance = (strangers["merchant_latitude"] - home["home_latitude"]) ** 2 + (
            strangers["merchant_longitude"] - home["home_longitude"]
        ) ** 2
        far = distance.idxmax()
        examples[f"{card_id} at its usual shop: chip and PIN, usual amount"] = {
            "card_id": card_id,
            "amount": round(median, 2),
            "merchant_id": favourite,
            "merchant_latitude": round(
                float(shops.loc[favourite, "merchant_latitude"]), 4
            ),
            "merchant_longitude": round(
                float(shops.loc[favourite, "merchant_longitude"]), 4
            ),
            "used_chip": 1,
            "used_pin_number": 1,
            "online_order": 0,
            "timestamp": "",
        }
        examples[f"{card_id} fraud-like: online, a new merchant far away, 8x usual"] = {
            "card_id": card_id,
            "amount": round(8 * median, 2),
            "merchant_id": far,
            "merchant_latitude": round(
                float(strangers.loc[far, "merchant_latitude"]), 4
            ),
            "merchant_longitude": round(
                float(strangers.loc[far, "merchant_longitude"]), 4
            ),
            "used_chip": 0,
            "used_pin_number": 0,
            "online_order": 1,
            "timestamp": "",
        }
    return examples


# As for cards: a fresh id per app process, unknown on its first checkout.
UNKNOWN_CUSTOMER_EXAMPLE: dict[str, object] = {
    "customer_id": f"cust-new-{secrets.token_hex(4)}",
    "basket_amount": 60.0,
    "merchant_group": "Electronics",
    "timestamp": "",
}
UNKNOWN_CUSTOMER_LABEL = (
    "A customer never seen (unknown on the first checkout: the documented defaults)"
)


def raw_credit_examples(checkouts: pd.DataFrame) -> dict[str, dict[str, object]]:
    """Raw checkouts of real customers of a generated BNPL history (the demo's): the
    busiest customer who never defaulted and the one with the most defaults, each
    with a basket at their median amount at their most frequent merchant group, a
    day after the history ends (the generated history may run past today, and a
    checkout before a customer's stored state would not be its next one)."""
    from riskserve.app.fields import format_timestamp_us

    if checkouts.empty:
        return {}
    last_us = int(checkouts["event_timestamp"].max().value // 1000)
    when = format_timestamp_us(last_us + 86_400_000_000)
    defaults = checkouts.groupby("customer_id")["default"].sum()
    counts = checkouts["customer_id"].value_counts()
    clean = counts[counts.index.isin(defaults[defaults == 0].index)]
    chosen = []
    if len(clean):
        chosen.append((str(clean.index[0]), "always repaid"))
    if defaults.max() > 0:
        chosen.append((str(defaults.idxmax()), "defaulted before"))
    examples: dict[str, dict[str, object]] = {}
    for customer_id, story in chosen:
        own = checkouts[checkouts["customer_id"] == customer_id]
        examples[f"{customer_id}: {story}"] = {
            "customer_id": customer_id,
            "basket_amount": round(float(own["basket_amount"].median()), 2),
            "merchant_group": str(own["merchant_group"].mode().iloc[0]),
            "timestamp": when,
        }
    return examples


def write_examples_file(path: Path, examples: dict[str, dict[str, dict]]) -> None:
    """`{"fraud": {label: {field: value}}, "credit": {...}}`, for
    RISKSERVE_APP_EXAMPLES_FILE."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(examples, indent=1, sort_keys=True) + "\n")


def load_examples_file(path: Path) -> dict[str, dict[str, dict[str, object]]]:
    """The raw-event examples of `path`, per model kind; ExamplesError in one line."""
    try:
        loaded = json.loads(path.read_text())
    except OSError as exc:
        raise ExamplesError(f"cannot read {path} ({exc.strerror or exc})") from None
    except ValueError:
        raise ExamplesError(f"{path} is not JSON") from None
    if not isinstance(loaded, dict) or not all(
        kind in ("fraud", "credit")
        and isinstance(examples, dict)
        and all(isinstance(v, dict) for v in examples.values())
        for kind, examples in loaded.items()
    ):
        raise ExamplesError(
            f'{path} must hold {{"fraud": {{label: {{field: value}}}}, "credit": ...}}'
        )
    return loaded
