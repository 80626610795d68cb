"""The approval gate's writes to the registry: a validation report recorded with its
hash (draft -> validated), approval or rejection by a named person. Each step adds a
trail entry (riskserve.governance.status) and never changes an earlier one."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

from riskserve.governance.status import (
    APPROVED,
    DRAFT,
    NOTE_MAX,
    REJECTED,
    REPORT_ARTIFACT_TAG,
    REPORT_SHA_TAG,
    STATUS_TAG,
    VALIDATED,
    TrailEntry,
    next_trail_key,
    status_of,
)

if TYPE_CHECKING:
    from mlflow import MlflowClient


POLICY_SHA_TAG = "policy_sha256"
"""The sha256 of a registered decision policy's YAML (riskserve.policy_cli writes it on
every version of `<model>-policy`): what validating and approving a policy names, as
the report's hash is for a model."""


class ApprovalError(ValueError):
    """The step is not allowed for this version now; the message says why."""


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def _tags(client: MlflowClient, name: str, version: str) -> dict[str, str]:
    return dict(client.get_model_version(name, version).tags)


def _append(
    client: MlflowClient,
    name: str,
    version: str,
    tags: dict[str, str],
    entry: TrailEntry,
) -> None:
    # The entry first, the status after: a failure between the two leaves a trail
    # that says more than the status, never a status without its entry.
    client.set_model_version_tag(name, version, next_trail_key(tags), entry.to_json())
    client.set_model_version_tag(name, version, STATUS_TAG, entry.status)


def record_report(
    client: MlflowClient,
    name: str,
    version: str,
    sha256: str,
    artifact: str,
    by: str,
) -> str:
    """The report is the version's current one; a draft becomes validated, and an
    approved version whose report changed goes back to validated (the approval named
    the old report's hash). Returns the status after."""
    tags = _tags(client, name, version)
    status = status_of(tags)
    if status == REJECTED:
        raise ApprovalError(
            f"{name} v{version} was rejected; a new report does not reopen it (train a "
            "new version)"
        )
    unchanged = tags.get(REPORT_SHA_TAG) == sha256
    client.set_model_version_tag(name, version, REPORT_SHA_TAG, sha256)
    client.set_model_version_tag(name, version, REPORT_ARTIFACT_TAG, artifact)
    if status == APPROVED and unchanged:
        return status
    note = (
        "report generated"
        if status == DRAFT
        else "report regenerated"
        + ("; the approval named the previous report" if status == APPROVED else "")
    )
    _append(
        client, name, version, tags, TrailEntry(VALIDATED, by, _now(), sha256, note)
    )
    return VALIDATED


def record_policy_validation(
    client: MlflowClient,
    name: str,
    version: str,
    sha256: str,
    checked_against: str,
    by: str,
) -> str:
    """A decision policy version is validated by the check `riskserve policy apply`
    makes before registering it (every field it names exists in `checked_against`,
    the model version, with a type its tests can take): no report to generate, the
    policy's own hash is what an approval names. A draft becomes validated; a later
    status is kept (a registered version's YAML cannot change). Returns the status
    after."""
    tags = _tags(client, name, version)
    status = status_of(tags)
    if status != DRAFT:
        return status
    note = f"policy checked against {checked_against} (riskserve policy apply)"
    _append(
        client, name, version, tags, TrailEntry(VALIDATED, by, _now(), sha256, note)
    )
    return VALIDATED


def decide(
    client: MlflowClient, name: str, version: str, decision: str, by: str, note: str
) -> TrailEntry:
    """Approve or reject the version, naming who and why, against its current
    report."""
    if decision not in (APPROVED, REJECTED):
        raise ApprovalError(f"unknown decision {decision!r}")
    by, note = by.strip(), note.strip()
    if not by:
        raise ApprovalError("--by: name the person who decides")
    if not note:
        raise ApprovalError("--note: say why")
    if len(note) > NOTE_MAX:
        raise ApprovalError(f"--note: at most {NOTE_MAX} characters, got {len(note)}")
    if len(by) > 200:
        raise ApprovalError(f"--by: at most 200 characters, got {len(by)}")
    tags = _tags(client, name, version)
    status = status_of(tags)
    # a policy's approval names its YAML's hash, a model's its report's
    report = tags.get(REPORT_SHA_TAG) or tags.get(POLICY_SHA_TAG, "")
    if decision == APPROVED:
        if POLICY_SHA_TAG in tags and status == DRAFT:
            raise ApprovalError(
                f"{name} v{version} is a policy registered before it was validated: "
                "`riskserve policy apply FILE` checks it again and validates it"
            )
        if not report:
            raise ApprovalError(
                f"{name} v{version} has no validation report: `riskserve report "
                f"{name}/{version}` first"
            )
        if status != VALIDATED:
            raise ApprovalError(
                f"{name} v{version} is {status}; only a validated version can be approved"
            )
    elif status == REJECTED:
        raise ApprovalError(f"{name} v{version} is already rejected")
    entry = TrailEntry(decision, by, _now(), report, note)
    _append(client, name, version, tags, entry)
    return entry
