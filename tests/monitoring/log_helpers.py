"""Inference logs for the monitor's tests and bench, written by the predictor's own
writer (serving/inference_log.py), from the synthetic generators of model/."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd
from riskserve.model.reference_profile import ReferenceProfile, build_profile
from riskserve.model.specs import get_spec
from riskserve.model.synthetic import generate
from riskserve.serving.inference_log import InferenceLog, InferenceRecord
from riskserve.serving.settings import StorageSettings
from riskserve.serving.tensors import InputTensor, OutputTensor


def fraud_score(frame: pd.DataFrame) -> np.ndarray:
    """A stand-in fraud score that moves with its inputs (so drifted inputs move it)."""
    z = (
        0.8 * np.log1p(frame["ratio_to_median_purchase_price"].to_numpy())
        + 0.3 * np.log1p(frame["distance_from_home"].clip(lower=0).to_numpy())
        - 1.5 * frame["used_chip"].to_numpy()
        + 1.0 * frame["online_order"].to_numpy()
        - 3.0
    )
    return (1 / (1 + np.exp(-z))).astype(np.float32)


def fraud_features(rows: int, seed: int) -> pd.DataFrame:
    spec = get_spec("fraud")
    return generate("fraud", rows, seed)[spec.feature_names]


def fraud_profile(
    rows: int = 50_000, seed: int = 0, version: str = "1"
) -> ReferenceProfile:
    frame = fraud_features(rows, seed)
    return build_profile(
        "fraud",
        version,
        frame,
        outputs={"fraud_probability": fraud_score(frame)},
        metrics={"pr_auc": 0.9, "roc_auc": 0.97},
        decision={"threshold": 0.5},
    )


def write_log(
    root: Path,
    frame: pd.DataFrame,
    model: str = "fraud",
    version: str = "1",
    start: float | None = None,
    seconds: float = 3 * 3600,
    rows_per_record: int = 1,
    records_per_file: int = 2_000,
    scores: np.ndarray | None = None,
) -> list[str]:
    """Log `frame` as requests spread over `seconds` from `start`; the request ids."""
    start = time.time() - seconds - 60 if start is None else start
    scores = fraud_score(frame) if scores is None else scores
    writer = InferenceLog(str(root), StorageSettings(), batch_size=records_per_file)
    batch: list[InferenceRecord] = []
    ids = []
    n = len(frame)
    columns = {c: frame[c].to_numpy() for c in frame.columns}
    for i, first in enumerate(range(0, n, rows_per_record)):
        last = min(first + rows_per_record, n)
        inputs = []
        for name, values in columns.items():
            part = values[first:last]
            text = part.dtype == object
            if not text:
                part = part.astype(np.float32)
            inputs.append(
                InputTensor(
                    name,
                    "BYTES" if text else "FP32",
                    (last - first, 1),
                    part.reshape(-1, 1),
                )
            )
        probability = scores[first:last]
        outputs = (
            [
                OutputTensor("fraud_probability", "FP32", probability),
                OutputTensor("is_fraud", "BOOL", probability > 0.5),
            ]
            if model == "fraud"
            else [
                OutputTensor("default_probability", "FP32", probability),
                OutputTensor(
                    "credit_score",
                    "FP32",
                    (600 - 28.85 * np.log(50 * probability / (1 - probability))).astype(
                        np.float32
                    ),
                ),
                # The credit graph's [N, K] reason codes, as the predictor logs them.
                OutputTensor(
                    "reason_codes",
                    "BYTES",
                    np.array(
                        [["account_status: status 3", "has_paid: 0", "", ""]]
                        * (last - first),
                        dtype=object,
                    ),
                ),
            ]
        )
        request_id = f"req-{version}-{i}"
        ids.append(request_id)
        stamp = start + seconds * first / max(n, 1)
        batch.append(
            InferenceRecord(
                stamp, request_id, model, version, inputs, outputs, 0.001, "rest"
            )
        )
        if len(batch) == records_per_file:
            writer._write(batch)  # the writer's own file format, without its thread
            batch = []
    if batch:
        writer._write(batch)
    return ids


def credit_features(rows: int, seed: int) -> pd.DataFrame:
    from riskserve.model.data import validate

    spec = get_spec("credit")
    return validate(generate("credit", rows, seed), spec, "synthetic")


def credit_score_stand_in(frame: pd.DataFrame) -> np.ndarray:
    z = (
        -4.0
        + 0.5 * frame["account_status"].fillna(1).to_numpy()
        - 0.3 * frame["has_paid"].to_numpy()
    )
    return (1 / (1 + np.exp(-z))).astype(np.float32)
