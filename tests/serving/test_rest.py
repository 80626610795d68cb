"""v2 REST: every endpoint, both input forms, BYTES inputs, checked against the spec."""

from __future__ import annotations

import copy

import numpy as np
import pytest
from riskserve.model.specs import CREDIT, FRAUD

from tests.fixtures.contract_models import expected_credit, expected_fraud
from tests.serving.predictor_helpers import REVISION, load_testdata

pytestmark = pytest.mark.e2e


def _fraud_rows(request: dict) -> np.ndarray:
    by_name = {
        t["name"]: np.asarray(t["data"], np.float32).ravel() for t in request["inputs"]
    }
    return np.stack([by_name[n] for n in FRAUD.feature_names], axis=1)


def _outputs(body: dict) -> dict:
    return {o["name"]: o for o in body["outputs"]}


def test_server_health_and_metadata(fraud_server, conforms):
    assert fraud_server.client.get("/v2/health/live").status_code == 200
    assert fraud_server.client.get("/v2/health/ready").status_code == 200
    for path in ("/v2", "/v2/"):
        response = fraud_server.client.get(path)
        assert response.status_code == 200
        conforms(response.json(), "metadata_server_response")
        assert response.json()["name"] == "riskserve"


def test_model_metadata_comes_from_the_graph(fraud_server, conforms):
    for path in ("/v2/models/fraud", "/v2/models/fraud/versions/3"):
        response = fraud_server.client.get(path)
        assert response.status_code == 200, response.text
        metadata = response.json()
        conforms(metadata, "metadata_model_response")
        assert metadata["platform"] == "onnx_onnxv1"
        assert metadata["versions"] == ["3"]
        assert [t["name"] for t in metadata["inputs"]] == FRAUD.feature_names
        assert {(t["datatype"], tuple(t["shape"])) for t in metadata["inputs"]} == {
            ("FP32", (-1, 1))
        }
        assert metadata["outputs"] == [
            {"name": "fraud_probability", "datatype": "FP32", "shape": [-1]},
            {"name": "is_fraud", "datatype": "BOOL", "shape": [-1]},
        ]
        assert metadata["parameters"]["threshold"] == "0.5"


def test_model_ready_endpoints(fraud_server):
    assert fraud_server.client.get("/v2/models/fraud/ready").status_code == 200
    assert (
        fraud_server.client.get("/v2/models/fraud/versions/3/ready").status_code == 200
    )
    assert fraud_server.client.get("/v2/models/credit/ready").status_code == 404
    assert (
        fraud_server.client.get("/v2/models/fraud/versions/9/ready").status_code == 404
    )


def test_unknown_model_or_version_is_404(fraud_server, conforms):
    request = load_testdata("fraud_infer_request.json")
    cases = [
        ("get", "/v2/models/credit"),
        ("get", "/v2/models/fraud/versions/9"),
        ("post", "/v2/models/credit/infer"),
        ("post", "/v2/models/fraud/versions/9/infer"),
        ("get", "/v2/no/such/route"),
    ]
    for method, path in cases:
        if method == "post":
            response = fraud_server.client.post(path, json=request)
        else:
            response = fraud_server.client.get(path)
        assert response.status_code == 404, (path, response.text)
        conforms(response.json(), "inference_error_response")
    assert "credit" in fraud_server.client.get("/v2/models/credit").json()["error"]
    assert (
        "version '9'"
        in fraud_server.client.get("/v2/models/fraud/versions/9").json()["error"]
    )


def test_infer_one_tensor_per_feature(fraud_server, conforms):
    request = load_testdata("fraud_infer_request.json")
    response = fraud_server.infer(request)
    assert response.status_code == 200, response.text
    body = response.json()
    conforms(body, "inference_response")
    assert body["model_name"] == "fraud"
    assert body["model_version"] == "3"
    assert body["id"] == "fraud-testdata-1"
    outputs = _outputs(body)
    probability, is_fraud = expected_fraud(_fraud_rows(request))
    assert outputs["fraud_probability"]["datatype"] == "FP32"
    assert outputs["fraud_probability"]["shape"] == [2]
    np.testing.assert_allclose(
        outputs["fraud_probability"]["data"], probability, rtol=1e-4, atol=1e-6
    )
    assert outputs["is_fraud"] == {
        "name": "is_fraud",
        "datatype": "BOOL",
        "shape": [2],
        "data": is_fraud.tolist(),
    }
    assert set(is_fraud.tolist()) == {True, False}  # the payload exercises both answers
    assert response.headers["x-riskserve-revision"] == REVISION


