"""Discrimination, calibration and stability figures of a validation report, from
labels and scores (numpy only: the report recomputes what it shows from the logged
holdout, so every figure can be checked against its rows)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
PSI_FLOOR = 1e-4  # an empty bin counts as this share, so PSI stays finite


def _checked(y: npt.ArrayLike, p: npt.ArrayLike) -> tuple[FloatArray, FloatArray]:
    labels = np.asarray(y, dtype=np.float64).ravel()
    scores = np.asarray(p, dtype=np.float64).ravel()
    if labels.size != scores.size:
        raise ValueError(f"{labels.size} labels but {scores.size} scores")
    return labels, scores


def roc_curve(y: npt.ArrayLike, p: npt.ArrayLike) -> tuple[FloatArray, FloatArray]:
    """False and true positive rates at every distinct threshold (highest first),
    from (0, 0) to (1, 1); p is the probability of the event."""
    labels, scores = _checked(y, p)
    order = np.argsort(-scores, kind="stable")
    labels, scores = labels[order], scores[order]
    last_of_tie = np.r_[np.flatnonzero(np.diff(scores)), labels.size - 1]
    tp = np.cumsum(labels)[last_of_tie]
    fp = (last_of_tie + 1) - tp
    positives, negatives = max(labels.sum(), 1.0), max(labels.size - labels.sum(), 1.0)
    return np.r_[0.0, fp / negatives], np.r_[0.0, tp / positives]


def roc_auc(y: npt.ArrayLike, p: npt.ArrayLike) -> float:
    fpr, tpr = roc_curve(y, p)
    return float(np.trapezoid(tpr, fpr))


def pr_curve(y: npt.ArrayLike, p: npt.ArrayLike) -> tuple[FloatArray, FloatArray]:
    """Recall and precision at every distinct threshold (highest first)."""
    labels, scores = _checked(y, p)
    order = np.argsort(-scores, kind="stable")
    labels, scores = labels[order], scores[order]
    last_of_tie = np.r_[np.flatnonzero(np.diff(scores)), labels.size - 1]
    tp = np.cumsum(labels)[last_of_tie]
    precision = tp / (last_of_tie + 1)
    recall = tp / max(labels.sum(), 1.0)
    return recall, precision


def average_precision(y: npt.ArrayLike, p: npt.ArrayLike) -> float:
    recall, precision = pr_curve(y, p)
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def ks(y: npt.ArrayLike, p: npt.ArrayLike) -> float:
    """Kolmogorov-Smirnov: the largest gap between the classes' score CDFs."""
    fpr, tpr = roc_curve(y, p)
    return float(np.max(tpr - fpr))


def gini(y: npt.ArrayLike, p: npt.ArrayLike) -> float:
    return 2 * roc_auc(y, p) - 1


def brier(y: npt.ArrayLike, p: npt.ArrayLike) -> float:
    labels, scores = _checked(y, p)
    return float(np.mean((scores - labels) ** 2))


@dataclass(frozen=True)
class Interval:
    value: float
    low: float
    high: float

    def __str__(self) -> str:
        return f"{self.value:.4f} [{self.low:.4f}, {self.high:.4f}]"


def bootstrap(
    statistic: str,
    y: npt.ArrayLike,
    p: npt.ArrayLike,
    rounds: int = 500,
    seed: int = 0,
    level: float = 0.95,
) -> Interval:
    """The statistic (roc_auc, gini, ks, average_precision, brier) and its percentile
    bootstrap interval over `rounds` resamples of the rows (stratified, so every
    resample has both classes)."""
    function = STATISTICS[statistic]
    labels, scores = _checked(y, p)
    value = function(labels, scores)
    rng = np.random.default_rng(seed)
    positive, negative = np.flatnonzero(labels == 1), np.flatnonzero(labels == 0)
    if positive.size == 0 or negative.size == 0:
        return Interval(value, float("nan"), float("nan"))
    draws = []
    for _ in range(rounds):
        rows = np.r_[
            rng.choice(positive, positive.size), rng.choice(negative, negative.size)
        ]
        draws.append(function(labels[rows], scores[rows]))
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(draws, [tail, 100 - tail])
    return Interval(value, float(low), float(high))


STATISTICS = {
    "roc_auc": roc_auc,
    "gini": gini,
    "ks": ks,
    "average_precision": average_precision,
    "brier": brier,
}


def calibration_bins(
    y: npt.ArrayLike, p: npt.ArrayLike, bins: int = 10
) -> list[dict[str, float]]:
    """Equal-size bins of predicted probability (lowest first): rows, mean predicted,
    observed rate."""
    labels, scores = _checked(y, p)
    order = np.argsort(scores, kind="stable")
    rows = []
    for chunk in np.array_split(order, min(bins, max(labels.size, 1))):
        if chunk.size == 0:
            continue
        rows.append(
            {
                "rows": float(chunk.size),
                "predicted": float(scores[chunk].mean()),
                "observed": float(labels[chunk].mean()),
            }
        )
    return rows


def psi(expected: npt.ArrayLike, actual: npt.ArrayLike) -> float:
    """Population stability index of two distributions over the same bins (counts or
    shares)."""
    e = np.clip(np.asarray(expected, dtype=np.float64), 0, None)
    a = np.clip(np.asarray(actual, dtype=np.float64), 0, None)
    if e.sum() == 0 or a.sum() == 0:
        return float("nan")
    e, a = np.clip(e / e.sum(), PSI_FLOOR, None), np.clip(a / a.sum(), PSI_FLOOR, None)
    e, a = e / e.sum(), a / a.sum()
    return float(np.sum((a - e) * np.log(a / e)))


def binned_counts(values: npt.ArrayLike, edges: list[float]) -> FloatArray:
    """Counts over the bins (-inf, e0], (e0, e1], ..., (eN, inf) of a reference
    profile, missing values left out."""
    x = np.asarray(values, dtype=np.float64)
    x = x[~np.isnan(x)]
    index = np.searchsorted(np.asarray(edges, dtype=np.float64), x, side="left")
    return np.bincount(index, minlength=len(edges) + 1).astype(np.float64)
