"""Optimal binning of every feature with optbinning, kept as plain bin tables.

optbinning only fits; what the scorecard keeps (and what the ONNX graph and the native
model both run) is a `FeatureBins` per feature: float32 split points or category
groups, counts, event rates and WoE. So a graph and its native model read the same
numbers, and nothing of optbinning is needed to score.

Bins of one feature, in order:
- numeric (numeric, binary, ordinal): the value bins `x < s1`, `s1 <= x < s2`, ...,
  `x >= sk` (optbinning's `np.digitize(x, splits, right=False)`), then the missing bin
  (NaN). Split points are rounded *up* to float32: for a float32 input x, `x >= s`
  holds exactly when `x >= ceil_f32(s)`, so optbinning's float64 bins, the native
  model and onnxruntime's float32 comparisons agree on every float32 value, edges
  included.
- categorical: the category groups optbinning found, then the missing bin (`""`, how
  a missing string arrives), then the unknown bin: a category never seen in training
  falls there, with WoE 0 (the average applicant's evidence), as optbinning's own
  transform does; it is not an error.

Trends: monotonic (`auto_asc_desc`: ascending or descending, whichever the data
support; a feature that supports neither ends in few bins and a low IV) for every
number; categories are ordered by event rate. optbinning's `auto` (a peak or valley
allowed) was measured and dropped: on the synthetic credit data it gave `time_hours`,
which has no effect there, an IV of 0.095 and a 44-point spread, so the reasons were
about noise. `max_pvalue` (consecutive bins must differ significantly) is the
search's choice: it sharpens reasons on large data with rare defaults and costs
ROC-AUC on small data (docs/benchmarks.md, "Scorecard and reason codes, measured").
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from riskserve.model.specs import Feature, ModelSpec

MISSING_LABEL = "Missing"
UNKNOWN_LABEL = "Unknown"
GROUP_SHOWN = 3  # categories named in a reason before "or N others"


@dataclass
class FeatureBins:
    """One feature's bins: what the scorecard's points are looked up by."""

    name: str
    kind: str
    reason_template: str
    splits: list[float] = field(default_factory=list)  # float32 values, ascending
    groups: list[list[str]] = field(default_factory=list)  # categorical bins
    counts: list[int] = field(default_factory=list)  # per bin, training rows
    events: list[int] = field(default_factory=list)
    woe: list[float] = field(default_factory=list)
    minimum: float | None = None  # the spec's range, for the words of a bin
    maximum: float | None = None

    @property
    def categorical(self) -> bool:
        return self.kind == "categorical"

    @property
    def value_bins(self) -> int:
        return len(self.groups) if self.categorical else len(self.splits) + 1

    @property
    def missing_bin(self) -> int:
        return self.value_bins

    @property
    def unknown_bin(self) -> int | None:
        return self.value_bins + 1 if self.categorical else None

    @property
    def n_bins(self) -> int:
        return self.value_bins + (2 if self.categorical else 1)

    @property
    def iv(self) -> float:
        """Information value: sum over bins of (non-event share - event share) * WoE."""
        events = np.asarray(self.events, float)
        nonevents = np.asarray(self.counts, float) - events
        if events.sum() == 0 or nonevents.sum() == 0:
            return 0.0
        share = nonevents / nonevents.sum() - events / events.sum()
        return float(np.sum(share * np.asarray(self.woe)))

    def bin_index(self, column: pd.Series) -> np.ndarray:
        """The bin of every value, as the graph computes it (float32 comparisons)."""
        if self.categorical:
            lookup = {c: i for i, group in enumerate(self.groups) for c in group}
            lookup[""] = self.missing_bin
            unknown = self.unknown_bin
            return np.array(
                [lookup.get(str(v), unknown) for v in column.astype(str)], np.int64
            )
        x = column.to_numpy(np.float32)
        splits = np.asarray(self.splits, np.float32)
        index = (x[:, None] >= splits[None, :]).sum(axis=1).astype(np.int64)
        index[np.isnan(x)] = self.missing_bin
        return index

    def labels(self) -> list[str]:
        """Bin labels as the scorecard table shows them."""
        if self.categorical:
            values = ["[" + ", ".join(g) + "]" for g in self.groups]
            return [*values, MISSING_LABEL, UNKNOWN_LABEL]
        edges = [-math.inf, *self.splits, math.inf]
        values = [
            f"[{_number(edges[i])}, {_number(edges[i + 1])})"
            for i in range(self.value_bins)
        ]
        return [*values, MISSING_LABEL]

    def value_texts(self) -> list[str]:
        """What `{value}` reads for each bin, in the reason text."""
        if self.categorical:
            values = [_group_text(g) for g in self.groups]
            return [*values, "missing", "a category not seen in training"]
        edges = [-math.inf, *self.splits, math.inf]
        values = [
            _range_text(self.kind, edges[i], edges[i + 1], self.minimum, self.maximum)
            for i in range(self.value_bins)
        ]
        return [*values, "missing"]

    def reasons(self) -> list[str]:
        """The reason code of every bin: `feature: reason text`."""
        return [
            f"{self.name}: {self.reason_template.replace('{value}', value)}"
            for value in self.value_texts()
        ]


def _number(value: float) -> str:
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return f"{value:.6g}"


def _group_text(group: list[str]) -> str:
    if len(group) <= GROUP_SHOWN:
        return " or ".join(group)
    return f"{', '.join(group[:GROUP_SHOWN])} or {len(group) - GROUP_SHOWN} others"


def _range_text(
    kind: str, low: float, high: float, minimum: float | None, maximum: float | None
) -> str:
    """[low, high) in words; integer-valued kinds as whole numbers, within the
    spec's range."""
    if kind == "binary":
        return "no" if math.isinf(low) else "yes" if math.isinf(high) else "0 or 1"
    if kind == "ordinal":
        first = None if math.isinf(low) else math.ceil(low)
        last = None if math.isinf(high) else math.ceil(high) - 1
        if minimum is not None and math.isfinite(minimum):
            first = max(first, math.ceil(minimum)) if first else math.ceil(minimum)
        if maximum is not None and math.isfinite(maximum):
            last = min(last, math.floor(maximum)) if last else math.floor(maximum)
        if first is not None and first == last:
            return str(first)
        if first is None:
            return f"{last} or less" if last is not None else "any"
        if last is None:
            return f"{first} or more"
        return f"{first} to {last}"
    if math.isinf(low) and math.isinf(high):
        return "any value"
    if math.isinf(low):
        return f"below {_short(high)}"
    if math.isinf(high):
        return f"{_short(low)} or more"
    return f"{_short(low)} to below {_short(high)}"


