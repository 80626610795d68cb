"""Decision records on S3 (a real SeaweedFS, the tests' loopback one): the log the
predictor's writer uploads, compacted into records under another prefix, queried,
swept, and the records prefix's lifecycle rule; the pass's counts on a real
Pushgateway."""

from __future__ import annotations

import datetime as dt
import json
import uuid

import httpx
import pytest

from riskserve.cli import main as riskserve
from riskserve.services import S3Endpoint
from tests.governance.records_helpers import credit_record, write_log
from tests.monitoring.test_pushgateway import pushgateway  # noqa: F401 (fixture)

pytestmark = pytest.mark.e2e

NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)


@pytest.fixture
def s3_env(s3_server: S3Endpoint, monkeypatch: pytest.MonkeyPatch) -> S3Endpoint:
    for name, value in s3_server.client_env().items():
        monkeypatch.setenv(name, value)
    return s3_server


def decisions(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple:
    code = riskserve(["decisions", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_records_round_trip_through_s3_and_the_sweep_deletes_old_days(
    s3_env: S3Endpoint, capsys: pytest.CaptureFixture[str]
) -> None:
    base = f"s3://{s3_env.bucket}/records-{uuid.uuid4().hex[:8]}"
    log, records = f"{base}/log", f"{base}/decisions"
    old = NOW - dt.timedelta(days=10)
    write_log(
        log,
        [
            credit_record("s3-1", ["C1"], NOW, [False]),
            credit_record("s3-2", ["C2", "C1"], old, [True, True]),
        ],
    )
    args = ["compact", "--log", log, "--records", records]
    code, out, err = decisions(args, capsys)
    assert code == 0, err
    assert out.startswith("3 new decision records (0 already recorded)")
    code, out, err = decisions(args, capsys)
    assert code == 0 and out.startswith("0 new decision records (3 already"), err
    code, out, err = decisions(["show", "s3-1", "--records", records], capsys)
    assert code == 0, err
    assert "decision:        decline (rule default)" in out
    assert "1. SCORE_BELOW_CUTOFF: the policy's rule default" in out
    code, out, err = decisions(
        ["export", "--entity", "C1", "--records", records, "--json"], capsys
    )
    assert code == 0, err
    exported = [json.loads(line) for line in out.splitlines()]
    assert [(e["request_id"], e["row"]) for e in exported] == [("s3-2", 1), ("s3-1", 0)]
    code, out, err = decisions(
        ["sweep", "--records", records, "--retention-days", "5"], capsys
    )
    assert code == 0, err
    assert out.startswith(
        f"deleted 1 day partitions before {NOW.date() - dt.timedelta(5)}"
    )
    code, out, err = decisions(
        ["export", "--entity", "C1", "--records", records, "--json"], capsys
    )
    assert [json.loads(line)["request_id"] for line in out.splitlines()] == ["s3-1"]
    code, _, err = decisions(["show", "s3-2", "--records", records], capsys)
    assert code == 2 and "no decision with request id 's3-2'" in err


def test_an_unreachable_s3_is_one_line(
    s3_env: S3Endpoint,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    code, out, err = decisions(["show", "x", "--records", "s3://nowhere/r"], capsys)
    assert code == 2 and out == "" and err.count("\n") == 1
    assert err.startswith("riskserve decisions show: error: cannot list s3://nowhere/r")


def test_the_lifecycle_rule_of_the_records_prefix(
    s3_env: S3Endpoint, capsys: pytest.CaptureFixture[str]
) -> None:
    records = f"s3://{s3_env.bucket}/lifecycle-{uuid.uuid4().hex[:8]}/decisions"
    code, out, err = decisions(
        ["retention", "--records", records, "--retention-days", "30"], capsys
    )
    assert code == 0, err
    assert out.startswith("would put (give --apply)")
    import boto3

    client = boto3.client("s3")
    # Another rule of the bucket (SeaweedFS keeps one per prefix): kept by the put.
    other = {
        "ID": "logs",
        "Status": "Enabled",
        "Filter": {"Prefix": "other-logs/"},
        "Expiration": {"Days": 7},
    }
    client.put_bucket_lifecycle_configuration(
        Bucket=s3_env.bucket, LifecycleConfiguration={"Rules": [other]}
    )
    for days in ("30", "40"):  # twice: the rule is replaced, not added again
        code, out, err = decisions(
            ["retention", "--records", records, "--retention-days", days, "--apply"],
            capsys,
        )
        assert code == 0, err
    rules = client.get_bucket_lifecycle_configuration(Bucket=s3_env.bucket)["Rules"]
    by_id = {rule["ID"]: rule for rule in rules}
    assert set(by_id) == {"logs", "riskserve-decision-records-retention"}
    assert by_id["logs"]["Expiration"] == {"Days": 7}
    ours = by_id["riskserve-decision-records-retention"]
    assert ours["Filter"] == {"Prefix": records.split("/", 3)[3] + "/"}
    assert ours["Expiration"] == {"Days": 40} and ours["Status"] == "Enabled"
    # A folder has no lifecycle: one line pointing at the sweep.
    code, _, err = decisions(["retention", "--records", "/tmp/x"], capsys)
    assert code == 2 and "riskserve decisions sweep" in err


def test_the_pass_pushes_its_counts_and_its_loss(
    tmp_path,
    pushgateway: str,  # noqa: F811 (the fixture)
    capsys: pytest.CaptureFixture[str],
) -> None:
    log = tmp_path / "log"
    write_log(log, [credit_record("p-1", ["C1"], NOW, [True])])
    path = next(log.glob("credit/*/*.jsonl"))
    path.write_bytes(path.read_bytes() + b"not a record\n")
    args = ["compact", "--log", str(log), "--records", str(tmp_path / "records")]
    code, out, err = decisions([*args, "--push", pushgateway], capsys)
    assert code == 3, err
    metrics = httpx.get(f"{pushgateway}/metrics", timeout=10).text
    pushed = {
        line.split("{")[0]: float(line.rsplit(" ", 1)[1])
        for line in metrics.splitlines()
        if line.startswith("riskserve_decision_records_")
        and 'job="riskserve-decision-records"' in line
    }
    assert pushed["riskserve_decision_records_lost"] == 1
    assert pushed["riskserve_decision_records_unparsed_lines"] == 1
    assert pushed["riskserve_decision_records_written"] == 1
    assert pushed["riskserve_decision_records_total"] == 1
    assert pushed["riskserve_decision_records_last_run_timestamp_seconds"] > (
        NOW.timestamp() - 60
    )
