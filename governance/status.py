"""The validation status of a registered version and its trail, as MLflow version tags.

A version is `draft` when a training job registers it, `validated` once a validation
report is logged with it, then `approved` or `rejected` by a named person. The
current status is one tag (`validation_status`), rewritten at each step; the trail is
one tag per entry (`validation_trail.<n>.<id>`, JSON: status, who, when, the report's
sha256, a note), never rewritten. Tags rather than an artifact per entry: the rollout
controller reads the status with the one registry call it already makes, an entry is
written by one call (no read-modify-write of a file another approver may be writing),
and MLflow has no call that changes an existing artifact in place either. The random
id makes each key new, so two approvers writing at once both keep their entries.

Standard library only: the training job and the rollout controller import it too.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import asdict, dataclass

STATUS_TAG = "validation_status"
TRAIL_PREFIX = "validation_trail."
REPORT_SHA_TAG = "validation_report_sha256"
REPORT_ARTIFACT_TAG = "validation_report"
PROTECTED_TAG = "protected_columns"

DRAFT, VALIDATED, APPROVED, REJECTED = "draft", "validated", "approved", "rejected"
STATUSES = (DRAFT, VALIDATED, APPROVED, REJECTED)
NOTE_MAX = 2000  # MLflow keeps 8,000 characters of a tag value; the entry is JSON


@dataclass(frozen=True)
class TrailEntry:
    status: str
    by: str
    at: str  # ISO 8601, UTC
    report_sha256: str
    note: str
    seq: int = 0

    def to_json(self) -> str:
        fields = asdict(self)
        fields.pop("seq")
        return json.dumps(fields, sort_keys=True)


def status_of(tags: dict[str, str]) -> str:
    """The version's status; a version registered before the gate existed is a draft."""
    value = tags.get(STATUS_TAG, DRAFT)
    return value if value in STATUSES else DRAFT


def trail_of(tags: dict[str, str]) -> list[TrailEntry]:
    """The trail, oldest first. An entry that does not parse is shown as such, never
    dropped."""
    entries = []
    for key, value in tags.items():
        if not key.startswith(TRAIL_PREFIX):
            continue
        number = key[len(TRAIL_PREFIX) :].split(".", 1)[0]
        seq = int(number) if number.isdigit() else 0
        try:
            data = json.loads(value)
            entry = TrailEntry(
                str(data["status"]),
                str(data["by"]),
                str(data["at"]),
                str(data.get("report_sha256", "")),
                str(data.get("note", "")),
                seq,
            )
        except (ValueError, KeyError, TypeError):
            entry = TrailEntry("unreadable", "", "", "", value[:200], seq)
        entries.append(entry)
    return sorted(entries, key=lambda e: (e.seq, e.at))


def next_trail_key(tags: dict[str, str]) -> str:
    """A key no earlier entry has: the next number and a random id."""
    numbers = [e.seq for e in trail_of(tags)]
    return f"{TRAIL_PREFIX}{max(numbers, default=0) + 1:04d}.{secrets.token_hex(4)}"


def promotion_refusal(tags: dict[str, str], name: str, version: str) -> str | None:
    """Why this version may not be promoted to production, or None when approved."""
    status = status_of(tags)
    if status == APPROVED:
        return None
    if status == REJECTED:
        return f"{name} v{version} was rejected; it may not be promoted"
    return (
        f"{name} v{version} is {status}, not approved: `riskserve approve {name} "
        f"{version} --by NAME --note TEXT` first"
    )
