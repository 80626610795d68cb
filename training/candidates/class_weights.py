"""Class weighting at extreme imbalance: how much a positive row weighs in the loss.

`none` (every row 1), `sqrt` (positives sqrt(negatives / positives)) or `balanced`
(positives negatives / positives: each class half of the loss). At 0.17% positives
`balanced` gives every fraud about 580 times a normal row's weight, which pushes a
model's probabilities up by that factor and, for a flexible model, fits a few frauds
very hard; `sqrt` (about 24x there) is the usual middle. Which one ranks best was
measured per candidate (`python -m bench.class_weights`, docs/benchmarks.md): the defaults below
follow that measurement, and the GBM and logistic searches try all three.
"""

from __future__ import annotations

import math

import numpy as np

CLASS_WEIGHTS = ("none", "sqrt", "balanced")


def positive_weight(scheme: str, y: np.ndarray) -> float:
    """The weight of a positive row (a negative row weighs 1)."""
    if scheme not in CLASS_WEIGHTS:
        raise ValueError(f"unknown class weighting {scheme!r}; one of {CLASS_WEIGHTS}")
    y = np.asarray(y)
    positives = max(int(y.sum()), 1)
    negatives = max(len(y) - positives, 1)
    ratio = negatives / positives
    return {"none": 1.0, "sqrt": math.sqrt(ratio), "balanced": ratio}[scheme]


def class_weight_dict(scheme: str, y: np.ndarray) -> dict[int, float] | None:
    """For scikit-learn and LightGBM's `class_weight` (None: unweighted)."""
    if scheme == "none":
        return None
    return {0: 1.0, 1: positive_weight(scheme, y)}
