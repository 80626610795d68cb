"""`riskserve demo` on raw events, without running the whole demo: the fraud
InferenceService it applies has the transformer over its feature repository (and
passes the local platform's checks), its traffic is what the transformer parses, and
the online store it seeds holds the state training sees (the features served for each
card's next transaction equal the training set's point-in-time features)."""

from __future__ import annotations

import numpy as np
import orjson
import pandas as pd
import pytest
from riskserve.app.examples import load_examples_file, write_examples_file
from riskserve.features.card import FRAUD_FEATURES
from riskserve.features.offline import (
    fraud_training_set_asof,
    transactions,
    write_offline_store,
)
from riskserve.features.online import CardReader
from riskserve.features.repo import open_store
from riskserve.localplatform.apply_check import check_documents
from riskserve.localplatform.spec_rules import load_yaml_documents
from riskserve.transformer.raw_request import parse_raw_request

from riskserve.demo import (
    DRIFT_FACTOR,
    build_card_features,
    isvc,
    raw_transaction,
    traffic_slices,
)

pytestmark = pytest.mark.inprocess


def test_the_demo_puts_fraud_behind_a_transformer_and_keeps_credit_bare(
    tmp_path,
) -> None:
    repo, model = tmp_path / "features" / "repo", tmp_path / "model"
    fraud = load_yaml_documents(isvc("fraud", str(model), repo))
    credit = load_yaml_documents(isvc("credit", str(model)))
    for documents in (fraud, credit):
        ((_, problems),) = check_documents(documents, 20, [tmp_path.resolve()])
        assert problems == []
    (container,) = fraud[0]["spec"]["transformer"]["containers"]
    assert container["args"] == ["--feature_repo", str(repo)]
    assert fraud[0]["spec"]["predictor"]["model"]["storageUri"] == str(model)
    assert "transformer" not in credit[0]["spec"]


def test_the_demo_seeds_the_state_training_sees_and_sends_what_the_transformer_parses(
    tmp_path,
) -> None:
    data = build_card_features(tmp_path / "demo", cards=25, days=2, say=lambda _: None)
    assert len(data.traffic) > 0
    assert data.history["event_timestamp"].max() < data.traffic["event_timestamp"].min()

    # Each card's next transaction: the served features (the seeded online store)
    # equal the point-in-time features of a training set over history + that day.
    firsts = data.traffic.drop_duplicates("card_id")
    store = open_store(data.repo, data.event_log, apply=False)
    reader = CardReader(store)
    served = pd.DataFrame(
        [reader.lookup(txn).features for txn in transactions(firsts)]
    )[list(FRAUD_FEATURES)]
    both = pd.concat([data.history, firsts], ignore_index=True)
    write_offline_store(tmp_path / "all", data.cards, both)
    full = open_store(tmp_path / "all-repo", tmp_path / "all")
    training = fraud_training_set_asof(full, tmp_path / "all", both)
    trained = (
        training.set_index("transaction_id")
        .loc[firsts["transaction_id"], list(FRAUD_FEATURES)]
        .reset_index(drop=True)
    )
    np.testing.assert_array_equal(
        served.to_numpy(np.float32), trained.to_numpy(np.float32)
    )
    assert (served["distance_from_last_transaction"] > 0).any()  # real histories

    # The traffic: what the transformer parses, the drifted third at 3x the amount.
    calm, drifted = traffic_slices(data.traffic)
    assert len(calm) + len(drifted) == len(data.traffic)
    assert len(drifted) == len(data.traffic) - len(data.traffic) * 2 // 3
    np.testing.assert_allclose(
        drifted["amount"],
        data.traffic["amount"].iloc[len(calm) :] * DRIFT_FACTOR,
    )
    row = data.traffic.iloc[0]
    parsed = parse_raw_request(
        orjson.dumps(raw_transaction(row.to_dict())), None, 10
    ).transactions
    assert parsed == [next(transactions(data.traffic.iloc[:1]))]


def test_the_examples_file_round_trips_and_a_bad_one_is_one_line(tmp_path) -> None:
    path = tmp_path / "examples.json"
    examples = {"fraud": {"a card": {"card_id": "card-05-000001", "amount": 12.5}}}
    write_examples_file(path, examples)
    assert load_examples_file(path) == examples
    path.write_text('{"fraud": ["not", "a", "mapping"]}')
    with pytest.raises(ValueError) as bad:
        load_examples_file(path)
    assert "\n" not in str(bad.value) and str(path) in str(bad.value)
    with pytest.raises(ValueError, match="cannot read"):
        load_examples_file(tmp_path / "missing.json")
