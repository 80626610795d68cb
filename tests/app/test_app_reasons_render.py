"""Reason codes and scorecard points in the app, without a server: [N, K] outputs are
one list per row, a decline lists its reasons, the points chart adds up."""

from __future__ import annotations

import re

import pytest
from riskserve.app.batch import _cell
from riskserve.app.render import credit_answer_html
from riskserve.app.v2_client import ModelMetadata, parse_response

pytestmark = pytest.mark.inprocess

CODES = [
    "account_worst_status_0_3m: worst status in the last 3 months is 4",
    "avg_payment_span_0_12m: average days to pay in 12 months is 25 or more",
    "",
    "",
]


def response(approved: bool, points: list[float] | None = None) -> dict:
    outputs = [
        {
            "name": "default_probability",
            "shape": [1],
            "datatype": "FP32",
            "data": [0.3],
        },
        {"name": "credit_score", "shape": [1], "datatype": "FP32", "data": [521.3]},
        {"name": "approved", "shape": [1], "datatype": "BOOL", "data": [approved]},
        {"name": "reason_codes", "shape": [1, 4], "datatype": "BYTES", "data": CODES},
    ]
    if points is not None:
        outputs.append(
            {
                "name": "feature_points",
                "shape": [1, len(points)],
                "datatype": "FP32",
                "data": [points],
            }
        )
    return {"model_name": "credit", "model_version": "9", "outputs": outputs}


def metadata(features: str = "") -> ModelMetadata:
    return ModelMetadata(
        "credit",
        ("9",),
        "onnxruntime_onnx",
        (),
        (),
        {"cutoff": "560", "reason_features": features},
    )


def test_an_n_by_k_output_is_one_list_per_row() -> None:
    body = response(False)
    body["outputs"][3] = {
        "name": "reason_codes",
        "shape": [2, 2],
        "datatype": "BYTES",
        "data": [["a: 1", "b: 2"], ["c: 3", ""]],
    }
    result = parse_response(body, None)
    assert result.outputs["reason_codes"] == [["a: 1", "b: 2"], ["c: 3", ""]]
    body["outputs"][3]["shape"] = [3, 2]
    with pytest.raises(ValueError, match="does not match"):
        parse_response(body, None)


def test_a_decline_lists_its_reasons_worst_first() -> None:
    html = credit_answer_html(parse_response(response(False), None), metadata())
    assert "DECLINED" in html and "Reasons for the decline" in html
    items = re.findall(r'<li class="rs-reason">(.*?)</li>', html)
    assert len(items) == 2  # the padding is not shown
    assert items[0].startswith("<b>account_worst_status_0_3m</b>: worst status")
    assert "rs-points" not in html  # no feature_points: not a scorecard


def test_an_approval_does_not_claim_decline_reasons() -> None:
    html = credit_answer_html(parse_response(response(True), None), metadata())
    assert "Reasons for the decline" not in html
    assert "What held the score down" in html


def test_a_scorecard_gets_its_points_chart() -> None:
    points = [12.5, -3.0, 40.25]
    html = credit_answer_html(
        parse_response(response(False, points), None), metadata("a,b,c")
    )
    values = re.findall(r'class="rs-points-value"[^>]*>(-?[\d.]+)<', html)
    assert values == ["40.2", "12.5", "-3.0"]
    assert "sum of these points (49.8)" in html


def test_the_batch_file_joins_the_reasons_of_a_row() -> None:
    assert _cell(CODES) == f"{CODES[0]} | {CODES[1]}"
    assert _cell(["", ""]) == ""
