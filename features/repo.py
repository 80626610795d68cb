"""The Feast feature repository: entities, feature views, the on-demand view that
computes the fraud model's features, the push source that keeps each card's state
fresh, and the store they live in.

Definitions are built by `definitions(offline_dir)` rather than at import, because
their offline sources are paths (a local folder now, S3 later) chosen by the caller.
The offline store is Parquet:

- `cards.parquet`: the card register (`card_id`, `issued_at`, `home_latitude`,
  `home_longitude`), the batch source of `card_profile`;
- `card_activity.parquet`: every card's state after each of its transactions
  (`riskserve.features.card.CardState` fields, `event_timestamp` = the transaction's
  time), the batch source of the push source `card_activity_push` and its view
  `card_activity`.

The online store is SQLite by default (Redis on a cluster). `card_profile` is
materialised from the register; `card_activity` is written only by pushes, one per
scored transaction (`riskserve.features.online.record_transaction`), or replayed from
the offline log.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from types import FunctionType
from typing import Any, cast

from feast import (
    Entity,
    FeatureService,
    FeatureStore,
    FeatureView,
    Field,
    FileSource,
    PushSource,
    RepoConfig,
    RequestSource,
    ValueType,
)
from feast.on_demand_feature_view import OnDemandFeatureView
from feast.types import Array, Float64, Int64, String
from riskserve.features.card import FRAUD_FEATURES, STATE_FIELDS
from riskserve.features.customer import CREDIT_FEATURES, LIST_FIELDS
from riskserve.features.customer import STATE_FIELDS as CUSTOMER_STATE_FIELDS
from riskserve.features.store_config import (
    FeatureStoreSettings,
    online_store_config,
    registry_path,
)

PROJECT = "riskserve"
CARDS_FILE = "cards.parquet"
CARD_ACTIVITY_FILE = "card_activity.parquet"
CARD_ACTIVITY_PUSH = "card_activity_push"
FRAUD_FEATURE_VIEW = "fraud_features"
FRAUD_SERVICE = "fraud_model"  # the seven model inputs
FRAUD_FULL_SERVICE = "fraud_decision"  # the seven, velocity and context
CUSTOMER_ACTIVITY_FILE = "customer_activity.parquet"
CUSTOMER_ACTIVITY_PUSH = "customer_activity_push"
CREDIT_FEATURE_VIEW = "credit_features"
CREDIT_SERVICE = "credit_model"  # the 24 model inputs
CREDIT_FULL_SERVICE = "credit_decision"  # the 24 and the context
# The raw checkout fields the credit on-demand view reads from the request.
CHECKOUT_REQUEST_FIELDS = (
    ("basket_amount", Float64),
    ("checkout_merchant_group", String),  # `merchant_group` is an output
    ("checkout_timestamp_us", Int64),
)

# The raw transaction fields the on-demand view reads from the request.
TRANSACTION_REQUEST_FIELDS = (
    ("amount", Float64),
    ("merchant_id", String),
    ("merchant_latitude", Float64),
    ("merchant_longitude", Float64),
    ("chip", Int64),
    ("pin", Int64),
    ("online", Int64),
    ("transaction_timestamp_us", Int64),
)

card = Entity(
    name="card",
    join_keys=["card_id"],
    value_type=ValueType.STRING,
    description="a payment card",
)
customer = Entity(
    name="customer",
    join_keys=["customer_id"],
    value_type=ValueType.STRING,
    description="a BNPL customer",
)

_STATE_SCHEMA = [
    Field(name="last_latitude", dtype=Float64),
    Field(name="last_longitude", dtype=Float64),
    Field(name="last_timestamp_us", dtype=Int64),
    Field(name="median_purchase", dtype=Float64),
    Field(name="transactions", dtype=Int64),
    Field(name="merchants_seen", dtype=Array(String)),
    Field(name="recent_amounts", dtype=Array(Float64)),
    Field(name="recent_timestamps_us", dtype=Array(Int64)),
    Field(name="recent_window_amounts", dtype=Array(Float64)),
]
assert tuple(f.name for f in _STATE_SCHEMA) == STATE_FIELDS


def compute_fraud_features(inputs: dict[str, Any]) -> dict[str, Any]:
    """The on-demand view's transformation (python mode, a batch of rows as columns):
    `riskserve.features.card.fraud_features` per row. Missing state (a card never
    seen) arrives as None and gets the documented defaults.

    Feast runs this function from its source text, outside this module, so what it
    needs it imports itself."""
    from riskserve.features.card import (
        CONTEXT_FEATURES,
        FRAUD_FEATURES,
        STATE_FIELDS,
        VELOCITY_FEATURES,
        CardState,
        Transaction,
        fraud_features,
    )

    names = (*FRAUD_FEATURES, *VELOCITY_FEATURES, *CONTEXT_FEATURES)
    out: dict[str, list[Any]] = {name: [] for name in names}
    for i in range(len(inputs["amount"])):
        txn = Transaction(
            card_id="",
            timestamp_us=inputs["transaction_timestamp_us"][i],
            amount=inputs["amount"][i],
            merchant_id=inputs["merchant_id"][i],
            merchant_latitude=inputs["merchant_latitude"][i],
            merchant_longitude=inputs["merchant_longitude"][i],
            chip=inputs["chip"][i],
            pin=inputs["pin"][i],
            online=inputs["online"][i],
        )
        state = CardState.from_row({f: inputs[f][i] for f in STATE_FIELDS})
        values = fraud_features(
            txn, state, inputs["home_latitude"][i], inputs["home_longitude"][i]
        )
        for name in names:
            out[name].append(values[name])
    return out


_UDF_SOURCE = inspect.getsource(compute_fraud_features)

_CUSTOMER_STATE_SCHEMA = [
    Field(name="checkouts", dtype=Int64),
    Field(name="invoices_paid", dtype=Int64),
    Field(name="recovered_debt", dtype=Float64),
    *(
        Field(
            name=n,
            dtype=Array(
                Int64
                if n.endswith(("_us", "_stages", "_statuses", "_codes"))
                else Float64
            ),
        )
        for n in LIST_FIELDS
    ),
]
assert tuple(f.name for f in _CUSTOMER_STATE_SCHEMA) == CUSTOMER_STATE_FIELDS


def compute_credit_features(inputs: dict[str, Any]) -> dict[str, Any]:
    """The credit on-demand view's transformation (python mode, columns):
    `riskserve.features.customer.credit_features` per row; a customer never seen
    arrives as None and gets the empty history's values. Imports its own names, as
    `compute_fraud_features` does."""
    from riskserve.features.customer import (
        CREDIT_FEATURES,
        CUSTOMER_CONTEXT,
        STATE_FIELDS,
        Checkout,
        CustomerState,
        credit_features,
    )

    names = (*CREDIT_FEATURES, *CUSTOMER_CONTEXT)
    out: dict[str, list[Any]] = {name: [] for name in names}
    for i in range(len(inputs["basket_amount"])):
        checkout = Checkout(
            customer_id="",
            timestamp_us=inputs["checkout_timestamp_us"][i],
            basket_amount=inputs["basket_amount"][i],
            merchant_group=inputs["checkout_merchant_group"][i],
        )
        state = CustomerState.from_row({f: inputs[f][i] for f in STATE_FIELDS})
        values = credit_features(checkout, state)
        for name in names:
            out[name].append(values[name])
    return out


_CREDIT_UDF_SOURCE = inspect.getsource(compute_credit_features)


@dataclass(frozen=True)
class Definitions:
    card_profile: FeatureView
    card_activity: FeatureView
    card_activity_push: PushSource
    fraud_features: OnDemandFeatureView
    services: tuple[FeatureService, ...]
    customer_activity: FeatureView
    customer_activity_push: PushSource
    credit_features: OnDemandFeatureView

    def all(self) -> list[Any]:
        return [
            card,
            customer,
            self.card_profile,
            self.card_activity,
            self.card_activity_push,
            self.fraud_features,
            *self.services,
            self.customer_activity,
            self.customer_activity_push,
            self.credit_features,
        ]


def definitions(offline_dir: Path | str) -> Definitions:
    """The repository's objects, with the offline store under `offline_dir`."""
    base = str(offline_dir).rstrip("/")
    register = FileSource(
        name="card_register",
        path=f"{base}/{CARDS_FILE}",
        timestamp_field="issued_at",
    )
    card_profile = FeatureView(
        name="card_profile",
        entities=[card],
        ttl=timedelta(0),  # no expiry: a card's home holds until the register changes
        schema=[
            Field(name="home_latitude", dtype=Float64),
            Field(name="home_longitude", dtype=Float64),
        ],
        source=register,
        online=True,
    )
    activity_log = FileSource(
        name="card_activity_log",
        path=f"{base}/{CARD_ACTIVITY_FILE}",
        timestamp_field="event_timestamp",
    )
    push = PushSource(name=CARD_ACTIVITY_PUSH, batch_source=activity_log)
    card_activity = FeatureView(
        name="card_activity",
        entities=[card],
        ttl=timedelta(0),  # the windows age inside the state, not by TTL
        schema=_STATE_SCHEMA,
        source=push,
        online=True,
    )
    request = RequestSource(
        name="transaction",
        schema=[Field(name=n, dtype=t) for n, t in TRANSACTION_REQUEST_FIELDS],
    )
    schema = [
        # Float64 here (Feast checks the python results' types); the model's FP32
        # inputs are these values cast to float32 by whoever builds the request.
        *(Field(name=n, dtype=Float64) for n in FRAUD_FEATURES),
        Field(name="transactions_1h", dtype=Int64),
        Field(name="amount_1h", dtype=Float64),
        Field(name="transactions_24h", dtype=Int64),
        Field(name="amount_24h", dtype=Float64),
        Field(name="card_transactions", dtype=Int64),
        Field(name="card_registered", dtype=Int64),
    ]
    # Built directly, not with Feast's decorator: the decorator renames the function's
    # module to __main__, so a second repository in one process could not read its
    # source again.
    odfv = OnDemandFeatureView(
        name=FRAUD_FEATURE_VIEW,
        sources=[card_profile, card_activity, request],
        schema=schema,
        mode="python",
        udf=cast(FunctionType, compute_fraud_features),
        udf_string=_UDF_SOURCE,
        description="the fraud model's features from the transaction and the card",
    )
    services: tuple[FeatureService, ...] = (
        FeatureService(name=FRAUD_SERVICE, features=[odfv[list(FRAUD_FEATURES)]]),
        FeatureService(name=FRAUD_FULL_SERVICE, features=[odfv]),
    )
    customer_log = FileSource(
        name="customer_activity_log",
        path=f"{base}/{CUSTOMER_ACTIVITY_FILE}",
        timestamp_field="event_timestamp",
    )
    customer_push = PushSource(name=CUSTOMER_ACTIVITY_PUSH, batch_source=customer_log)
    customer_activity = FeatureView(
        name="customer_activity",
        entities=[customer],
        ttl=timedelta(0),  # the windows age inside the state, not by TTL
        schema=_CUSTOMER_STATE_SCHEMA,
        source=customer_push,
        online=True,
    )
    checkout = RequestSource(
        name="checkout",
        schema=[Field(name=n, dtype=t) for n, t in CHECKOUT_REQUEST_FIELDS],
    )
    credit_odfv = OnDemandFeatureView(
        name=CREDIT_FEATURE_VIEW,
        sources=[customer_activity, checkout],
        schema=[
            *(
                Field(name=n, dtype=String if n == "merchant_group" else Float64)
                for n in CREDIT_FEATURES
            ),
            Field(name="customer_checkouts", dtype=Int64),
        ],
        mode="python",
        udf=cast(FunctionType, compute_credit_features),
        udf_string=_CREDIT_UDF_SOURCE,
        description="the credit model's features from the checkout and the customer",
    )
    services = (
        *services,
        FeatureService(
            name=CREDIT_SERVICE, features=[credit_odfv[list(CREDIT_FEATURES)]]
        ),
        FeatureService(name=CREDIT_FULL_SERVICE, features=[credit_odfv]),
    )
    return Definitions(
        card_profile,
        card_activity,
        push,
        odfv,
        services,
        customer_activity,
        customer_push,
        credit_odfv,
    )


def repo_config(
    repo_dir: Path, online_path: Path | None = None, redis: str | None = None
) -> RepoConfig:
    """The repository at `repo_dir`: registry and online store where
    `riskserve.features.store_config` says (by default `registry.db` and the SQLite
    `online.db` under `repo_dir`; `online_path` or the Redis at `redis`, host:port,
    win), the file offline store."""
    stores = FeatureStoreSettings()
    return RepoConfig(
        project=PROJECT,
        registry=registry_path(stores, repo_dir),
        provider="local",
        online_store=online_store_config(stores, repo_dir, online_path, redis),
        offline_store={"type": "file"},
        entity_key_serialization_version=3,
        repo_path=str(repo_dir),
    )


def open_store(repo_dir: Path, offline_dir: Path, apply: bool = True) -> FeatureStore:
    """The feature store of `repo_dir`, its definitions applied (idempotent)."""
    repo_dir.mkdir(parents=True, exist_ok=True)
    store = FeatureStore(config=repo_config(repo_dir), repo_path=str(repo_dir))
    if apply:
        store.apply(definitions(offline_dir).all())
    return store
