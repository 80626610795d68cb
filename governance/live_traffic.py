"""Live traffic of one version, read from the inference log as data, for the report's
stability section: the inputs the predictor received and the scores it served.

The log's layout and record format are the predictor's (serving/inference_log.py,
docs/monitoring.md): `<root>/<served model>/<YYYY-MM-DD>/*.jsonl`, one JSON record a
request with `model_name`, `model_version`, `inputs` and `outputs` as columns of the
request's rows. A transformer's records (`"stage": "transformer"`) carry the same
inputs, as it sent them: only one stage is read (the predictor's, or the
transformer's where there is no other), so no decision counts twice. Lines that are
not a record are counted, never fatal. A folder only: the monitor reads S3 itself.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

PREDICTOR, TRANSFORMER = "predictor", "transformer"


@dataclass(frozen=True)
class LiveLogRequest:
    """`riskserve report --log ROOT [--served-as NAME]`."""

    root: str
    served_as: str | None = None
    """The model's name in the log (its folder); the registered model's by default."""


class LiveLogError(ValueError):
    """The log cannot be read as asked; the message says why."""


@dataclass
class LiveTraffic:
    """The rows of one version in the log: inputs as columns, and its outputs."""

    where: str
    inputs: pd.DataFrame
    outputs: pd.DataFrame
    records: int = 0
    corrupt: int = 0
    stage: str = PREDICTOR
    first: str = ""
    last: str = ""
    other_versions: dict[str, int] = field(default_factory=dict)

    @property
    def rows(self) -> int:
        return len(self.inputs)


def _rows_of(record: dict) -> int:
    columns = [*record["inputs"].values(), *record["outputs"].values()]
    if not columns or not all(isinstance(c, list) for c in columns):
        raise TypeError("columns must be lists")
    rows = len(columns[0])
    if rows == 0 or any(len(c) != rows for c in columns):
        raise ValueError("columns of different lengths")
    return rows


def read_live(root: str, served_as: str, version: str) -> LiveTraffic:
    """Every record of `served_as` version `version` under the log's `root`."""
    if "://" in root:
        raise LiveLogError(
            f"--log {root}: the report reads a folder; copy the log's "
            f"{served_as}/ folder locally (e.g. `aws s3 sync`)"
        )
    folder = Path(root) / served_as
    if not folder.is_dir():
        raise LiveLogError(f"--log {root}: no folder {served_as}/ of a served model")
    by_stage: dict[str, list[tuple[str, dict, dict, int]]] = {}
    corrupt = 0
    others: dict[str, int] = {}
    for path in sorted(folder.glob("*/*.jsonl")):
        for line in path.read_bytes().splitlines():
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                rows = _rows_of(record)
                stamp = str(record["timestamp"])
                dt.datetime.fromisoformat(stamp)
                logged = str(record.get("model_version", ""))
                stage = str(record.get("stage", PREDICTOR))
            except (ValueError, KeyError, TypeError, AttributeError):
                corrupt += 1
                continue
            if record.get("model_name") != served_as:
                continue
            if logged != version:
                others[logged] = others.get(logged, 0) + rows
                continue
            by_stage.setdefault(stage, []).append(
                (stamp, record["inputs"], record["outputs"], rows)
            )
    stage = PREDICTOR if PREDICTOR in by_stage or not by_stage else TRANSFORMER
    kept = by_stage.get(stage, [])
    inputs = pd.DataFrame(
        {
            name: [v for _, ins, _, n in kept for v in ins.get(name, [None] * n)]
            for name in dict.fromkeys(k for _, ins, _, _ in kept for k in ins)
        }
    )
    outputs = pd.DataFrame(
        {
            name: [v for _, _, outs, n in kept for v in outs.get(name, [None] * n)]
            for name in dict.fromkeys(k for _, _, outs, _ in kept for k in outs)
        }
    )
    stamps = sorted(s for s, _, _, _ in kept)
    return LiveTraffic(
        where=str(folder),
        inputs=inputs,
        outputs=outputs,
        records=len(kept),
        corrupt=corrupt,
        stage=stage,
        first=stamps[0] if stamps else "",
        last=stamps[-1] if stamps else "",
        other_versions=others,
    )
