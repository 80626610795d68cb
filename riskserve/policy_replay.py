"""`riskserve policy diff OLD NEW --log URI`: the decisions the transformer recorded,
replayed under both policies, so an operator knows the shift in actions a new policy
will make before `policy rollout --auto --max-action-shift` judges it live.

The transformer's inference log (transformer/inference_log.py) records, per request,
its raw inputs, the features it used, the model inputs and the predictor's outputs:
every field a policy rule may read. Each live record of the model in the window (not
a shadow arm's copy) is decided again by each policy, row by row, as the transformer
decides. A record that lacks a field one of the policies reads (a predictor's own
record, a deployment whose log predates a field) is counted, not replayed.
"""

from __future__ import annotations

import datetime as dt
import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson

from riskserve.monitoring.log_reader import LocalLog, LogWindow, S3Log
from riskserve.transformer.policy import Policy

# The record's sides, in the order a field name is looked up (a raw field and an
# output never share a name; the policy's own outputs are not read).
SIDES = ("raw_inputs", "features", "inputs", "outputs")


@dataclass
class Replay:
    """Rows decided by each policy, by action."""

    records: int = 0
    rows: int = 0
    old: Counter = field(default_factory=Counter)
    new: Counter = field(default_factory=Counter)
    changed: int = 0
    """Rows whose action differs between the two policies."""
    skipped: Counter = field(default_factory=Counter)
    """Records not replayed, by why."""
    logged_differently: int = 0
    """Rows whose recorded action is not the old policy's (another version served)."""
    first: float | None = None
    last: float | None = None

    def shifts(self) -> dict[str, float]:
        """Each action's share of rows under the new policy minus under the old."""
        if not self.rows:
            return {}
        return {
            action: (self.new[action] - self.old[action]) / self.rows
            for action in sorted(set(self.old) | set(self.new))
        }

    def lines(self, model: str) -> list[str]:
        if not self.rows:
            why = ", ".join(f"{n} {reason}" for reason, n in self.skipped.items())
            return [
                f"replayed no decision of {model}: no transformer record in the "
                "window" + (f" ({why})" if why else "")
            ]
        assert self.first is not None and self.last is not None

        def when(t: float) -> str:
            return dt.datetime.fromtimestamp(t, dt.UTC).strftime("%Y-%m-%d %H:%M")

        lines = [
            f"replayed {self.rows:,} decisions of {model} ({self.records:,} records, "
            f"{when(self.first)} to {when(self.last)} UTC) under both policies:"
        ]
        for action, shift in self.shifts().items():
            lines.append(
                f"  {action:<10} {self.old[action] / self.rows:6.1%} -> "
                f"{self.new[action] / self.rows:6.1%}  ({shift * 100:+.1f} points)"
            )
        lines.append(
            f"  {self.changed:,} decisions ({self.changed / self.rows:.1%}) change "
            "action"
        )
        largest = max(abs(s) for s in self.shifts().values())
        # the shift plus two points, up to the next point: the live window's sampling
        # error is the gate's own allowance on top
        bound = math.ceil((largest + 0.02) * 100 - 1e-9) / 100
        lines.append(
            f"  largest shift {largest * 100:.1f} points: `policy rollout --auto "
            f"--max-action-shift {bound:.2f}` lets it through (default 0.10)"
        )
        if self.logged_differently:
            lines.append(
                f"  note: {self.logged_differently:,} recorded actions are not the "
                "old policy's (another policy version served them)"
            )
        for reason, count in self.skipped.items():
            lines.append(f"  not replayed: {count:,} records {reason}")
        return lines


def _column(values: list[Any]) -> np.ndarray:
    """A logged column as the transformer holds it: numbers (a null as NaN) or
    objects (strings)."""
    if any(isinstance(v, str) for v in values):
        return np.asarray(values, dtype=object)
    try:
        return np.asarray(
            [np.nan if v is None else v for v in values], dtype=np.float64
        )
    except (TypeError, ValueError):  # ragged or nested: as recorded
        return np.asarray(values, dtype=object)


def replay(
    log: LocalLog | S3Log, model: str, window: LogWindow, old: Policy, new: Policy
) -> Replay:
    """Both policies' decisions of `model`'s recorded transformer decisions in
    `window` (both policies checked against the model first: `check_fields`)."""
    needed = sorted(set(old.fields) | set(new.fields))
    since, until = window.since.timestamp(), window.until.timestamp()
    found = Replay()
    for _, payload in log.files(model, window.days()):
        for line in payload.splitlines():
            if b'"transformer"' not in line:
                continue  # a predictor's record: a cheap skip before parsing
            try:
                record = orjson.loads(line)
                stamp = dt.datetime.fromisoformat(record["timestamp"]).timestamp()
            except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
                found.skipped["unreadable"] += 1
                continue
            if (
                record.get("stage") != "transformer"
                or record.get("model_name") != model
                or not since <= stamp < until
            ):
                continue
            if record.get("shadow"):
                continue  # a shadow arm's copy: never answered
            columns: dict[str, list[Any]] = {}
            for side in SIDES:
                for name, values in (record.get(side) or {}).items():
                    columns.setdefault(name, values)
            missing = [n for n in needed if not isinstance(columns.get(n), list)]
            if missing:
                found.skipped[f"without {', '.join(missing[:3])}"] += 1
                continue
            rows = len(columns[needed[0]]) if needed else _rows(columns)
            if not rows or any(len(columns[n]) != rows for n in needed):
                found.skipped["with columns of different lengths"] += 1
                continue
            arrays = {n: _column(columns[n]) for n in needed}
            before = old.decide(arrays, rows).action
            after = new.decide(arrays, rows).action
            found.records += 1
            found.rows += rows
            found.old.update(str(a) for a in before)
            found.new.update(str(a) for a in after)
            found.changed += int(np.count_nonzero(before != after))
            logged = (record.get("outputs") or {}).get("action")
            if isinstance(logged, list) and len(logged) == rows:
                found.logged_differently += sum(
                    str(a) != str(b) for a, b in zip(logged, before, strict=True)
                )
            found.first = stamp if found.first is None else min(found.first, stamp)
            found.last = stamp if found.last is None else max(found.last, stamp)
    return found


def _rows(columns: dict[str, list[Any]]) -> int:
    """A record's row count, from its first column (a policy with no fields)."""
    for values in columns.values():
        if isinstance(values, list):
            return len(values)
    return 0
