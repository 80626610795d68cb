"""The transformer as it runs: a real predictor process (the contract fraud model),
a Feast repository with the SQLite online store materialised from generated events,
and `python -m riskserve.transformer` in front of the predictor."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import tritonclient.http as triton
from riskserve.features.card import FRAUD_FEATURES, Transaction, haversine_km
from riskserve.features.online import lookup
from riskserve.transformer.features_source import open_feature_store

from tests.fixtures.contract_models import expected_fraud, fraud_model, write_onnx
from tests.serving.predictor_helpers import Predictor
from tests.transformer.transformer_helpers import (
    FeatureRepo,
    TransformerProcess,
    build_feature_repo,
    counter,
    outputs,
    raw_request,
    transformer_stack,
    wait_for_pushes,
)

pytestmark = pytest.mark.e2e


@dataclass
class Stack:
    repo: FeatureRepo
    predictor: Predictor
    transformer: TransformerProcess
    fail_open: TransformerProcess

    @property
    def last_time_us(self) -> int:
        return int(self.repo.events.transactions["event_timestamp"].max().value // 1000)

    def known_card(self, index: int) -> str:
        return str(self.repo.events.cards["card_id"].iloc[index])


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    folder = tmp_path_factory.mktemp("transformer")
    repo = build_feature_repo(folder)
    write_onnx(fraud_model(), folder / "model")
    with transformer_stack(folder, "fraud", folder / "model", repo.repo) as started:
        yield Stack(repo, started.predictor, started.transformer, started.fail_open)


def test_a_raw_transaction_gets_the_decision_and_the_features_it_used(
    stack: Stack,
) -> None:
    card = stack.known_card(3)
    when = stack.last_time_us + 3_600_000_000
    store = open_feature_store(stack.repo.repo)
    txn = Transaction(card, when, 250.0, "m-e2e-1", 41.0, 12.5, 0, 0, 1)
    expected = lookup(store, txn).features  # before the transformer pushes
    answer = stack.transformer.client.post(
        "/v2/models/fraud/infer",
        json=raw_request(
            card, when, 250.0, "m-e2e-1", 41.0, 12.5, chip=0, pin=0, online=1
        ),
    )
    assert answer.status_code == 200, answer.text
    got = outputs(answer)
    assert answer.json()["model_version"] == "3"
    for name in FRAUD_FEATURES:
        # float32-exact: the JSON carries float32's shortest repr.
        assert np.float32(got[name][0]) == np.float32(expected[name]), name
    assert got["card_transactions"] == [expected["card_transactions"]]
    assert got["card_registered"] == [1]
    assert got["unknown_entity"] == [False]
    assert got["features_unavailable"] == [False]
    # The decision is the predictor's on exactly those features.
    row = np.array([[got[name][0] for name in FRAUD_FEATURES]], np.float32)
    probability, is_fraud = expected_fraud(row)
    assert got["fraud_probability"][0] == pytest.approx(float(probability[0]), abs=1e-6)
    assert got["is_fraud"] == [bool(is_fraud[0])]


def test_the_cards_state_advances_after_the_answer(stack: Stack) -> None:
    card = stack.known_card(5)
    first_at = stack.last_time_us + 7_200_000_000
    pushed = counter(stack.transformer, "riskserve_transformer_pushes_total")
    first = outputs(
        stack.transformer.client.post(
            "/v2/models/fraud/infer",
            json=raw_request(card, first_at, 80.0, "m-e2e-new", 45.0, 9.0),
        )
    )
    assert first["repeat_retailer"] == [0.0]
    wait_for_pushes(stack.transformer, pushed + 1)
    second = outputs(
        stack.transformer.client.post(
            "/v2/models/fraud/infer",
            json=raw_request(card, first_at + 60_000_000, 20.0, "m-e2e-new", 45.5, 9.5),
        )
    )
    # The second sees the first as the card's last transaction.
    assert second["card_transactions"] == [first["card_transactions"][0] + 1]
    assert second["repeat_retailer"] == [1.0]
    assert np.float32(second["distance_from_last_transaction"][0]) == np.float32(
        haversine_km(45.0, 9.0, 45.5, 9.5)
    )
    assert second["transactions_1h"][0] >= 1 and second["amount_1h"][0] >= 80.0


def test_an_unknown_card_is_flagged_and_scored_on_the_defaults(stack: Stack) -> None:
    answer = stack.transformer.client.post(
        "/v2/models/fraud/infer",
        json=raw_request("card-never-seen", stack.last_time_us + 1, online=1),
    )
    got = outputs(answer)
    assert got["unknown_entity"] == [True]
    assert got["distance_from_home"] == [0.0]
    assert got["ratio_to_median_purchase_price"] == [1.0]
    assert got["repeat_retailer"] == [0.0]


def test_tritons_client_sends_binary_raw_tensors(stack: Stack) -> None:
    client = triton.InferenceServerClient(f"127.0.0.1:{stack.transformer.http_port}")
    values = {
        "card_id": ("BYTES", np.array([[b"card-never-seen-2"]], dtype=object)),
        "amount": ("FP64", np.array([[12.0]])),
        "merchant_id": ("BYTES", np.array([[b"m-1"]], dtype=object)),
        "merchant_latitude": ("FP64", np.array([[50.0]])),
        "merchant_longitude": ("FP64", np.array([[8.0]])),
        "used_chip": ("BOOL", np.array([[True]])),
        "used_pin_number": ("BOOL", np.array([[True]])),
        "online_order": ("BOOL", np.array([[False]])),
        "timestamp": ("INT64", np.array([[stack.last_time_us + 5]], np.int64)),
    }
    inputs = []
    for name, (datatype, array) in values.items():
        tensor = triton.InferInput(name, list(array.shape), datatype)
        tensor.set_data_from_numpy(array)
        inputs.append(tensor)
    result = client.infer("fraud", inputs)
    assert result.as_numpy("unknown_entity").tolist() == [True]
    assert result.as_numpy("used_pin_number").tolist() == [1.0]
    client.close()


def test_bad_raw_input_is_a_400_naming_the_field(stack: Stack) -> None:
    request = raw_request("card-x", stack.last_time_us)
    request["inputs"][3]["data"] = [123.0]  # merchant_latitude
    answer = stack.transformer.client.post("/v2/models/fraud/infer", json=request)
    assert answer.status_code == 400
    assert "'merchant_latitude'" in answer.json()["error"]


def _online_db(repo: Path) -> Path:
    return repo / "online.db"


def test_a_store_that_is_down_is_a_503_unless_fail_open(stack: Stack) -> None:
    db = sqlite3.connect(_online_db(stack.repo.repo))
    (table,) = [
        name
        for (name,) in db.execute("select name from sqlite_master where type='table'")
        if name.endswith("card_activity")
    ]
    request = raw_request(stack.known_card(7), stack.last_time_us + 10_800_000_000)
    pushed = counter(stack.fail_open, "riskserve_transformer_pushes_total")
    db.execute(f'alter table "{table}" rename to "{table}_away"')
    db.commit()
    try:
        down = stack.transformer.client.post("/v2/models/fraud/infer", json=request)
        assert down.status_code == 503, down.text
        assert "online store" in down.json()["error"]
        opened = stack.fail_open.client.post("/v2/models/fraud/infer", json=request)
        assert opened.status_code == 200, opened.text
        got = outputs(opened)
        assert got["features_unavailable"] == [True]
        assert got["ratio_to_median_purchase_price"] == [1.0]
        assert "fraud_probability" in got
    finally:
        db.execute(f'alter table "{table}_away" rename to "{table}"')
        db.commit()
        db.close()
    again = stack.transformer.client.post("/v2/models/fraud/infer", json=request)
    assert again.status_code == 200 and outputs(again)["features_unavailable"] == [
        False
    ]
    # Nothing was pushed for the fail-open answer (its state was never read).
    time.sleep(0.2)
    assert counter(stack.fail_open, "riskserve_transformer_pushes_total") == pushed
    assert counter(stack.transformer, "riskserve_transformer_store_errors_total") >= 1


def test_a_web_page_cannot_move_a_cards_state(stack: Stack) -> None:
    """What a page in the operator's browser sends (Origin / Sec-Fetch-Site, a
    text/plain body) is a 403 before it is read: nothing scored, no state pushed."""
    card = stack.known_card(7)
    pushed = counter(stack.transformer, "riskserve_transformer_pushes_total")
    body = raw_request(card, stack.last_time_us + 10_800_000_000, 5000.0, "m-page")
    for headers in (
        {"origin": "https://evil.example", "content-type": "text/plain"},
        {"sec-fetch-site": "same-site"},
    ):
        refused = stack.transformer.client.post(
            "/v2/models/fraud/infer", json=body, headers=headers
        )
        assert refused.status_code == 403
        assert "web pages are refused" in refused.json()["error"]
    assert (
        counter(stack.transformer, "riskserve_transformer_http_browser_refused_total")
        == 2
    )
    # A program's same request is scored and pushed.
    assert (
        stack.transformer.client.post("/v2/models/fraud/infer", json=body).status_code
        == 200
    )
    wait_for_pushes(stack.transformer, pushed + 1)
    assert (
        counter(stack.transformer, "riskserve_transformer_pushes_total") == pushed + 1
    )