def test_infer_flat_data_and_1d_shape(fraud_server):
    nested = load_testdata("fraud_infer_request.json")
    flat = copy.deepcopy(nested)
    for tensor in flat["inputs"]:
        tensor["data"] = [row[0] for row in tensor["data"]]
    one_dim = copy.deepcopy(flat)
    for tensor in one_dim["inputs"]:
        tensor["shape"] = [2]
    expected = fraud_server.infer(nested).json()["outputs"]
    assert fraud_server.infer(flat).json()["outputs"] == expected
    assert fraud_server.infer(one_dim).json()["outputs"] == expected


def test_infer_2d_feature_matrix(fraud_server, conforms):
    """What existing clients of the fraud demo send: `dense_input` [N, 7]."""
    matrix = load_testdata("fraud_infer_request_matrix.json")
    per_feature = load_testdata("fraud_infer_request.json")
    response = fraud_server.infer(matrix)
    assert response.status_code == 200, response.text
    conforms(response.json(), "inference_response")
    assert (
        response.json()["outputs"] == fraud_server.infer(per_feature).json()["outputs"]
    )
    probability, _ = expected_fraud(np.asarray(matrix["inputs"][0]["data"], np.float32))
    np.testing.assert_allclose(
        _outputs(response.json())["fraud_probability"]["data"], probability, rtol=1e-5
    )


def test_infer_by_version_and_generated_id(fraud_server):
    request = load_testdata("fraud_infer_request.json")
    del request["id"]
    first = fraud_server.client.post("/v2/models/fraud/versions/3/infer", json=request)
    second = fraud_server.infer(request)
    assert first.status_code == second.status_code == 200
    assert first.json()["id"] and second.json()["id"]
    assert first.json()["id"] != second.json()["id"]


def test_requested_outputs_select(fraud_server):
    request = load_testdata("fraud_infer_request.json")
    request["outputs"] = [{"name": "is_fraud"}]
    body = fraud_server.infer(request).json()
    assert [o["name"] for o in body["outputs"]] == ["is_fraud"]


def test_large_batch_runs_off_the_loop_with_the_same_answer(fraud_server):
    rng = np.random.default_rng(3)
    rows = rng.gamma(2.0, 2.0, size=(50, 7)).astype(np.float32)
    request = {
        "inputs": [
            {
                "name": n,
                "shape": [50, 1],
                "datatype": "FP32",
                "data": rows[:, i].tolist(),
            }
            for i, n in enumerate(FRAUD.feature_names)
        ]
    }
    body = fraud_server.infer(request).json()  # 50 rows > inline limit of 8
    probability, _ = expected_fraud(rows)
    np.testing.assert_allclose(
        _outputs(body)["fraud_probability"]["data"], probability, rtol=1e-4, atol=1e-6
    )


def test_credit_bytes_inputs_and_null_imputation(credit_server, conforms):
    request = load_testdata("credit_infer_request.json")
    response = credit_server.infer(request, model="credit")
    assert response.status_code == 200, response.text
    body = response.json()
    conforms(body, "inference_response")
    assert body["model_version"] == "7"
    numeric_names = [f.name for f in CREDIT.features if f.tensor_datatype == "FP32"]
    by_name = {t["name"]: t["data"] for t in request["inputs"]}
    numeric = np.array(
        [[np.nan if v is None else v for v in by_name[n]] for n in numeric_names],
        np.float32,
    ).T
    probability, score, approved = expected_credit(numeric, by_name["merchant_group"])
    outputs = _outputs(body)
    np.testing.assert_allclose(
        outputs["default_probability"]["data"], probability, rtol=1e-4, atol=1e-6
    )
    np.testing.assert_allclose(
        outputs["credit_score"]["data"], score, rtol=1e-4, atol=1e-6
    )
    assert outputs["approved"]["data"] == approved.tolist()


def test_credit_metadata_declares_bytes(credit_server, conforms):
    metadata = credit_server.client.get("/v2/models/credit").json()
    conforms(metadata, "metadata_model_response")
    types = {t["name"]: t["datatype"] for t in metadata["inputs"]}
    assert types["merchant_group"] == "BYTES"
    assert sum(1 for t in types.values() if t == "FP32") == 23
    assert [o["name"] for o in metadata["outputs"]] == [
        "default_probability",
        "credit_score",
        "approved",
    ]
    assert metadata["versions"] == ["7"]


@pytest.mark.parametrize("group", ["Electronics", "a group the model never saw"])
def test_credit_categories(credit_server, group):
    request = load_testdata("credit_infer_request.json")
    request["inputs"][-1]["data"] = [group, group]
    assert credit_server.infer(request, model="credit").status_code == 200
