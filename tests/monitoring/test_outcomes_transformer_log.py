"""The outcomes pass reads what the transformer writes: experiment records made by the
transformer's own record builder (transformer/inference_log.py: `transformer_record`
with an `Assignment`) through the predictor's log writer (serving/inference_log.py),
live and shadow, a fraud experiment with a policy's actions; the fraud caught and
missed come out as a hand count of the records says."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from riskserve.monitoring.cli import main
from riskserve.serving.inference_log import InferenceLog
from riskserve.serving.settings import StorageSettings
from riskserve.serving.tensors import OutputTensor
from riskserve.transformer.inference_log import Assignment, transformer_record

pytestmark = pytest.mark.inprocess


def fraud_record(rid: str, arm: str, amount: float, p: float, action: str, shadow):
    return transformer_record(
        request_id=rid,
        model_name="fraud",
        model_version="4" if arm == "challenger" else "3",
        raw_inputs={"card_id": [f"card-{rid}"], "amount": [amount]},
        model_inputs={"distance_from_home": np.array([[1.0]], np.float32)},
        outputs=[
            OutputTensor("fraud_probability", "FP32", np.array([p], np.float32)),
            OutputTensor("is_fraud", "BOOL", np.array([p > 0.5])),
            OutputTensor("action", "BYTES", np.array([action], dtype=object)),
        ],
        features=[],
        latency_seconds=0.001,
        assignment=Assignment("block-band", [arm], shadow=shadow),
    )


def test_transformer_records_of_a_fraud_experiment(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("RISKSERVE_MONITOR_LOG_URI", raising=False)
    rng = np.random.default_rng(2)
    records, labels = [], []
    caught = {"champion": 0.0, "challenger": 0.0}
    missed = {"champion": 0.0, "challenger": 0.0}
    for i in range(400):
        arm = "champion" if i % 2 else "challenger"
        rid = f"tx-{i}"
        amount = float(rng.integers(10, 1000))
        fraud = i % 7 == 0
        p = 0.9 if fraud else 0.05
        # The challenger blocks every fraud; the champion lets every other one through.
        blocked = fraud and (arm == "challenger" or i % 4 == 1)
        action = "block" if blocked else ("challenge" if p > 0.5 else "allow")
        records.append(fraud_record(rid, arm, amount, p, action, shadow=False))
        records.append(fraud_record(rid, "strict", amount, p, "block", shadow=True))
        (caught if blocked else missed)[arm] += amount if fraud else 0.0
        labels.append({"request_id": rid, "label": int(fraud)})
    writer = InferenceLog(str(tmp_path / "log"), StorageSettings(), batch_size=1000)
    writer.write_batch(records)
    writer.close()
    pd.DataFrame(labels).to_csv(tmp_path / "labels.csv", index=False)
    code = main(
        [
            "outcomes",
            "fraud",
            "--log",
            str(tmp_path / "log"),
            "--experiment",
            "block-band",
            "--champion",
            "champion",
            "--gain-rate",
            "0.02",
            "--loss-given-default",
            "1",
            "--labels",
            str(tmp_path / "labels.csv"),
            "--json",
            "--no-report",
        ]
    )
    out, err = capsys.readouterr()
    assert code in (0, 3), err
    result = json.loads(out)
    assert result["model_kind"] == "fraud" and result["corrupt_count"] == 0
    arms = {a["arm"]: a for a in result["arms"]}
    for arm in ("champion", "challenger"):
        assert arms[arm]["decisions"] == 200
        assert arms[arm]["fraud_caught_amount"] == pytest.approx(caught[arm])
        assert arms[arm]["fraud_missed_amount"] == pytest.approx(missed[arm])
    assert arms["challenger"]["fraud_missed_amount"] == 0
    assert arms["champion"]["versions"] == ["3"]
    (strict,) = result["shadow_arms"]
    assert strict["arm"] == "strict" and strict["decisions"] == 400
    assert strict["approval_rate"] == 0  # it would have blocked everything
