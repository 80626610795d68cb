"""Skew, proved for credit: the features a transformer computes for a checkout (the
customer's state from the online store + the on-demand view, with each checkout's and
each payment event's state update written as it happens) equal the point-in-time
features of the credit training set, float32-exact (missing as missing)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from riskserve.features.customer import CREDIT_FEATURES, CUSTOMER_CONTEXT, Checkout
from riskserve.features.customer_offline import (
    credit_training_set,
    credit_training_set_asof,
    customer_events,
)
from riskserve.features.customer_online import (
    CustomerReader,
    CustomerStateWriter,
    lookup,
    record_checkout,
    record_payment_event,
)

from tests.features.conftest import CustomerRepo

pytestmark = pytest.mark.inprocess

NUMERIC = [n for n in CREDIT_FEATURES if n != "merchant_group"] + list(CUSTOMER_CONTEXT)


def serve_all(repo: CustomerRepo) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Replay the log in time order: each checkout looked up (Feast's lookup and the
    direct reader), answered, its state written; each payment event written."""
    store = repo.store
    writer = CustomerStateWriter(store)
    reader = CustomerReader(store)
    checkouts = repo.events.checkouts
    served: list[dict] = [{}] * len(checkouts)
    direct: list[dict] = [{}] * len(checkouts)
    for event, row in customer_events(checkouts, repo.events.payments):
        if isinstance(event, Checkout):
            found = lookup(store, event)
            served[row] = found.features
            direct[row] = reader.lookup(event).features
            record_checkout(writer, event, found.state)
        else:
            record_payment_event(writer, reader, event)
    return pd.DataFrame(served), pd.DataFrame(direct)


def as_float32(values: pd.Series) -> np.ndarray:
    return np.asarray([np.nan if v is None else v for v in values], np.float64).astype(
        np.float32
    )


# Feast's file offline store joins each entity row with every row of its customer
# (quadratic: all 700 checkouts take over a minute here), so its own join is checked
# on every 5th checkout and the training job's join on all of them.
FEAST_SAMPLE = 5


def test_serving_credit_features_equal_the_training_set_float32_exact(
    customer_repo: CustomerRepo,
) -> None:
    checkouts = customer_repo.events.checkouts
    sample = np.arange(0, len(checkouts), FEAST_SAMPLE)
    trained = credit_training_set(
        customer_repo.store, checkouts.iloc[sample], full=True
    )
    job = credit_training_set_asof(
        customer_repo.store, customer_repo.offline_dir, checkouts, full=True
    )
    served, direct = serve_all(customer_repo)

    assert len(job) == len(served) == len(checkouts)
    assert list(trained["checkout_id"]) == list(checkouts["checkout_id"].iloc[sample])
    assert list(job["checkout_id"]) == list(checkouts["checkout_id"])
    for name in NUMERIC:
        for path, frame, rows in (
            ("get_historical_features", trained, sample),
            ("the job", job, slice(None)),
            ("the direct reader", direct, slice(None)),
        ):
            at_train = as_float32(frame[name])
            at_serve = as_float32(served[name])[rows]
            same = (at_serve == at_train) | (np.isnan(at_serve) & np.isnan(at_train))
            differ = np.flatnonzero(~same)
            assert differ.size == 0, (
                f"{name} ({path}): {differ.size} of {len(at_train)} rows differ, "
                f"first {frame['checkout_id'].iloc[differ[0]]}: served "
                f"{at_serve[differ[0]]}, trained {at_train[differ[0]]}"
            )
    groups = list(checkouts["merchant_group"])
    assert list(served["merchant_group"]) == groups
    assert list(job["merchant_group"]) == list(direct["merchant_group"]) == groups
    assert list(trained["merchant_group"]) == [groups[i] for i in sample]
    # The comparison covers real histories, missing values and all the windows.
    assert (job["customer_checkouts"] > 0).mean() > 0.8
    assert 0.1 < job["account_status"].isna().mean() < 0.9
    assert (job["sum_capital_paid_account_12_24m"] > 0).mean() > 0.1
    assert (job["account_days_in_rem_12_24m"] > 0).any()
    assert (job["account_worst_status_0_3m"] >= 2).any()
    assert (job["status_max_archived_0_24_months"] == 4).any()
    assert (job["recovery_debt"] > 0).any()


def test_a_credit_training_row_sees_only_what_was_known_before_its_checkout(
    customer_repo: CustomerRepo,
) -> None:
    checkouts = customer_repo.events.checkouts
    trained = credit_training_set_asof(
        customer_repo.store, customer_repo.offline_dir, checkouts, full=True
    )
    earlier = checkouts.groupby("customer_id").cumcount().to_numpy()
    assert (trained["customer_checkouts"].to_numpy() == earlier).all()
    first = earlier == 0
    # A first checkout has no history: zeros, nothing paid, statuses missing.
    assert (trained.loc[first, "sum_paid_inv_0_12m"] == 0.0).all()
    assert (trained.loc[first, "has_paid"] == 0.0).all()
    assert trained.loc[first, "account_status"].isna().all()
    assert trained.loc[first, "avg_payment_span_0_12m"].isna().all()
