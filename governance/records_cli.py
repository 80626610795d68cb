"""`riskserve decisions ...` (also `python -m riskserve.governance records ...`): the
records pass and the queries on decision records.

  compact    the inference log -> Parquet records by day (then the retention sweep)
  show       one decision, as a notice to the applicant needs it
  export     an entity's decisions since a day (--json, --csv)
  sweep      delete day partitions older than the retention
  retention  the S3 lifecycle rule of the records prefix (--apply puts it)

Exit codes: 0 done; 2 a bad argument, an unknown id or an unreadable location (one
line on stderr); 3 the pass lost lines or records (counted, pushed, named)."""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import sys
from typing import TYPE_CHECKING

import orjson
from riskserve.governance.settings import GovernanceSettings

if TYPE_CHECKING:
    from riskserve.governance.records_location import Location

COMMANDS = ("compact", "show", "export", "sweep", "retention")
CSV_COLUMNS = (
    "request_id",
    "row",
    "time",
    "entity_id",
    "decision",
    "action",
    "reason_code",
    "reason_codes",
    "model_name",
    "model_version",
    "policy_version",
    "policy_rule",
    "experiment",
    "arm",
    "raw_inputs",
    "features",
    "outputs",
)


def _day(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a day: give YYYY-MM-DD"
        ) from None


def _days(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: give a whole number of days >= 1")
    return int(text)


def _records_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--records",
        help="the records: a folder or s3://bucket/prefix (default: "
        "RISKSERVE_GOVERNANCE_RECORDS_URI)",
    )


def parser(prog: str = "riskserve decisions") -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(
        prog=prog, description="Decision records: the inference log kept as Parquet."
    )
    commands = top.add_subparsers(dest="command", required=True)
    compact = commands.add_parser(
        "compact", help="compact the inference log into records (then sweep)"
    )
    compact.add_argument(
        "--log",
        help="the inference log (default: RISKSERVE_GOVERNANCE_INFERENCE_LOG_URI)",
    )
    _records_argument(compact)
    window = compact.add_mutually_exclusive_group()
    window.add_argument(
        "--since", type=_day, help="read the log's day folders from this day on"
    )
    window.add_argument(
        "--since-days",
        type=_days,
        metavar="N",
        help="read the log's day folders of the last N days (today included)",
    )
    compact.add_argument("--no-sweep", action="store_true", help="do not sweep")
    compact.add_argument(
        "--push", help="push the counts to this Pushgateway (what the CronJob does)"
    )
    show = commands.add_parser("show", help="one decision by its request id")
    show.add_argument("request_id")
    _records_argument(show)
    show.add_argument("--json", action="store_true", help="the whole record as JSON")
    export = commands.add_parser("export", help="an entity's decisions")
    export.add_argument("--entity", required=True, help="card_id or customer_id")
    export.add_argument("--since", type=_day, help="from this day (YYYY-MM-DD) on")
    export.add_argument("--until", type=_day, help="up to this day, inclusive")
    _records_argument(export)
    form = export.add_mutually_exclusive_group()
    form.add_argument("--json", action="store_true", help="JSON lines")
    form.add_argument("--csv", action="store_true", help="CSV with a header")
    sweep = commands.add_parser("sweep", help="delete partitions past retention")
    _records_argument(sweep)
    sweep.add_argument(
        "--retention-days",
        type=_days,
        help="default RISKSERVE_GOVERNANCE_RECORDS_RETENTION_DAYS",
    )
    retention = commands.add_parser(
        "retention", help="the S3 lifecycle rule expiring the records"
    )
    _records_argument(retention)
    retention.add_argument(
        "--retention-days",
        type=_days,
        help="default RISKSERVE_GOVERNANCE_RECORDS_RETENTION_DAYS",
    )
    retention.add_argument(
        "--apply", action="store_true", help="put it (else print what would be put)"
    )
    return top


def _fail(command: str, message: str, code: int = 2) -> int:
    print(f"riskserve decisions {command}: error: {message}", file=sys.stderr)
    return code


def main(argv: list[str], prog: str = "riskserve decisions") -> int:
    args = parser(prog).parse_args(argv)
    from riskserve.governance.records_location import LocationError
    from riskserve.governance.records_query import NoSuchDecision

    settings = GovernanceSettings()
    try:
        return _run(args, settings)
    except (LocationError, NoSuchDecision) as exc:
        return _fail(args.command, str(exc).splitlines()[0])


def _location(args: argparse.Namespace, settings: GovernanceSettings) -> Location:
    from riskserve.governance.records_location import LocationError, open_location

    uri = args.records or settings.records_uri
    if not uri:
        raise LocationError(
            "where are the records? give --records or RISKSERVE_GOVERNANCE_RECORDS_URI"
        )
    return open_location(uri, settings)


