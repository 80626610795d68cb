"""A decision record: one row of one answered request, as the inference log holds it
(serving/inference_log.py writes the line; docs/transformer.md lists its keys), read
as data: governance never imports the writer.

A log line is one request; each of its rows is a decision. A transformer's line
carries the raw request (`raw_inputs`), the features it used, the model's outputs and
the policy's `action`, `policy_version`, `policy_rule`, `reason_code`; a predictor's
line only the model's inputs and outputs. Both become records, each with what it has.
A shadow arm's line (`"shadow": true`, the same request id) is a decision that was
never returned: it is kept, flagged, and never counted or shown as a decision.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import orjson
import pyarrow as pa

ENTITY_FIELDS = ("card_id", "customer_id")
"""The raw inputs that name whom a decision is about (fraud: the card; credit: the
customer)."""

TRANSFORMER = "transformer"
PREDICTOR = "predictor"

_FIELDS: list[pa.Field] = [
    pa.field("request_id", pa.string(), nullable=False),
    pa.field("row", pa.int32(), nullable=False),
    pa.field("time", pa.timestamp("us", tz="UTC"), nullable=False),
    pa.field("stage", pa.string(), nullable=False),
    pa.field("shadow", pa.bool_(), nullable=False),
    pa.field("entity_id", pa.string()),
    pa.field("model_name", pa.string()),
    pa.field("model_version", pa.string()),
    pa.field("policy_version", pa.string()),
    pa.field("policy_rule", pa.string()),
    pa.field("action", pa.string()),
    pa.field("reason_code", pa.string()),
    pa.field("reason_codes", pa.list_(pa.string())),
    pa.field("experiment", pa.string()),
    pa.field("arm", pa.string()),
    # Per row, as JSON objects: their keys differ by model and policy.
    pa.field("raw_inputs", pa.string()),
    pa.field("features", pa.string()),
    pa.field("outputs", pa.string()),
    pa.field("source", pa.string()),
]
SCHEMA = pa.schema(_FIELDS)
"""The columns of a records file; the day is the partition (`date=YYYY-MM-DD`)."""

KEY = ("request_id", "row", "stage", "shadow")
"""What makes a record unique: a request's row, as the transformer or the predictor
logged it, live or shadow. A query prefers the transformer's when both exist."""

# Outputs that are the decision itself, not the model's numbers.
POLICY_OUTPUTS = ("action", "policy_version", "policy_rule", "reason_code")


class NotARecord(ValueError):
    """A log line that is not a decision record; the message says why."""


@dataclass(frozen=True)
class DecisionRecord:
    request_id: str
    row: int
    time: dt.datetime
    stage: str
    shadow: bool
    entity_id: str | None
    model_name: str | None
    model_version: str | None
    policy_version: str | None
    policy_rule: str | None
    action: str | None
    reason_code: str | None
    reason_codes: list[str] | None
    experiment: str | None
    arm: str | None
    raw_inputs: str
    features: str
    outputs: str
    source: str

    @property
    def day(self) -> str:
        return self.time.strftime("%Y-%m-%d")

    @property
    def key(self) -> tuple[str, int, str, bool]:
        return (self.request_id, self.row, self.stage, self.shadow)


def records_of_line(line: bytes, source: str) -> Iterator[DecisionRecord]:
    """The decisions of one log line, one per row; `NotARecord` when the line is
    torn, not JSON, or lacks what every record has (an id, a time, equal rows)."""
    try:
        record = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        raise NotARecord(f"not JSON ({exc})") from None
    if not isinstance(record, dict):
        raise NotARecord("not a JSON object")
    request_id = record.get("request_id")
    if not isinstance(request_id, str) or not request_id:
        raise NotARecord("no request_id")
    time = _time(record.get("timestamp"))
    outputs = _columns(record.get("outputs"), "outputs")
    inputs = _columns(record.get("inputs"), "inputs")
    raw = _columns(record.get("raw_inputs", {}), "raw_inputs")
    features = _columns(record.get("features", {}), "features")
    rows = _row_count(outputs, inputs, raw, features)
    stage = TRANSFORMER if record.get("stage") == TRANSFORMER else PREDICTOR
    arms = record.get("arms")
    arm = record.get("arm")
    experiment = record.get("experiment")
    for row in range(rows):
        row_outputs = {k: v[row] for k, v in outputs.items()}
        row_raw = {k: v[row] for k, v in raw.items()}
        used = {**{k: v[row] for k, v in inputs.items()}}
        used.update({k: v[row] for k, v in features.items()})
        row_arm = arms[row] if isinstance(arms, list) and row < len(arms) else arm
        yield DecisionRecord(
            request_id=request_id,
            row=row,
            time=time,
            stage=stage,
            shadow=record.get("shadow") is True,
            entity_id=_entity(row_raw),
            model_name=_text(record.get("model_name")),
            model_version=_text(record.get("model_version")),
            policy_version=_text(row_outputs.get("policy_version")),
            policy_rule=_text(row_outputs.get("policy_rule")),
            action=_text(row_outputs.get("action")),
            reason_code=_text(row_outputs.get("reason_code")),
            reason_codes=_reason_codes(row_outputs.get("reason_codes")),
            experiment=_text(experiment),
            arm=_text(row_arm),
            raw_inputs=orjson.dumps(row_raw).decode(),
            features=orjson.dumps(used).decode(),
            outputs=orjson.dumps(row_outputs).decode(),
            source=source,
        )


def _time(value: Any) -> dt.datetime:
    if not isinstance(value, str):
        raise NotARecord("no timestamp")
    try:
        time = dt.datetime.fromisoformat(value)
    except ValueError:
        raise NotARecord(f"timestamp {value[:40]!r} is not ISO 8601") from None
    return time if time.tzinfo else time.replace(tzinfo=dt.UTC)


def _columns(value: Any, name: str) -> dict[str, list]:
    if not isinstance(value, dict):
        raise NotARecord(f"{name} is not an object")
    for key, column in value.items():
        if not isinstance(column, list):
            raise NotARecord(f"{name}.{key} is not a list")
    return value


def _row_count(*groups: dict[str, list]) -> int:
    lengths = {len(column) for group in groups for column in group.values()}
    if len(lengths) > 1:
        raise NotARecord(f"columns of {sorted(lengths)} rows")
    if not lengths or lengths == {0}:
        raise NotARecord("no rows")
    return lengths.pop()


def _entity(raw: dict[str, Any]) -> str | None:
    for name in ENTITY_FIELDS:
        if raw.get(name) is not None:
            return str(raw[name])
    return None


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def _reason_codes(value: Any) -> list[str] | None:
    if value is None:
        return None
    values = value if isinstance(value, list) else [value]
    return [str(v) for v in values if v not in (None, "")]


def to_table(records: list[DecisionRecord]) -> pa.Table:
    return pa.Table.from_pylist(
        [{name: getattr(r, name) for name in SCHEMA.names} for r in records],
        schema=SCHEMA,
    )
