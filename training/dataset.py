"""The data of a training job: its options, and the features and target it trains on.

Kept free of TensorFlow, scikit-learn and MLflow so that bad input is reported in a
second or two, before any heavy import.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from riskserve.model.data import (
    DataError,
    binary_target,
    infer_spec,
    load_training_data,
    read_csv,
    validate,
)
from riskserve.model.specs import ModelSpec, get_spec
from riskserve.model.synthetic import generate
from riskserve.training.cutoff_policy import DEFAULT_POLICY
from riskserve.training.decision_graph import ScoreScaling


@dataclass
class JobConfig:
    kind: str  # "fraud" or "credit"
    data: Path | None = None
    # A raw event log (riskserve.features): the features by point-in-time joins.
    events: Path | None = None
    target: str | None = None
    positive: str | None = None  # the event class of --target; None: 1/True/larger
    rows: int = 20_000
    experiment: str | None = None
    model_name: str | None = None
    seed: int = 42
    epochs: int = 10
    promote_if_better: bool = False
    target_precision: float | None = None
    cutoff: float = 560.0  # the approval score; the job sets it from cutoff_policy
    cutoff_policy: str = DEFAULT_POLICY  # training/cutoff_policy.py's forms
    scaling: ScoreScaling = field(default_factory=ScoreScaling)
    categorical: list[str] = field(default_factory=list)
    numeric: list[str] = field(default_factory=list)
    drop: list[str] = field(default_factory=list)
    candidates: list[str] = field(default_factory=list)  # empty: all of the kind's
    budget: float | None = None  # search seconds; None: scaled with the data
    folds: int = 3
    reasons: int = 4  # credit: reason codes per row (K of reason_codes [-1, K])
    # Protected attributes (fair lending): never model inputs; recorded with the
    # version so that its validation report knows what to test.
    protected: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.model_name or self.kind


@dataclass
class LoadedData:
    spec: ModelSpec
    features: pd.DataFrame
    target: pd.Series
    source: str


def load_data(config: JobConfig) -> LoadedData:
    """The spec, typed features, 0/1 target, and a description of the source."""
    if config.events is not None:
        return load_events(config)
    if config.data is None:
        spec = get_spec(config.kind)
        frame = generate(config.kind, config.rows, config.seed)
        features = validate(frame, spec, "synthetic data")
        target = frame[spec.target].astype(np.int64)
        return LoadedData(spec, features, target, f"synthetic data, seed {config.seed}")
    if config.target is None:
        spec = get_spec(config.kind)
        features, target = load_training_data(config.data, spec)
    else:
        frame = read_csv(config.data)
        target = binary_target(frame, config.target, str(config.data), config.positive)
        spec = infer_spec(
            frame,
            config.name,
            config.target,
            config.categorical,
            config.numeric,
            config.drop,
        )
        features = validate(frame, spec, str(config.data))
    if config.kind == "fraud" and spec.categorical_features:
        raise DataError(
            f"{config.data}: column {spec.categorical_features[0]!r} is not numeric; the "
            "fraud network takes numeric and 0/1 features only"
        )
    if target.sum() < 4 or (len(target) - target.sum()) < 4:
        raise DataError(
            f"{config.data}: column {spec.target!r} (the target) needs at least 4 rows of "
            "each class to train and evaluate"
        )
    return LoadedData(spec, features, target, str(config.data))


def load_events(config: JobConfig) -> LoadedData:
    """The training set of a raw event log, built by the feature layer's
    point-in-time joins: each transaction sees its card's state up to its previous
    transaction (fraud), each checkout its customer's payment history up to just
    before it (credit; label: the checkout's default): the features a transformer
    computes when it is served."""
    assert config.events is not None
    # Feast is imported only on this path (the CSV and synthetic paths stay light).
    from riskserve.features.customer_offline import credit_training_set_from_log
    from riskserve.features.offline import fraud_training_set_from_log

    build = (
        fraud_training_set_from_log
        if config.kind == "fraud"
        else credit_training_set_from_log
    )
    spec = get_spec(config.kind)
    with tempfile.TemporaryDirectory(prefix="riskserve-events-") as work:
        try:
            frame = build(config.events, Path(work))
        except ValueError as exc:
            raise DataError(str(exc)) from exc
    source = f"event log {config.events}"
    features = validate(frame, spec, source)
    empty = [name for name in features.columns if features[name].isna().all()]
    if empty:
        raise DataError(
            f"{config.events}: feature {empty[0]!r} is missing in every row (the log's "
            "history is shorter than its window: the credit features look back up to "
            "24 months)"
        )
    target = frame[spec.target].astype(np.int64)
    if target.sum() < 4 or (len(target) - target.sum()) < 4:
        rows, label = (
            ("transactions", "fraud")
            if config.kind == "fraud"
            else ("checkouts", "default")
        )
        raise DataError(
            f"{config.events}: the {rows} need at least 4 of each class ({label} "
            "and not) to train and evaluate"
        )
    return LoadedData(spec, features, target, f"{source}, point-in-time features")
