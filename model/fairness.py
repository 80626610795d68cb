"""Fair-lending tests of a version's decisions across the groups of a protected
attribute: approval rate, adverse impact ratio (AIR) against the most favoured group
(the four-fifths rule flags an AIR below 0.8), default rate among the approved, and
calibration (mean predicted default probability against the observed rate)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

FOUR_FIFTHS = 0.8
# Fewer rows than this in a group: its rates are shown, its AIR is not judged.
MIN_GROUP_ROWS = 30
MISSING_GROUP = "(missing)"


class FairnessError(ValueError):
    """The protected attribute cannot be tested as given; the message says why."""


@dataclass(frozen=True)
class FairnessResult:
    protected: str
    table: pd.DataFrame  # one row per group, most favoured first
    reference_group: str
    flagged: list[str]  # groups with AIR < 0.8 (and enough rows)

    @property
    def lowest_air(self) -> float:
        judged = self.table[self.table["rows"] >= MIN_GROUP_ROWS]["air"]
        return float(judged.min()) if len(judged) else float("nan")


def groups_of(values: pd.Series, edges: list[float] | None = None) -> pd.Series:
    """The group of every row: categorical values as they are; a numeric attribute
    (age) in bands, at `edges` when given, else at its quartiles."""
    numeric = pd.to_numeric(values, errors="coerce")
    is_numeric = values.dtype.kind in "fiu" or (
        numeric.notna().sum() == values.notna().sum() and values.notna().any()
    )
    if not is_numeric:
        text = values.astype("string").str.strip()
        return text.fillna(MISSING_GROUP).replace("", MISSING_GROUP).astype(str)
    if edges is None:
        edges = sorted(set(np.nanquantile(numeric, [0.25, 0.5, 0.75]).tolist()))
    cuts = sorted(set(edges))
    labels = []
    bounds = [-np.inf, *cuts, np.inf]
    for low, high in zip(bounds[:-1], bounds[1:], strict=True):
        if np.isinf(low):
            labels.append(f"< {high:g}")
        elif np.isinf(high):
            labels.append(f">= {low:g}")
        else:
            labels.append(f"{low:g} to < {high:g}")
    banded = pd.cut(numeric, bins=bounds, right=False, labels=labels)
    return banded.astype(str).where(numeric.notna(), MISSING_GROUP)


def fairness_table(
    protected: str,
    groups: pd.Series,
    approved: np.ndarray,
    probability: np.ndarray,
    labels: np.ndarray | None,
) -> FairnessResult:
    """Per group: rows, approvals, approval rate, AIR, default rate among the approved,
    mean predicted default probability and the observed default rate (with labels)."""
    g = groups.to_numpy()
    approved = np.asarray(approved, dtype=bool).ravel()
    probability = np.asarray(probability, dtype=np.float64).ravel()
    if not (g.size == approved.size == probability.size):
        raise FairnessError("groups, decisions and probabilities differ in length")
    rows = []
    for group in pd.unique(g):
        mask = g == group
        chosen = mask & approved
        row: dict[str, object] = {
            "group": str(group),
            "rows": int(mask.sum()),
            "approved": int(chosen.sum()),
            "approval_rate": float(approved[mask].mean()),
            "mean_predicted_pd": float(probability[mask].mean()),
        }
        if labels is not None:
            y = np.asarray(labels, dtype=np.float64).ravel()
            row["observed_default_rate"] = float(y[mask].mean())
            row["approved_default_rate"] = (
                float(y[chosen].mean()) if chosen.any() else float("nan")
            )
        rows.append(row)
    table = pd.DataFrame(rows)
    judged = table[table["rows"] >= MIN_GROUP_ROWS]
    if judged.empty:
        raise FairnessError(
            f"{protected}: no group has {MIN_GROUP_ROWS} rows or more; give more rows "
            "or coarser groups"
        )
    best = judged.loc[judged["approval_rate"].idxmax()]
    best_rate = float(best["approval_rate"])
    table["air"] = table["approval_rate"] / best_rate if best_rate > 0 else float("nan")
    table["flagged"] = (table["air"] < FOUR_FIFTHS) & (table["rows"] >= MIN_GROUP_ROWS)
    table = table.sort_values("approval_rate", ascending=False, kind="stable")
    flagged = table.loc[table["flagged"], "group"].astype(str).tolist()
    return FairnessResult(
        protected, table.reset_index(drop=True), str(best["group"]), flagged
    )
