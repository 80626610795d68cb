"""How long decision records are kept (default 25 months, Regulation B's period):
a sweep that deletes whole day partitions older than the retention (a folder, or S3
where no lifecycle rule runs), and the S3 lifecycle rule that expires the records'
objects by age (`apply_lifecycle`), which the chart sets.

The two differ on S3: a lifecycle rule counts an object's age from its upload, a sweep
from the decision's day. A log compacted late is kept longer by the rule (never
shorter); the records pass sweeps too, so both hold where both run."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import TYPE_CHECKING

from riskserve.governance.records_location import Location

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import (
        BucketLifecycleConfigurationTypeDef,
        LifecycleRuleTypeDef,
    )

LIFECYCLE_RULE_ID = "riskserve-decision-records-retention"


@dataclass
class SweepResult:
    cutoff: dt.date
    deleted: list[str]
    kept: int


def sweep(records: Location, retention_days: int, today: dt.date) -> SweepResult:
    """Delete the day partitions older than `retention_days` before `today`."""
    cutoff = today - dt.timedelta(days=retention_days)
    days = records.days()
    old = [day for day in days if dt.date.fromisoformat(day) < cutoff]
    for day in old:
        records.delete_day(day)
    return SweepResult(cutoff, old, len(days) - len(old))


def lifecycle_rule(prefix: str, retention_days: int) -> LifecycleRuleTypeDef:
    """The rule expiring the records under `prefix` after `retention_days`."""
    return {
        "ID": LIFECYCLE_RULE_ID,
        "Status": "Enabled",
        "Filter": {"Prefix": f"{prefix.strip('/')}/" if prefix.strip("/") else ""},
        "Expiration": {"Days": retention_days},
    }


def apply_lifecycle(
    client: S3Client, uri: str, retention_days: int, dry_run: bool = False
) -> BucketLifecycleConfigurationTypeDef:
    """Put the bucket's lifecycle configuration with the records' rule in it, keeping
    the bucket's other rules (a put replaces the whole configuration). The
    configuration put (or, with `dry_run`, that would be)."""
    from botocore.exceptions import ClientError

    bucket, _, prefix = uri.removeprefix("s3://").partition("/")
    try:
        current = client.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") != (
            "NoSuchLifecycleConfiguration"
        ):
            raise
        current = []
    rules: list[LifecycleRuleTypeDef] = [
        r  # type: ignore[misc]
        for r in current
        if r.get("ID") != LIFECYCLE_RULE_ID
    ]
    rules.append(lifecycle_rule(prefix, retention_days))
    configuration: BucketLifecycleConfigurationTypeDef = {"Rules": rules}
    if not dry_run:
        client.put_bucket_lifecycle_configuration(
            Bucket=bucket, LifecycleConfiguration=configuration
        )
    return configuration
