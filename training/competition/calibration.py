"""Calibrating the winner's probabilities (Platt scaling on the margin).

p' = sigmoid(a * margin + b), where margin is the model's own log-odds (the candidate's
`margin`, and its twin tensor in the graph), fitted by logistic regression on
out-of-fold margins of the cross-validation, so the calibrator never sees a row scored
by a model that was fitted on it. It is kept only when it lowers the Brier score of
out-of-fold calibrated predictions (5-fold over those margins). Monotone, so ranking
metrics do not change; PDs and score bands then mean what they say.

Why the margin and not logit(p): the margin is a sum of leaf values or a dot product,
equal in the float32 graph and the float64 model to about 1e-5; p is not. On real
fraud data p sits within 1e-7 of 1, where one float32 step (6e-8) changes logit(p) by
whole units, and a slope that maps those rows back into (0, 1) made the graph and the
model disagree by 1e-3.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import onnx
from onnx import helper, numpy_helper
from riskserve.training.candidates.margin import sigmoid
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import brier_score_loss
from sklearn.model_selection import StratifiedKFold


@dataclass(frozen=True)
class PlattCalibration:
    slope: float
    intercept: float

    def apply(self, margin: np.ndarray) -> np.ndarray:
        """Calibrated probabilities (float64) from margins."""
        return sigmoid(self.slope * np.asarray(margin, np.float64) + self.intercept)

    def append_to(
        self, proto: onnx.ModelProto, margin: str
    ) -> tuple[onnx.ModelProto, str, int | None]:
        """The graph with calibrated probabilities as a new [N] tensor, computed from
        the margin tensor `margin` ([N] or [N, 1])."""
        graph = proto.graph

        def const(
            name: str, value: npt.ArrayLike, dtype: npt.DTypeLike = np.float32
        ) -> str:
            graph.initializer.append(
                numpy_helper.from_array(np.asarray(value, dtype), name)
            )
            return name

        graph.node.extend(
            [
                helper.make_node(
                    "Reshape",
                    [margin, const("calibration_shape", [-1], np.int64)],
                    ["calibration_margin"],
                ),
                helper.make_node(
                    "Mul",
                    ["calibration_margin", const("calibration_slope", self.slope)],
                    ["calibration_scaled"],
                ),
                helper.make_node(
                    "Add",
                    [
                        "calibration_scaled",
                        const("calibration_intercept", self.intercept),
                    ],
                    ["calibration_logit"],
                ),
                helper.make_node(
                    "Sigmoid", ["calibration_logit"], ["calibrated_probability"]
                ),
            ]
        )
        return proto, "calibrated_probability", None


@dataclass
class CalibrationResult:
    calibration: PlattCalibration | None
    brier_before: float
    brier_after: float
    out_of_fold: np.ndarray  # calibrated probabilities of the given rows, out of fold


def _fit(margin: np.ndarray, y: np.ndarray) -> PlattCalibration:
    model = LogisticRegression(C=1e6, max_iter=1000).fit(margin.reshape(-1, 1), y)
    return PlattCalibration(float(model.coef_[0, 0]), float(model.intercept_[0]))


def calibrate(margin: np.ndarray, y: np.ndarray, seed: int) -> CalibrationResult:
    """Platt scaling fitted on (margin, y), kept only if it lowers the out-of-fold
    Brier score of the probabilities sigmoid(margin)."""
    y = np.asarray(y)
    margin = np.asarray(margin, np.float64)
    p = sigmoid(margin)
    before = float(brier_score_loss(y, p))
    folds = int(min(5, y.sum(), len(y) - y.sum()))
    if folds < 2:
        return CalibrationResult(None, before, before, p)
    out_of_fold = np.empty(len(y))
    splitter = StratifiedKFold(folds, shuffle=True, random_state=seed)
    for fit_rows, score_rows in splitter.split(margin, y):
        fold = _fit(margin[fit_rows], y[fit_rows])
        out_of_fold[score_rows] = fold.apply(margin[score_rows])
    after = float(brier_score_loss(y, out_of_fold))
    if not after < before:
        return CalibrationResult(None, before, after, out_of_fold)
    calibration = _fit(margin, y)
    if calibration.slope <= 0:  # would reverse the ranking: never a calibration
        return CalibrationResult(None, before, after, out_of_fold)
    return CalibrationResult(calibration, before, after, out_of_fold)
