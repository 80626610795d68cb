"""In-process: the credit tab behind a checkout transformer. Its metadata (the shape
riskserve's transformer answers: raw inputs under `parameters.raw_inputs`) gives a
customer-and-basket form, and its answer's computed features and unknown-customer
flag are shown. The fraud side runs against real processes in
`test_app_raw_events.py`."""

from __future__ import annotations

import pytest
from riskserve.app.fields import fields_from_metadata
from riskserve.app.render import credit_answer_html
from riskserve.app.v2_client import InferenceResult, ModelMetadata, build_inputs
from riskserve.model.specs import CREDIT, MERCHANT_GROUPS

pytestmark = pytest.mark.inprocess

CHECKOUT_METADATA = {
    "name": "credit",
    "versions": [],
    "platform": "riskserve-transformer",
    "inputs": [
        {"name": "customer_id", "datatype": "BYTES", "shape": [-1, 1]},
        {"name": "basket_amount", "datatype": "FP64", "shape": [-1, 1]},
        {"name": "merchant_group", "datatype": "BYTES", "shape": [-1, 1]},
        {"name": "timestamp", "datatype": "INT64", "shape": [-1, 1]},
    ],
    "outputs": [
        {"name": "default_probability", "datatype": "FP32", "shape": [-1]},
        {"name": "credit_score", "datatype": "FP32", "shape": [-1]},
        {"name": "approved", "datatype": "BOOL", "shape": [-1]},
        {"name": "time_hours", "datatype": "FP32", "shape": [-1]},
        {"name": "unknown_entity", "datatype": "BOOL", "shape": [-1]},
    ],
    "parameters": {
        "raw_inputs": {
            "customer_id": "the customer",
            "basket_amount": "the basket's amount, not negative",
            "merchant_group": "one of the credit schema's merchant groups",
            "timestamp": "microseconds since the Unix epoch, UTC",
        },
        "fail_open": False,
    },
}


def test_a_checkout_transformer_gives_a_customer_and_basket_form() -> None:
    metadata = ModelMetadata.from_json(CHECKOUT_METADATA)
    assert metadata.takes_raw_events
    assert "raw_inputs" not in metadata.parameters
    fields = {f.name: f for f in fields_from_metadata(metadata, CREDIT)}
    assert list(fields) == [
        "customer_id",
        "basket_amount",
        "merchant_group",
        "timestamp",
    ]
    assert fields["merchant_group"].categories == MERCHANT_GROUPS
    with pytest.raises(ValueError, match="merchant_group 'Shoes' is not one of"):
        fields["merchant_group"].parse("Shoes")
    with pytest.raises(ValueError, match="customer_id is empty"):
        fields["customer_id"].parse("  ")
    columns = {
        "customer_id": [fields["customer_id"].parse("c-000042")],
        "basket_amount": [fields["basket_amount"].parse("129.90")],
        "merchant_group": [fields["merchant_group"].parse(MERCHANT_GROUPS[0])],
        "timestamp": [fields["timestamp"].parse("2026-01-31 14:05:00")],
    }
    sent = {t["name"]: t for t in build_inputs(metadata, columns)}
    assert sent["timestamp"]["data"] == [1769868300_000_000]
    assert sent["timestamp"]["datatype"] == "INT64"
    assert sent["basket_amount"]["data"] == [129.9]
    assert sent["customer_id"]["data"] == ["c-000042"]


def test_the_credit_answer_shows_the_computed_features_and_an_unknown_customer() -> (
    None
):
    metadata = ModelMetadata.from_json(CHECKOUT_METADATA)
    result = InferenceResult(
        "credit",
        "4",
        "credit-transformer-00001",
        {
            "default_probability": [0.02],
            "credit_score": [640.0],
            "approved": [True],
            "time_hours": [14.0],
            "unknown_entity": [True],
        },
    )
    page = credit_answer_html(result, metadata)
    assert "APPROVED" in page
    assert "Unknown customer: no history" in page
    assert 'data-name="time_hours"' in page and "(model input)" in page
    bare = InferenceResult(
        "credit",
        "4",
        None,
        {"default_probability": [0.02], "credit_score": [640.0], "approved": [True]},
    )
    assert "Features the transformer computed" not in credit_answer_html(bare, metadata)


def test_an_unusable_examples_file_ends_the_app_with_one_line(
    tmp_path, monkeypatch, capsys
) -> None:
    from riskserve.app.__main__ import main

    bad = tmp_path / "examples.json"
    bad.write_text("[1, 2")
    monkeypatch.setenv("RISKSERVE_APP_GATEWAY_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("RISKSERVE_APP_EXAMPLES_FILE", str(bad))
    assert main([]) == 2
    error = capsys.readouterr().err
    assert error == (
        f"riskserve app: error: RISKSERVE_APP_EXAMPLES_FILE: {bad} is not JSON\n"
    )
