"""Every client mistake is a 400 naming the tensor; the server stays up and correct."""

from __future__ import annotations

import copy

import numpy as np
import pytest
from riskserve.model.specs import FRAUD

from tests.serving.predictor_helpers import load_testdata

pytestmark = pytest.mark.e2e


def _request() -> dict:
    return load_testdata("fraud_infer_request.json")


def _with(change) -> dict:  # noqa: ANN001
    request = _request()
    change(request)
    return request


def _tensor(request: dict, name: str) -> dict:
    return next(t for t in request["inputs"] if t["name"] == name)


def _set(name: str, **fields):  # noqa: ANN202
    def change(request: dict) -> None:
        _tensor(request, name).update(fields)

    return change


def _rows(n: int) -> dict:
    return {
        "inputs": [
            {"name": f, "shape": [n, 1], "datatype": "FP32", "data": [1.0] * n}
            for f in FRAUD.feature_names
        ]
    }


# (case id, request body or raw bytes, words the error must contain)
BAD_REQUESTS = [
    ("invalid-json", b'{"inputs": [', ["not valid JSON"]),
    ("not-an-object", b"[1, 2, 3]", ["not a JSON object"]),
    ("no-inputs", {"id": "x"}, ["inputs"]),
    ("empty-inputs", {"inputs": []}, ["inputs"]),
    (
        "missing-tensor",
        _with(lambda r: r["inputs"].pop(2)),
        ["missing input tensor", "ratio_to_median_purchase_price"],
    ),
    (
        "unknown-tensor",
        _with(
            lambda r: r["inputs"].append(
                {**copy.deepcopy(r["inputs"][0]), "name": "amount"}
            )
        ),
        ["unknown input tensor", "amount"],
    ),
    (
        "duplicate-tensor",
        _with(lambda r: r["inputs"].append(copy.deepcopy(r["inputs"][0]))),
        ["distance_from_home", "twice"],
    ),
    (
        "shape-vs-data",
        _with(_set("used_chip", shape=[3, 1])),
        ["used_chip", "shape [3, 1]", "2 values"],
    ),
    (
        "wrong-shape",
        _with(_set("used_chip", shape=[1, 2])),
        ["used_chip", "expects [-1, 1]"],
    ),
    (
        "wrong-datatype",
        _with(_set("online_order", datatype="INT64", data=[1, 0])),
        ["online_order", "INT64", "expects FP32"],
    ),
    (
        "unknown-datatype",
        _with(_set("online_order", datatype="FLOAT")),
        ["online_order", "unknown datatype"],
    ),
    (
        "non-numeric",
        _with(_set("distance_from_home", data=[["far"], [1.0]])),
        ["distance_from_home", "non-numeric"],
    ),
    (
        "booleans-for-fp32",
        _with(_set("used_pin_number", data=[True, False])),
        ["used_pin_number", "booleans"],
    ),
    (
        "ragged",
        _with(_set("used_pin_number", data=[[1.0, 2.0], [1.0]])),
        ["used_pin_number", "ragged"],
    ),
    (
        "no-data",
        _with(lambda r: _tensor(r, "used_chip").pop("data")),
        ["used_chip", "no data"],
    ),
    (
        "bad-shape-type",
        _with(_set("used_chip", shape="2x1")),
        ["used_chip", "shape"],
    ),
    (
        "mixed-batch-sizes",
        _with(_set("online_order", shape=[3, 1], data=[1.0, 0.0, 1.0])),
        ["different batch sizes", "online_order"],
    ),
    ("batch-above-max", _rows(65), ["65 rows", "limit of 64"]),
    ("zero-rows", _rows(0), ["no rows"]),
    (
        "unknown-output",
        _with(lambda r: r.update(outputs=[{"name": "fraud_score"}])),
        ["unknown output", "fraud_score"],
    ),
    (
        "matrix-wrong-width",
        {
            "inputs": [
                {
                    "name": "dense_input",
                    "shape": [1, 6],
                    "datatype": "FP32",
                    "data": [[1, 2, 3, 4, 5, 6]],
                }
            ]
        },
        ["dense_input", "[N, 7]"],
    ),
    (
        "matrix-not-fp32",
        {
            "inputs": [
                {
                    "name": "dense_input",
                    "shape": [1, 7],
                    "datatype": "FP64",
                    "data": [[1, 2, 3, 4, 5, 6, 7]],
                }
            ]
        },
        ["dense_input", "must be FP32"],
    ),
    (
        "id-not-string",
        _with(lambda r: r.update(id=42)),
        ["id"],
    ),
    (
        "binary-extension",
        _with(
            lambda r: (
                _tensor(r, "used_chip").pop("data"),
                _tensor(r, "used_chip").update(parameters={"binary_data_size": 8}),
            )
        ),
        ["used_chip", "binary"],
    ),
]


