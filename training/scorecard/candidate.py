"""The points scorecard: optimal bins per feature, WoE, a logistic regression on WoE.

logit(PD) = intercept + sum_j coef_j * WoE_j(bin), so each (feature, bin) carries a
logit part `coef_j * WoE + intercept / F`, and the job's score scaling turns it into
points: `points = -factor * part` (calibration folded in when it is kept), so that
`credit_score = offset + sum of points` exactly (DESIGN.md's scaling). The graph is
bins as float32 comparisons, one Gather of the parts, their sum and a sigmoid.

Unweighted (no class weights), so PDs mean what they say, as the credit logreg's.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import onnx
import pandas as pd
from onnx import TensorProto, helper
from riskserve.model.specs import ModelSpec
from riskserve.training.candidates.base import ONNX_OPSET, NotFittedError
from riskserve.training.scorecard.bins import FeatureBins, fit_bins, woe_matrix
from riskserve.training.scorecard.graph import FlatBins, add_bin_index, add_lookup
from sklearn.linear_model import LogisticRegression

if TYPE_CHECKING:
    import optuna

PROBABILITY = "scorecard_probability"
# Features below this information value are "not predictive" by the usual scorecard
# rule of thumb: they stay out of the regression (their points are constant, so they
# never cost points nor appear as a reason; a spurious bin of noise would).
MIN_IV = 0.02
BINS_TENSOR = "scorecard_bins"  # [N, F] flat bin index, reused by the reason codes


class ScorecardCandidate:
    name = "scorecard"

    def __init__(self, spec: ModelSpec, seed: int) -> None:
        self.spec, self.seed = spec, seed
        self._flat: FlatBins | None = None
        self.logit_parts: list[np.ndarray] = []  # per feature, in `flat` order
        self.coefficients: np.ndarray | None = None
        self.intercept = 0.0

    @property
    def flat(self) -> FlatBins:
        """The fitted bins of every feature, in the graph's order."""
        if self._flat is None:
            raise NotFittedError(self.name)
        return self._flat

    @property
    def bins(self) -> tuple[FeatureBins, ...]:
        return self.flat.bins

    def fit(
        self,
        train_x: pd.DataFrame,
        train_y: pd.Series,
        valid_x: pd.DataFrame | None,
        valid_y: pd.Series | None,
        params: dict[str, Any],
    ) -> None:
        bins = fit_bins(
            self.spec,
            train_x,
            train_y,
            params.get("max_n_prebins", 20),
            params["min_prebin_size"],
            params.get("monotonic", True),
            params.get("max_pvalue"),
        )
        self._flat = FlatBins.of(bins)
        woe = woe_matrix(list(self.flat.bins), train_x)
        used = np.array([b.iv >= MIN_IV for b in self.flat.bins])
        if not used.any():
            used[:] = True
        model = LogisticRegression(C=params["C"], max_iter=2000, random_state=self.seed)
        model.fit(woe[:, used], train_y.to_numpy())
        self.coefficients = np.zeros(len(used))
        self.coefficients[used] = model.coef_[0]
        self.intercept = float(model.intercept_[0])
        share = self.intercept / len(self.flat.bins)
        self.logit_parts = [
            (c * np.asarray(b.woe, np.float64) + share).astype(np.float32)
            for c, b in zip(self.coefficients, self.flat.bins, strict=True)
        ]

    def logit(self, x: pd.DataFrame) -> np.ndarray:
        table = self.flat.table(self.logit_parts).astype(np.float64)
        return table[self.flat.flat_index(x)].sum(axis=1)

    def predict_proba(self, x: pd.DataFrame) -> np.ndarray:
        return 1.0 / (1.0 + np.exp(-self.logit(x)))

    def margin(self, x: pd.DataFrame) -> np.ndarray:
        return self.logit(x)

    def onnx_margin(self, proto: onnx.ModelProto) -> str:
        return "scorecard_logit"

    def points(
        self, factor: float, slope: float = 1.0, intercept: float = 0.0
    ) -> list[np.ndarray]:
        """Points per bin, per feature (graph order), for a score scaling's factor
        and a Platt calibration `sigmoid(slope * logit + intercept)` when kept:
        score = offset + sum of points."""
        share = intercept / len(self.flat.bins)
        return [
            -factor * (slope * part.astype(np.float64) + share)
            for part in self.logit_parts
        ]

    def to_onnx(self) -> tuple[onnx.ModelProto, str, int | None]:
        graph = helper.make_graph([], "scorecard", [], [])
        for feature in self.spec.features:
            elem = (
                TensorProto.STRING
                if feature.kind == "categorical"
                else TensorProto.FLOAT
            )
            graph.input.append(
                helper.make_tensor_value_info(feature.name, elem, [None, 1])
            )
        bins = add_bin_index(graph, self.flat, BINS_TENSOR.removesuffix("_bins"))
        add_lookup(graph, self.flat.table(self.logit_parts), bins, "scorecard_parts")
        axis1 = helper.make_tensor("scorecard_axis1", TensorProto.INT64, [1], [1])
        graph.initializer.append(axis1)
        graph.node.extend(
            [
                helper.make_node(
                    "ReduceSum",
                    ["scorecard_parts", "scorecard_axis1"],
                    ["scorecard_logit"],
                    keepdims=1,
                ),
                helper.make_node("Sigmoid", ["scorecard_logit"], [PROBABILITY]),
            ]
        )
        graph.output.append(
            helper.make_tensor_value_info(PROBABILITY, TensorProto.FLOAT, [None, 1])
        )
        model = helper.make_model(
            graph,
            opset_imports=[
                helper.make_opsetid("", ONNX_OPSET),
                helper.make_opsetid("ai.onnx.ml", 3),
            ],
            producer_name="riskserve-scorecard",
        )
        model.ir_version = 8
        onnx.checker.check_model(model, full_check=True)
        return model, PROBABILITY, None

    def scorecard_table(
        self, factor: float, slope: float = 1.0, intercept: float = 0.0
    ) -> pd.DataFrame:
        """Feature, bin, count, event rate, WoE, points (and the reason code)."""
        rows = []
        points = self.points(factor, slope, intercept)
        for b, pts in zip(self.flat.bins, points, strict=True):
            for label, count, events, woe, p, reason in zip(
                b.labels(), b.counts, b.events, b.woe, pts, b.reasons(), strict=True
            ):
                rows.append(
                    {
                        "feature": b.name,
                        "bin": label,
                        "count": count,
                        "event_rate": events / count if count else float("nan"),
                        "woe": woe,
                        "points": float(p),
                        "reason": reason,
                    }
                )
        return pd.DataFrame(rows)

    def information_values(self) -> pd.DataFrame:
        return (
            pd.DataFrame(
                {
                    "feature": [b.name for b in self.flat.bins],
                    "iv": [b.iv for b in self.flat.bins],
                    "coefficient": self.coefficients,
                }
            )
            .sort_values("iv", ascending=False)
            .reset_index(drop=True)
        )

    def default_params(self, rows: int) -> dict[str, Any]:
        return {"C": 1.0, "min_prebin_size": 0.02, "max_pvalue": None}

    def search_space(self, trial: optuna.trial.BaseTrial, rows: int) -> dict[str, Any]:
        return {
            "C": trial.suggest_float("C", 1e-3, 10.0, log=True),
            "min_prebin_size": trial.suggest_float("min_prebin_size", 0.01, 0.1),
            "max_pvalue": trial.suggest_categorical("max_pvalue", [None, 0.05]),
        }
