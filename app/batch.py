"""Scoring an uploaded CSV through a model endpoint, in batches.

Each row is checked against the model's fields first; a bad row is reported by its line
number in the file and left unscored, and the good rows are still scored. A batch the
server rejects (400) is retried row by row, so one bad row does not sink its batch.
"""

from __future__ import annotations

import csv
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from riskserve.app.fields import Field
from riskserve.app.v2_client import EndpointError, InferenceResult, V2Client
from riskserve.model.specs import APPROVED, IS_FRAUD, REASON_CODES

PROBABILITY_EDGES = [i / 10 for i in range(11)]
Progress = Callable[[int, int], None]


class BatchError(Exception):
    """The file as a whole cannot be scored; the message says why in plain words."""


@dataclass(frozen=True)
class BadRow:
    line: int
    message: str


@dataclass
class BatchOutcome:
    output_path: Path
    rows: int
    bad_rows: list[BadRow]
    score_name: str | None
    scores: list[float]
    decision_name: str | None
    decisions: Counter = field(default_factory=Counter)
    served_by: Counter = field(default_factory=Counter)
    first_reasons: Counter = field(default_factory=Counter)  # declined rows'

    @property
    def scored(self) -> int:
        return len(self.scores)


@dataclass
class _Row:
    line: int
    raw: dict[str, str]
    values: dict[str, object] | None = None
    # One value per output, as the v2 response's JSON holds it (number, bool, list).
    outputs: dict[str, Any] | None = None
    version: str = ""
    revision: str = ""
    error: str = ""

    @property
    def checked_values(self) -> dict[str, object]:
        """The parsed values of a row that passed its checks (the only rows scored)."""
        if self.values is None:
            raise ValueError(f"line {self.line} failed its checks: {self.error}")
        return self.values


def read_rows(
    path: Path, fields: Sequence[Field], max_rows: int
) -> tuple[list[str], list[_Row]]:
    """The header and every data row, each checked against `fields`."""
    try:
        handle = open(path, newline="", encoding="utf-8-sig")  # noqa: SIM115
    except OSError as exc:
        raise BatchError(
            f"The uploaded file cannot be read ({exc.strerror})."
        ) from None
    with handle:
        reader = csv.reader(handle)
        try:
            header = next(reader, None)
            if not header or not any(h.strip() for h in header):
                raise BatchError("The CSV is empty: it has no header line.")
            header = [h.strip() for h in header]
            missing = [f.name for f in fields if f.name not in header]
            if missing:
                raise BatchError(
                    f"The CSV has no column {', '.join(missing)}; the model needs "
                    f"{len(fields)} columns: {', '.join(f.name for f in fields)}."
                )
            rows: list[_Row] = []
            for values in reader:
                if not values or all(not v.strip() for v in values):
                    continue
                if len(rows) >= max_rows:
                    raise BatchError(
                        f"The CSV has more than {max_rows} rows; split it into smaller "
                        "files."
                    )
                row = _Row(reader.line_num, dict(zip(header, values, strict=False)))
                if len(values) != len(header):
                    row.error = (
                        f"has {len(values)} values but the header has {len(header)}"
                    )
                else:
                    row.values, row.error = _check(row.raw, fields)
                rows.append(row)
        except (csv.Error, UnicodeDecodeError) as exc:
            raise BatchError(
                f"The file is not a readable UTF-8 CSV (line {reader.line_num}: {exc})."
            ) from None
    if not rows:
        raise BatchError("The CSV has a header but no data rows.")
    return header, rows


def _check(raw: dict[str, str], fields: Sequence[Field]) -> tuple[dict | None, str]:
    values, problems = {}, []
    for spec in fields:
        try:
            values[spec.name] = spec.parse(raw.get(spec.name))
        except ValueError as exc:
            problems.append(str(exc))
    return (None, "; ".join(problems)) if problems else (values, "")


def score_csv(
    client: V2Client,
    fields: Sequence[Field],
    path: Path,
    out_dir: Path,
    batch_size: int,
    max_rows: int,
    progress: Progress | None = None,
) -> BatchOutcome:
    header, rows = read_rows(path, fields, max_rows)
    good = [row for row in rows if row.values is not None]
    done = 0
    if progress:
        progress(0, len(good))
    for start in range(0, len(good), batch_size):
        chunk = good[start : start + batch_size]
        _score_chunk(client, fields, chunk)
        done += len(chunk)
        if progress:
            progress(done, len(good))

    metadata = client.metadata()
    output_names = metadata.output_names
    score_name = next((n for n in output_names if n.endswith("_probability")), None)
    decision_name = next((n for n in (IS_FRAUD, APPROVED) if n in output_names), None)
    out_dir.mkdir(parents=True, exist_ok=True)
    output_path = out_dir / f"{Path(path).stem}-scored.csv"
    extra = [n for n in output_names if n not in header]
    outcome = BatchOutcome(output_path, len(rows), [], score_name, [], decision_name)
    with open(output_path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow([*header, *extra, "model_version", "revision", "error"])
        for row in rows:
            outputs = row.outputs or {}
            writer.writerow(
                [
                    *(row.raw.get(h, "") for h in header),
                    *(_cell(outputs.get(n)) for n in extra),
                    row.version,
                    row.revision,
                    row.error,
                ]
            )
            if row.outputs is None:
                outcome.bad_rows.append(BadRow(row.line, row.error))
                continue
            if score_name is not None:
                outcome.scores.append(float(outputs[score_name]))
            if decision_name is not None:
                outcome.decisions[bool(outputs[decision_name])] += 1
            codes = outputs.get(REASON_CODES)
            if codes and codes[0] and outputs.get(APPROVED) is False:
                outcome.first_reasons[str(codes[0]).partition(": ")[0]] += 1
            outcome.served_by[(row.version, row.revision or "not reported")] += 1
    return outcome


def _score_chunk(client: V2Client, fields: Sequence[Field], chunk: list[_Row]) -> None:
    try:
        result = client.infer(_columns(fields, chunk))
    except EndpointError as exc:
        if exc.status != 400:
            raise
        if len(chunk) == 1:
            chunk[0].error = str(exc)
            return
        for row in chunk:
            _score_chunk(client, fields, [row])
        return
    _attach(result, chunk)


def _columns(fields: Sequence[Field], chunk: Sequence[_Row]) -> dict[str, list]:
    return {f.name: [row.checked_values[f.name] for row in chunk] for f in fields}


def _attach(result: InferenceResult, chunk: Sequence[_Row]) -> None:
    for i, row in enumerate(chunk):
        row.outputs = {name: values[i] for name, values in result.outputs.items()}
        row.version = result.model_version
        row.revision = result.revision or ""


def _cell(value: object) -> object:
    if value is None:
        return ""
    if isinstance(value, list):  # an [N, K] output: reason codes, points per feature
        return " | ".join(str(_cell(v)) for v in value if v not in ("", None))
    if isinstance(value, float):
        return f"{value:.6g}"
    return value
