"""`riskserve monitor` on a transformer's inference log: the features as served (the
model inputs the transformer sent) are judged against the reference, the raw inputs
are carried but not compared, and where the transformer and its predictor log to one
root a pass reads one stage, never both. Records are written by the transformer's
own record builder and the predictor's writer; test_inference_log_e2e.py (under
tests/transformer) runs the monitor on a log a real transformer process wrote."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from riskserve.monitoring.cli import main
from riskserve.monitoring.log_reader import LocalLog, LogWindow, read_log
from riskserve.serving.inference_log import InferenceLog
from riskserve.serving.settings import StorageSettings
from riskserve.serving.tensors import OutputTensor
from riskserve.transformer.inference_log import transformer_record

from tests.monitoring.log_helpers import (
    fraud_features,
    fraud_profile,
    fraud_score,
    write_log,
)

pytestmark = pytest.mark.inprocess


@pytest.fixture(autouse=True)
def no_mlflow(monkeypatch):
    for name in ("MLFLOW_TRACKING_URI", "RISKSERVE_MONITOR_LOG_URI"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="module")
def profile_file(tmp_path_factory) -> Path:
    return fraud_profile().save(
        tmp_path_factory.mktemp("profile") / "reference_profile.json"
    )


def write_transformer_log(root: Path, frame: pd.DataFrame, version: str = "1") -> None:
    """`frame`'s rows as a transformer logs them: one request a row, the features as
    model inputs, raw fields and flags beside them."""
    log = InferenceLog(str(root), StorageSettings(), batch_size=2_000)
    scores = fraud_score(frame)
    records = []
    for i in range(len(frame)):
        row = frame.iloc[i : i + 1]
        records.append(
            transformer_record(
                request_id=f"txn-{i}",
                model_name="fraud",
                model_version=version,
                raw_inputs={"card_id": [f"card-{i}"], "amount": [10.0 + i]},
                model_inputs={
                    c: row[c].to_numpy().astype(np.float32) for c in frame.columns
                },
                outputs=[
                    OutputTensor("fraud_probability", "FP32", scores[i : i + 1]),
                    OutputTensor("is_fraud", "BOOL", scores[i : i + 1] > 0.5),
                ],
                features=[
                    OutputTensor("unknown_entity", "BOOL", np.array([False])),
                    OutputTensor("transactions_1h", "INT64", np.array([i % 3])),
                ],
                latency_seconds=0.001,
            )
        )
    log.write_batch(records)


def judge(capsys, log: Path, profile: Path, *extra: str) -> tuple[int, dict, str]:
    code = main(
        ["fraud", "--log", str(log), "--reference-data", str(profile), "--json"]
        + ["--no-report", *extra]
    )
    out, err = capsys.readouterr()
    return code, (json.loads(out) if out.strip() else {}), err


@pytest.fixture(scope="module")
def shared_root(tmp_path_factory) -> Path:
    """A root where the predictor logged 6,000 unshifted rows and the transformer in
    front of it 5,000 rows whose served ratio drifted."""
    root = tmp_path_factory.mktemp("shared") / "log"
    write_log(root, fraud_features(6_000, seed=11))
    served = fraud_features(5_000, seed=3)
    served["ratio_to_median_purchase_price"] *= 2.5
    write_transformer_log(root, served)
    return root


def test_the_transformers_features_as_served_are_judged_by_default(
    capsys, shared_root, profile_file
):
    code, result, err = judge(capsys, shared_root, profile_file)
    assert code == 3, err
    assert result["rows"] == 5_000
    assert "5000 rows from 5000 transformer records" in err
    assert result["drifted"] == ["ratio_to_median_purchase_price"]
    # Raw inputs and the other features are carried, not compared.
    assert {f["name"] for f in result["features"]} == set(fraud_profile().features)


def test_the_predictors_records_are_read_as_before_when_asked(
    capsys, shared_root, profile_file
):
    code, result, err = judge(capsys, shared_root, profile_file, "--stage", "predictor")
    assert code == 0, err
    assert result["rows"] == 6_000 and result["drifted"] == []
    assert "predictor records" in err


def test_asking_for_a_stage_the_log_does_not_hold_exits_2_naming_it(
    tmp_path, capsys, profile_file
):
    write_transformer_log(tmp_path / "log", fraud_features(50, seed=1))
    code, _, err = judge(capsys, tmp_path / "log", profile_file, "--stage", "predictor")
    assert code == 2
    assert "50 transformer records" in err and "--stage" in err


def test_a_torn_line_is_skipped_and_each_stage_still_read_apart(tmp_path):
    """The line-by-line reader (a file Arrow refuses) keeps the stages apart too."""
    root = tmp_path / "log"
    write_transformer_log(root, fraud_features(20, seed=2))
    write_log(root, fraud_features(30, seed=4))
    (first, *_) = sorted((root / "fraud").glob("*/*.jsonl"))
    first.write_bytes(first.read_bytes() + b'{"timestamp": "2026-\n')
    now = dt.datetime.now(dt.UTC)
    window = LogWindow(now - dt.timedelta(days=1), now + dt.timedelta(minutes=1))
    served = read_log(LocalLog(root), "fraud", window)
    assert (served.stage, served.rows, served.corrupt_count) == ("transformer", 20, 1)
    assert dict(served.other_stages) == {"predictor": 30}
    assert list(served.row_keys[:2]) == ["txn-0", "txn-1"]
    predicted = read_log(LocalLog(root), "fraud", window, stage="predictor")
    assert (predicted.stage, predicted.rows) == ("predictor", 30)
    assert dict(predicted.other_stages) == {"transformer": 20}
