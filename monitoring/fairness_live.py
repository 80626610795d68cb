"""Fair lending on live decisions: the late-labels pass, given a protected attribute,
tests each version's served decisions per group with the report's definitions
(riskserve.model.fairness, one copy for both): approval rate, adverse impact ratio
(AIR) against the most favoured group, default rate among the approved, and
calibration (mean predicted default probability against the observed rate).

The protected attribute comes from the labels file (a column beside the key and the
label) or from a proxy file joined by an id (the labels' key, or an entity id the log
holds as an input). Never from the model's inputs: a protected column the model takes
is refused, as the training job refuses to train on one.

Only labelled decisions are judged (the attribute and the outcome arrive together):
the rates are those of the decisions whose outcome is known.
"""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from riskserve.model.fairness import (
    FOUR_FIFTHS,
    MIN_GROUP_ROWS,
    FairnessError,
    fairness_table,
    groups_of,
)
from riskserve.model.specs import APPROVED, DEFAULT_PROBABILITY
from riskserve.monitoring.log_reader import BadInput

GROUP_COLUMN = "_protected_group"


@dataclass(frozen=True)
class ProtectedColumn:
    """Which attribute to test, and where it is."""

    column: str
    """The protected attribute's column (in the labels file, or in `file`)."""
    file: str | None = None
    """A proxy file (CSV or Parquet, a path or s3:// URI) holding `column` by id."""
    id_column: str | None = None
    """The proxy file's id: the labels' key column, or an input the log holds."""
    bands: tuple[float, ...] | None = None
    """Band edges of a numeric attribute (age); its quartiles when None."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The labels pass's fairness options."""
    parser.add_argument(
        "--protected",
        metavar="COL",
        help="fair lending: the protected attribute's column, in the labels file (or "
        "in --protected-file); per group approval rate, adverse impact ratio, default "
        "rate among the approved, calibration",
    )
    parser.add_argument(
        "--protected-file",
        help="a proxy file (CSV or Parquet, a file or s3:// URI) holding --protected, "
        "joined by --protected-id",
    )
    parser.add_argument(
        "--protected-id",
        metavar="COL",
        help="the proxy file's id column: the labels' --key, or an input the log holds "
        "(an entity id)",
    )
    parser.add_argument(
        "--bands",
        metavar="E1,E2",
        help="a numeric protected attribute's band edges (e.g. 25,40,62; default: its "
        "quartiles)",
    )


def from_arguments(args: argparse.Namespace) -> ProtectedColumn | None:
    """The request, or None without --protected; BadInput for an incomplete one."""
    if args.protected is None:
        for flag, value in (
            ("--protected-file", args.protected_file),
            ("--protected-id", args.protected_id),
            ("--bands", args.bands),
        ):
            if value is not None:
                raise BadInput(f"{flag} needs --protected COL")
        return None
    if (args.protected_file is None) != (args.protected_id is None):
        raise BadInput("--protected-file and --protected-id go together")
    bands = None
    if args.bands is not None:
        try:
            bands = tuple(float(x) for x in args.bands.split(",") if x.strip())
        except ValueError:
            raise BadInput(
                f"--bands: comma-separated numbers, got {args.bands[:80]!r}"
            ) from None
        if not bands or not all(map(math.isfinite, bands)):
            raise BadInput("--bands: give at least one finite number")
    return ProtectedColumn(
        args.protected, args.protected_file, args.protected_id, bands
    )


def read_proxy(path: Path, request: ProtectedColumn) -> pd.DataFrame:
    """The proxy file's id (as text) and protected column, one row per id (the
    last)."""
    assert request.id_column is not None
    try:
        frame = (
            pd.read_parquet(path)
            if path.suffix.lower() in {".parquet", ".pq"}
            else pd.read_csv(path)
        )
    except Exception as exc:  # pandas and pyarrow raise many kinds: say which file
        raise BadInput(
            f"{path}: not a readable protected-attribute file ({exc})"
        ) from None
    for column in (request.id_column, request.column):
        if column not in frame.columns:
            raise BadInput(
                f"{path}: no column {column!r} (columns: "
                f"{', '.join(map(str, frame.columns))[:300]})"
            )
    proxy = pd.DataFrame(
        {
            "_protected_id": frame[request.id_column].astype(str),
            request.column: frame[request.column],
        }
    )
    return proxy.drop_duplicates("_protected_id", keep="last")


