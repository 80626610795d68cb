"""The checkout transformer as it runs: a real credit predictor process (the contract
credit model), a Feast repository whose SQLite online store holds generated
customers' payment histories, and `python -m riskserve.transformer --model_name
credit` in front of the predictor: raw checkouts in, the credit decision and the 24
features it used out."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pytest
from riskserve.features.customer import CREDIT_FEATURES, Checkout
from riskserve.features.customer_online import CustomerReader
from riskserve.transformer.checkout import NUMERIC
from riskserve.transformer.features_source import open_feature_store

from tests.fixtures.contract_models import credit_model, expected_credit, write_onnx
from tests.serving.predictor_helpers import Predictor
from tests.transformer.transformer_helpers import (
    CustomerRepo,
    TransformerProcess,
    build_customer_repo,
    counter,
    outputs,
    raw_checkout,
    transformer_stack,
    wait_for_pushes,
)

pytestmark = pytest.mark.e2e

INFER = "/v2/models/credit/infer"


@dataclass
class Stack:
    repo: CustomerRepo
    predictor: Predictor
    transformer: TransformerProcess
    fail_open: TransformerProcess

    @property
    def after_log_us(self) -> int:
        last = max(
            self.repo.events.checkouts["event_timestamp"].max(),
            self.repo.events.payments["event_timestamp"].max(),
        )
        return int(last.value // 1000) + 3_600_000_000

    def customer_with_history(self) -> str:
        """A customer with several checkouts and something open or archived late."""
        payments = self.repo.events.payments
        late = payments[payments["kind"] == "reminder"]["customer_id"]
        return str(late.value_counts().index[0])


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    folder = tmp_path_factory.mktemp("checkout")
    repo = build_customer_repo(folder)
    write_onnx(credit_model(), folder / "model")
    with transformer_stack(folder, "credit", folder / "model", repo.repo) as started:
        yield Stack(repo, started.predictor, started.transformer, started.fail_open)


def test_a_raw_checkout_gets_the_credit_decision_and_the_features_it_used(
    stack: Stack,
) -> None:
    customer = stack.customer_with_history()
    when = stack.after_log_us
    reader = CustomerReader(open_feature_store(stack.repo.repo))
    expected = reader.lookup(Checkout(customer, when, 120.0, "Electronics")).features
    answer = stack.transformer.client.post(
        INFER, json=raw_checkout(customer, when, 120.0, "Electronics")
    )
    assert answer.status_code == 200, answer.text
    got = outputs(answer)
    assert answer.json()["model_version"] == "7"
    for name in NUMERIC:
        # float32-exact, missing (NaN, JSON null) as missing.
        want = np.float32(expected[name])
        value = got[name][0]
        if np.isnan(want):
            assert value is None or np.isnan(value), name
        else:
            assert np.float32(value) == want, name
    assert got["merchant_group"] == ["Electronics"]
    assert got["customer_checkouts"] == [expected["customer_checkouts"]]
    assert expected["customer_checkouts"] > 1 and expected["has_paid"] == 1.0
    assert got["unknown_entity"] == [False]
    assert got["features_unavailable"] == [False]
    numeric = np.array([[expected[n] for n in NUMERIC]], np.float32)
    probability, score, approved = expected_credit(numeric, ["Electronics"])
    assert got["default_probability"][0] == pytest.approx(
        float(probability[0]), rel=1e-5, abs=1e-12
    )
    # The contract model's fixed weights saturate on a long history's sums (a
    # probability of 0, an infinite score, sent as null): compare a finite score only.
    if np.isfinite(score[0]):
        assert got["credit_score"][0] == pytest.approx(float(score[0]), rel=1e-5)
    assert got["approved"] == [bool(approved[0])]


def test_the_customers_state_advances_after_the_answer(stack: Stack) -> None:
    customer = stack.customer_with_history()
    when = stack.after_log_us + 86_400_000_000
    pushed = counter(stack.transformer, "riskserve_transformer_pushes_total")
    first = outputs(
        stack.transformer.client.post(INFER, json=raw_checkout(customer, when, 300.0))
    )
    wait_for_pushes(stack.transformer, pushed + 1)
    second = outputs(
        stack.transformer.client.post(
            INFER, json=raw_checkout(customer, when + 60_000_000, 10.0)
        )
    )
    assert second["customer_checkouts"] == [first["customer_checkouts"][0] + 1]
    # The first checkout's invoice is open now: the account is current (1) at worst.
    assert second["account_status"][0] is not None
    assert second["account_status"][0] >= 1.0


def test_an_unknown_customer_is_flagged_and_scored_on_the_empty_history(
    stack: Stack,
) -> None:
    answer = stack.transformer.client.post(
        INFER, json=raw_checkout("cust-never-seen", stack.after_log_us, 55.0)
    )
    assert answer.status_code == 200, answer.text
    got = outputs(answer)
    assert got["unknown_entity"] == [True]
    assert got["customer_checkouts"] == [0]
    assert got["has_paid"] == [0.0]
    assert got["sum_paid_inv_0_12m"] == [0.0]
    assert got["account_status"][0] is None or np.isnan(got["account_status"][0])
    assert "default_probability" in got


@pytest.mark.parametrize(
    ("field", "change", "says"),
    [
        (
            "merchant_group",
            {"data": ["Groceries"]},
            "'merchant_group' holds 'Groceries'",
        ),
        ("basket_amount", {"data": [-3.0]}, "'basket_amount' holds a negative amount"),
        ("customer_id", {"data": [""]}, "'customer_id' holds an empty id"),
        ("timestamp", {"datatype": "FP64", "data": [1.5]}, "'timestamp'"),
    ],
)
def test_bad_raw_checkout_input_is_a_400_naming_the_field(
    stack: Stack, field: str, change: dict, says: str
) -> None:
    request = raw_checkout("cust-x", stack.after_log_us)
    for item in request["inputs"]:
        if item["name"] == field:
            item.update(change)
    answer = stack.transformer.client.post(INFER, json=request)
    assert answer.status_code == 400
    assert says in answer.json()["error"]
    card = stack.transformer.client.post(
        INFER, json={"inputs": [{**request["inputs"][0], "name": "card_id"}]}
    )
    assert card.status_code == 400
    assert "unknown input tensor 'card_id'" in card.json()["error"]


def test_the_metadata_lists_the_checkouts_raw_inputs(stack: Stack) -> None:
    metadata = stack.transformer.client.get("/v2/models/credit").json()
    assert [(i["name"], i["datatype"]) for i in metadata["inputs"]] == [
        ("customer_id", "BYTES"),
        ("basket_amount", "FP64"),
        ("merchant_group", "BYTES"),
        ("timestamp", "INT64"),
    ]
    assert metadata["parameters"]["decision"] == "customer"
    names = [o["name"] for o in metadata["outputs"]]
    assert set(CREDIT_FEATURES) <= set(names)
    assert {"unknown_entity", "features_unavailable"} <= set(names)


def test_a_store_that_is_down_is_a_503_unless_fail_open(stack: Stack) -> None:
    db = sqlite3.connect(stack.repo.repo / "online.db")
    (table,) = [
        name
        for (name,) in db.execute("select name from sqlite_master where type='table'")
        if name.endswith("customer_activity")
    ]
    request = raw_checkout(stack.customer_with_history(), stack.after_log_us + 7)
    pushed = counter(stack.fail_open, "riskserve_transformer_pushes_total")
    db.execute(f'alter table "{table}" rename to "{table}_away"')
    db.commit()
    try:
        down = stack.transformer.client.post(INFER, json=request)
        assert down.status_code == 503, down.text
        assert "online store" in down.json()["error"]
        opened = stack.fail_open.client.post(INFER, json=request)
        assert opened.status_code == 200, opened.text
        got = outputs(opened)
        assert got["features_unavailable"] == [True]
        assert got["unknown_entity"] == [False]
        assert got["customer_checkouts"] == [0]  # scored on the empty history
        assert "default_probability" in got
    finally:
        db.execute(f'alter table "{table}_away" rename to "{table}"')
        db.commit()
        db.close()
    again = stack.transformer.client.post(INFER, json=request)
    assert again.status_code == 200
    assert outputs(again)["features_unavailable"] == [False]
    time.sleep(0.2)
    assert counter(stack.fail_open, "riskserve_transformer_pushes_total") == pushed
