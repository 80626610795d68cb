"""The transformer's direct lookup gives exactly what the feature layer's Feast lookup
gives (the on-demand view through `get_online_features`), for known cards, cards with
no home, unknown cards, and after state writes."""

from __future__ import annotations

from pathlib import Path

import pytest
from riskserve.features.card import Transaction
from riskserve.features.online import CardStateWriter, lookup, record_transaction
from riskserve.transformer.direct_lookup import DirectLookup
from riskserve.transformer.features_source import open_feature_store

from tests.transformer.transformer_helpers import build_feature_repo

pytestmark = pytest.mark.inprocess


def test_the_direct_lookup_equals_the_on_demand_view(tmp_path: Path) -> None:
    repo = build_feature_repo(tmp_path, cards=20, days=2, seed=4)
    store = open_feature_store(repo.repo)
    direct = DirectLookup(store)
    writer = CardStateWriter(store)
    when = int(repo.events.transactions["event_timestamp"].max().value // 1000)
    cards = [*repo.events.cards["card_id"].tolist(), "card-never-seen"]
    compared = 0
    for step in range(3):  # again after each card's state has been written
        for index, card in enumerate(cards):
            when += 7_000_000
            txn = Transaction(
                card,
                when,
                10.0 + index,
                f"m{index % 3}",
                40.0 + index,
                5.0,
                1,
                0,
                step % 2,
            )
            expected, got = lookup(store, txn), direct.lookup(txn)
            assert got.features == expected.features, card
            assert got.state == expected.state, card
            record_transaction(writer, txn, got.state)
            compared += 1
    assert compared == 3 * len(cards)
