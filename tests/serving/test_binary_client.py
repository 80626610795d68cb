"""Triton's own HTTP client (tritonclient, binary tensors by default) against a real
predictor process: the answers equal the JSON ones, and the inference log records the
binary request as it records JSON ones."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
import tritonclient.http as triton
from riskserve.model.specs import FRAUD

from tests.fixtures.contract_models import expected_fraud

pytestmark = pytest.mark.e2e

ROWS = np.array(
    [[12.5, 0.3, 4.2, 1, 0, 0, 1], [3.1, 0.9, 0.6, 1, 1, 1, 0]], dtype=np.float32
)


def triton_infer(url: str, rows: np.ndarray, request_id: str):
    client = triton.InferenceServerClient(url.removeprefix("http://"))
    inputs = []
    for i, name in enumerate(FRAUD.feature_names):
        tensor = triton.InferInput(name, [len(rows), 1], "FP32")
        tensor.set_data_from_numpy(rows[:, [i]])  # binary_data=True: the default
        inputs.append(tensor)
    try:
        return client.infer("fraud", inputs, request_id=request_id)
    finally:
        client.close()


def test_tritonclient_defaults_are_answered_and_logged(fraud_server, inference_log_dir):
    result = triton_infer(fraud_server.url, ROWS, "binary-log-probe")
    expected, decided = expected_fraud(ROWS)
    np.testing.assert_allclose(
        result.as_numpy("fraud_probability"), expected, atol=1e-6
    )
    np.testing.assert_array_equal(result.as_numpy("is_fraud"), decided)
    assert result.get_response()["model_version"] == "3"
    records = []
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not records:
        time.sleep(0.2)
        for path in inference_log_dir.rglob("*.jsonl"):
            for line in path.read_text().splitlines():
                record = json.loads(line)
                if record["request_id"] == "binary-log-probe":
                    records.append(record)
    assert len(records) == 1
    assert records[0]["inputs"]["distance_from_home"] == [12.5, pytest.approx(3.1)]
    assert records[0]["outputs"]["is_fraud"] == decided.tolist()
