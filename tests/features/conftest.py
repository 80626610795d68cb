"""Small event logs (card transactions; BNPL checkouts and payments) in a Feast
repository of their own (SQLite online store)."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import pytest
from feast import FeatureStore
from riskserve.features.customer_offline import write_customer_offline_store
from riskserve.features.offline import write_offline_store
from riskserve.features.repo import open_store
from riskserve.model.events import (
    BnplEvents,
    CardEvents,
    bnpl_events,
    card_transactions,
)


@dataclass
class EventRepo:
    events: CardEvents
    store: FeatureStore
    offline_dir: Path


def make_repo(root: Path, cards: int, days: int, seed: int) -> EventRepo:
    events = card_transactions(cards=cards, days=days, seed=seed, fraud_rate=0.004)
    write_offline_store(root / "offline", events.cards, events.transactions)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # "ODFVs are experimental"
        store = open_store(root / "repo", root / "offline")
    return EventRepo(events, store, root / "offline")


@pytest.fixture
def event_repo(tmp_path: Path) -> EventRepo:
    return make_repo(tmp_path, cards=40, days=4, seed=3)


@dataclass
class CustomerRepo:
    events: BnplEvents
    store: FeatureStore
    offline_dir: Path


def make_customer_repo(
    root: Path, customers: int, days: int, seed: int
) -> CustomerRepo:
    events = bnpl_events(customers=customers, days=days, seed=seed)
    write_customer_offline_store(root / "offline", events.checkouts, events.payments)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # "ODFVs are experimental"
        store = open_store(root / "repo", root / "offline")
    return CustomerRepo(events, store, root / "offline")


@pytest.fixture(scope="module")
def customer_repo(tmp_path_factory: pytest.TempPathFactory) -> CustomerRepo:
    # Long enough (20 months) for the 12-24 month windows to hold history. Shared by
    # a module's tests: only the skew test's replay writes its online store.
    return make_customer_repo(
        tmp_path_factory.mktemp("customers"), customers=30, days=600, seed=4
    )
