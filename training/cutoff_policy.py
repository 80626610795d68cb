"""The credit cut-off chosen from the data: a policy, the score it gives, and the
strategy table a risk team reads to check it.

`--cutoff-policy` forms:

- `profit:GAIN:LOSS`: maximise expected profit per applicant (GAIN per good approved,
  LOSS per bad approved, 0 per declined). With calibrated PDs this approves exactly the
  applicants with PD < GAIN / (GAIN + LOSS), so the cut-off is the score of that PD.
- `approval-rate:R`: approve the share R (0 < R <= 1) of the applicants.
- `bad-rate:B`: the largest approval rate whose expected bad rate among the approved
  (their mean PD) is at most B.
- `score:S`: a fixed score, as `--cutoff S`.

Numpy and pandas only, so that a bad policy is reported before any heavy import.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
from riskserve.model.specs import DEFAULT_PROBABILITY

DEFAULT_POLICY = "profit:1:5"

PROFIT, APPROVAL_RATE, BAD_RATE, SCORE = "profit", "approval-rate", "bad-rate", "score"
KINDS = (PROFIT, APPROVAL_RATE, BAD_RATE, SCORE)
FORMS = (
    "profit:GAIN:LOSS (GAIN, LOSS > 0), approval-rate:R (0 < R <= 1), "
    "bad-rate:B (0 < B <= 1) or score:S"
)

# PDs this close to 0 or 1 may have been clipped before scoring (the graph clips at
# 1e-7); they are left out when the score scaling is read back from the rows.
_UNCLIPPED = 1e-6


def _number(x: float) -> str:
    """The shortest text that reads back as x: 5, not 5.0; 0.7, not 0.7000."""
    x = float(x)
    return str(int(x)) if x.is_integer() and abs(x) < 1e15 else repr(x)


@dataclass(frozen=True)
class CutoffPolicy:
    kind: str  # "profit" | "approval-rate" | "bad-rate" | "score"
    value: float = 0.0  # R, B or S
    gain: float = 1.0  # profit: per good approved (the profit columns of every policy)
    loss: float = 5.0  # profit: per bad approved

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown cut-off policy {self.kind!r}; use {FORMS}")
        if not (math.isfinite(self.gain) and self.gain > 0):
            raise ValueError(f"the gain per good must be above 0, got {self.gain:g}")
        if not (math.isfinite(self.loss) and self.loss > 0):
            raise ValueError(f"the loss per bad must be above 0, got {self.loss:g}")
        if not math.isfinite(self.value):
            raise ValueError(f"{self.kind}: the value must be a finite number")
        if self.kind == APPROVAL_RATE and not 0 < self.value <= 1:
            raise ValueError(
                f"the approval rate R must be in (0, 1], got {self.value:g}"
            )
        if self.kind == BAD_RATE and not 0 < self.value <= 1:
            raise ValueError(f"the bad rate B must be in (0, 1], got {self.value:g}")

    def __str__(self) -> str:
        if self.kind == PROFIT:
            return f"{PROFIT}:{_number(self.gain)}:{_number(self.loss)}"
        return f"{self.kind}:{_number(self.value)}"


def parse_policy(text: str) -> CutoffPolicy:
    """`profit:1:5`, `approval-rate:0.7`, `bad-rate:0.05` or `score:560`; a ValueError
    with a one-line message naming the text and the four forms otherwise."""
    parts = [part.strip() for part in str(text).strip().lower().split(":")]
    kind, args = parts[0], parts[1:]
    forms = {PROFIT: "GAIN:LOSS", APPROVAL_RATE: "R", BAD_RATE: "B", SCORE: "S"}
    try:
        if kind not in forms:
            raise ValueError("unknown form")
        if len(args) != forms[kind].count(":") + 1:
            raise ValueError(f"{kind} takes {kind}:{forms[kind]}")
        try:
            numbers = [float(a) for a in args]
        except ValueError:
            raise ValueError("not a number") from None
        if kind == PROFIT:
            return CutoffPolicy(PROFIT, gain=numbers[0], loss=numbers[1])
        return CutoffPolicy(kind, value=numbers[0])
    except ValueError as exc:
        raise ValueError(
            f"bad cut-off policy {str(text)!r} ({exc}); use {FORMS}"
        ) from None


@dataclass(frozen=True)
class CutoffChoice:
    score: float  # the cut-off: approve when credit_score >= score
    approval_rate: float  # expected, on the rows it was chosen on
    bad_rate: float  # mean PD of the approved; nan if none approved
    profit_per_applicant: float  # expected: gain*(1-p) - loss*p over approved / all
    policy: str  # str(policy)


def _checked(name: str, values: npt.ArrayLike, n: int | None = None) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64).ravel()
    if array.size == 0:
        raise ValueError(f"no rows to choose a cut-off on ({name} is empty)")
    if n is not None and array.size != n:
        raise ValueError(f"{name} has {array.size} rows, expected {n}")
    bad = int(np.count_nonzero(~np.isfinite(array)))
    if bad:
        raise ValueError(f"{name} has {bad} rows that are NaN or infinite")
    return array


def _approved(scores: npt.ArrayLike, cutoff: float) -> np.ndarray:
    """scores >= cutoff, compared as the ONNX graph compares them: a float32 score
    against the cut-off rounded to float32."""
    scores = np.asarray(scores)
    dtype = scores.dtype if np.issubdtype(scores.dtype, np.floating) else np.float64
    return scores >= np.asarray(cutoff, dtype=dtype)


def _break_even_score(
    pd_: np.ndarray, scores: np.ndarray, odds_good: float
) -> float | None:
    """The score of the PD with odds_good = (1 - p) / p, read back from the rows'
    own scaling (score = offset + factor * ln((1 - p) / p)); None when it cannot be."""
    keep = (pd_ > _UNCLIPPED) & (pd_ < 1 - _UNCLIPPED)
    log_odds = np.log((1 - pd_[keep]) / pd_[keep])
    if np.unique(log_odds).size < 2:
        return None
    factor, offset = np.polyfit(log_odds, scores[keep], 1)
    if not factor > 0:
        return None
    return float(offset + factor * math.log(odds_good))


def choose_cutoff(
    policy: CutoffPolicy, default_probability: np.ndarray, scores: np.ndarray
) -> CutoffChoice:
    """On calibrated out-of-fold PDs (train+validation rows) and their credit scores
    (scores are decreasing in PD: score = offset + factor*ln((1-p)/p)).

    Applicants with equal scores are approved or declined together, so approval-rate
    gives the reachable share nearest R (the lower one on a tie), never 0. A bad-rate B
    below the expected bad rate of even the safest applicants raises ValueError: a
    model that declines everyone is not registered silently."""
    p = _checked(DEFAULT_PROBABILITY, default_probability)
    s = _checked("scores", scores, p.size)
    if p.min() < 0 or p.max() > 1:
        raise ValueError("default_probability has values outside [0, 1]")
    n = p.size
    order = np.argsort(-s, kind="stable")  # safest first
    s_sorted, p_sorted = s[order], p[order]
    # Approving the k safest rows is a cut-off only where the score changes.
    k = np.concatenate(([0], np.flatnonzero(s_sorted[:-1] > s_sorted[1:]) + 1, [n]))
    k = np.unique(k)
    expected_bad = np.concatenate(([0.0], np.cumsum(p_sorted)))[k]
    contribution = policy.gain * (1 - p_sorted) - policy.loss * p_sorted
    profit = np.concatenate(([0.0], np.cumsum(contribution)))[k]

    if policy.kind == SCORE:
        cutoff = float(policy.value)
    else:
        if policy.kind == PROFIT:
            chosen = int(k[np.argmax(profit)])  # the smallest k on a tie
        elif policy.kind == APPROVAL_RATE:
            reachable = k[1:]
            chosen = int(reachable[np.argmin(np.abs(reachable / n - policy.value))])
        else:
            rates = expected_bad[1:] / k[1:]
            within = np.flatnonzero(rates <= policy.value)
            if within.size == 0:
                raise ValueError(
                    f"{policy}: no cut-off reaches an expected bad rate of "
                    f"{policy.value:.2%}; the lowest, approving only the safest "
                    f"applicants, is {rates.min():.2%}; choose a larger B or another "
                    "policy"
                )
            chosen = int(k[1:][within[-1]])
        cutoff = _cutoff_between(s_sorted, chosen)
        if policy.kind == PROFIT:
            cutoff = _profit_cutoff(policy, p, s, s_sorted, chosen, cutoff)
    approved = _approved(s, cutoff)
    return CutoffChoice(
        score=cutoff,
        approval_rate=float(approved.mean()),
        bad_rate=float(p[approved].mean()) if approved.any() else float("nan"),
        profit_per_applicant=float(
            (policy.gain * (1 - p[approved]) - policy.loss * p[approved]).sum() / n
        ),
        policy=str(policy),
    )


def _cutoff_between(s_sorted: np.ndarray, k: int) -> float:
    """A score approving exactly the k highest (s_sorted is descending): halfway
    between the lowest approved and the highest declined, so that float32 rounding
    in the graph does not move a row across it."""
    n = s_sorted.size
    if k == n:
        return float(s_sorted[-1])
    if k == 0:
        return float(s_sorted[0]) + 1.0  # one point above the safest applicant
    return float((s_sorted[k - 1] + s_sorted[k]) / 2)


def _profit_cutoff(
    policy: CutoffPolicy,
    p: np.ndarray,
    s: np.ndarray,
    s_sorted: np.ndarray,
    k: int,
    fallback: float,
) -> float:
    """The break-even score (PD = GAIN/(GAIN+LOSS)) when it approves the same rows
    as the chosen k: a property of the scaling, not of where this sample's gaps fall,
    and it carries over to applicants scoring outside the sample's range."""
    score = _break_even_score(p, s, policy.loss / policy.gain)
    if score is None:
        return fallback
    above_declined = k == s_sorted.size or score > s_sorted[k]
    at_or_below_approved = k == 0 or score <= s_sorted[k - 1]
    return score if above_declined and at_or_below_approved else fallback


