"""A credit model with reason codes served with no special code: the v2 metadata lists
`reason_codes` BYTES [-1, 4] and `feature_points`, REST answers them row by row, and
the inference log records them."""

from __future__ import annotations

import json
import time

import httpx
import numpy as np
import pytest
from riskserve.model.specs import CREDIT
from riskserve.model.synthetic import generate

from tests.fixtures.contract_models import scorecard_credit_model, write_onnx
from tests.serving.predictor_helpers import start_predictor

pytestmark = pytest.mark.e2e


def test_reason_codes_are_served_listed_and_logged(tmp_path) -> None:
    proto, _ = scorecard_credit_model(rows=8000)
    write_onnx(proto, tmp_path / "model")
    log_dir = tmp_path / "inference-log"
    predictor = start_predictor(
        tmp_path,
        "credit-reasons",
        "credit",
        tmp_path / "model",
        env={
            "RISKSERVE_SERVING_INFERENCE_LOG_URI": str(log_dir),
            "RISKSERVE_SERVING_INFERENCE_LOG_FLUSH_SECONDS": "0.2",
        },
    )
    try:
        base = f"{predictor.url}/v2/models/credit"
        metadata = httpx.get(base, timeout=10).json()
        outputs = {o["name"]: o for o in metadata["outputs"]}
        assert outputs["reason_codes"]["datatype"] == "BYTES"
        assert outputs["reason_codes"]["shape"] == [-1, 4]
        assert outputs["feature_points"]["shape"] == [-1, len(CREDIT.features)]
        assert metadata["parameters"]["reason_codes_k"] == "4"
        frame = generate("credit", 3, 2)
        inputs = [
            {
                "name": f.name,
                "datatype": f.tensor_datatype,
                "shape": [3, 1],
                "data": [
                    (str(v) if f.kind == "categorical" else (None if v != v else v))
                    for v in frame[f.name]
                ],
            }
            for f in CREDIT.features
        ]
        answer = httpx.post(f"{base}/infer", json={"inputs": inputs}, timeout=10)
        assert answer.status_code == 200, answer.text
        by_name = {o["name"]: o for o in answer.json()["outputs"]}
        codes = by_name["reason_codes"]
        assert codes["shape"] == [3, 4]
        rows = np.array(codes["data"], dtype=object).reshape(3, 4)
        for row, approved in zip(rows, by_name["approved"]["data"], strict=True):
            assert all(c == "" or c.split(": ")[0] in CREDIT.feature_names for c in row)
            if not approved:
                assert row[0]
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not list(log_dir.rglob("*.jsonl")):
            time.sleep(0.1)
        (path,) = list(log_dir.rglob("*.jsonl"))[:1]
        record = json.loads(path.read_text().splitlines()[0])
        logged = record["outputs"]["reason_codes"]
        assert [list(r) for r in rows] == logged
        assert len(record["outputs"]["feature_points"][0]) == len(CREDIT.features)
    finally:
        predictor.stop()
