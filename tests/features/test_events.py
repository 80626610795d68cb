"""The raw event generators: believable per-card histories, and fraud shaped like real
data (rare, found mostly through the features, not perfectly)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from riskserve.features.card import FRAUD_FEATURES, CardState, advance, fraud_features
from riskserve.features.customer import Checkout, CustomerState, credit_features
from riskserve.features.customer import advance as advance_customer
from riskserve.features.customer_offline import customer_events
from riskserve.features.offline import card_activity_log, transactions
from riskserve.model.events import (
    CHECKOUT_COLUMNS,
    PAYMENT_COLUMNS,
    PAYMENT_KINDS,
    TRANSACTION_COLUMNS,
    bnpl_checkouts,
    bnpl_events,
    card_transactions,
)
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import average_precision_score, roc_auc_score

pytestmark = pytest.mark.inprocess


def features_of(cards: pd.DataFrame, log: pd.DataFrame) -> pd.DataFrame:
    homes = dict(
        zip(
            cards["card_id"],
            zip(cards["home_latitude"], cards["home_longitude"], strict=True),
            strict=True,
        )
    )
    states: dict[str, CardState] = {}
    rows = []
    for t in transactions(log):
        state = states.get(t.card_id, CardState())
        rows.append(fraud_features(t, state, *homes[t.card_id]))
        states[t.card_id] = advance(state, t)
    return pd.DataFrame(rows)


def test_card_events_have_the_raw_schema_and_believable_histories() -> None:
    events = card_transactions(cards=500, days=30, seed=1)
    log = events.transactions
    assert tuple(log.columns) == TRANSACTION_COLUMNS
    assert log["event_timestamp"].is_monotonic_increasing
    assert log["transaction_id"].is_unique
    per_card = log.groupby("card_id")
    assert per_card["event_timestamp"].apply(lambda s: s.is_unique).all()
    assert 1.0 < len(log) / 500 / 30 < 3.0  # about two a card a day
    assert 0.001 <= log["fraud"].mean() <= 0.005
    # Cardholders return to their merchants and stay near home.
    feats = features_of(events.cards, log)
    legit = log["fraud"].to_numpy() == 0
    assert feats.loc[legit, "repeat_retailer"].mean() > 0.6
    assert feats.loc[legit, "distance_from_home"].median() < 20.0
    assert feats.loc[~legit, "distance_from_home"].median() > 100.0
    assert (
        feats.loc[~legit, "ratio_to_median_purchase_price"].median()
        > 3 * feats.loc[legit, "ratio_to_median_purchase_price"].median()
    )


def test_fraud_is_found_through_the_features_but_not_perfectly() -> None:
    train = card_transactions(cards=1_000, days=30, seed=2)
    test = card_transactions(cards=1_000, days=30, seed=3)

    def design(ev):  # log of the heavy-tailed ones, as the fraud DNN does
        f = features_of(ev.cards, ev.transactions)[list(FRAUD_FEATURES)]
        for c in FRAUD_FEATURES[:3]:
            f[c] = np.log1p(f[c])
        return f.to_numpy(), ev.transactions["fraud"].to_numpy()

    x, y = design(train)
    tx, ty = design(test)
    model = LogisticRegression(max_iter=2_000).fit(x, y)
    p = model.predict_proba(tx)[:, 1]
    assert 0.93 < roc_auc_score(ty, p) < 0.9999
    # Rare positives: a useful but imperfect ranking (a base rate of ~0.003).
    assert 0.2 < average_precision_score(ty, p) < 0.95


def test_the_activity_log_starts_every_card_empty_at_issue() -> None:
    events = card_transactions(cards=20, days=3, seed=4)
    log = card_activity_log(events.transactions, events.cards)
    assert len(log) == len(events.cards) + len(events.transactions)
    first = log.groupby("card_id").head(1)
    assert (first["transactions"] == 0).all()
    assert set(first["card_id"]) == set(events.cards["card_id"])


def test_bnpl_checkouts_have_the_raw_schema() -> None:
    checkouts = bnpl_checkouts(customers=2_000, days=365, seed=1)
    assert tuple(checkouts.columns) == CHECKOUT_COLUMNS
    assert checkouts["event_timestamp"].is_monotonic_increasing
    assert 0.005 < checkouts["default"].mean() < 0.05
    assert checkouts["basket_amount"].min() > 0


def test_bnpl_payment_events_follow_each_invoice_and_the_customers_risk() -> None:
    events = bnpl_events(customers=1_500, days=540, seed=2)
    checkouts, payments = events.checkouts, events.payments
    assert tuple(payments.columns) == PAYMENT_COLUMNS
    assert payments["event_timestamp"].is_monotonic_increasing
    assert set(payments["kind"]) == set(PAYMENT_KINDS)
    assert bnpl_events(customers=1_500, days=540, seed=2).payments.equals(payments)
    # The checkouts are bnpl_checkouts' own, and a customer's events never coincide.
    assert checkouts.equals(bnpl_checkouts(customers=1_500, days=540, seed=2))
    stamps = pd.concat(
        [
            checkouts[["customer_id", "event_timestamp"]],
            payments[["customer_id", "event_timestamp"]],
        ]
    )
    assert not stamps.duplicated().any()
    # Every payment event follows its checkout; a defaulted checkout is archived 4.
    issued = checkouts.set_index("checkout_id")["event_timestamp"]
    assert (
        payments["event_timestamp"] > issued[payments["checkout_id"]].to_numpy()
    ).all()
    assert (
        payments["checkout_timestamp"] == issued[payments["checkout_id"]].to_numpy()
    ).all()
    archived = payments[payments["kind"] == "archived"].set_index("checkout_id")[
        "status"
    ]
    defaulted = checkouts.set_index("checkout_id")["default"]
    assert (archived[defaulted.reindex(archived.index) == 1] == 4).all()
    assert set(archived) == {1, 2, 3, 4}
    assert 0.75 < (archived == 1).mean() < 0.97  # most invoices are paid on time
    # The same latent risk: a late history predicts a default, as the features say.
    served = [
        credit_features(event, state) for event, state in replay(checkouts, payments)
    ]
    frame = pd.DataFrame(served)
    y = checkouts["default"].to_numpy()
    worst = frame["status_max_archived_0_12_months"].fillna(0).to_numpy()
    assert roc_auc_score(y, worst) > 0.6
    assert 0.2 < frame["account_status"].isna().mean() < 0.8  # often missing


def replay(
    checkouts: pd.DataFrame, payments: pd.DataFrame
) -> list[tuple[Checkout, CustomerState]]:
    """Each checkout with its customer's state before it, in checkout order."""
    states: dict[str, CustomerState] = {}
    found: list[tuple[Checkout, CustomerState]] = [None] * len(checkouts)  # type: ignore[list-item]
    for event, row in customer_events(checkouts, payments):
        state = states.get(event.customer_id, CustomerState())
        if row >= 0:
            assert isinstance(event, Checkout)
            found[row] = (event, state)
        states[event.customer_id] = advance_customer(state, event)
    return found
