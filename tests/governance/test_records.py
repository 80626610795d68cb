"""Decision records from an inference log the predictor's own writer published: the
records pass (compaction into Parquet by day), its idempotency, `riskserve decisions
show | export | sweep`, and the loss it counts. Folders only (S3 and real servers:
test_records_s3.py, test_records_e2e.py)."""

from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path

import pyarrow.dataset as ds
import pytest
from riskserve.governance.records_compaction import MAX_FILES_PER_DAY, count_decisions
from riskserve.governance.records_location import open_location
from riskserve.governance.records_query import find
from riskserve.governance.settings import GovernanceSettings

from riskserve.cli import main as riskserve
from tests.governance.records_helpers import credit_record, write_log

pytestmark = pytest.mark.inprocess

NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)
DAYS_AGO_3 = NOW - dt.timedelta(days=3)


@pytest.fixture
def log(tmp_path: Path) -> Path:
    """Decisions of four requests, one of them a 2-row batch, the transformer's and
    (behind it) the predictor's record of one, a shadow arm's, and one predictor-only
    request; one of them three days old."""
    root = tmp_path / "log"
    live = credit_record("r-live", ["C1"], NOW, [False])
    shadow = credit_record("r-live", ["C1"], NOW, [True])
    write_log(
        root,
        [
            live,
            credit_record("r-live", ["C1"], NOW, [False], stage=None),
            credit_record("r-batch", ["C2", "C3"], DAYS_AGO_3, [True, False]),
            credit_record("r-alone", ["C9"], NOW, [True], stage=None),
        ],
    )
    # A shadow arm's record: the same request id, never returned.
    path = next(root.glob("credit/*/*.jsonl"))
    line = json.loads(shadow.to_json())
    line |= {"shadow": True, "experiment": "cutoff-test", "arms": ["challenger"]}
    path.write_bytes(path.read_bytes() + json.dumps(line).encode() + b"\n")
    return root


