"""Auth on and off, Prometheus metrics that move, and the inference log's records."""

from __future__ import annotations

import json
import time

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.serving.predictor_helpers import API_KEY, load_testdata

pytestmark = pytest.mark.e2e


def _no_auth(predictor) -> httpx.Client:  # noqa: ANN001
    return httpx.Client(base_url=predictor.url, timeout=30)


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"authorization": "Bearer wrong-key"},
        {"x-api-key": "wrong-key"},
        {"authorization": f"Basic {API_KEY}"},
        {"authorization": f"Bearer {API_KEY}x"},
    ],
    ids=["none", "wrong-bearer", "wrong-x-api-key", "basic-scheme", "longer-key"],
)
def test_auth_on_rejects_missing_or_wrong_keys(credit_server, conforms, headers):
    request = load_testdata("credit_infer_request.json")
    with _no_auth(credit_server) as client:
        for method, path in [
            ("post", "/v2/models/credit/infer"),
            ("get", "/v2/models/credit"),
            ("get", "/v2/models/credit/versions/7"),
            ("get", "/v2"),
        ]:
            response = (
                client.post(path, json=request, headers=headers)
                if method == "post"
                else client.get(path, headers=headers)
            )
            assert response.status_code == 401, (path, response.text)
            conforms(response.json(), "inference_error_response")
            assert "API key" in response.json()["error"]
            assert response.headers["www-authenticate"] == "Bearer"


def test_auth_on_accepts_bearer_and_x_api_key(credit_server):
    request = load_testdata("credit_infer_request.json")
    with _no_auth(credit_server) as client:
        for headers in ({"authorization": f"Bearer {API_KEY}"}, {"x-api-key": API_KEY}):
            assert (
                client.post(
                    "/v2/models/credit/infer", json=request, headers=headers
                ).status_code
                == 200
            )
            assert client.get("/v2/models/credit", headers=headers).status_code == 200


def test_auth_on_leaves_health_and_metrics_open(credit_server):
    with _no_auth(credit_server) as client:
        for path in (
            "/v2/health/live",
            "/v2/health/ready",
            "/v2/models/credit/ready",
            "/metrics",
        ):
            assert client.get(path).status_code == 200, path


def test_auth_off_by_default(fraud_server):
    with _no_auth(fraud_server) as client:
        response = client.post(
            "/v2/models/fraud/infer", json=load_testdata("fraud_infer_request.json")
        )
        assert response.status_code == 200


def _metrics(predictor) -> dict[tuple[str, tuple], float]:  # noqa: ANN001
    text = httpx.get(f"{predictor.url}/metrics", timeout=10).text
    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def _value(samples: dict, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_metrics_move(fraud_server):
    request = load_testdata("fraud_infer_request.json")  # 2 rows
    before = _metrics(fraud_server)
    for _ in range(3):
        assert fraud_server.infer(request).status_code == 200
    fraud_server.infer({"inputs": []})  # one 400
    fraud_server.client.get("/v2/models/nope")  # one 404, model label "unknown"
    after = _metrics(fraud_server)

    ok = {"model": "fraud", "version": "3", "protocol": "rest", "status": "200"}
    bad = {**ok, "status": "400"}
    assert (
        _value(after, "riskserve_requests_total", **ok)
        - _value(before, "riskserve_requests_total", **ok)
        == 3
    )
    assert (
        _value(after, "riskserve_requests_total", **bad)
        - _value(before, "riskserve_requests_total", **bad)
        == 1
    )
    missing = {"model": "unknown", "version": "", "protocol": "rest", "status": "404"}
    assert _value(after, "riskserve_requests_total", **missing) >= 1
    latency = {"model": "fraud", "version": "3", "protocol": "rest"}
    assert (
        _value(after, "riskserve_request_duration_seconds_count", **latency)
        - _value(before, "riskserve_request_duration_seconds_count", **latency)
        == 3
    )
    score = {"model": "fraud", "version": "3", "output": "fraud_probability"}
    assert (
        _value(after, "riskserve_output_score_count", **score)
        - _value(before, "riskserve_output_score_count", **score)
        == 6
    )
    # the two payload rows score below 0.3 and above 0.7: the buckets tell them apart
    low = _value(after, "riskserve_output_score_bucket", le="0.3", **score) - _value(
        before, "riskserve_output_score_bucket", le="0.3", **score
    )
    assert low == 3
    assert (
        _value(after, "riskserve_inference_rows_total", model="fraud", version="3")
        - _value(before, "riskserve_inference_rows_total", model="fraud", version="3")
        == 6
    )


def test_one_log_line_per_error_not_per_request(fraud_server):
    log_before = fraud_server.process.log_path.read_text().splitlines()
    request = load_testdata("fraud_infer_request.json")
    for _ in range(5):
        fraud_server.infer(request)
    fraud_server.infer({"inputs": "nope", "id": "error-logging-probe"})
    time.sleep(0.3)
    new = fraud_server.process.log_path.read_text().splitlines()[len(log_before) :]
    errors = [json.loads(line) for line in new if "request_error" in line]
    assert len(errors) == 1, new
    assert errors[0]["status"] == 400
    assert errors[0]["level"] == "WARNING"
    assert "inputs" in errors[0]["message"]
    assert len(new) == 1, new


def test_inference_log_records(fraud_server, inference_log_dir):
    request = load_testdata("fraud_infer_request.json")
    request["id"] = "inference-log-probe"
    answer = fraud_server.infer(request).json()
    records = []
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not records:
        time.sleep(0.2)
        for path in inference_log_dir.rglob("*.jsonl"):
            for line in path.read_text().splitlines():
                record = json.loads(line)
                if record["request_id"] == "inference-log-probe":
                    records.append((path, record))
    assert len(records) == 1
    path, record = records[0]
    assert path.relative_to(inference_log_dir).parts[0] == "fraud"
    assert record["model_name"] == "fraud"
    assert record["model_version"] == "3"
    assert record["protocol"] == "rest"
    assert record["latency_ms"] > 0
    assert record["timestamp"].endswith("+00:00")
    assert record["inputs"]["distance_from_home"] == [12.5, 3.1]
    assert record["inputs"]["online_order"] == [1.0, 0.0]
    outputs = {o["name"]: o["data"] for o in answer["outputs"]}
    assert record["outputs"]["is_fraud"] == outputs["is_fraud"]
    assert record["outputs"]["fraud_probability"] == pytest.approx(
        outputs["fraud_probability"], rel=1e-6
    )