@pytest.mark.parametrize(
    ("body", "words"),
    [pytest.param(body, words, id=case) for case, body, words in BAD_REQUESTS],
)
def test_bad_request_is_400_naming_the_problem(fraud_server, conforms, body, words):
    if isinstance(body, bytes):
        response = fraud_server.client.post(
            "/v2/models/fraud/infer",
            content=body,
            headers={"content-type": "application/json"},
        )
    else:
        response = fraud_server.infer(body)
    assert response.status_code == 400, response.text
    conforms(response.json(), "inference_error_response")
    error = response.json()["error"]
    for word in words:
        assert word in error, (word, error)


def test_body_above_limit_is_400(fraud_server):
    padding = "x" * 70_000  # the server's limit is 65,536 bytes
    request = _request()
    request["id"] = padding
    response = fraud_server.infer(request)
    assert response.status_code == 400
    assert "above the limit of 65536 bytes" in response.json()["error"]


def test_body_above_limit_without_content_length_is_400(fraud_server):
    def chunks():  # noqa: ANN202 - chunked transfer: no Content-Length header
        for _ in range(20):
            yield b" " * 5000

    response = fraud_server.client.post(
        "/v2/models/fraud/infer",
        content=chunks(),
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 400
    assert "above the limit" in response.json()["error"]


def test_wrong_method_is_405(fraud_server):
    assert fraud_server.client.get("/v2/models/fraud/infer").status_code == 405
    assert fraud_server.client.post("/v2/health/live").status_code == 405


def test_credit_rejects_a_feature_matrix_and_wrong_bytes(credit_server):
    matrix = {
        "inputs": [
            {"name": "x", "shape": [1, 24], "datatype": "FP32", "data": [[0.0] * 24]}
        ]
    }
    response = credit_server.infer(matrix, model="credit")
    assert response.status_code == 400
    assert "merchant_group" in response.json()["error"]

    request = load_testdata("credit_infer_request.json")
    group = request["inputs"][-1]
    group.update(datatype="FP32", data=[1.0, 2.0])
    response = credit_server.infer(request, model="credit")
    assert response.status_code == 400
    assert "merchant_group" in response.json()["error"]
    assert "expects BYTES" in response.json()["error"]

    group.update(datatype="BYTES", data=[1, 2])
    response = credit_server.infer(request, model="credit")
    assert response.status_code == 400
    assert "merchant_group" in response.json()["error"]


def test_server_stays_correct_after_bad_requests(fraud_server):
    good = _request()
    before = fraud_server.infer(good).json()["outputs"]
    for _, body, _ in BAD_REQUESTS:
        if isinstance(body, bytes):
            fraud_server.client.post("/v2/models/fraud/infer", content=body)
        else:
            fraud_server.infer(body)
    after = fraud_server.infer(good)
    assert after.status_code == 200
    assert after.json()["outputs"] == before
    assert fraud_server.process.alive()
    probability = after.json()["outputs"][0]["data"]
    assert np.all(np.isfinite(probability))