def outcome(
    y_true: np.ndarray, scores: np.ndarray, cutoff: float, policy: CutoffPolicy
) -> dict[str, float]:
    """Realised on labelled rows (the holdout): approval_rate, approved_bad_rate (nan
    if none approved), profit_per_applicant (policy's gain and loss)."""
    y = _checked("y_true", y_true)
    _checked("scores", scores, y.size)
    approved = _approved(np.ravel(scores), cutoff)
    bads = y[approved]
    return {
        "approval_rate": float(approved.mean()),
        "approved_bad_rate": float(bads.mean()) if bads.size else float("nan"),
        "profit_per_applicant": float(
            (policy.gain * (1 - bads) - policy.loss * bads).sum() / y.size
        ),
    }


STRATEGY_COLUMNS = [
    "band",
    "chosen_cutoff",
    "size",
    "defaults",
    "share",
    "band_precision",
    "cumulative_precision",
    "cumulative_recall",
    "approval_rate",
    "approved_bad_rate",
    "expected_bad_rate",
    "profit_per_applicant",
    "expected_profit_per_applicant",
]


def strategy_table(
    y_true: npt.ArrayLike,
    default_probability: npt.ArrayLike,
    scores: npt.ArrayLike,
    policy: CutoffPolicy,
    cutoff: float,
    bands: int = 10,
) -> pd.DataFrame:
    """Score bands (equal size, riskiest/lowest score first) as training/evaluation.py's
    score_bands does (band, size, defaults, share of population, band precision,
    cumulative precision and recall of defaults), plus, at each band's upper edge if the
    cut-off were set there (every row scoring at or below the band's highest score
    declined): approval rate, bad rate among the approved (realised, and expected from
    the PDs), profit per applicant (realised and expected, the policy's gain and loss).

    One more row, `chosen_cutoff` True and placed before the first band with an
    approved row, is the chosen cut-off: its approval rate, bad rate and profit are
    outcome()'s on these rows, its cumulative precision and recall those of the
    declined."""
    y = _checked("y_true", y_true)
    p = _checked(DEFAULT_PROBABILITY, default_probability, y.size)
    raw_scores = np.ravel(scores)
    s = _checked("scores", raw_scores, y.size)
    if bands < 1:
        raise ValueError(f"bands must be at least 1, got {bands}")
    n, total_defaults = y.size, max(float(y.sum()), 1.0)
    realised = policy.gain * (1 - y) - policy.loss * y
    expected = policy.gain * (1 - p) - policy.loss * p

    def if_approved(approved: np.ndarray) -> dict[str, float]:
        some = bool(approved.any())
        return {
            "approval_rate": float(approved.mean()),
            "approved_bad_rate": float(y[approved].mean()) if some else np.nan,
            "expected_bad_rate": float(p[approved].mean()) if some else np.nan,
            "profit_per_applicant": float(realised[approved].sum() / n),
            "expected_profit_per_applicant": float(expected[approved].sum() / n),
        }

    order = np.argsort(s, kind="stable")
    y_sorted, s_sorted = y[order], s[order]
    rows, seen, caught = [], 0, 0.0
    for chunk in np.array_split(np.arange(n), bands):
        if chunk.size == 0:
            continue
        defaults = float(y_sorted[chunk].sum())
        seen += chunk.size
        caught += defaults
        high = s_sorted[chunk[-1]]
        rows.append(
            {
                "band": f"{s_sorted[chunk[0]]:.0f}-{high:.0f}",
                "chosen_cutoff": False,
                "size": int(chunk.size),
                "defaults": int(defaults),
                "share": chunk.size / n,
                "band_precision": defaults / chunk.size,
                "cumulative_precision": caught / seen,
                "cumulative_recall": caught / total_defaults,
                **if_approved(s > high),
                "_high": high,
            }
        )
    approved = _approved(raw_scores, cutoff)
    declined = ~approved
    chosen = {
        "band": f"cut-off {cutoff:.1f}",
        "chosen_cutoff": True,
        "size": pd.NA,
        "defaults": pd.NA,
        "share": np.nan,
        "band_precision": np.nan,
        "cumulative_precision": float(y[declined].mean()) if declined.any() else np.nan,
        "cumulative_recall": float(y[declined].sum() / total_defaults),
        **if_approved(approved),
        **outcome(y, raw_scores, cutoff, policy),
    }
    at = next((i for i, r in enumerate(rows) if r["_high"] >= cutoff), len(rows))
    rows.insert(at, chosen)
    table = pd.DataFrame(rows, columns=STRATEGY_COLUMNS)
    table.attrs["policy"] = str(policy)
    table.attrs["cutoff"] = float(cutoff)
    return table.astype({"size": "Int64", "defaults": "Int64"})


