"""The reference profile of a model version: what its training data and holdout scores
looked like, so that monitoring can tell when live traffic no longer does.

Shared by the training job (which writes one with every version) and monitoring (which
reads it, or builds one from a CSV for a version registered without one). JSON, small
(tens of kB): per feature the missing rate and either quantile bins (numeric) or value
frequencies (categorical, and numeric features with few distinct values such as flags
and status codes), plus a bounded sample of numeric values for two-sample tests; the
same for each score output on the holdout; and the holdout metrics.

Values are summarised as float32, the type they travel in (v2 FP32 tensors) and are
logged as, so a bin edge means the same thing on both sides.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

SCHEMA = "riskserve.reference-profile/1"
ARTIFACT_NAME = "reference_profile.json"
# The model version tag that names the profile's artifact path in the version's run.
VERSION_TAG = "reference_profile"
QUANTILE_BINS = 10
# Numeric columns with at most this many distinct values are profiled as frequencies.
DISCRETE_MAX_VALUES = 20
SAMPLE_SIZE = 5_000


class ProfileError(ValueError):
    """A profile cannot be built or read; the message says why."""


@dataclass
class ColumnProfile:
    """One feature or score output."""

    kind: str  # "numeric" (quantile bins) or "categorical" (frequencies)
    count: int
    missing_rate: float
    # numeric: inner bin edges (bins are (-inf, e0], (e0, e1], ..., (eN, inf)),
    # counts per bin, the observed range and a sample for two-sample tests.
    edges: list[float] = field(default_factory=list)
    counts: list[int] = field(default_factory=list)
    minimum: float | None = None
    maximum: float | None = None
    sample: list[float] = field(default_factory=list)
    # categorical: count per value (numbers as their float32 text, e.g. "1.0").
    categories: dict[str, int] = field(default_factory=dict)

    @property
    def proportions(self) -> np.ndarray:
        counts = np.asarray(
            self.counts if self.kind == "numeric" else list(self.categories.values()),
            dtype=np.float64,
        )
        total = counts.sum()
        return counts / total if total else counts


@dataclass
class ReferenceProfile:
    model_name: str
    model_version: str
    source: str
    rows: int
    features: dict[str, ColumnProfile]
    outputs: dict[str, ColumnProfile] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    decision: dict[str, float] = field(default_factory=dict)
    created: str = ""
    schema: str = SCHEMA

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1, allow_nan=False)

    def save(self, path: Path) -> Path:
        path = Path(path)
        path.write_text(self.to_json())
        return path

    @classmethod
    def from_dict(cls, data: dict) -> ReferenceProfile:
        if data.get("schema") != SCHEMA:
            raise ProfileError(
                f"not a reference profile of this riskserve (schema "
                f"{data.get('schema')!r}, expected {SCHEMA!r})"
            )
        try:
            return cls(
                **{
                    **data,
                    "features": {
                        k: ColumnProfile(**v) for k, v in data["features"].items()
                    },
                    "outputs": {
                        k: ColumnProfile(**v) for k, v in data["outputs"].items()
                    },
                }
            )
        except (KeyError, TypeError) as exc:
            raise ProfileError(f"a reference profile field is wrong: {exc}") from None

    @classmethod
    def load(cls, path: Path) -> ReferenceProfile:
        try:
            data = json.loads(Path(path).read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise ProfileError(f"{path}: not a readable profile ({exc})") from None
        return cls.from_dict(data)


def category_keys(values: np.ndarray) -> np.ndarray:
    """Values as the text keys of a frequency profile: numbers as float32 text."""
    if values.dtype.kind in "fiub":
        return np.asarray(
            [repr(float(v)) for v in values.astype(np.float32)], dtype=object
        )
    return values.astype(str).astype(object)


def is_missing(values: np.ndarray) -> np.ndarray:
    if values.dtype.kind == "f":
        return np.isnan(values)
    if values.dtype.kind in "iub":
        return np.zeros(len(values), dtype=bool)
    text = pd.Series(values, dtype=object)
    return (text.isna() | (text.astype(str).str.strip() == "")).to_numpy()


def profile_column(
    values: np.ndarray | pd.Series, categorical: bool | None = None, seed: int = 0
) -> ColumnProfile:
    """The profile of one column. `categorical=None` decides by the values: strings are
    categorical, numbers with few distinct values too, other numbers get quantile bins."""
    values = np.asarray(values)
    if values.dtype == bool:
        values = values.astype(np.float32)
    if values.dtype.kind in "iu":
        values = values.astype(np.float64)
    if values.dtype.kind == "O":
        numeric = pd.to_numeric(pd.Series(values), errors="coerce")
        if (
            categorical is not True
            and numeric.notna().sum() == (~is_missing(values)).sum()
        ):
            values = numeric.to_numpy(np.float64)
    missing = is_missing(values)
    present = values[~missing]
    count = len(values)
    missing_rate = float(missing.mean()) if count else 0.0
    if values.dtype.kind == "f":
        present = present.astype(np.float32)
    if categorical is None:
        categorical = (
            present.dtype.kind not in "f"
            or len(np.unique(present)) <= DISCRETE_MAX_VALUES
        )
    if categorical:
        keys, counts = np.unique(category_keys(present), return_counts=True)
        return ColumnProfile(
            "categorical",
            count,
            missing_rate,
            categories={str(k): int(c) for k, c in zip(keys, counts, strict=True)},
        )
    if len(present) == 0:
        raise ProfileError("a numeric column with no values cannot be profiled")
    quantiles = np.quantile(
        present.astype(np.float64), np.linspace(0, 1, QUANTILE_BINS + 1)[1:-1]
    )
    edges = np.unique(quantiles.astype(np.float32))
    counts = np.bincount(
        np.searchsorted(edges, present, side="left"), minlength=len(edges) + 1
    )
    rng = np.random.default_rng(seed)
    sample = (
        present
        if len(present) <= SAMPLE_SIZE
        else rng.choice(present, SAMPLE_SIZE, replace=False)
    )
    return ColumnProfile(
        "numeric",
        count,
        missing_rate,
        edges=[float(e) for e in edges],
        counts=[int(c) for c in counts],
        minimum=float(present.min()),
        maximum=float(present.max()),
        sample=[float(v) for v in np.sort(sample)],
    )


def build_profile(
    model_name: str,
    model_version: str,
    features: pd.DataFrame,
    outputs: dict[str, np.ndarray] | None = None,
    metrics: dict[str, float] | None = None,
    decision: dict[str, float] | None = None,
    source: str = "training data",
    categorical: set[str] | None = None,
) -> ReferenceProfile:
    """The profile of `features` (the training rows) and of `outputs` (scores on the
    holdout). `categorical` names the string features; the others are profiled by their
    values (see `profile_column`)."""
    if features.empty:
        raise ProfileError(f"{source}: no rows to profile")
    categorical = categorical or set()
    columns = {}
    for name in features.columns:
        column = features[name]
        is_text = name in categorical or column.dtype == object
        columns[str(name)] = profile_column(
            column.to_numpy(), categorical=True if is_text else None
        )
    return ReferenceProfile(
        model_name=model_name,
        model_version=str(model_version),
        source=source,
        rows=len(features),
        features=columns,
        outputs={
            name: profile_column(np.asarray(values).reshape(-1), categorical=False)
            for name, values in (outputs or {}).items()
        },
        metrics={k: float(v) for k, v in (metrics or {}).items()},
        decision={k: float(v) for k, v in (decision or {}).items()},
        created=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    )
