"""Calibrating the winner's probabilities on the validation split (Platt scaling).

p' = sigmoid(a * logit(p) + b), fitted by logistic regression on the validation
predictions. It is kept only when it lowers the Brier score of out-of-fold predictions
on the validation split (5-fold, so the calibrator never scores the rows it was fitted
on). Monotone in p, so ranking metrics (PR-AUC, ROC-AUC) do not change; PDs and score
bands then mean what they say. The same formula runs in the ONNX graph, in float32.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx
from onnx import helper, numpy_helper
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import brier_score_loss
from sklearn.model_selection import StratifiedKFold

# Keeps logit(p) finite; the same float32 bounds in numpy and in the graph.
P_MIN = np.float32(1e-7)
P_MAX = np.float32(1.0) - np.float32(1e-7)


@dataclass(frozen=True)
class PlattCalibration:
    slope: float
    intercept: float

    def apply(self, p: np.ndarray) -> np.ndarray:
        logit = _logit(p)
        return 1.0 / (1.0 + np.exp(-(self.slope * logit + self.intercept)))

    def append_to(
        self, proto: onnx.ModelProto, probability: str, column: int | None
    ) -> tuple[onnx.ModelProto, str, int | None]:
        """The graph with calibrated probabilities as a new [N] tensor."""
        from training.decision_graph import _positive_probability

        graph = proto.graph
        _positive_probability(graph, probability, column, "uncalibrated_probability")

        def const(name: str, value: float) -> str:
            graph.initializer.append(
                numpy_helper.from_array(np.array(value, np.float32), name)
            )
            return name

        graph.node.extend(
            [
                helper.make_node(
                    "Clip",
                    [
                        "uncalibrated_probability",
                        const("calibration_p_min", P_MIN),
                        const("calibration_p_max", P_MAX),
                    ],
                    ["calibration_p"],
                ),
                helper.make_node(
                    "Sub",
                    [const("calibration_one", 1.0), "calibration_p"],
                    ["calibration_q"],
                ),
                helper.make_node(
                    "Div", ["calibration_p", "calibration_q"], ["calibration_odds"]
                ),
                helper.make_node("Log", ["calibration_odds"], ["calibration_logit"]),
                helper.make_node(
                    "Mul",
                    ["calibration_logit", const("calibration_slope", self.slope)],
                    ["calibration_scaled"],
                ),
                helper.make_node(
                    "Add",
                    [
                        "calibration_scaled",
                        const("calibration_intercept", self.intercept),
                    ],
                    ["calibration_linear"],
                ),
                helper.make_node(
                    "Sigmoid", ["calibration_linear"], ["calibrated_probability"]
                ),
            ]
        )
        return proto, "calibrated_probability", None


@dataclass
class CalibrationResult:
    calibration: PlattCalibration | None
    brier_before: float
    brier_after: float
    out_of_fold: np.ndarray  # calibrated validation probabilities, out of fold


def _logit(p: np.ndarray) -> np.ndarray:
    p32 = np.clip(np.asarray(p, np.float32), P_MIN, P_MAX)
    return np.log(p32.astype(np.float64) / (1.0 - p32.astype(np.float64)))


def _fit(logit: np.ndarray, y: np.ndarray) -> PlattCalibration:
    model = LogisticRegression(C=1e6, max_iter=1000).fit(logit.reshape(-1, 1), y)
    return PlattCalibration(float(model.coef_[0, 0]), float(model.intercept_[0]))


def calibrate(p: np.ndarray, y: np.ndarray, seed: int) -> CalibrationResult:
    """Platt scaling fitted on (p, y), kept only if it lowers the out-of-fold Brier."""
    y = np.asarray(y)
    before = float(brier_score_loss(y, p))
    folds = int(min(5, y.sum(), len(y) - y.sum()))
    if folds < 2:
        return CalibrationResult(None, before, before, np.asarray(p))
    logit = _logit(p)
    out_of_fold = np.empty(len(y))
    splitter = StratifiedKFold(folds, shuffle=True, random_state=seed)
    for fit_rows, score_rows in splitter.split(logit, y):
        fold = _fit(logit[fit_rows], y[fit_rows])
        out_of_fold[score_rows] = fold.apply(np.asarray(p)[score_rows])
    after = float(brier_score_loss(y, out_of_fold))
    if not after < before:
        return CalibrationResult(None, before, after, out_of_fold)
    calibration = _fit(logit, y)
    if calibration.slope <= 0:  # would reverse the ranking: never a calibration
        return CalibrationResult(None, before, after, out_of_fold)
    return CalibrationResult(calibration, before, after, out_of_fold)