def _percent(x: float) -> str:
    return "" if pd.isna(x) else f"{100 * x:.1f}%"


def _amount(x: float) -> str:
    return "" if pd.isna(x) else f"{x:+.3f}"


def format_strategy_table(table: pd.DataFrame) -> str:
    """The strategy table for the terminal; the chosen cut-off's row starts with >>."""
    # (title, column, how a cell of it is written, alignment)
    columns: list[tuple[str, str, Callable[[Any], str], str]] = [
        ("score band", "band", str, "<"),
        ("size", "size", lambda v: "" if pd.isna(v) else str(int(v)), ">"),
        ("defaults", "defaults", lambda v: "" if pd.isna(v) else str(int(v)), ">"),
        ("share", "share", _percent, ">"),
        ("band bad", "band_precision", _percent, ">"),
        ("cum bad", "cumulative_precision", _percent, ">"),
        ("cum recall", "cumulative_recall", _percent, ">"),
        ("approve", "approval_rate", _percent, ">"),
        ("bad rate", "approved_bad_rate", _percent, ">"),
        ("exp bad", "expected_bad_rate", _percent, ">"),
        ("profit", "profit_per_applicant", _amount, ">"),
        ("exp profit", "expected_profit_per_applicant", _amount, ">"),
    ]
    cells = [[title for title, *_ in columns]]
    for _, row in table.iterrows():
        cells.append([render(row[key]) for _, key, render, _ in columns])
    widths = [max(len(r[i]) for r in cells) for i in range(len(columns))]
    marks = ["   ", *(">> " if c else "   " for c in table["chosen_cutoff"])]
    lines = [
        mark
        + "  ".join(
            f"{cell:{align}{width}}"
            for cell, (_, _, _, align), width in zip(r, columns, widths, strict=True)
        ).rstrip()
        for mark, r in zip(marks, cells, strict=True)
    ]
    policy = table.attrs.get("policy", "")
    lines.append(
        "approve .. exp profit: if every band up to that row were declined; "
        f">> the chosen cut-off{f' ({policy})' if policy else ''}: approve at or "
        "above it; profit per applicant"
    )
    return "\n".join(lines)
