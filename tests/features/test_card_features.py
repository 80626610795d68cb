"""The fraud features as DATA.md defines them, computed by the feature code, the
on-demand view, and after the state written by a scored transaction."""

from __future__ import annotations

import math
import statistics

import pytest
from riskserve.features.card import (
    HOUR_US,
    CardState,
    Transaction,
    advance,
    fraud_features,
    haversine_km,
)
from riskserve.features.online import CardStateWriter, lookup, record_transaction
from riskserve.model.specs import FRAUD

from tests.features.conftest import EventRepo

pytestmark = pytest.mark.inprocess

PARIS = (48.8566, 2.3522)
LONDON = (51.5074, -0.1278)
T0 = 1_767_225_600_000_000  # 2026-01-01 00:00 UTC in microseconds


def txn(
    at_us: int,
    amount: float,
    merchant: str,
    where: tuple[float, float],
    chip: int = 1,
    pin: int = 0,
    online: int = 0,
    card: str = "card-x",
) -> Transaction:
    return Transaction(card, at_us, amount, merchant, *where, chip, pin, online)


def test_haversine_gives_the_great_circle_distance() -> None:
    assert haversine_km(*PARIS, *LONDON) == pytest.approx(343.5, abs=0.5)
    assert haversine_km(*PARIS, *PARIS) == 0.0
    # A quarter of the equator.
    assert haversine_km(0.0, 0.0, 0.0, 90.0) == pytest.approx(
        math.pi / 2 * 6371.0088, rel=1e-12
    )


def test_the_seven_features_follow_their_definitions() -> None:
    history = [
        txn(T0, 10.0, "bakery", PARIS),
        txn(T0 + 20 * HOUR_US, 30.0, "grocer", PARIS),
        txn(T0 + 23 * HOUR_US + 1, 20.0, "bakery", (48.86, 2.36)),
    ]
    state = CardState()
    for t in history:
        state = advance(state, t)
    now = txn(T0 + 24 * HOUR_US, 200.0, "grocer", LONDON, chip=0, pin=0, online=1)
    got = fraud_features(now, state, *PARIS)

    assert set(FRAUD.feature_names) <= set(got)
    assert got["distance_from_home"] == haversine_km(*PARIS, *LONDON)
    assert got["distance_from_last_transaction"] == haversine_km(48.86, 2.36, *LONDON)
    assert got["ratio_to_median_purchase_price"] == 200.0 / statistics.median(
        [10.0, 30.0, 20.0]
    )
    assert got["repeat_retailer"] == 1.0  # the grocer, 4 hours ago
    assert (got["used_chip"], got["used_pin_number"], got["online_order"]) == (
        0.0,
        0.0,
        1.0,
    )
    # Velocity: the previous transactions only; the first is exactly 24 h old (out).
    assert (got["transactions_1h"], got["amount_1h"]) == (1, 20.0)
    assert (got["transactions_24h"], got["amount_24h"]) == (2, 50.0)
    assert got["card_transactions"] == 3
    # A merchant never used is not a repeat.
    other = fraud_features(txn(T0 + 25 * HOUR_US, 5.0, "kiosk", PARIS), state, *PARIS)
    assert other["repeat_retailer"] == 0.0


def test_an_unknown_card_gets_the_documented_defaults() -> None:
    got = fraud_features(txn(T0, 99.0, "shop", LONDON), CardState(), None, None)
    assert got["distance_from_home"] == 0.0
    assert got["distance_from_last_transaction"] == 0.0
    assert got["ratio_to_median_purchase_price"] == 1.0
    assert got["repeat_retailer"] == 0.0
    assert got["card_transactions"] == 0
    assert got["card_registered"] == 0


def test_the_median_is_over_the_last_hundred_purchases() -> None:
    state = CardState()
    for i in range(150):  # 50 purchases of 1000, then 100 of 10
        amount = 1000.0 if i < 50 else 10.0
        state = advance(state, txn(T0 + i * HOUR_US, amount, f"m{i}", PARIS))
    assert state.median_purchase == 10.0
    assert len(state.recent_amounts) == 100


def test_a_scored_transaction_updates_its_cards_state_online(
    event_repo: EventRepo,
) -> None:
    store = event_repo.store
    writer = CardStateWriter(store)
    card = "card-new-0001"  # not in the register, no history
    first = txn(T0, 40.0, "bakery", PARIS, card=card)
    before = lookup(store, first)
    assert before.features["card_transactions"] == 0
    record_transaction(writer, first, before.state)

    second = txn(T0 + 600_000_000, 80.0, "bakery", LONDON, card=card)
    after = lookup(store, second)
    assert after.features["card_transactions"] == 1
    assert after.features["repeat_retailer"] == 1.0
    assert after.features["distance_from_last_transaction"] == haversine_km(
        *PARIS, *LONDON
    )
    assert after.features["ratio_to_median_purchase_price"] == 2.0
    assert after.features["transactions_1h"] == 1
    assert after.features["amount_1h"] == 40.0
    assert after.state.last_timestamp_us == T0
