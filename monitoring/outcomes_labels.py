"""The outcomes pass's labels: the labels pass's file (`labels.read_labels`: the key,
a label 0/1, a time) with an optional `amount` column, the money a bad outcome lost
(a default's loss, a chargeback). An empty amount: the experiment's loss given
default times the decision's amount."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from riskserve.monitoring.labels import read_labels
from riskserve.monitoring.log_reader import BadInput

AMOUNT = "amount"


def read_outcome_labels(path: Path, key: str) -> pd.DataFrame:
    labels = read_labels(path, key)
    path = Path(path)
    parquet = path.suffix.lower() in {".parquet", ".pq"}
    columns = (
        pd.read_parquet(path).columns if parquet else pd.read_csv(path, nrows=0).columns
    )
    if AMOUNT not in columns:
        return labels
    raw = (
        pd.read_parquet(path, columns=[AMOUNT])[AMOUNT]
        if parquet
        else pd.read_csv(path, usecols=[AMOUNT])[AMOUNT]
    )
    amount = pd.to_numeric(raw, errors="coerce")
    bad = (amount < 0) | (amount.isna() & raw.notna())
    if bad.any():
        raise BadInput(
            f"{path}: amount must be a number of at least 0 (or empty), found "
            f"{raw[bad].iloc[0]!r}"
        )
    labels[AMOUNT] = amount.to_numpy()
    return labels
