"""`riskserve report MODEL[/VERSION]`, `riskserve approve | reject MODEL VERSION`."""

from __future__ import annotations

import argparse
import getpass
import sys
from pathlib import Path

from riskserve.governance.approvals import POLICY_SHA_TAG, ApprovalError, decide
from riskserve.governance.registered_version import VersionError
from riskserve.governance.settings import GovernanceSettings
from riskserve.governance.status import APPROVED, REJECTED
from riskserve.model.data import DataError


def _fail(command: str, message: str, code: int) -> int:
    print(f"riskserve {command}: error: {message}", file=sys.stderr, flush=True)
    return code


def _edges(text: str) -> list[float]:
    try:
        edges = [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--bands: comma-separated numbers, got {text[:80]!r}"
        ) from None
    if not edges:
        raise argparse.ArgumentTypeError("--bands: give at least one number")
    return edges


def report_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="riskserve report",
        description="The validation report of a registered version (HTML), logged with "
        "the version; the version becomes validated.",
    )
    parser.add_argument("model", help="MODEL or MODEL/VERSION (default: the newest)")
    parser.add_argument("--out", type=Path, help="HTML file to write")
    parser.add_argument("--owner", help="the model's owner (default: its owner tag)")
    parser.add_argument(
        "--data", type=Path, help="fairness: evaluation rows (CSV) with the features"
    )
    parser.add_argument(
        "--protected", metavar="COL", help="fairness: the protected attribute's column"
    )
    parser.add_argument(
        "--bands",
        type=_edges,
        metavar="E1,E2",
        help="a numeric protected attribute's band edges (e.g. 25,40,62; default: "
        "its quartiles)",
    )
    parser.add_argument(
        "--protected-file",
        type=Path,
        help="a proxy file holding the protected column, joined to --data by --id",
    )
    parser.add_argument("--id", dest="id_column", help="the id column of the join")
    parser.add_argument(
        "--log",
        metavar="FOLDER",
        help="stability against live traffic: the inference log's root folder (PSI of "
        "the score and the features, training and holdout against the version's "
        "logged traffic)",
    )
    parser.add_argument(
        "--served-as",
        metavar="NAME",
        help="with --log: the model's name in the log (default: the registered model)",
    )
    parser.add_argument(
        "--by", help="who generates the report (default: the login name)"
    )
    return parser


def report(argv: list[str]) -> int:
    args = report_parser().parse_args(argv)
    if (args.data is None) != (args.protected is None):
        return _fail("report", "--data and --protected go together", 2)
    if args.protected_file is not None and args.data is None:
        return _fail("report", "--protected-file needs --data and --protected", 2)
    if args.served_as is not None and args.log is None:
        return _fail("report", "--served-as needs --log FOLDER", 2)
    from riskserve.governance.live_traffic import LiveLogRequest
    from riskserve.governance.validation import FairnessRequest, generate

    fairness = (
        FairnessRequest(
            args.data, args.protected, args.bands, args.protected_file, args.id_column
        )
        if args.data is not None
        else None
    )
    client = GovernanceSettings().mlflow_client()
    try:
        result = generate(
            client,
            args.model,
            args.out,
            args.owner,
            args.by or getpass.getuser(),
            fairness,
            LiveLogRequest(args.log, args.served_as) if args.log else None,
        )
    except (DataError, VersionError, ApprovalError, ValueError) as exc:
        return _fail("report", str(exc), 2)
    flagged = ""
    if result.fairness is not None:
        flagged = (
            f"; AIR below 0.8 for {result.fairness.protected}: "
            + ", ".join(result.fairness.flagged)
            if result.fairness.flagged
            else f"; no AIR below 0.8 for {result.fairness.protected}"
        )
    print(
        f"{result.name} v{result.version}: report {result.path} (sha256 "
        f"{result.sha256[:16]}, logged as {result.artifact}); status "
        f"{result.status}{flagged}"
    )
    return 0


def decision_parser(command: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=f"riskserve {command}",
        description=f"{command.capitalize()} a validated version; the entry (who, "
        "when, the report's hash, the note) is added to its trail.",
    )
    parser.add_argument("model", help="the registered model")
    parser.add_argument("version", help="the version number")
    parser.add_argument("--by", required=True, help="who decides")
    parser.add_argument("--note", required=True, help="why")
    if command == "approve":
        parser.add_argument(
            "--champion",
            action="store_true",
            help="also name it champion (the alias models:/MODEL@champion serves): "
            "a first version, which has no canary to promote",
        )
    return parser


def decision(command: str, argv: list[str]) -> int:
    args = decision_parser(command).parse_args(argv)
    from mlflow.exceptions import MlflowException

    client = GovernanceSettings().mlflow_client()
    status = APPROVED if command == "approve" else REJECTED
    try:
        entry = decide(client, args.model, args.version, status, args.by, args.note)
    except ApprovalError as exc:
        return _fail(command, str(exc), 2)
    except MlflowException as exc:
        return _fail(command, f"{args.model}/{args.version}: {exc.message}", 2)
    # what the decision names: a model's validation report, or a policy's own YAML
    try:
        tags = dict(client.get_model_version(args.model, args.version).tags)
    except MlflowException as exc:
        return _fail(command, f"{args.model}/{args.version}: {exc.message}", 2)
    named = "policy YAML" if POLICY_SHA_TAG in tags else "report"
    print(
        f"{args.model} v{args.version}: {entry.status} by {entry.by} at {entry.at} "
        f"({named} sha256 {entry.report_sha256[:16] or 'none'})"
    )
    if getattr(args, "champion", False):
        try:
            client.set_registered_model_alias(args.model, "champion", args.version)
        except MlflowException as exc:
            return _fail(command, f"{args.model}/{args.version}: {exc.message}", 2)
        print(f"{args.model}: champion -> v{args.version}")
    return 0
