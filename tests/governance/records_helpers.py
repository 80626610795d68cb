"""Inference logs for the decision-record tests, written by the predictor's own writer
(serving/inference_log.py), as a transformer with the credit policy (and a predictor
behind it) would write them."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
from riskserve.serving.inference_log import InferenceLog, InferenceRecord
from riskserve.serving.settings import StorageSettings
from riskserve.serving.tensors import InputTensor, OutputTensor

REASONS = np.array(
    [
        ["account_status: current account status is 3", "age: age is 19"],
        ["num_arch_ok_0_12m: archived invoices paid on time in 12 months is 0", ""],
    ],
    dtype=object,
)


def credit_record(
    request_id: str,
    customer_ids: list[str],
    at: dt.datetime,
    approved: list[bool],
    stage: str | None = "transformer",
    version: str = "3",
) -> InferenceRecord:
    """A credit decision of len(customer_ids) rows: approve at the cut-off, else
    decline with SCORE_BELOW_CUTOFF, and the model's reason codes."""
    rows = len(customer_ids)
    scores = np.array([640.0 if a else 560.0 for a in approved], np.float32)
    outputs = [
        OutputTensor("credit_score", "FP32", scores),
        OutputTensor("approved", "BOOL", np.array(approved)),
        OutputTensor(
            "reason_codes", "BYTES", np.stack([REASONS[i % 2] for i in range(rows)])
        ),
    ]
    if stage is not None:
        outputs += [
            OutputTensor(
                "action",
                "BYTES",
                np.array(["approve" if a else "decline" for a in approved], object),
            ),
            OutputTensor(
                "policy_version", "BYTES", np.array(["0a1b2c3d4e5f"] * rows, object)
            ),
            OutputTensor(
                "policy_rule",
                "BYTES",
                np.array(
                    ["score_at_cutoff" if a else "default" for a in approved], object
                ),
            ),
            OutputTensor(
                "reason_code",
                "BYTES",
                np.array(
                    [
                        "SCORE_AT_OR_ABOVE_CUTOFF" if a else "SCORE_BELOW_CUTOFF"
                        for a in approved
                    ],
                    object,
                ),
            ),
        ]
    features = np.array([[0.5, 2.0]] * rows, np.float32)
    return InferenceRecord(
        timestamp=at.timestamp(),
        request_id=request_id,
        model_name="credit",
        model_version=version,
        inputs=[InputTensor("features", "FP32", features.shape, features)],
        outputs=outputs,
        latency_seconds=0.004,
        protocol="v2-rest",
        stage=stage,
        raw_inputs=(
            {
                "customer_id": list(customer_ids),
                "basket_amount": [80.0] * rows,
                "merchant_group": ["Electronics"] * rows,
            }
            if stage is not None
            else {}
        ),
        features=(
            [OutputTensor("unknown_entity", "BOOL", np.zeros(rows, bool))]
            if stage is not None
            else ()
        ),
    )


def write_log(root: Path | str, records: list[InferenceRecord]) -> None:
    """Publish `records` into the log at `root` (a folder or s3://...) at once."""
    log = InferenceLog(str(root), StorageSettings(), spool_dir=None)
    try:
        log.write_batch(records)
    finally:
        log.close()