def check_not_an_input(request: ProtectedColumn, inputs: set[str]) -> None:
    if request.column in inputs:
        raise BadInput(
            f"--protected {request.column} is an input of the model: a protected "
            "attribute may not be one (retrain without it); fairness is tested on a "
            "column the model never sees"
        )


def attach(
    joined: pd.DataFrame,
    request: ProtectedColumn,
    key: str,
    proxy: pd.DataFrame | None,
    log_inputs: dict[str, np.ndarray],
    log_keys: pd.Series,
) -> pd.DataFrame:
    """`joined` (labels joined to the log) with the group of every row in
    GROUP_COLUMN: from the labels file's column, or the proxy joined by its id."""
    if proxy is None:
        if request.column not in joined:
            raise BadInput(
                f"the labels file has no column {request.column!r}; add it, or give "
                "--protected-file FILE --protected-id COL"
            )
        values = joined[request.column]
    else:
        assert request.id_column is not None
        if request.id_column == key:
            ids = joined["key"]
        elif request.id_column in log_inputs:
            by_key = pd.Series(
                pd.Series(log_inputs[request.id_column]).astype(str).to_numpy(),
                index=log_keys.to_numpy(),
            )
            by_key = by_key[~by_key.index.duplicated(keep="last")]
            ids = joined["key"].map(by_key)
        else:
            raise BadInput(
                f"--protected-id {request.id_column}: neither the labels' key "
                f"({key}) nor an input of the log"
            )
        mapped = ids.map(proxy.set_index("_protected_id")[request.column])
        values = mapped
    out = joined.copy()
    out[GROUP_COLUMN] = groups_of(
        values.reset_index(drop=True),
        list(request.bands) if request.bands is not None else None,
    ).to_numpy()
    return out


def _plain(value: object) -> object:
    """JSON-ready: NaN as None, numpy scalars as Python's."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def live_fairness(
    joined: pd.DataFrame, request: ProtectedColumn
) -> tuple[list[dict], list[str]]:
    """Per version: the fairness table of its labelled decisions; and one line per
    group whose AIR is under 0.8 with enough decisions."""
    if APPROVED not in joined or DEFAULT_PROBABILITY not in joined:
        raise BadInput(
            f"fairness needs the log's {APPROVED} and {DEFAULT_PROBABILITY} outputs "
            "(a credit model's decisions)"
        )
    per_version, flagged = [], []
    for version, group in joined.groupby("version"):
        entry: dict = {"version": str(version), "protected": request.column}
        try:
            result = fairness_table(
                request.column,
                group[GROUP_COLUMN].reset_index(drop=True),
                group[APPROVED].to_numpy(np.float64) > 0.5,
                group[DEFAULT_PROBABILITY].to_numpy(np.float64),
                group["label"].to_numpy(np.float64),
            )
        except FairnessError as exc:
            entry |= {"judged": False, "why": str(exc), "groups": []}
            per_version.append(entry)
            continue
        entry |= {
            "judged": True,
            "reference_group": result.reference_group,
            "flagged": result.flagged,
            "groups": [
                {k: _plain(v) for k, v in row.items()}
                for row in result.table.to_dict("records")
            ],
        }
        per_version.append(entry)
        for row in entry["groups"]:
            if row["flagged"]:
                flagged.append(
                    f"v{version}: {request.column} = {row['group']}: AIR "
                    f"{row['air']:.2f} < {FOUR_FIFTHS} ({row['rows']} decisions, "
                    f"approval rate {row['approval_rate']:.1%} against "
                    f"{result.reference_group})"
                )
    return per_version, flagged


def summary_lines(per_version: list[dict]) -> list[str]:
    lines = []
    for v in per_version:
        head = f"  fairness of v{v['version']} by {v['protected']}"
        if not v["judged"]:
            lines.append(f"{head}: not judged ({v['why']})")
            continue
        lines.append(f"{head} (most favoured: {v['reference_group']}):")
        for row in v["groups"]:
            small = row["rows"] < MIN_GROUP_ROWS
            air = "n/a" if row["air"] is None else f"{row['air']:.2f}"
            approved_bad = row.get("approved_default_rate")
            lines.append(
                f"    {row['group']}: {row['rows']} decisions, approval rate "
                f"{row['approval_rate']:.1%}, AIR {air}"
                + (" FLAGGED" if row["flagged"] else "")
                + (" (too few to judge)" if small else "")
                + ", default rate among approved "
                + ("n/a" if approved_bad is None else f"{approved_bad:.1%}")
                + f", predicted {row['mean_predicted_pd']:.1%} vs observed "
                f"{row['observed_default_rate']:.1%}"
            )
    return lines
