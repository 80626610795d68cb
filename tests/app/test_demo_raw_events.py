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
from riskserve.features.customer import CREDIT_FEATURES
from riskserve.features.customer_offline import (
    checkouts_of,
    credit_training_set_asof,
    write_customer_offline_store,
)
from riskserve.features.customer_online import CustomerReader
from riskserve.features.offline import (
    fraud_training_set_asof,
    transactions,
    write_offline_store,
)
from riskserve.features.online import CardReader
from riskserve.features.repo import open_store
from riskserve.localplatform.apply_check import check_documents
from riskserve.localplatform.client import apply_yaml, wait_ready
from riskserve.localplatform.spec_rules import load_yaml_documents
from riskserve.transformer.raw_request import parse_raw_request

from riskserve.demo import (
    DRIFT_FACTOR,
    NEW_CUSTOMER,
    CustomerFeatures,
    build_card_features,
    build_customer_features,
    checkout_requests,
    isvc,
    raw_checkout,
    raw_transaction,
    send_checkouts,
    traffic_slices,
    try_checkout,
)
from tests.fixtures.contract_models import credit_model, write_onnx
from tests.localplatform.platform_helpers import Platform

NUMERIC_CREDIT = [n for n in CREDIT_FEATURES if n != "merchant_group"]


@pytest.mark.inprocess
def test_the_demo_puts_both_models_behind_a_transformer_over_one_repository(
    tmp_path,
) -> None:
    repo, model = tmp_path / "features" / "repo", tmp_path / "model"
    for name in ("fraud", "credit"):
        documents = load_yaml_documents(isvc(name, str(model), repo))
        ((_, problems),) = check_documents(documents, 20, [tmp_path.resolve()])
        assert problems == []
        assert documents[0]["metadata"]["name"] == name
        (container,) = documents[0]["spec"]["transformer"]["containers"]
        assert container["args"] == ["--feature_repo", str(repo)]
        assert documents[0]["spec"]["predictor"]["model"]["storageUri"] == str(model)
    bare = load_yaml_documents(isvc("credit", str(model)))
    assert "transformer" not in bare[0]["spec"]


@pytest.mark.inprocess
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


@pytest.mark.inprocess
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


@pytest.fixture(scope="module")
def customer_data(tmp_path_factory) -> CustomerFeatures:
    """The demo's BNPL data, small, in a repository that holds the cards' too."""
    folder = tmp_path_factory.mktemp("demo-customers")
    build_card_features(folder, cards=5, days=1, say=lambda _: None)
    return build_customer_features(folder, customers=300, days=60, say=lambda _: None)


@pytest.mark.inprocess
def test_the_demo_seeds_each_customers_state_as_training_sees_it(
    customer_data: CustomerFeatures, tmp_path
) -> None:
    data = customer_data
    assert (
        data.checkouts["event_timestamp"].max() < data.traffic["event_timestamp"].min()
    )
    assert (
        data.payments["event_timestamp"].max() < data.traffic["event_timestamp"].min()
    )
    # Each known customer's next checkout: the served features (the seeded online
    # store) equal the point-in-time features of a training set over history + it.
    firsts = data.traffic.drop_duplicates("customer_id")
    known = firsts[firsts["customer_id"].isin(data.checkouts["customer_id"])]
    assert len(known) >= 3
    store = open_store(data.repo, data.event_log, apply=False)
    reader = CustomerReader(store)
    served = pd.DataFrame([reader.lookup(c).features for c in checkouts_of(known)])
    both = pd.concat([data.checkouts, known], ignore_index=True)
    write_customer_offline_store(tmp_path / "all", both, data.payments)
    full = open_store(tmp_path / "all-repo", tmp_path / "all")
    training = credit_training_set_asof(full, tmp_path / "all", both)
    trained = training.set_index("checkout_id").loc[known["checkout_id"]]
    np.testing.assert_array_equal(
        served[NUMERIC_CREDIT].to_numpy(np.float32),
        trained[NUMERIC_CREDIT].to_numpy(np.float32),
    )
    assert (served["sum_paid_inv_0_12m"] > 0).any()  # real histories
    # The card side of the same repository is still there.
    assert store.get_feature_view("card_activity") is not None

    requests = checkout_requests(data.traffic)
    assert len(requests) == len(data.traffic) + 1
    last = {t["name"]: t["data"][0] for t in requests[-1]["inputs"]}
    assert last["customer_id"] == NEW_CUSTOMER
    assert last["timestamp"] > data.traffic["event_timestamp"].max().value // 1000
    # The summary's curl: a known customer, after everything the demo sent.
    tried = {t["name"]: t["data"][0] for t in try_checkout(data.traffic)["inputs"]}
    assert tried["customer_id"] in set(data.checkouts["customer_id"])
    assert tried["timestamp"] > last["timestamp"]


@pytest.mark.e2e
def test_a_raw_checkout_gets_a_decision_through_the_gateway(
    customer_data: CustomerFeatures, tmp_path
) -> None:
    """credit as the demo applies it (its transformer over the demo's repository)
    on the local platform: the day's checkouts and a new customer's get decisions
    through the gateway, and the demo prints them."""
    model = tmp_path / "credit-model"
    write_onnx(credit_model(version="3"), model)
    platform = Platform(tmp_path / "state").start()
    try:
        apply_yaml(platform.settings, isvc("credit", str(model), customer_data.repo))
        wait_ready(platform.settings, ["credit"], 180)
        requests = checkout_requests(customer_data.traffic)
        lines: list[str] = []
        sent, approved = send_checkouts(
            platform.settings.gateway_url, requests, say=lines.append
        )
        assert sent == len(requests)
        assert 0 < approved <= sent
        known = lines[0]
        customer = requests[0]["inputs"][0]["data"][0]
        assert known.lstrip().startswith(customer)
        assert ("APPROVED" in known) != ("DECLINED" in known)
        assert "checkouts before" in known and "unknown customer" not in known
        assert NEW_CUSTOMER in lines[-1] and "unknown customer" in lines[-1]

        # The answer itself: the predictor's decision and the features it used.
        answer = platform.client.post("/v2/models/credit/infer", json=requests[0])
        assert answer.status_code == 200, answer.text
        got = {o["name"]: o["data"] for o in answer.json()["outputs"]}
        assert answer.json()["model_version"] == "3"
        assert {"default_probability", "approved", "credit_score"} <= set(got)
        assert set(CREDIT_FEATURES) <= set(got)
        assert got["unknown_entity"] == [False]
        customer, _, group, when = (t["data"][0] for t in requests[0]["inputs"])
        bad = platform.client.post(
            "/v2/models/credit/infer",
            json=raw_checkout(customer, -1.0, group, when + 1),
        )
        assert bad.status_code == 400
        assert "'basket_amount'" in bad.json()["error"]
    finally:
        platform.stop()
        platform.client.close()
