"""A small event log in a Feast repository of its own (SQLite online store)."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import pytest
from feast import FeatureStore
from riskserve.features.offline import write_offline_store
from riskserve.features.repo import open_store
from riskserve.model.events import CardEvents, card_transactions


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
