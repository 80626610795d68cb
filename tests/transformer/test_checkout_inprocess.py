"""The checkout decision in process: which decision a transformer makes, a raw
checkout's parsing and refusals, and the credit predictor request's wire form."""

from __future__ import annotations

import numpy as np
import orjson
import pytest
from riskserve.features.customer import Checkout, CustomerState, credit_features
from riskserve.serving.binary_tensors import decode_inputs, split_body
from riskserve.serving.errors import InvalidInput
from riskserve.transformer.checkout import CHECKOUT, NUMERIC
from riskserve.transformer.decisions import CARD, decision_for
from riskserve.transformer.predictor_client import features_request
from riskserve.transformer.raw_request import parse_raw_request

from tests.transformer.transformer_helpers import raw_checkout, raw_request

pytestmark = pytest.mark.inprocess

NOW_US = 1_767_225_600_000_000  # 2026-01-01 UTC


def test_the_decision_follows_the_model() -> None:
    assert decision_for("credit") is CHECKOUT
    assert decision_for("credit-canary") is CHECKOUT
    assert decision_for("fraud") is CARD
    assert decision_for("creditworthy") is CARD  # only credit or credit-...
    assert decision_for("fraud", "customer") is CHECKOUT
    assert decision_for("credit", "card") is CARD
    with pytest.raises(ValueError, match="unknown decision kind 'loan'"):
        decision_for("credit", "loan")


def test_a_raw_checkout_becomes_a_checkout() -> None:
    body = orjson.dumps(raw_checkout("cust-1", NOW_US, 99.5, "Home & Garden"))
    raw = parse_raw_request(body, None, 64, CHECKOUT)
    assert raw.events == [Checkout("cust-1", NOW_US, 99.5, "Home & Garden")]


@pytest.mark.parametrize(
    ("field", "change", "says"),
    [
        (
            "merchant_group",
            {"data": ["Groceries"]},
            "'merchant_group' holds 'Groceries'",
        ),
        ("merchant_group", {"datatype": "INT32", "data": [3]}, "must be BYTES"),
        ("basket_amount", {"data": [float("inf")]}, "'basket_amount' holds NaN"),
        ("customer_id", {"data": ["c" * 300]}, "'customer_id' holds an empty id"),
        ("timestamp", {"data": [0]}, "'timestamp' must hold microseconds"),
    ],
)
def test_bad_raw_checkout_input_is_refused_naming_the_field(
    field: str, change: dict, says: str
) -> None:
    request = raw_checkout("cust-1", NOW_US)
    for item in request["inputs"]:
        if item["name"] == field:
            item.update(change)
    with pytest.raises(InvalidInput) as refused:
        parse_raw_request(orjson.dumps(request), None, 64, CHECKOUT)
    assert says in refused.value.message


def test_a_card_transaction_sent_to_a_checkout_transformer_is_refused() -> None:
    body = orjson.dumps(raw_request("card-1", NOW_US))
    with pytest.raises(InvalidInput, match="unknown input tensor 'card_id'"):
        parse_raw_request(body, None, 64, CHECKOUT)


def test_the_credit_predictor_gets_fp32_features_and_the_group_as_bytes() -> None:
    checkouts = [
        Checkout("a", NOW_US, 10.0, "Electronics"),
        Checkout("b", NOW_US, 20.0, "Erotic Material"),
    ]
    features = [credit_features(c, CustomerState()) for c in checkouts]
    inputs = CHECKOUT.model_inputs(features, 2)
    body, length = features_request(inputs, "req-1")
    head, binary = split_body(body, length)
    request = orjson.loads(head)
    assert request["id"] == "req-1"
    assert request["parameters"] == {"binary_data_output": True}
    decoded = {t.name: t for t in decode_inputs(request["inputs"], binary)}
    assert list(decoded) == [*NUMERIC, "merchant_group"]
    assert decoded["merchant_group"].datatype == "BYTES"
    assert list(decoded["merchant_group"].array.ravel()) == [
        "Electronics",
        "Erotic Material",
    ]
    assert decoded["time_hours"].datatype == "FP32"
    assert decoded["time_hours"].shape == (2, 1)
    # Missing stays missing on the wire (NaN), zeros stay zeros.
    assert np.isnan(decoded["account_status"].array).all()
    assert (decoded["sum_paid_inv_0_12m"].array == 0).all()
