"""The v2 binary tensor data extension, built and read by Triton's own client library
(tritonclient), in process and against a real predictor, and every disagreement a
client can send answered with a 400 that says what disagrees."""

from __future__ import annotations

import json
import struct

import httpx
import numpy as np
import pytest
import tritonclient.http as triton
from riskserve.model.specs import CREDIT, FRAUD
from riskserve.serving.dataplane import DataPlane
from riskserve.serving.model import OnnxRiskModel
from riskserve.serving.rest import RestApp

from tests.asyncio_runner import run as run_async
from tests.fixtures.contract_models import (
    CREDIT_NUMERIC,
    credit_model,
    expected_credit,
    expected_fraud,
    fraud_model,
    write_onnx,
)

ROWS = np.array(
    [[12.5, 0.3, 4.2, 1, 0, 0, 1], [3.1, 0.9, 0.6, 1, 1, 1, 0], [80, 2, 9, 0, 0, 0, 1]],
    dtype=np.float32,
)


@pytest.fixture(scope="module")
def planes(tmp_path_factory) -> dict[str, DataPlane]:
    root = tmp_path_factory.mktemp("binary")
    loaded = {}
    for name, proto in (("fraud", fraud_model()), ("credit", credit_model())):
        model = OnnxRiskModel(name, write_onnx(proto, root / name))
        model.load()
        loaded[name] = DataPlane(model)
    return loaded


def post(plane: DataPlane, body: bytes, headers: dict | None = None) -> httpx.Response:
    app = RestApp(plane, max_body_bytes=1 << 24)

    async def one() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://p") as c:
            return await c.post(
                f"/v2/models/{plane.model.name}/infer",
                content=body,
                headers=headers or {},
            )

    return run_async(one())


def fraud_inputs(rows: np.ndarray, binary: bool | list[bool]) -> list:
    flags = binary if isinstance(binary, list) else [binary] * rows.shape[1]
    inputs = []
    for i, name in enumerate(FRAUD.feature_names):
        tensor = triton.InferInput(name, [len(rows), 1], "FP32")
        tensor.set_data_from_numpy(rows[:, [i]], binary_data=flags[i])
        inputs.append(tensor)
    return inputs


def triton_body(inputs, outputs=None, **kwargs) -> tuple[bytes, dict]:
    body, json_size = triton.InferenceServerClient.generate_request_body(
        inputs, outputs=outputs, **kwargs
    )
    headers = {"content-type": "application/octet-stream"}
    if json_size is not None:
        headers["Inference-Header-Content-Length"] = str(json_size)
    return body, headers


def parsed(response: httpx.Response):
    length = response.headers.get("inference-header-content-length")
    return triton.InferenceServerClient.parse_response_body(
        response.content, header_length=int(length) if length else None
    )


pytestmark = pytest.mark.inprocess


@pytest.mark.parametrize(
    "binary", [True, [True, False, True, False, True, True, False]]
)
def test_binary_and_mixed_inputs_score_like_json(planes, binary) -> None:
    expected, decided = expected_fraud(ROWS)
    response = post(planes["fraud"], *triton_body(fraud_inputs(ROWS, binary)))
    assert response.status_code == 200, response.text
    result = parsed(response)
    np.testing.assert_allclose(
        result.as_numpy("fraud_probability"), expected, atol=1e-6
    )
    np.testing.assert_array_equal(result.as_numpy("is_fraud"), decided)


def test_outputs_come_back_binary_when_asked(planes) -> None:
    outputs = [
        triton.InferRequestedOutput("fraud_probability", binary_data=True),
        triton.InferRequestedOutput("is_fraud", binary_data=False),
    ]
    response = post(planes["fraud"], *triton_body(fraud_inputs(ROWS, True), outputs))
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/octet-stream"
    header_length = int(response.headers["inference-header-content-length"])
    header = json.loads(response.content[:header_length])
    by_name = {o["name"]: o for o in header["outputs"]}
    assert by_name["fraud_probability"]["parameters"]["binary_data_size"] == 3 * 4
    assert "data" not in by_name["fraud_probability"]
    assert by_name["is_fraud"]["data"] == expected_fraud(ROWS)[1].tolist()
    raw = response.content[header_length:]
    np.testing.assert_allclose(
        np.frombuffer(raw, "<f4"), expected_fraud(ROWS)[0], atol=1e-6
    )


