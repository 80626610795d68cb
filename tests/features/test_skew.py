"""Skew, proved: the features a transformer computes at serve time (online store +
on-demand view, event by event, with the state written after each answer) equal the
point-in-time features of the training set for the same events, float32-exact."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from riskserve.features.card import (
    CONTEXT_FEATURES,
    FRAUD_FEATURES,
    VELOCITY_FEATURES,
)
from riskserve.features.offline import (
    fraud_training_set,
    fraud_training_set_asof,
    transactions,
)
from riskserve.features.online import (
    CardReader,
    CardStateWriter,
    lookup,
    record_transaction,
)

from tests.features.conftest import EventRepo

pytestmark = pytest.mark.inprocess

COMPARED = (*FRAUD_FEATURES, *VELOCITY_FEATURES, *CONTEXT_FEATURES)


def serve_all(repo: EventRepo) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Replay the log in time order as a transformer would: look up, answer, write.
    Returns the features of Feast's lookup (online features + on-demand view) and of
    the direct reader, both read before each write."""
    store = repo.store
    register = repo.events.cards.assign(event_timestamp=repo.events.cards["issued_at"])
    store.write_to_online_store("card_profile", register)
    writer = CardStateWriter(store)
    reader = CardReader(store)
    served, direct = [], []
    for txn in transactions(repo.events.transactions):
        found = lookup(store, txn)
        served.append(found.features)
        direct.append(reader.lookup(txn).features)
        record_transaction(writer, txn, found.state)
    return pd.DataFrame(served), pd.DataFrame(direct)


def test_serving_features_equal_the_training_set_float32_exact(
    event_repo: EventRepo,
) -> None:
    log = event_repo.events.transactions
    trained = fraud_training_set(event_repo.store, log, full=True)

    # The training job's join (merge_asof + the registered on-demand view).
    job = fraud_training_set_asof(
        event_repo.store, event_repo.offline_dir, log, full=True
    )
    served, direct = serve_all(event_repo)

    assert len(trained) == len(job) == len(served) == len(log)
    assert list(trained["transaction_id"]) == list(log["transaction_id"])
    assert list(job["transaction_id"]) == list(log["transaction_id"])
    for name in COMPARED:
        at_serve = np.asarray(served[name], np.float64).astype(np.float32)
        paths = (
            ("get_historical_features", trained),
            ("the job", job),
            ("the direct reader", direct),
        )
        for path, frame in paths:
            at_train = np.asarray(frame[name], np.float64).astype(np.float32)
            differ = np.flatnonzero(at_serve != at_train)
            assert differ.size == 0, (
                f"{name} ({path}): {differ.size} of {len(log)} rows differ, first "
                f"{log['transaction_id'].iloc[differ[0]]}: served "
                f"{at_serve[differ[0]]}, trained {at_train[differ[0]]}"
            )
    # The comparison covers real histories, not defaults alone.
    assert (trained["card_transactions"] > 0).mean() > 0.8
    assert 0.1 < trained["repeat_retailer"].mean() < 1.0
    assert (trained["transactions_24h"] > 0).mean() > 0.5


def test_a_training_row_sees_only_what_was_known_before_its_transaction(
    event_repo: EventRepo,
) -> None:
    log = event_repo.events.transactions
    trained = fraud_training_set(event_repo.store, log, full=True)
    # Each card's k-th transaction (from 0) sees exactly k earlier ones.
    earlier = log.groupby("card_id").cumcount().to_numpy()
    assert (trained["card_transactions"].to_numpy() == earlier).all()
    first = earlier == 0
    # A first transaction has nothing to move from and no median to compare with.
    assert (trained.loc[first, "distance_from_last_transaction"] == 0.0).all()
    assert (trained.loc[first, "ratio_to_median_purchase_price"] == 1.0).all()
    assert (trained.loc[first, "repeat_retailer"] == 0.0).all()
