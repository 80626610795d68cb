"""The transformer's inference log in process: a record per answered request (raw
inputs, the model inputs sent, the other features, the predictor's outputs), none for
a refused one, and each on disk before its answer's bytes leave. The store and the
predictor are the fakes of test_inprocess.py; test_inference_log_e2e.py runs real
processes and SIGKILLs them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
from riskserve.features.customer import Checkout, CustomerState, credit_features
from riskserve.serving.inference_log import SEGMENT_SUFFIX, InferenceLog
from riskserve.serving.settings import StorageSettings
from riskserve.transformer.app import TransformerApp
from riskserve.transformer.checkout import CHECKOUT
from riskserve.transformer.inference_log import raw_columns, transformer_record

from tests.asyncio_runner import run as run_async
from tests.transformer.test_inprocess import NOW_US, body, call, make_app, outputs
from tests.transformer.transformer_helpers import raw_request

pytestmark = pytest.mark.inprocess


def logged_app(root: Path) -> tuple[TransformerApp, Any, InferenceLog]:
    app, _, _, predictor = make_app()
    log = InferenceLog(str(root), StorageSettings())
    app.t.inference_log = log
    return app, predictor, log


def published(root: Path) -> list[dict[str, Any]]:
    return [
        orjson.loads(line)
        for path in sorted(root.glob("*/*/*.jsonl"))
        for line in path.read_bytes().splitlines()
    ]


def two_transactions() -> bytes:
    first = raw_request("card-1", NOW_US, amount=42.5)
    second = raw_request(
        "unknown-7", NOW_US + 5, amount=900.0, merchant_id="m09-003", online=1
    )
    for mine, other in zip(first["inputs"], second["inputs"], strict=True):
        mine["shape"] = [2]
        mine["data"] += other["data"]
    first["id"] = "req-two-rows"
    return orjson.dumps(first)


def test_an_answered_request_is_recorded_with_raw_inputs_features_and_outputs(
    tmp_path: Path,
) -> None:
    app, predictor, log = logged_app(tmp_path)
    (answer,) = call(
        app, [("POST", "/v2/models/fraud/infer", {"content": two_transactions()})]
    )
    log.close()
    assert answer.status_code == 200, answer.text
    (record,) = published(tmp_path)
    assert record["stage"] == "transformer"
    assert record["request_id"] == answer.json()["id"] == "req-two-rows"
    assert (record["model_name"], record["model_version"]) == ("fraud", "3")
    # The raw inputs as sent, a column per field, a row per transaction.
    assert record["raw_inputs"] == {
        "card_id": ["card-1", "unknown-7"],
        "amount": [42.5, 900.0],
        "merchant_id": ["m00-001", "m09-003"],
        "merchant_latitude": [48.85, 48.85],
        "merchant_longitude": [2.35, 2.35],
        "used_chip": [True, True],
        "used_pin_number": [False, False],
        "online_order": [False, True],
        "timestamp": [NOW_US, NOW_US + 5],
    }
    # The model inputs are what the predictor was sent (the features as served).
    sent = predictor.calls[0]
    assert list(record["inputs"]) == list(sent)
    for name, values in sent.items():
        # float32-exact: orjson writes a float32 as its shortest repr.
        logged = np.asarray(record["inputs"][name], np.float32)
        assert np.array_equal(logged, values), name
    assert record["outputs"] == {
        "fraud_probability": [0.25, 0.25],
        "is_fraud": [False, False],
    }
    # The other features used, flags included, as answered.
    got = outputs(answer)
    assert set(record["features"]) == {
        "transactions_1h",
        "amount_1h",
        "transactions_24h",
        "amount_24h",
        "card_transactions",
        "card_registered",
        "unknown_entity",
        "features_unavailable",
    }
    for name, values in record["features"].items():
        assert values == got[name], name
    assert record["features"]["unknown_entity"] == [False, True]


def test_a_refused_request_leaves_no_record(tmp_path: Path) -> None:
    app, _, log = logged_app(tmp_path)
    answers = call(
        app,
        [
            (
                "POST",
                "/v2/models/fraud/infer",
                {"content": body(amount={"data": [-1.0]})},
            ),
            (
                "POST",
                "/v2/models/fraud/infer",
                {"content": body(card_id={"datatype": "INT32", "data": [7]})},
            ),
        ],
    )
    log.close()
    assert [a.status_code for a in answers] == [400, 400]
    assert "'amount'" in answers[0].json()["error"]
    assert published(tmp_path) == []
    assert list(tmp_path.rglob(f"*{SEGMENT_SUFFIX}")) == []


def test_the_record_is_on_disk_before_the_answer_leaves(tmp_path: Path) -> None:
    app, _, log = logged_app(tmp_path)
    spooled_at_start: list[list[str]] = []
    scope = {
        "type": "http",
        "method": "POST",
        "path": "/v2/models/fraud/infer",
        "headers": [],
    }
    request = orjson.loads(body())
    request["id"] = "req-before-answer"

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": orjson.dumps(request)}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            assert message["status"] == 200
            # What another process would read now: the spool segment's lines.
            spooled_at_start.append(
                [
                    orjson.loads(line)["request_id"]
                    for path in log.spool_dir.glob(f"*{SEGMENT_SUFFIX}")
                    for line in path.read_bytes().splitlines()
                ]
            )

    run_async(app(scope, receive, send))
    log.close()
    assert spooled_at_start == [["req-before-answer"]]
    assert [r["request_id"] for r in published(tmp_path)] == ["req-before-answer"]


def test_without_a_log_nothing_is_written(tmp_path: Path) -> None:
    app, *_ = make_app()
    (answer,) = call(app, [("POST", "/v2/models/fraud/infer", {"content": body()})])
    assert answer.status_code == 200
    assert app.t.inference_log is None
    assert list(tmp_path.iterdir()) == []


def test_a_checkouts_record_has_its_raw_fields_and_the_group_as_text() -> None:
    checkouts = [
        Checkout("cust-1", NOW_US, 10.0, "Electronics"),
        Checkout("cust-2", NOW_US + 1, 20.5, "Erotic Material"),
    ]
    features = [credit_features(c, CustomerState()) for c in checkouts]
    record = orjson.loads(
        transformer_record(
            request_id="req-checkout",
            model_name="credit",
            model_version="2",
            raw_inputs=raw_columns(CHECKOUT.raw_inputs, checkouts),
            model_inputs=CHECKOUT.model_inputs(features, 2),
            outputs=[],
            features=[],
            latency_seconds=0.001,
        ).to_json()
    )
    assert record["raw_inputs"] == {
        "customer_id": ["cust-1", "cust-2"],
        "basket_amount": [10.0, 20.5],
        "merchant_group": ["Electronics", "Erotic Material"],
        "timestamp": [NOW_US, NOW_US + 1],
    }
    assert record["inputs"]["merchant_group"] == ["Electronics", "Erotic Material"]
    # A customer never seen: missing payment history stays missing (null), as the
    # predictor logs NaN, so the monitor counts it in the missing rate.
    assert record["inputs"]["account_status"] == [None, None]
    assert len(record["inputs"]) == len(CHECKOUT.model_inputs(features, 2))
