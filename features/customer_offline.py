"""The BNPL event log's offline store, and credit training sets from it by
point-in-time joins (the credit counterpart of `riskserve.features.offline`).

`write_customer_offline_store` folds the checkouts and the payment events, in time
order, with `riskserve.features.customer.advance` (the function the online pushes
use) into `customer_activity.parquet`: each customer's state after each of its
events. `credit_training_set` asks Feast for the credit features of every checkout as
of just before it; `credit_training_set_asof` does the same join with pandas'
`merge_asof` (Feast's file offline store is quadratic per entity) and applies the
registered on-demand view. The label is the checkout's `default`.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from feast import FeatureStore
from riskserve.features.customer import (
    CREDIT_FEATURES,
    CUSTOMER_CONTEXT,
    LIST_FIELDS,
    STATE_FIELDS,
    Checkout,
    CustomerState,
    PaymentEvent,
    advance,
)
from riskserve.features.offline import AS_OF_BEFORE, timestamp_us
from riskserve.features.repo import (
    CARD_ACTIVITY_FILE,
    CARDS_FILE,
    CREDIT_FEATURE_VIEW,
    CREDIT_FULL_SERVICE,
    CREDIT_SERVICE,
    CUSTOMER_ACTIVITY_FILE,
)
from riskserve.model.events import (
    CHECKOUT_COLUMNS,
    PAYMENT_COLUMNS,
    bnpl_events,
    card_transactions,
)

CHECKOUTS_FILE = "bnpl_checkouts.parquet"
PAYMENTS_FILE = "bnpl_payments.parquet"
# A customer's empty state is stamped this long before its first event: Feast's file
# offline store drops an entity row whose entity has only later feature rows (see
# `riskserve.features.offline.card_activity_log`).
EMPTY_BEFORE = pd.Timedelta(seconds=1)


def checkouts_of(log: pd.DataFrame) -> Iterator[Checkout]:
    """The rows of a checkout log as `Checkout`s, in the log's order."""
    stamps = timestamp_us(log["event_timestamp"]).tolist()
    for customer, ts, amount, group in zip(
        log["customer_id"].tolist(),
        stamps,
        log["basket_amount"].tolist(),
        log["merchant_group"].tolist(),
        strict=True,
    ):
        yield Checkout(customer, int(ts), float(amount), group)


def payments_of(log: pd.DataFrame) -> Iterator[PaymentEvent]:
    """The rows of a payment event log as `PaymentEvent`s, in the log's order."""
    columns = (
        log["customer_id"].tolist(),
        timestamp_us(log["event_timestamp"]).tolist(),
        timestamp_us(log["checkout_timestamp"]).tolist(),
        log["kind"].tolist(),
        log["amount"].tolist(),
        log["status"].tolist(),
    )
    for customer, ts, issued, kind, amount, status in zip(*columns, strict=True):
        yield PaymentEvent(
            customer, int(ts), int(issued), kind, float(amount), int(status)
        )


def customer_events(
    checkouts: pd.DataFrame, payments: pd.DataFrame
) -> list[tuple[Checkout | PaymentEvent, int]]:
    """Checkouts and payment events merged in time order, each with its checkout's
    row number in `checkouts` (-1 for a payment event). A payment event and a
    checkout at the same microsecond (never the generator's) go checkout first."""
    merged: list[tuple[int, int, int, Checkout | PaymentEvent]] = [
        (c.timestamp_us, 0, i, c) for i, c in enumerate(checkouts_of(checkouts))
    ]
    merged += [(p.timestamp_us, 1, i, p) for i, p in enumerate(payments_of(payments))]
    merged.sort(key=lambda item: item[:3])
    return [(event, row if kind == 0 else -1) for _, kind, row, event in merged]