def decisions(cli_args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple:
    code = riskserve(["decisions", *cli_args])
    out, err = capsys.readouterr()
    return code, out, err


def test_a_pass_records_each_decision_once_and_a_second_pass_adds_nothing(
    log: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    records = tmp_path / "records"
    args = ["compact", "--log", str(log), "--records", str(records)]
    code, out, err = decisions(args, capsys)
    assert code == 0, err
    # 1 + 1 (its predictor record) + 2 + 1 + 1 shadow rows; 4 decisions.
    assert out.startswith("6 new decision records (0 already recorded)")
    assert "4 decisions recorded" in out
    assert {p.name for p in records.iterdir()} == {
        f"date={NOW.date()}",
        f"date={DAYS_AGO_3.date()}",
    }
    # Again, and with a log file read twice (a copy under another name).
    original = next(log.glob("credit/*/*.jsonl"))
    shutil.copy(original, original.with_name("copy-" + original.name))
    code, out, err = decisions(args, capsys)
    assert code == 0, err
    assert out.startswith("0 new decision records (6 already recorded)")
    table = ds.dataset(records, format="parquet", partitioning="hive").to_table()
    keys = list(
        zip(
            *(table.column(c).to_pylist() for c in ("request_id", "row", "stage")),
            strict=True,
        )
    )
    assert len(keys) == 6 and len(set(keys)) == 5  # the shadow row shares its key
    location = open_location(str(records), GovernanceSettings())
    assert count_decisions(location) == 4


def test_show_prints_what_a_notice_needs_and_prefers_the_transformers_record(
    log: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    records = tmp_path / "records"
    decisions(["compact", "--log", str(log), "--records", str(records)], capsys)
    code, out, err = decisions(["show", "r-live", "--records", str(records)], capsys)
    assert code == 0, err
    assert "decision:        decline (rule default)" in out  # not the shadow's approve
    assert f"time:            {NOW.isoformat()}" in out
    assert "applicant:       C1" in out
    assert "model:           credit version 3" in out
    assert "policy version:  0a1b2c3d4e5f" in out
    assert "1. SCORE_BELOW_CUTOFF: the policy's rule default" in out
    assert "2. account_status: current account status is 3" in out
    [decision] = find(open_location(str(records), GovernanceSettings()), "r-live")
    assert (
        decision.stage == "transformer" and decision.raw_inputs["customer_id"] == "C1"
    )
    assert decision.features["unknown_entity"] is False
    # A predictor-only request: what the predictor has (the model's own decision).
    code, out, err = decisions(["show", "r-alone", "--records", str(records)], capsys)
    assert code == 0, err
    assert "decision:        approve\n" in out
    assert "policy version:  none (no policy)" in out
    # Both rows of a batch.
    code, out, _ = decisions(
        ["show", "r-batch", "--records", str(records), "--json"], capsys
    )
    rows = [json.loads(line) for line in out.splitlines()]
    assert [(r["row"], r["entity_id"], r["decision"]) for r in rows] == [
        (0, "C2", "approve"),
        (1, "C3", "decline"),
    ]


def test_unknown_ids_and_unreadable_locations_are_one_line_errors(
    log: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    records = tmp_path / "records"
    decisions(["compact", "--log", str(log), "--records", str(records)], capsys)
    code, out, err = decisions(["show", "nope", "--records", str(records)], capsys)
    assert (code, out) == (2, "")
    assert err == (
        f"riskserve decisions show: error: no decision with request id 'nope' in "
        f"{records}\n"
    )
    code, _, err = decisions(["show", "x", "--records", str(tmp_path / "none")], capsys)
    assert code == 2 and err.count("\n") == 1
    assert "no decision records in" in err
    code, _, err = decisions(["show", "x", "--records", "http://x/y"], capsys)
    assert code == 2 and "give a folder or s3://bucket/prefix" in err
    # A damaged records file: named on one line, not a trace.
    damaged = records / f"date={NOW.date()}" / "part-damaged.parquet"
    damaged.write_bytes(b"PAR1 not parquet")
    code, _, err = decisions(["show", "r-live", "--records", str(records)], capsys)
    assert code == 2 and err.count("\n") == 1 and "cannot read" in err


def test_export_gives_an_entitys_decisions_and_reads_only_the_days_asked(
    log: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    records = tmp_path / "records"
    decisions(["compact", "--log", str(log), "--records", str(records)], capsys)
    code, out, err = decisions(
        ["export", "--entity", "C3", "--records", str(records), "--csv"], capsys
    )
    assert code == 0, err
    header, row = out.splitlines()
    assert header.startswith("request_id,row,time,entity_id,decision,action")
    assert row.startswith("r-batch,1,") and ",C3,decline,decline," in row
    # A damaged file in today's partition: an export from three days ago reads it
    # and fails; one up to then never opens it (the day partitions are pruned).
    damaged = records / f"date={NOW.date()}" / "part-damaged.parquet"
    damaged.write_bytes(b"PAR1 not parquet")
    since = str(DAYS_AGO_3.date())
    args = ["export", "--entity", "C3", "--records", str(records), "--json"]
    code, _, err = decisions([*args, "--since", since], capsys)
    assert code == 2 and "cannot read" in err
    code, out, err = decisions([*args, "--since", since, "--until", since], capsys)
    assert code == 0, err
    [exported] = [json.loads(line) for line in out.splitlines()]
    assert exported["request_id"] == "r-batch" and exported["row"] == 1
    assert exported["raw_inputs"]["basket_amount"] == 80.0
    damaged.unlink()
    code, _, err = decisions([*args, "--since", str(NOW.date())], capsys)
    assert code == 2
    assert err == (
        f"riskserve decisions export: error: no decisions for entity 'C3' since "
        f"{NOW.date()}\n"
    )
    with pytest.raises(SystemExit) as exit_:
        riskserve(["decisions", *args, "--since", "yesterday"])
    assert exit_.value.code == 2
    assert "'yesterday' is not a day: give YYYY-MM-DD" in capsys.readouterr().err


def test_the_sweep_deletes_partitions_past_retention_and_the_pass_sweeps_too(
    log: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    records = tmp_path / "records"
    decisions(["compact", "--log", str(log), "--records", str(records)], capsys)
    code, out, err = decisions(
        ["sweep", "--records", str(records), "--retention-days", "2"], capsys
    )
    assert code == 0, err
    assert out.startswith(
        f"deleted 1 day partitions before {NOW.date() - dt.timedelta(2)}"
    )
    assert {p.name for p in records.iterdir()} == {f"date={NOW.date()}"}
    # Old records the default retention (25 months) no longer keeps: a log from 800
    # days ago is compacted, then swept by the same pass.
    old = NOW - dt.timedelta(days=800)
    write_log(log, [credit_record("r-old", ["C1"], old, [True])])
    code, _, err = decisions(
        ["compact", "--log", str(log), "--records", str(records)], capsys
    )
    assert code == 0, err
    assert "swept 1 day partitions before" in err
    # (the 3-day-old decisions are back: their log is still there, and 25 months
    # keep them)
    assert {p.name for p in records.iterdir()} == {
        f"date={NOW.date()}",
        f"date={DAYS_AGO_3.date()}",
    }


def test_lines_that_are_not_records_and_records_not_written_are_counted(
    log: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    records = tmp_path / "records"
    path = next(log.glob("credit/*/*.jsonl"))
    path.write_bytes(path.read_bytes() + b'{"request_id": "torn", "timest\n')
    # The older day cannot be written: its partition's name is taken by a file.
    records.mkdir()
    (records / f"date={DAYS_AGO_3.date()}").write_bytes(b"")
    code, out, err = decisions(
        ["compact", "--log", str(log), "--records", str(records)], capsys
    )
    assert code == 3
    assert "lost: 1 unparsed lines, 2 unwritten records" in out
    assert f"lost: {path}:" in err and "not JSON" in err
    assert f"date={DAYS_AGO_3.date()}: 2 records not written" in err
    location = open_location(str(records), GovernanceSettings())
    assert count_decisions(location) == 2  # today's: r-live and r-alone


def test_hourly_passes_leave_few_files_a_day_and_each_decision_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log, records = tmp_path / "log", tmp_path / "records"
    args = ["compact", "--log", str(log), "--records", str(records)]
    for hour in range(12):
        write_log(
            log,
            [credit_record(f"h{hour}-{i}", ["C1"], NOW, [True]) for i in range(3)],
        )
        code, out, err = decisions(args, capsys)
        assert code == 0, err
        assert out.startswith("3 new decision records")
    files = list((records / f"date={NOW.date()}").glob("*.parquet"))
    # Passes 1-8 add a file each, the 9th merges the day into one, 10-12 add three.
    assert MAX_FILES_PER_DAY == 8 and len(files) == 4
    location = open_location(str(records), GovernanceSettings())
    assert count_decisions(location) == 36
    table = ds.dataset(records, format="parquet", partitioning="hive").to_table()
    assert len(table) == 36


def test_since_days_reads_only_the_recent_day_folders(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log, records = tmp_path / "log", tmp_path / "records"
    # Two files, each in the day folder of its first record.
    write_log(log, [credit_record("old", ["C1"], DAYS_AGO_3, [True])])
    write_log(log, [credit_record("new", ["C1"], NOW, [True])])
    args = ["compact", "--log", str(log), "--records", str(records)]
    code, out, err = decisions([*args, "--since-days", "1"], capsys)
    assert code == 0, err
    assert "1 log files in" in err and out.startswith("1 new decision records")
    assert {p.name for p in records.iterdir()} == {f"date={NOW.date()}"}
    code, out, err = decisions([*args, "--since-days", "4"], capsys)
    assert code == 0, err
    assert out.startswith("1 new decision records (1 already recorded)")
