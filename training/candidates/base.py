"""What every model that competes in a training job is: the candidate protocol.

A candidate is a small class: it fits on the train split (the validation split is there
for early stopping or calibration, never for choosing the winner's score), predicts the
positive class's probability from raw features, and exports one ONNX graph that takes
raw features (one [-1, 1] tensor per feature, named as the feature: FP32 numbers, strings
for categorical columns). The job appends the decision outputs of the contract to that
graph, so a candidate knows nothing about thresholds, scores or the registry.

Optuna tunes a candidate through `search_space(trial, rows)`, which returns the params
that `fit` takes; `default_params(rows)` is what runs without a search (or as the first
trial, so a search never does worse than the defaults).

Adding a candidate is one line in `training/candidates/__init__.py`'s registry.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np
import pandas as pd
from riskserve.model.specs import ModelSpec

if TYPE_CHECKING:
    import onnx
    import optuna

ONNX_OPSET = 17


@runtime_checkable
class Candidate(Protocol):
    """One competing model. `spec` and `seed` are given at construction:
    `factory(spec, seed)`, see `CandidateFactory`."""

    name: str
    """Short name, as `--candidates` spells it (`dnn`, `gbm`, `logreg`, `scorecard`)."""

    def fit(
        self,
        train_x: pd.DataFrame,
        train_y: pd.Series,
        valid_x: pd.DataFrame | None,
        valid_y: pd.Series | None,
        params: dict[str, Any],
    ) -> None:
        """Fit on raw features (numbers as float64 with NaN for missing, categories as
        strings). Class imbalance is the candidate's job (class weights). May be called
        again: every call starts from scratch."""

    def predict_proba(self, x: pd.DataFrame) -> np.ndarray:
        """1-D probability of the positive class, for raw features. Must equal the
        exported graph's probability within 1e-5 for inputs representable in FP32."""

    def margin(self, x: pd.DataFrame) -> np.ndarray:
        """1-D log-odds of the positive class (float64): `predict_proba` is its
        sigmoid. Calibration and ranking work on it (see candidates/margin.py)."""

    def to_onnx(self) -> tuple[onnx.ModelProto, str, int | None]:
        """(graph, name of its probability tensor, column of the positive class or
        None when the tensor is [N] or [N, 1])."""

    def onnx_margin(self, proto: onnx.ModelProto) -> str:
        """The name of the [N] or [N, 1] log-odds tensor in `proto` (a graph this
        candidate exported), adding the nodes that compute it where needed. Equal to
        `margin` within about 1e-5."""

    def search_space(self, trial: optuna.trial.BaseTrial, rows: int) -> dict[str, Any]:
        """Params for one Optuna trial (`trial.suggest_*`), for data of `rows` rows: a
        `Trial` of the search, or a `FixedTrial` of given params."""

    def default_params(self, rows: int) -> dict[str, Any]:
        """Params without a search; also enqueued as the search's first trial."""


class CandidateFactory(Protocol):
    def __call__(self, spec: ModelSpec, seed: int) -> Candidate: ...


class CandidateError(RuntimeError):
    """A candidate could not be fitted or exported; the message says why."""


class NotFittedError(RuntimeError):
    """A candidate was asked to predict or export before `fit`."""

    def __init__(self, name: str) -> None:
        super().__init__(f"candidate {name} is not fitted: call fit first")
