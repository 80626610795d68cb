"""Decision records as a regulator or an applicant asks for them: one decision by its
request id, or an entity's decisions since a day. A pyarrow dataset scan with
filters; `since` prunes the day partitions before any file is opened.

Shadow decisions (never returned) are left out. When the transformer and the
predictor both recorded a request, the transformer's record is the decision (it
holds the raw request, the features and the policy's action)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.compute as pc
from riskserve.governance.decision_records import TRANSFORMER
from riskserve.governance.records_location import Location, LocationError


class NoSuchDecision(LookupError):
    """No live decision matches; the message says what was asked where."""


@dataclass(frozen=True)
class Decision:
    request_id: str
    row: int
    time: dt.datetime
    day: str
    stage: str
    entity_id: str | None
    model_name: str | None
    model_version: str | None
    policy_version: str | None
    policy_rule: str | None
    action: str | None
    reason_code: str | None
    reason_codes: list[str]
    experiment: str | None
    arm: str | None
    raw_inputs: dict[str, Any]
    features: dict[str, Any]
    outputs: dict[str, Any]

    @property
    def decision(self) -> str:
        """The policy's action; without a policy, the model's own decision."""
        if self.action:
            return self.action
        if "approved" in self.outputs:
            return "approve" if self.outputs["approved"] else "decline"
        if "is_fraud" in self.outputs:
            return "flagged as fraud" if self.outputs["is_fraud"] else "not flagged"
        return "unknown (no action or decision output recorded)"

    def reasons(self) -> list[tuple[str, str]]:
        """The principal reasons, in order, with their meaning where the record
        holds it: the policy's reason code (its rule), then the model's reason codes
        (`feature: reason text`, worst first)."""
        found: list[tuple[str, str]] = []
        if self.reason_code:
            meaning = (
                f"the policy's rule {self.policy_rule}" if self.policy_rule else ""
            )
            found.append((self.reason_code, meaning))
        for code in self.reason_codes:
            name, _, text = code.partition(": ")
            found.append((name, text))
        return found

    def as_dict(self) -> dict[str, Any]:
        return {
            "request_id": self.request_id,
            "row": self.row,
            "time": self.time.isoformat(),
            "entity_id": self.entity_id,
            "decision": self.decision,
            "action": self.action,
            "reasons": [{"code": c, "meaning": m} for c, m in self.reasons()],
            "reason_code": self.reason_code,
            "reason_codes": self.reason_codes,
            "model_name": self.model_name,
            "model_version": self.model_version,
            "policy_version": self.policy_version,
            "policy_rule": self.policy_rule,
            "experiment": self.experiment,
            "arm": self.arm,
            "stage": self.stage,
            "raw_inputs": self.raw_inputs,
            "features": self.features,
            "outputs": self.outputs,
        }


def find(records: Location, request_id: str) -> list[Decision]:
    """The decisions (one per row) of a request; NoSuchDecision when none."""
    found = _decisions(records, pc.field("request_id") == request_id, None)
    if not found:
        raise NoSuchDecision(
            f"no decision with request id {request_id!r} in {records.where}"
        )
    return found


def export(
    records: Location,
    entity_id: str,
    since: dt.date | None = None,
    until: dt.date | None = None,
) -> list[Decision]:
    """The entity's decisions from `since` (a day, inclusive) to `until`, oldest
    first; only the day partitions in range are read."""
    days = None
    if since is not None or until is not None:
        low = since.isoformat() if since else "0000-00-00"
        high = until.isoformat() if until else "9999-99-99"
        days = [d for d in records.days() if low <= d <= high]
    return _decisions(records, pc.field("entity_id") == entity_id, days)


def _decisions(
    records: Location, where: pc.Expression, days: list[str] | None
) -> list[Decision]:
    dataset = records.dataset(days)
    if dataset is None:
        if days is None:
            raise LocationError(f"no decision records in {records.where}")
        return []
    try:
        table = dataset.to_table(
            filter=where & (pc.field("shadow") == False)  # noqa: E712
        )
    except (OSError, pa.ArrowInvalid) as exc:
        raise LocationError(f"cannot read {records.where}: {exc}") from None
    chosen: dict[tuple[str, int], dict[str, Any]] = {}
    for row in table.to_pylist():
        key = (row["request_id"], row["row"])
        kept = chosen.get(key)
        if kept is None or (row["stage"] == TRANSFORMER != kept["stage"]):
            chosen[key] = row
    decisions = [_decision(row) for row in chosen.values()]
    decisions.sort(key=lambda d: (d.time, d.request_id, d.row))
    return decisions


def _decision(row: dict[str, Any]) -> Decision:
    return Decision(
        request_id=row["request_id"],
        row=row["row"],
        time=row["time"],
        day=row["date"],
        stage=row["stage"],
        entity_id=row["entity_id"],
        model_name=row["model_name"],
        model_version=row["model_version"],
        policy_version=row["policy_version"],
        policy_rule=row["policy_rule"],
        action=row["action"],
        reason_code=row["reason_code"],
        reason_codes=list(row["reason_codes"] or []),
        experiment=row["experiment"],
        arm=row["arm"],
        raw_inputs=orjson.loads(row["raw_inputs"] or "{}"),
        features=orjson.loads(row["features"] or "{}"),
        outputs=orjson.loads(row["outputs"] or "{}"),
    )


def notice(decision: Decision) -> str:
    """What a notice to the applicant needs, as text."""
    lines = [
        f"decision {decision.request_id}"
        + (f" (row {decision.row})" if decision.row else "")
    ]
    rule = f" (rule {decision.policy_rule})" if decision.policy_rule else ""
    lines.append(f"  decision:        {decision.decision}{rule}")
    lines.append(f"  time:            {decision.time.isoformat()}")
    if decision.entity_id is not None:
        lines.append(f"  applicant:       {decision.entity_id}")
    lines.append(
        f"  model:           {decision.model_name or '?'} version "
        f"{decision.model_version or '?'}"
    )
    lines.append(f"  policy version:  {decision.policy_version or 'none (no policy)'}")
    if decision.experiment:
        lines.append(f"  experiment:      {decision.experiment} arm {decision.arm}")
    reasons = decision.reasons()
    if reasons:
        lines.append("  principal reasons:")
        for number, (code, meaning) in enumerate(reasons, start=1):
            lines.append(f"    {number}. {code}" + (f": {meaning}" if meaning else ""))
    else:
        lines.append("  principal reasons: none recorded")
    return "\n".join(lines)
