"""The winner of a job's competition, as the job carries it from calibration to the
registry."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx
import pandas as pd
from riskserve.training.competition.calibration import PlattCalibration
from riskserve.training.competition.compete import Entry
from riskserve.training.scorecard.reason_codes import CreditReasons


@dataclass
class NativeModel:
    """The winner as the job scores it natively: candidate, then calibration, and
    its out-of-fold predictions (the rows the threshold or cut-off is chosen on)."""

    entry: Entry
    calibration: PlattCalibration | None
    proto: onnx.ModelProto
    probability: str
    column: int | None
    oof_p: np.ndarray  # calibrated out-of-fold probabilities
    oof_y: np.ndarray  # their labels

    def predict_proba(self, x: pd.DataFrame) -> np.ndarray:
        if self.calibration is None:
            return self.entry.fitted.predict_proba(x)
        return self.calibration.apply(self.entry.fitted.margin(x))


@dataclass
class Winner:
    """The exported winner: its native model, the finished graph and what was baked
    into it, and the graph's parity with the native model."""

    native: NativeModel
    proto: onnx.ModelProto  # decision outputs, reason codes and metadata included
    decision: dict[str, float]  # threshold, or cut-off and score scaling
    reasons: CreditReasons | None  # credit only
    metadata: dict[str, str]  # the keys the ONNX metadata and the version tags share
    valid_out: dict[str, np.ndarray]  # the graph's outputs on the validation rows
    parity: float  # largest |onnx - native| probability

    @property
    def entry(self) -> Entry:
        return self.native.entry

    @property
    def name(self) -> str:
        return self.native.entry.name
