"""An experiment's decisions read back from the inference log: the transformer's
records that name an `experiment`, one row per decision with its arm, amount,
probability and action; live and shadow records apart.

The record format (docs/transformer.md, "Inference log"): a transformer record gains
`experiment` (the experiment's name), `arms` (one arm name per row) and, for a shadow
arm's copy, `"shadow": true` with the request's own `request_id` (its decision was
never returned). `log_reader.read_log` keeps only `inputs` and `outputs`, so this
reads the same files (`LocalLog` / `S3Log` over the window's day folders) for the
record-level keys too. Lines that are no such record are counted and named, never
fatal, as `read_log` does.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import orjson
import pandas as pd
from riskserve.model.specs import (
    APPROVED,
    DEFAULT_PROBABILITY,
    FRAUD_PROBABILITY,
    IS_FRAUD,
)
from riskserve.monitoring.log_reader import (
    NAMED_CORRUPT_LINES,
    BadInput,
    LocalLog,
    LogWindow,
    S3Log,
)

AMOUNT_FIELDS = ("amount", "basket_amount")
"""The raw field holding a decision's money: a card transaction's, a checkout's."""

APPROVING_ACTIONS = {"approve", "allow", "challenge"}
"""A policy's actions that let the money go: a challenge (3-D Secure) goes through
once the cardholder passes it."""


@dataclass
class ExperimentDecisions:
    """One row per decision: key (request id, `id:i` for row i), time, version, arm,
    amount, probability, approved, and the raw inputs (a join key may be one)."""

    live: pd.DataFrame
    shadow: pd.DataFrame
    kind: str
    """fraud or credit: which probability the records carry."""
    experiments: Counter = field(default_factory=Counter)
    """Records per experiment name in the window (the others are left out)."""
    files: int = 0
    corrupt_count: int = 0
    corrupt: list[str] = field(default_factory=list)


def read_decisions(
    log: LocalLog | S3Log, model: str, window: LogWindow, experiment: str
) -> ExperimentDecisions:
    rows: dict[bool, list[dict]] = {False: [], True: []}
    kinds: set[str] = set()
    found = ExperimentDecisions(pd.DataFrame(), pd.DataFrame(), "")
    since, until = window.since.timestamp(), window.until.timestamp()
    for where, payload in log.files(model, window.days()):
        found.files += 1
        for number, line in enumerate(payload.splitlines(), start=1):
            if b'"experiment"' not in line:
                continue  # not an experiment's record: a cheap skip before parsing
            try:
                record = orjson.loads(line)
                stamp = dt.datetime.fromisoformat(record["timestamp"]).timestamp()
                if record.get("model_name") != model or not since <= stamp < until:
                    continue
                name = record["experiment"]
                found.experiments[str(name)] += 1
                if name != experiment:
                    continue
                decisions, kind = _record_rows(record, stamp)
            except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
                found.corrupt_count += 1
                if len(found.corrupt) < NAMED_CORRUPT_LINES:
                    reason = (
                        str(exc).splitlines()[0][:120] if str(exc) else "unreadable"
                    )
                    found.corrupt.append(f"{where}:{number}: {reason}")
                continue
            kinds.add(kind)
            rows[record.get("shadow") is True].extend(decisions)
    if len(kinds) > 1:
        raise BadInput(
            f"experiment {experiment!r} mixes fraud and credit records: one "
            "experiment decides one kind"
        )
    found.kind = kinds.pop() if kinds else ""
    found.live, found.shadow = _frame(rows[False]), _frame(rows[True])
    if found.live.empty and found.shadow.empty and found.experiments:
        raise BadInput(
            f"no record of experiment {experiment!r} in the window; the log holds "
            + ", ".join(f"{n} ({c} records)" for n, c in found.experiments.items())
        )
    return found


_COLUMNS = [
    "key",
    "time",
    "version",
    "arm",
    "amount",
    "probability",
    "approved",
    "explored",
]
# The policy_rule of a decision the experiment's exploration approved (the policy
# declined it; docs/experiments.md).
EXPLORATION_RULE = "exploration"


def _frame(rows: list[dict]) -> pd.DataFrame:
    """The decisions, with the raw inputs the records carried (`raw:NAME`)."""
    return pd.DataFrame(rows) if rows else pd.DataFrame(columns=_COLUMNS)


def _record_rows(record: dict, stamp: float) -> tuple[list[dict], str]:
    """A record's decisions; ValueError (or KeyError, TypeError) saying what is
    missing when it cannot be judged."""
    arms, outputs = record["arms"], record["outputs"]
    raw = record.get("raw_inputs") or {}
    if not isinstance(arms, list) or not arms:
        raise ValueError("arms must be a list of arm names, one per row")
    amount_field = next((f for f in AMOUNT_FIELDS if f in raw), None)
    if amount_field is None:
        raise ValueError(f"no raw amount ({' or '.join(AMOUNT_FIELDS)})")
    kind = "fraud" if FRAUD_PROBABILITY in outputs else "credit"
    probability_name = FRAUD_PROBABILITY if kind == "fraud" else DEFAULT_PROBABILITY
    probability = outputs[probability_name]
    amount = raw[amount_field]
    approved = _approved(outputs, kind)
    rules = outputs.get("policy_rule") or [None] * len(arms)
    if not (
        len(probability) == len(amount) == len(approved) == len(rules) == len(arms)
    ):
        raise ValueError(
            f"{len(arms)} arms for {len(probability)} probabilities, "
            f"{len(amount)} amounts and {len(approved)} decisions"
        )
    rid = str(record["request_id"])
    keys = [rid] if len(arms) == 1 else [f"{rid}:{i}" for i in range(len(arms))]
    version = str(record.get("model_version", ""))
    rows = []
    for i, key in enumerate(keys):
        money, chance = float(amount[i]), float(_scalar(probability[i]))
        if not money >= 0 or not 0 <= chance <= 1:
            raise ValueError(f"row {i}: amount or probability out of range")
        row = {
            "key": key,
            "time": stamp,
            "version": version,
            "arm": str(arms[i]),
            "amount": money,
            "probability": chance,
            "approved": approved[i],
            "explored": _scalar(rules[i]) == EXPLORATION_RULE,
        }
        for name, values in raw.items():
            if isinstance(values, list) and len(values) == len(arms):
                row[f"raw:{name}"] = values[i]
        rows.append(row)
    return rows, kind


def _scalar(value):
    return value[0] if isinstance(value, list) else value


def _approved(outputs: dict, kind: str) -> list[bool]:
    """The decision as served: the policy's `action` when one was applied, else the
    graph's own (`approved` for credit; not `is_fraud` for fraud)."""
    if "action" in outputs:
        return [str(_scalar(a)) in APPROVING_ACTIONS for a in outputs["action"]]
    if kind == "credit":
        return [float(_scalar(v)) > 0.5 for v in outputs[APPROVED]]
    return [float(_scalar(v)) <= 0.5 for v in outputs[IS_FRAUD]]


def join_keys(frame: pd.DataFrame, key: str) -> np.ndarray:
    """The column the labels join on: the request id (`id:i` for row i) or a raw
    input, as the labels pass joins on a logged input."""
    if key == "request_id" or frame.empty:
        return frame["key"].astype(str).to_numpy()
    column = f"raw:{key}"
    if column not in frame:
        raw = sorted(c[4:] for c in frame.columns if c.startswith("raw:"))
        raise BadInput(
            f"the experiment's records have no raw input {key!r} to join on; use "
            f"request_id or one of {', '.join(raw) or 'no inputs'}"
        )
    return frame[column].astype(str).to_numpy()