def _short(value: float) -> str:
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}"


def ceil_float32(values: np.ndarray) -> np.ndarray:
    """The smallest float32 at or above each value."""
    rounded = np.asarray(values, np.float64).astype(np.float32)
    below = rounded.astype(np.float64) < values
    rounded[below] = np.nextafter(rounded[below], np.float32(np.inf))
    return rounded


def _trend(feature: Feature, monotonic: bool) -> str:
    if monotonic or feature.kind in ("ordinal", "binary"):
        return "auto_asc_desc"
    return "auto"  # measured and dropped as the default (see the module docstring)


def fit_feature(
    feature: Feature,
    column: pd.Series,
    y: np.ndarray,
    max_n_prebins: int,
    min_prebin_size: float,
    monotonic: bool = True,
    max_pvalue: float | None = None,
) -> FeatureBins:
    from optbinning import OptimalBinning

    bins = FeatureBins(
        feature.name,
        feature.kind,
        feature.reason_template,
        minimum=feature.minimum,
        maximum=feature.maximum,
    )
    if feature.kind == "categorical":
        x = column.astype(str).replace("", np.nan).to_numpy(object)
        dtype = "categorical"
    else:
        x = column.to_numpy(np.float32).astype(np.float64)
        dtype = "numerical"
    binning = OptimalBinning(
        feature.name,
        dtype=dtype,
        monotonic_trend=_trend(feature, monotonic),
        max_n_prebins=max_n_prebins,
        min_prebin_size=min_prebin_size,
        max_pvalue=max_pvalue,
    )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            binning.fit(x, y)
        if binning.status not in ("OPTIMAL", "FEASIBLE"):
            raise ValueError(binning.status)
        if dtype == "categorical":
            bins.groups = [[str(c) for c in group] for group in binning.splits]
        else:
            bins.splits = [float(s) for s in ceil_float32(np.asarray(binning.splits))]
    except Exception:  # e.g. a column with no values: one value bin, then missing
        seen = column.astype(str)
        bins.groups = [sorted(set(seen[seen != ""]))] if bins.categorical else []
        bins.splits = []
    # Counts and WoE from the bins as the graph applies them (float32 edges), with
    # optbinning's WoE: ln(non-event share / event share), 0 where a bin lacks either.
    index = bins.bin_index(column)
    counts = np.bincount(index, minlength=bins.n_bins)
    events = np.bincount(index, weights=y, minlength=bins.n_bins).astype(int)
    nonevents = counts - events
    woe = np.zeros(bins.n_bins)
    both = (events > 0) & (nonevents > 0)
    if events.sum() and nonevents.sum():
        woe[both] = np.log(
            (nonevents[both] / nonevents.sum()) / (events[both] / events.sum())
        )
    bins.counts, bins.events, bins.woe = counts.tolist(), events.tolist(), woe.tolist()
    return bins


def fit_bins(
    spec: ModelSpec,
    x: pd.DataFrame,
    y: pd.Series,
    max_n_prebins: int = 20,
    min_prebin_size: float = 0.05,
    monotonic: bool = True,
    max_pvalue: float | None = None,
) -> list[FeatureBins]:
    """Bins of every feature of `spec`, fitted on (x, y)."""
    target = y.to_numpy().astype(int)
    return [
        fit_feature(
            f, x[f.name], target, max_n_prebins, min_prebin_size, monotonic, max_pvalue
        )
        for f in spec.features
    ]


def woe_matrix(bins: list[FeatureBins], x: pd.DataFrame) -> np.ndarray:
    """[N, F]: the WoE of each row's bin, feature by feature."""
    return np.column_stack([np.asarray(b.woe)[b.bin_index(x[b.name])] for b in bins])
