"""The report's figures against scikit-learn's, and the behaviour of their intervals."""

from __future__ import annotations

import numpy as np
import pytest
from riskserve.governance import metrics
from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score

pytestmark = pytest.mark.inprocess


def scored(rows: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = (rng.random(rows) < 0.3).astype(int)
    # Rounded: ties, as a scorecard's few distinct scores give.
    p = np.round(np.clip(0.25 + 0.3 * y + rng.normal(0, 0.2, rows), 0, 1), 2)
    return y, p


def test_figures_equal_scikit_learns_with_ties() -> None:
    y, p = scored(2_000)
    assert metrics.roc_auc(y, p) == pytest.approx(roc_auc_score(y, p), abs=1e-12)
    assert metrics.average_precision(y, p) == pytest.approx(
        average_precision_score(y, p), abs=1e-12
    )
    assert metrics.brier(y, p) == pytest.approx(brier_score_loss(y, p))
    assert metrics.gini(y, p) == pytest.approx(2 * roc_auc_score(y, p) - 1)


def test_ks_is_the_largest_gap_between_the_class_cdfs() -> None:
    y, p = scored(1_000, seed=1)
    thresholds = np.unique(p)
    gaps = [np.mean(p[y == 0] <= t) - np.mean(p[y == 1] <= t) for t in thresholds]
    assert metrics.ks(y, p) == pytest.approx(max(gaps))


def test_bootstrap_interval_holds_the_value_and_narrows_with_rows() -> None:
    small = metrics.bootstrap("gini", *scored(200), rounds=300)
    large = metrics.bootstrap("gini", *scored(5_000), rounds=300)
    for interval in (small, large):
        assert interval.low < interval.value < interval.high
    assert (large.high - large.low) < (small.high - small.low) / 2


def test_psi_is_zero_for_equal_shares_and_grows_with_the_shift() -> None:
    assert metrics.psi([10, 20, 30], [1, 2, 3]) == pytest.approx(0.0)
    near = metrics.psi([25, 25, 25, 25], [23, 27, 25, 25])
    far = metrics.psi([25, 25, 25, 25], [5, 15, 30, 50])
    assert 0 < near < 0.01 < 0.25 < far
    # Bins as a reference profile keeps them: (-inf, e0], (e0, e1], (e1, inf).
    counts = metrics.binned_counts([0.5, 1.0, 1.5, 2.5, np.nan], [1.0, 2.0])
    assert counts.tolist() == [2, 1, 1]
