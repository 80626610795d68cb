"""The statistics of an experiment's outcomes: Wilson intervals for rates, the
two-proportion z-test for a difference of rates, a seeded bootstrap for a difference
of means (profit per decision), and the sample size a test of rates needs.

The z-test takes arrays, so a simulation judges hundreds of experiments in one call
(tests/monitoring/test_outcomes_stats.py's A/A runs)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats

BOOTSTRAP_CELLS = 4_000_000
"""Resampled values drawn at once (memory: 8 bytes each); more resamples go in
chunks."""


def wilson_interval(successes: int, trials: int, alpha: float) -> tuple[float, float]:
    """The Wilson score interval of a proportion; (nan, nan) without trials."""
    if trials == 0:
        return (float("nan"), float("nan"))
    interval = stats.binomtest(successes, trials).proportion_ci(
        confidence_level=1 - alpha, method="wilson"
    )
    return (float(interval.low), float(interval.high))


def two_proportion_z(
    successes_a, trials_a, successes_b, trials_b
) -> tuple[np.ndarray, np.ndarray]:
    """z and two-sided p of `b`'s rate minus `a`'s, pooled under the null (arrays or
    numbers); nan where either side has no trials or the pooled rate is 0 or 1."""
    sa, na = np.asarray(successes_a, float), np.asarray(trials_a, float)
    sb, nb = np.asarray(successes_b, float), np.asarray(trials_b, float)
    with np.errstate(divide="ignore", invalid="ignore"):
        pooled = (sa + sb) / (na + nb)
        se = np.sqrt(pooled * (1 - pooled) * (1 / na + 1 / nb))
        z = (sb / nb - sa / na) / se
    z = np.where((na > 0) & (nb > 0) & (se > 0), z, np.nan)
    return z, 2 * stats.norm.sf(np.abs(z))


@dataclass(frozen=True)
class BootstrapDifference:
    difference: float
    """Mean of `b` minus mean of `a`, on the data."""
    low: float
    high: float
    """The percentile interval of the difference at the chosen confidence."""
    p_value: float
    """Two-sided: twice the smaller share of resampled differences on either side of
    zero (with the add-one correction, so never 0)."""
    resamples: int


def bootstrap_difference(
    a: np.ndarray, b: np.ndarray, alpha: float, resamples: int, seed: int
) -> BootstrapDifference:
    """The difference of means `b - a`, each arm resampled with replacement on its
    own (the arms are independent samples), vectorised in chunks."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if not len(a) or not len(b):
        nan = float("nan")
        return BootstrapDifference(nan, nan, nan, nan, 0)
    rng = np.random.default_rng(seed)
    differences = np.empty(resamples)
    chunk = max(1, BOOTSTRAP_CELLS // max(len(a), len(b)))
    for start in range(0, resamples, chunk):
        size = min(chunk, resamples - start)
        mean_a = a[rng.integers(0, len(a), (size, len(a)))].mean(axis=1)
        mean_b = b[rng.integers(0, len(b), (size, len(b)))].mean(axis=1)
        differences[start : start + size] = mean_b - mean_a
    low, high = np.quantile(differences, [alpha / 2, 1 - alpha / 2])
    below = int((differences <= 0).sum())
    above = int((differences >= 0).sum())
    p_value = min(1.0, 2 * (min(below, above) + 1) / (resamples + 1))
    return BootstrapDifference(
        float(b.mean() - a.mean()), float(low), float(high), p_value, resamples
    )


def sample_size_per_arm(
    baseline_rate: float, mde: float, alpha: float, power: float
) -> int | None:
    """Decisions per arm a two-sided two-proportion z-test needs to detect a change of
    the rate by `mde` (absolute, towards the nearer bound) at `alpha` with `power`;
    None when the baseline is unknown."""
    if not np.isfinite(baseline_rate):
        return None
    p1 = baseline_rate
    p2 = p1 - mde if p1 - mde > 0 else p1 + mde
    mean = (p1 + p2) / 2
    z_alpha = stats.norm.ppf(1 - alpha / 2)
    z_power = stats.norm.ppf(power)
    numerator = (
        z_alpha * np.sqrt(2 * mean * (1 - mean))
        + z_power * np.sqrt(p1 * (1 - p1) + p2 * (1 - p2))
    ) ** 2
    return int(np.ceil(numerator / mde**2))