def _run(args: argparse.Namespace, settings: GovernanceSettings) -> int:
    if args.command == "compact":
        return _compact(args, settings)
    if args.command == "show":
        return _show(args, settings)
    if args.command == "export":
        return _export(args, settings)
    if args.command == "sweep":
        return _sweep(args, settings)
    return _retention(args, settings)


def _progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _compact(args: argparse.Namespace, settings: GovernanceSettings) -> int:
    from riskserve.governance.records_compaction import compact, count_decisions
    from riskserve.governance.records_location import LocationError, open_location
    from riskserve.governance.records_retention import sweep

    log_uri = args.log or settings.inference_log_uri
    if not log_uri:
        raise LocationError(
            "where is the log? give --log or RISKSERVE_GOVERNANCE_INFERENCE_LOG_URI"
        )
    records = _location(args, settings)
    since = args.since
    if args.since_days is not None:
        since = dt.datetime.now(dt.UTC).date() - dt.timedelta(days=args.since_days - 1)
    result = compact(open_location(log_uri, settings), records, since, _progress)
    for problem in result.problems:
        _progress(f"lost: {problem}")
    if not args.no_sweep:
        swept = sweep(
            records, settings.records_retention_days, dt.datetime.now(dt.UTC).date()
        )
        if swept.deleted:
            _progress(
                f"swept {len(swept.deleted)} day partitions before {swept.cutoff} "
                f"({swept.deleted[0]} .. {swept.deleted[-1]})"
            )
    decisions = count_decisions(records)
    push = args.push or settings.records_pushgateway
    if push:
        from riskserve.governance.records_gauges import push as push_gauges

        try:
            push_gauges(push, result, decisions)
        except OSError as exc:  # said, never fatal: the records are written
            _progress(f"could not push to {push}: {exc}")
    print(
        f"{result.written} new decision records ({result.already_recorded} already "
        f"recorded) from {result.log_files} log files into {records.where}; "
        f"{decisions} decisions recorded; lost: {result.unparsed_lines} unparsed "
        f"lines, {result.unwritten_records} unwritten records"
    )
    return 3 if result.lost else 0


def _show(args: argparse.Namespace, settings: GovernanceSettings) -> int:
    from riskserve.governance.records_query import find, notice

    decisions = find(_location(args, settings), args.request_id)
    if args.json:
        for decision in decisions:
            sys.stdout.write(orjson.dumps(decision.as_dict()).decode() + "\n")
    else:
        print("\n\n".join(notice(d) for d in decisions))
    return 0


def _export(args: argparse.Namespace, settings: GovernanceSettings) -> int:
    from riskserve.governance.records_query import export, notice

    decisions = export(_location(args, settings), args.entity, args.since, args.until)
    if not decisions:
        since = f" since {args.since}" if args.since else ""
        return _fail("export", f"no decisions for entity {args.entity!r}{since}")
    if args.json:
        for decision in decisions:
            sys.stdout.write(orjson.dumps(decision.as_dict()).decode() + "\n")
    elif args.csv:
        writer = csv.writer(sys.stdout)
        writer.writerow(CSV_COLUMNS)
        for decision in decisions:
            row = decision.as_dict()
            writer.writerow(
                [
                    orjson.dumps(row[c]).decode()
                    if isinstance(row[c], dict | list)
                    else ("" if row[c] is None else row[c])
                    for c in CSV_COLUMNS
                ]
            )
    else:
        print("\n\n".join(notice(d) for d in decisions))
    return 0


def _sweep(args: argparse.Namespace, settings: GovernanceSettings) -> int:
    from riskserve.governance.records_retention import sweep

    days = args.retention_days or settings.records_retention_days
    result = sweep(_location(args, settings), days, dt.datetime.now(dt.UTC).date())
    print(
        f"deleted {len(result.deleted)} day partitions before {result.cutoff} "
        f"(retention {days} days); {result.kept} kept"
        + (f": {', '.join(result.deleted)}" if result.deleted else "")
    )
    return 0


def _retention(args: argparse.Namespace, settings: GovernanceSettings) -> int:
    from botocore.exceptions import BotoCoreError, ClientError
    from riskserve.governance.records_retention import apply_lifecycle

    uri = args.records or settings.records_uri
    if not uri or not uri.startswith("s3://"):
        return _fail(
            "retention",
            f"{uri or 'no records location'}: a lifecycle rule needs s3://bucket/"
            "prefix (sweep a folder with `riskserve decisions sweep`)",
        )
    days = args.retention_days or settings.records_retention_days
    try:
        configuration = apply_lifecycle(
            settings.s3_client(), uri, days, dry_run=not args.apply
        )
    except (BotoCoreError, ClientError) as exc:
        return _fail("retention", f"{uri}: {str(exc).splitlines()[0]}")
    verb = "put" if args.apply else "would put (give --apply)"
    print(
        f"{verb} the lifecycle configuration of {uri.removeprefix('s3://').split('/')[0]}:"
    )
    print(orjson.dumps(configuration, option=orjson.OPT_INDENT_2).decode())
    return 0