def customer_activity_log(
    checkouts: pd.DataFrame, payments: pd.DataFrame
) -> pd.DataFrame:
    """Each customer's state after each of its events, stamped with the event's time,
    after an empty state stamped `EMPTY_BEFORE` its first event."""
    rows: list[dict[str, Any]] = []
    ids: list[str] = []
    stamps: list[int] = []
    states: dict[str, CustomerState] = {}
    for event, _ in customer_events(checkouts, payments):
        if event.customer_id not in states:
            ids.append(event.customer_id)
            stamps.append(event.timestamp_us - EMPTY_BEFORE.value // 1_000)
            rows.append(CustomerState().as_row())
            states[event.customer_id] = CustomerState()
        state = advance(states[event.customer_id], event)
        states[event.customer_id] = state
        ids.append(event.customer_id)
        stamps.append(event.timestamp_us)
        rows.append(state.as_row())
    log = pd.DataFrame(rows, columns=list(STATE_FIELDS))
    log.insert(0, "customer_id", ids)
    log.insert(1, "event_timestamp", pd.to_datetime(stamps, unit="us", utc=True))
    return log


def write_customer_offline_store(
    offline_dir: Path, checkouts: pd.DataFrame, payments: pd.DataFrame
) -> None:
    """The raw checkouts, the payment events and the activity log as Parquet."""
    offline_dir.mkdir(parents=True, exist_ok=True)
    checkouts.to_parquet(offline_dir / CHECKOUTS_FILE, index=False)
    payments.to_parquet(offline_dir / PAYMENTS_FILE, index=False)
    customer_activity_log(checkouts, payments).to_parquet(
        offline_dir / CUSTOMER_ACTIVITY_FILE, index=False
    )
    ensure_card_files(offline_dir)


def ensure_customer_files(offline_dir: Path) -> None:
    """An empty customer activity log (the real columns and types) where there is
    none, so every view of the repository has its file (`materialize` reads all)."""
    path = offline_dir / CUSTOMER_ACTIVITY_FILE
    if not path.exists():
        one = bnpl_events(customers=1, days=30, seed=0)
        log = customer_activity_log(one.checkouts, one.payments)
        log.iloc[:0].to_parquet(path, index=False)


def ensure_card_files(offline_dir: Path) -> None:
    """The card register and activity log, empty, where there are none (as above)."""
    from riskserve.features.offline import card_activity_log

    one = card_transactions(cards=1, days=1, seed=0)
    if not (offline_dir / CARDS_FILE).exists():
        one.cards.iloc[:0].to_parquet(offline_dir / CARDS_FILE, index=False)
    if not (offline_dir / CARD_ACTIVITY_FILE).exists():
        log = card_activity_log(one.transactions, one.cards)
        log.iloc[:0].to_parquet(offline_dir / CARD_ACTIVITY_FILE, index=False)


def credit_request_frame(checkouts: pd.DataFrame) -> pd.DataFrame:
    """Feast's entity frame for checkouts: the customer, the as-of time (a
    microsecond before the checkout) and the raw request fields."""
    return pd.DataFrame(
        {
            "customer_id": checkouts["customer_id"].to_numpy(),
            "event_timestamp": (
                checkouts["event_timestamp"] - AS_OF_BEFORE
            ).reset_index(drop=True),
            "basket_amount": checkouts["basket_amount"].astype(float).to_numpy(),
            "checkout_merchant_group": checkouts["merchant_group"]
            .astype(str)
            .to_numpy(),
            "checkout_timestamp_us": timestamp_us(
                checkouts["event_timestamp"]
            ).to_numpy(),
            "checkout_id": checkouts["checkout_id"].to_numpy(),
        }
    )


def _names(full: bool) -> list[str]:
    return [*CREDIT_FEATURES, *CUSTOMER_CONTEXT] if full else [*CREDIT_FEATURES]


def credit_training_set(
    store: FeatureStore, checkouts: pd.DataFrame, full: bool = False
) -> pd.DataFrame:
    """The credit features of every checkout as of just before it, in the log's
    order, with `checkout_id` and the `default` label (Feast's
    `get_historical_features`). `full` adds the context."""
    service = store.get_feature_service(CREDIT_FULL_SERVICE if full else CREDIT_SERVICE)
    entity = credit_request_frame(checkouts)
    joined = store.get_historical_features(entity_df=entity, features=service).to_df()
    joined = joined.set_index("checkout_id").loc[entity["checkout_id"]]
    out = joined[_names(full)].reset_index()
    out["default"] = checkouts["default"].astype("int64").to_numpy()
    return out


def credit_training_set_asof(
    store: FeatureStore, offline_dir: Path, checkouts: pd.DataFrame, full: bool = False
) -> pd.DataFrame:
    """`credit_training_set` with the point-in-time join done by `merge_asof` (the
    latest state stamped at or before the as-of time, Feast's rule) and the
    registered on-demand view applied to the joined rows."""
    entity = credit_request_frame(checkouts)
    entity["row"] = np.arange(len(entity))
    entity = entity.sort_values("event_timestamp", kind="stable")
    activity = pd.read_parquet(offline_dir / CUSTOMER_ACTIVITY_FILE).sort_values(
        "event_timestamp", kind="stable"
    )
    joined = pd.merge_asof(
        entity,
        activity.rename(columns={"event_timestamp": "state_timestamp"}),
        left_on="event_timestamp",
        right_on="state_timestamp",
        by="customer_id",
        direction="backward",
    ).sort_values("row")
    inputs: dict[str, list[Any]] = {}
    for column in joined.columns:
        inputs[column] = [
            None if isinstance(v, float) and np.isnan(v) else v
            for v in joined[column].tolist()
        ]
    for column in LIST_FIELDS:
        inputs[column] = [None if v is None else list(v) for v in inputs[column]]
    computed = store.get_on_demand_feature_view(CREDIT_FEATURE_VIEW).transform_dict(
        inputs
    )
    out = pd.DataFrame({name: computed[name] for name in _names(full)})
    out.insert(0, "checkout_id", joined["checkout_id"].to_numpy())
    out["default"] = checkouts["default"].astype("int64").to_numpy()
    return out


def read_bnpl_log(event_dir: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The checkouts and payment events of an event log folder, checked for their
    columns and UTC timestamps."""
    frames = []
    for name, columns in (
        (CHECKOUTS_FILE, CHECKOUT_COLUMNS),
        (PAYMENTS_FILE, PAYMENT_COLUMNS),
    ):
        path = event_dir / name
        if not path.is_file():
            raise ValueError(
                f"{event_dir}: no {name} (a BNPL event log holds {CHECKOUTS_FILE} and "
                f"{PAYMENTS_FILE}; `python -m riskserve.features generate` writes them)"
            )
        frame = pd.read_parquet(path)
        missing = [c for c in columns if c not in frame.columns]
        if missing:
            raise ValueError(f"{path}: missing column(s) {', '.join(missing)}")
        for column in ("event_timestamp", "checkout_timestamp"):
            if column in columns and not isinstance(
                frame[column].dtype, pd.DatetimeTZDtype
            ):
                raise ValueError(
                    f"{path}: column {column!r} must be a UTC timestamp, got "
                    f"{frame[column].dtype}"
                )
        frames.append(frame)
    checkouts, payments = frames
    return checkouts.sort_values("event_timestamp", kind="stable").reset_index(
        drop=True
    ), payments


def credit_training_set_from_log(event_dir: Path, work_dir: Path) -> pd.DataFrame:
    """The credit training set of a BNPL event log folder: its offline store and a
    Feast repository written under `work_dir`, then `credit_training_set_asof`."""
    from riskserve.features.repo import open_store

    checkouts, payments = read_bnpl_log(event_dir)
    write_customer_offline_store(work_dir / "offline", checkouts, payments)
    store = open_store(work_dir / "repo", work_dir / "offline")
    return credit_training_set_asof(store, work_dir / "offline", checkouts)
