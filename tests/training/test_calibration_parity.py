"""Calibration keeps exact parity where real fraud data puts its probabilities: within
1e-7 of 0 and of 1. The calibrated graph works on the margin (log-odds) as the native
model does, so a slope that maps those rows back into (0, 1) moves both alike."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pandas as pd
import pytest
from riskserve.model.specs import CREDIT, FRAUD
from riskserve.model.synthetic import generate
from riskserve.training import candidates
from riskserve.training.candidates.gbm import DEFAULTS
from riskserve.training.competition.calibration import PlattCalibration, calibrate
from riskserve.training.competition.compete import onnx_feeds

pytestmark = pytest.mark.inprocess
REPO_ROOT = Path(__file__).resolve().parents[2]

# Slopes below 1 pull the tails in: 1 - 1e-7 (margin 16) lands at p = 0.9 with
# (0.25, -1.8), where a float32 error in logit(p) would show at 1e-3.
PULLING_IN = [PlattCalibration(0.25, -1.8), PlattCalibration(0.6, 2.0)]


def separable(kind: str, rows: int = 6000, seed: int = 5):
    """The generator's rows with a label fixed by one feature, so that a fitted
    model answers within 1e-7 of 0 and 1 for many rows."""
    spec = FRAUD if kind == "fraud" else CREDIT
    frame = generate(kind, rows, seed)
    x = frame[spec.feature_names]
    widest = max(spec.numeric_features, key=lambda name: x[name].nunique())
    rank = x[widest].rank(pct=True).fillna(0.5).to_numpy()
    kept = (rank < 0.45) | (rank > 0.55)  # a gap between the classes
    x, rank = x[kept], rank[kept]
    y = (rank > 0.55).astype(int)

    return spec, x, pd.Series(y, index=x.index)


def graph_outputs(proto: onnx.ModelProto, names: list[str], feeds) -> list[np.ndarray]:
    del proto.graph.output[:]
    for name in names:
        proto.graph.output.append(
            onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None)
        )
    session = ort.InferenceSession(
        proto.SerializeToString(), providers=["CPUExecutionProvider"]
    )
    return [np.asarray(v, np.float64).reshape(-1) for v in session.run(names, feeds)]


@pytest.mark.parametrize(
    ("kind", "name"),
    [
        ("fraud", "gbm"),
        ("fraud", "logreg"),
        ("credit", "gbm"),
        ("credit", "logreg"),
        ("credit", "scorecard"),
    ],
)
def test_parity_with_and_without_calibration_at_the_tails(kind, name):
    check_tail_parity(kind, name)


def test_the_dnn_keeps_parity_with_and_without_calibration_at_the_tails():
    # Its own process: TensorFlow and OR-Tools (the scorecard's solver) in one
    # interpreter crash it, and no job ever loads both.
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            "from tests.training.test_calibration_parity import check_tail_parity; "
            "check_tail_parity('fraud', 'dnn')",
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]


def check_tail_parity(kind: str, name: str) -> None:
    spec, x, y = separable(kind)
    candidate = candidates.create(kind, name, spec, seed=0)
    params = {**candidate.default_params(len(y))}
    if name == "gbm":
        params = {
            **DEFAULTS,
            "n_estimators": 600,
            "learning_rate": 0.5,
            "min_child_samples": 5,
            "reg_lambda": 0.001,
        }
    if name == "logreg":
        params["C"] = 10.0  # the top of its search space
    if name == "dnn":
        params["epochs"] = 4
    candidate.fit(x[:4500], y[:4500], None, None, params)
    rows = x[4500:]
    native_p = candidate.predict_proba(rows)
    native_margin = candidate.margin(rows)
    np.testing.assert_allclose(
        1 / (1 + np.exp(-native_margin)), native_p, rtol=1e-6, atol=1e-9
    )
    if name in ("gbm", "logreg"):  # the rows this test is about
        assert native_p.min() < 1e-7 and native_p.max() > 1 - 1e-7, (
            native_p.min(),
            native_p.max(),
        )
    feeds = onnx_feeds(spec, rows)
    for calibration in [None, *PULLING_IN]:
        proto, probability, column = candidate.to_onnx()
        if calibration is None:
            (graph_p,) = graph_outputs(proto, [probability], feeds)
            if column is not None:
                graph_p = graph_p.reshape(len(rows), -1)[:, column]
            expected = native_p
        else:
            margin = candidate.onnx_margin(proto)
            proto, probability, _ = calibration.append_to(proto, margin)
            (graph_p,) = graph_outputs(proto, [probability], feeds)
            expected = calibration.apply(native_margin)
        worst = float(np.max(np.abs(graph_p - expected)))
        assert worst <= 1e-5, (name, calibration, worst)


def test_calibration_fits_on_margins_and_fixes_distorted_probabilities():
    rng = np.random.default_rng(0)
    true_margin = rng.normal(-2.0, 1.5, 6000)
    y = (rng.random(6000) < 1 / (1 + np.exp(-true_margin))).astype(int)
    overconfident = 3.0 * true_margin + 4.0  # same ranking, far too extreme
    result = calibrate(overconfident, y, seed=0)
    assert result.calibration is not None
    assert result.brier_after < result.brier_before
    assert abs(result.calibration.slope - 1 / 3) < 0.05
    assert abs(result.calibration.apply(overconfident).mean() - y.mean()) < 0.01


def test_calibration_of_a_calibrated_margin_is_not_kept_or_changes_nothing():
    rng = np.random.default_rng(1)
    margin = rng.normal(-1.0, 1.5, 8000)
    y = (rng.random(8000) < 1 / (1 + np.exp(-margin))).astype(int)
    result = calibrate(margin, y, seed=0)
    if result.calibration is not None:
        assert abs(result.calibration.slope - 1) < 0.1
        assert abs(result.calibration.intercept) < 0.1


def test_a_parity_failure_names_the_candidate_the_step_and_the_probabilities():
    """A graph whose calibration is not the native model's (here: another slope) is
    refused before registering, with what a user needs to report it."""
    from riskserve.training.competition.compete import Entry, Splits
    from riskserve.training.dataset import JobConfig
    from riskserve.training.decision_graph import add_fraud_decision
    from riskserve.training.job import NativeModel, ParityError, check_parity
    from riskserve.training.progress import Progress

    spec, x, y = separable("fraud")
    candidate = candidates.create("fraud", "gbm", spec, seed=0)
    params = {**DEFAULTS, "n_estimators": 200, "learning_rate": 0.3}
    candidate.fit(x[:4500], y[:4500], None, None, params)
    proto, _, _ = candidate.to_onnx()
    graph_calibration = PlattCalibration(0.25, -1.8)
    proto, probability, column = graph_calibration.append_to(
        proto, candidate.onnx_margin(proto)
    )
    proto = add_fraud_decision(proto, probability, column, 0.5)
    entry = Entry("gbm", candidate=candidate)
    native = NativeModel(
        entry, PlattCalibration(0.3, -1.8), proto, probability, column, None, None
    )
    rest_x, rest_y = x[4500:], y[4500:]
    splits = Splits(x[:4500], y[:4500], rest_x[:700], rest_y[:700], rest_x, rest_y)
    with pytest.raises(ParityError) as failure:
        check_parity(
            JobConfig(kind="fraud"), spec, proto, native, splits, Progress("t")
        )
    message = str(failure.value)
    assert "of gbm (calibration: Platt calibration on the margin)" in message
    assert "the rows' probabilities range from" in message
