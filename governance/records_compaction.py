"""The records pass: the inference log compacted into decision records, Parquet files
partitioned by day (`date=YYYY-MM-DD/`, the day of the decision's time).

The log stays the durable write path: each answered request is appended there with
one write(2) before its answer leaves, so a SIGKILL loses none. This pass only
reshapes it, and may run any number of times: a record whose key (request id, row,
stage, shadow) is already in its day's partition is not written again, so a second
pass, or a log file read twice, adds nothing. Each pass writes at most one new file
per day, whole or not at all (records_location.py).

Nothing is lost silently: a log line that is not a record and a record that could not
be written are counted (`CompactionResult.unparsed_lines`, `.unwritten_records`),
named (the first few), pushed as gauges, and make the pass exit 3.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.compute as pc
from riskserve.governance.decision_records import (
    KEY,
    SCHEMA,
    DecisionRecord,
    NotARecord,
    records_of_line,
    to_table,
)
from riskserve.governance.records_location import (
    Location,
    LocationError,
    iter_lines,
)

NAMED_PROBLEMS = 20
MAX_FILES_PER_DAY = 8
"""A pass that would leave a day with more files merges the day into one (an hourly
pass would otherwise leave 24 a day, and a lookup by id opens every file)."""
PROGRESS_EVERY_FILES = 200

Progress = Callable[[str], None]


@dataclass
class CompactionResult:
    log_files: int = 0
    lines: int = 0
    decisions: int = 0
    """Records read from the log (rows, shadow ones included)."""
    written: int = 0
    already_recorded: int = 0
    unparsed_lines: int = 0
    unwritten_records: int = 0
    files_written: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def lost(self) -> int:
        return self.unparsed_lines + self.unwritten_records

    def note(self, problem: str) -> None:
        if len(self.problems) < NAMED_PROBLEMS:
            self.problems.append(problem)


def compact(
    log: Location,
    records: Location,
    since: dt.date | None = None,
    progress: Progress = lambda _: None,
) -> CompactionResult:
    """Read the log's day folders (from `since` on, else all) and write the records
    not yet in `records`."""
    result = CompactionResult()
    paths = log.log_files(since.isoformat() if since else None)
    progress(f"{len(paths)} log files in {log.where}")
    by_key: dict[tuple[str, int, str, bool], DecisionRecord] = {}
    for number, path in enumerate(paths, start=1):
        try:
            payload = log.read_bytes(path)
        except LocationError as exc:
            # An unreadable file is not lost (it stays in the log): the next pass
            # reads it. Said, and the pass fails so that someone looks.
            result.note(str(exc))
            result.unparsed_lines += 1
            continue
        result.log_files += 1
        for line_number, line in iter_lines(payload):
            result.lines += 1
            try:
                for record in records_of_line(line, path):
                    result.decisions += 1
                    by_key.setdefault(record.key, record)
            except NotARecord as exc:
                result.unparsed_lines += 1
                result.note(f"{path}:{line_number}: {exc}")
        if number % PROGRESS_EVERY_FILES == 0:
            progress(f"read {number}/{len(paths)} log files ({result.lines} lines)")
    progress(
        f"read {result.log_files} log files: {result.lines} lines, "
        f"{result.decisions} decisions, {result.unparsed_lines} not records"
    )
    by_day: dict[str, list[DecisionRecord]] = {}
    for record in by_key.values():
        by_day.setdefault(record.day, []).append(record)
    for day in sorted(by_day):
        _write_day(records, day, by_day[day], result, progress)
    return result


def _write_day(
    records: Location,
    day: str,
    found: list[DecisionRecord],
    result: CompactionResult,
    progress: Progress,
) -> None:
    try:
        present = recorded_keys(records, day)
        new = [r for r in found if r.key not in present]
        result.already_recorded += len(found) - len(new)
        if not new:
            return
        new.sort(key=lambda r: (r.time, r.request_id, r.row))
        table = to_table(new)
        existing = records.day_files(day)
        if len(existing) + 1 > MAX_FILES_PER_DAY:
            table = _merged(records, day, table)
        path = records.write_day(day, table)
        if len(existing) + 1 > MAX_FILES_PER_DAY:
            # The merged file holds every record of the old ones: until they are
            # gone a reader sees some twice, which queries collapse by key (and a
            # crash here leaves them for the next merge).
            for old in existing:
                records.delete_file(old)
            progress(f"date={day}: merged {len(existing)} files into one")
    except (OSError, LocationError, ValueError) as exc:
        result.unwritten_records += len(found)
        result.note(f"date={day}: {len(found)} records not written: {exc}")
        progress(f"date={day}: could not write: {exc}")
        return
    result.written += len(new)
    result.files_written.append(path)
    progress(f"date={day}: {len(new)} new records -> {path}")


def _merged(records: Location, day: str, new: pa.Table) -> pa.Table:
    """The day's records and `new` as one table, each key once, in time order."""
    dataset = records.dataset([day])
    assert dataset is not None  # the day has files
    old = dataset.to_table(columns=SCHEMA.names).cast(SCHEMA)
    table = pa.concat_tables([old, new])
    keys = zip(*(table.column(name).to_pylist() for name in KEY), strict=True)
    first: dict[tuple, int] = {}
    for index, key in enumerate(keys):
        first.setdefault(key, index)
    table = table.take(pa.array(sorted(first.values()), pa.int64()))
    return table.sort_by([("time", "ascending"), ("request_id", "ascending")])


def recorded_keys(records: Location, day: str) -> set[tuple[str, int, str, bool]]:
    dataset = records.dataset([day])
    if dataset is None:
        return set()
    table = dataset.to_table(columns=list(KEY))
    columns = [table.column(name).to_pylist() for name in KEY]
    return set(zip(*columns, strict=True))


def count_decisions(records: Location) -> int:
    """Decisions recorded: live rows, each request's row once (a transformer's and
    a predictor's record of one request are one decision)."""
    dataset = records.dataset()
    if dataset is None:
        return 0
    table = dataset.to_table(
        columns=["request_id", "row"],
        filter=pc.field("shadow") == False,  # noqa: E712
    )
    return len(table.group_by(["request_id", "row"]).aggregate([]))