def test_binary_data_output_makes_every_output_binary(planes) -> None:
    # tritonclient asks for this itself when no outputs are named; here by hand.
    request = {
        "inputs": [
            {
                "name": n,
                "datatype": "FP32",
                "shape": [3, 1],
                "data": ROWS[:, i].tolist(),
            }
            for i, n in enumerate(FRAUD.feature_names)
        ],
        "parameters": {"binary_data_output": True},
    }
    response = post(planes["fraud"], json.dumps(request).encode())
    assert response.status_code == 200, response.text
    result = parsed(response)
    np.testing.assert_array_equal(result.as_numpy("is_fraud"), expected_fraud(ROWS)[1])
    header = result.get_response()
    assert all("binary_data_size" in o["parameters"] for o in header["outputs"])


def test_bytes_inputs_travel_length_prefixed(planes) -> None:
    rng = np.random.default_rng(1)
    numeric = rng.normal(size=(2, len(CREDIT_NUMERIC))).astype(np.float32)
    groups = ["Entertainment", "Food & Beverage"]
    inputs = []
    for feature in CREDIT.features:
        if feature.name == "merchant_group":
            tensor = triton.InferInput(feature.name, [2, 1], "BYTES")
            tensor.set_data_from_numpy(np.array(groups, dtype=object).reshape(2, 1))
        else:
            column = CREDIT_NUMERIC.index(feature.name)
            tensor = triton.InferInput(feature.name, [2, 1], "FP32")
            tensor.set_data_from_numpy(numeric[:, [column]])
        inputs.append(tensor)
    outputs = [triton.InferRequestedOutput("default_probability", binary_data=True)]
    response = post(planes["credit"], *triton_body(inputs, outputs))
    assert response.status_code == 200, response.text
    expected = expected_credit(numeric, groups)[0]
    np.testing.assert_allclose(
        parsed(response).as_numpy("default_probability"), expected, atol=1e-5
    )


def raw_request(header: dict, binary: bytes, length: int | str | None = None):
    encoded = json.dumps(header).encode()
    headers = {
        "Inference-Header-Content-Length": str(
            len(encoded) if length is None else length
        )
    }
    return encoded + binary, headers


ONE = {
    "name": "distance_from_home",
    "datatype": "FP32",
    "shape": [2, 1],
    "parameters": {"binary_data_size": 8},
}


@pytest.mark.parametrize(
    ("header", "binary", "length", "says"),
    [
        ({"inputs": [ONE]}, struct.pack("<ff", 1, 2), 10_000, "beyond the body"),
        ({"inputs": [ONE]}, struct.pack("<f", 1), None, "runs past the end"),
        ({"inputs": [ONE]}, struct.pack("<fff", 1, 2, 3), None, "after the last"),
        (
            {"inputs": [{**ONE, "parameters": {"binary_data_size": 12}}]},
            struct.pack("<fff", 1, 2, 3),
            None,
            "shape [2, 1]",
        ),
        (
            {"inputs": [{**ONE, "parameters": {"binary_data_size": -1}}]},
            b"",
            None,
            "non-negative",
        ),
        ({"inputs": [{**ONE, "data": [1, 2]}]}, struct.pack("<ff", 1, 2), None, "both"),
        ({"inputs": [ONE]}, struct.pack("<ff", 1, 2), "ten", "byte count"),
        ({"inputs": []}, b"", None, "'inputs' list is empty"),
    ],
)
def test_disagreements_are_a_400_that_says_what_disagrees(
    planes, header, binary, length, says
) -> None:
    response = post(planes["fraud"], *raw_request(header, binary, length))
    assert response.status_code == 400, response.text
    assert says in response.json()["error"]


def test_binary_data_without_the_header_says_what_is_missing(planes) -> None:
    body, _ = triton_body(fraud_inputs(ROWS, True))
    response = post(planes["fraud"], body)
    assert response.status_code == 400
    assert "Inference-Header-Content-Length" in response.json()["error"]


def test_an_empty_inputs_list_gets_its_own_message(planes) -> None:
    response = post(planes["fraud"], b'{"inputs": []}')
    assert response.status_code == 400
    assert "empty" in response.json()["error"]
    response = post(planes["fraud"], b'{"inputs": 3}')
    assert "no 'inputs' list" in response.json()["error"]
