"""The transformer's inference log: a record of every answered request, written with
the predictor's own machinery (`riskserve.serving.inference_log`: a spool segment,
one `write(2)` before the answer leaves, `flock`, published to a folder or S3) and in
its file format, so the monitor reads both alike.

A transformer's record is the predictor's with `"stage": "transformer"`: its `inputs`
are the model inputs it sent to the predictor (the features as served, which the
monitor compares with the version's reference profile), `outputs` the predictor's
answer (followed, when a decision policy is applied, by its `action`,
`policy_version`, `policy_rule` and `reason_code`), and it adds `raw_inputs` (the request's fields as sent) and `features` (the
other columns it answered: context, the unknown-entity and features-unavailable
flags). Its `request_id` is the one the predictor received, so one id finds both
records of a decision (docs/transformer.md, "Inference log").

Behind an experiment (docs/experiments.md) the record adds, at its top level,
`"experiment": "<name>"` and `"arms": ["<arm of row 0>", ...]` (one per row, the
holdout's rows as `"holdout"`), and `"arm"`: the arm when every row is in the same
one, else null. A shadow arm's record (same `request_id`, written after the answer)
adds `"shadow": true`; a record of the answer has `"shadow": false`.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson
from riskserve.serving.inference_log import (
    InferenceLog,
    InferenceRecord,
    _column,  # the log's one column format
)
from riskserve.serving.settings import StorageSettings
from riskserve.serving.tensors import InputTensor, OutputTensor
from riskserve.transformer.settings import TransformerSettings

STAGE = "transformer"

# A raw field's attribute on the feature layer's event, where the names differ
# (`Transaction` and `Checkout` say `timestamp_us`, `chip`, `pin`, `online`).
_EVENT_ATTRIBUTES = {
    "timestamp": "timestamp_us",
    "used_chip": "chip",
    "used_pin_number": "pin",
    "online_order": "online",
}


def event_attribute(name: str) -> str:
    """The attribute of the feature layer's event that holds raw field `name`."""
    return _EVENT_ATTRIBUTES.get(name, name)


@dataclass(frozen=True)
class Assignment:
    """The experiment arm of each row of a record (module docstring)."""

    experiment: str
    arms: list[str]
    shadow: bool = False


@dataclass(slots=True)
class ExperimentRecord(InferenceRecord):
    """A transformer's record with its rows' experiment arms at the top level."""

    assignment: Assignment | None = None

    def to_json(self) -> bytes:
        if self.assignment is None:
            return InferenceRecord.to_json(self)
        arms = self.assignment.arms
        return orjson.dumps(
            {
                **self._fields(),
                "stage": self.stage,
                "raw_inputs": self.raw_inputs,
                "features": {t.name: _column(t.array) for t in self.features},
                "experiment": self.assignment.experiment,
                "arm": arms[0] if len(set(arms)) == 1 else None,
                "arms": arms,
                "shadow": self.assignment.shadow,
            },
            option=orjson.OPT_SERIALIZE_NUMPY,
        )


def open_inference_log(settings: TransformerSettings) -> InferenceLog | None:
    """The started log the settings ask for, or None when it is off."""
    if not settings.inference_log_uri:
        return None
    return InferenceLog(
        settings.inference_log_uri,
        StorageSettings(),
        batch_size=settings.inference_log_batch_size,
        flush_seconds=settings.inference_log_flush_seconds,
        max_file_bytes=settings.inference_log_max_file_bytes,
        spool_dir=settings.inference_log_spool_dir,
        max_spool_bytes=settings.inference_log_max_spool_bytes,
        fsync=settings.inference_log_fsync,
        fsync_seconds=settings.inference_log_fsync_seconds,
    ).start()


def raw_columns(
    raw_inputs: Sequence[tuple[str, str, str]], events: Sequence[Any]
) -> dict[str, list]:
    """The request's raw fields as sent, a list per field, from its checked events
    (plain lists: an array per field would cost more than the rest of the record)."""
    columns = {}
    for name, datatype, _ in raw_inputs:
        attribute = _EVENT_ATTRIBUTES.get(name, name)
        if datatype == "BOOL":
            columns[name] = [bool(getattr(event, attribute)) for event in events]
        else:
            columns[name] = [getattr(event, attribute) for event in events]
    return columns


def model_input_tensors(model_inputs: dict[str, np.ndarray]) -> list[InputTensor]:
    """The model inputs sent to the predictor, as the predictor logs its inputs."""
    return [
        InputTensor(
            name, "BYTES" if array.dtype == object else "FP32", array.shape, array
        )
        for name, array in model_inputs.items()
    ]


def transformer_record(
    *,
    request_id: str,
    model_name: str,
    model_version: str,
    raw_inputs: dict[str, list],
    model_inputs: dict[str, np.ndarray],
    outputs: Sequence[OutputTensor],
    features: Sequence[OutputTensor],
    latency_seconds: float,
    protocol: str = "rest",
    assignment: Assignment | None = None,
) -> InferenceRecord:
    """One answered request's record (the module docstring says what goes where)."""
    if assignment is not None:
        return ExperimentRecord(
            time.time(),
            request_id,
            model_name,
            model_version,
            model_input_tensors(model_inputs),
            outputs,
            latency_seconds,
            protocol,
            stage=STAGE,
            raw_inputs=raw_inputs,
            features=features,
            assignment=assignment,
        )
    return InferenceRecord(
        time.time(),
        request_id,
        model_name,
        model_version,
        model_input_tensors(model_inputs),
        outputs,
        latency_seconds,
        protocol,
        stage=STAGE,
        raw_inputs=raw_inputs,
        features=features,
    )
