"""The scorecard and its reason codes, in process: hand-made applicants get the right
reasons worst first, points add up to the score, bins hold on their edges, unseen
categories and missing values land in their documented bins, and a decline is never
left without a reason."""

from __future__ import annotations

import math
import re

import numpy as np
import onnxruntime as ort
import pandas as pd
import pytest
from riskserve.model.specs import Feature, ModelSpec
from riskserve.training.candidates.gbm import DEFAULTS, GbmCandidate
from riskserve.training.competition.calibration import PlattCalibration
from riskserve.training.competition.compete import onnx_feeds
from riskserve.training.decision_graph import (
    ScoreScaling,
    add_credit_decision,
    finalize,
)
from riskserve.training.scorecard.candidate import BINS_TENSOR, ScorecardCandidate
from riskserve.training.scorecard.reason_codes import (
    POINTS_OUTPUT,
    REASONS_OUTPUT,
    add_reason_codes,
    credit_reasons,
)

pytestmark = pytest.mark.inprocess

SPEC = ModelSpec(
    name="toy-credit",
    target="default",
    features=(
        Feature(
            "worst_status",
            "ordinal",
            "worst status",
            1,
            4,
            nullable=True,
            reason="worst status in the last 3 months is {value}",
        ),
        Feature("income", "numeric", "monthly income", 0.0, nullable=True),
        Feature("years_at_address", "numeric", nullable=True),  # generated text
        Feature(
            "channel",
            "categorical",
            "sales channel",
            categories=("shop", "web", "phone"),
            reason="sales channel is {value}",
        ),
    ),
)
SCALING = ScoreScaling()


def toy_data(rows: int = 12_000, seed: int = 7) -> tuple[pd.DataFrame, pd.Series]:
    """Default risk rises with the status, falls with income, is high by phone;
    years at address carry no signal. Some values are missing."""
    rng = np.random.default_rng(seed)
    status = rng.choice([1, 2, 3, 4], rows, p=[0.55, 0.25, 0.12, 0.08]).astype(float)
    income = rng.lognormal(8.0, 0.6, rows)
    years = rng.uniform(0, 30, rows)
    channel = rng.choice(["shop", "web", "phone"], rows, p=[0.4, 0.4, 0.2])
    logit = (
        -3.2
        + 1.1 * (status - 1)
        - 0.9 * (np.log(income) - 8.0)
        + 1.2 * (channel == "phone")
    )
    y = (rng.random(rows) < 1 / (1 + np.exp(-logit))).astype(int)
    status[rng.random(rows) < 0.1] = np.nan
    income[rng.random(rows) < 0.05] = np.nan
    x = pd.DataFrame(
        {
            "worst_status": status,
            "income": income,
            "years_at_address": years,
            "channel": channel,
        }
    )
    return x, pd.Series(y, name="default")


@pytest.fixture(scope="module")
def fitted() -> tuple[ScorecardCandidate, pd.DataFrame, pd.Series]:
    x, y = toy_data()
    scorecard = ScorecardCandidate(SPEC, seed=0)
    scorecard.fit(x, y, None, None, scorecard.default_params(len(y)))
    return scorecard, x, y


def contract_graph(scorecard, cutoff=560.0, k=4, calibration=None):
    """The scorecard as a job exports it when it wins: decision, reasons, points."""
    proto, probability, column = scorecard.to_onnx()
    if calibration is not None:
        margin = scorecard.onnx_margin(proto)
        proto, probability, column = calibration.append_to(proto, margin)
    proto = add_credit_decision(proto, probability, column, SCALING, cutoff)
    reasons = credit_reasons(scorecard, True, SCALING.factor, calibration, k)
    proto = add_reason_codes(proto, reasons.table, k, True, BINS_TENSOR)
    return finalize(proto), reasons


def run(proto, x: pd.DataFrame) -> dict[str, np.ndarray]:
    session = ort.InferenceSession(proto.SerializeToString())
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(names, onnx_feeds(SPEC, x)), strict=True))


def applicants(*rows: dict) -> pd.DataFrame:
    return pd.DataFrame(list(rows), columns=SPEC.feature_names)


def test_bins_follow_the_data(fitted) -> None:
    scorecard, _, _ = fitted
    bins = {b.name: b for b in scorecard.bins}
    status_woe = bins["worst_status"].woe[: bins["worst_status"].value_bins]
    assert len(status_woe) >= 3
    assert np.all(np.diff(status_woe) < 0)  # monotonic: worse status, worse evidence
    income_woe = bins["income"].woe[: bins["income"].value_bins]
    assert np.all(np.diff(income_woe) > 0)
    ivs = scorecard.information_values().set_index("feature")["iv"]
    assert ivs["worst_status"] > 0.3 and ivs["years_at_address"] < 0.05
    assert bins["channel"].labels()[-2:] == ["Missing", "Unknown"]


def test_hand_made_applicants_get_the_right_reasons_worst_first(fitted) -> None:
    scorecard, _, _ = fitted
    proto, reasons = contract_graph(scorecard)
    x = applicants(
        # worst status, otherwise a good applicant
        {"worst_status": 4, "income": 20000, "years_at_address": 10, "channel": "shop"},
        # best status, low income, by phone
        {"worst_status": 1, "income": 700, "years_at_address": 10, "channel": "phone"},
    )
    out = run(proto, x)
    codes = out[REASONS_OUTPUT]
    assert codes.shape == (2, 4)
    assert codes[0, 0] == "worst_status: worst status in the last 3 months is 4"
    assert not any(c.startswith("years_at_address") for c in codes.ravel())  # no IV
    second = [c.split(":")[0] for c in codes[1] if c]
    assert sorted(second[:2]) == ["channel", "income"]
    assert re.fullmatch(r"income: monthly income is below [\d,]+", codes[1, 0]) or (
        codes[1, 0] == "channel: sales channel is phone"
    )
    assert "channel: sales channel is phone" in codes[1]
    # worst first: the listed features' points are ordered by what they cost
    names = scorecard.flat.order
    points = out[POINTS_OUTPUT][1]
    cost = {
        n: float(np.max(p[: b.value_bins]) - points[i])
        for i, (n, b, p) in enumerate(
            zip(names, scorecard.bins, reasons.table.points, strict=True)
        )
    }
    listed = [cost[n] for n in second]
    assert listed == sorted(listed, reverse=True) and listed[0] > 0
    np.testing.assert_array_equal(
        codes, reasons.table.native(x, out["approved"], 4).astype(str)
    )


@pytest.mark.parametrize("calibration", [None, PlattCalibration(0.8, -0.3)])
def test_points_add_up_to_the_score(fitted, calibration) -> None:
    scorecard, x, _ = fitted
    proto, _ = contract_graph(scorecard, calibration=calibration)
    out = run(proto, x[:3000])
    total = SCALING.offset + out[POINTS_OUTPUT].astype(np.float64).sum(axis=1)
    assert np.max(np.abs(total - out["credit_score"])) <= 1e-3
    assert out[POINTS_OUTPUT].shape == (3000, len(SPEC.features))


def test_bins_hold_exactly_on_their_edges(fitted) -> None:
    """Rows exactly on every split, and one float32 step either side: the graph's bin
    is numpy's and optbinning's own."""
    from optbinning import OptimalBinning

    scorecard, x, y = fitted
    proto, _, _ = scorecard.to_onnx()
    proto.graph.output.append(
        __import__("onnx").helper.make_tensor_value_info(
            BINS_TENSOR, __import__("onnx").TensorProto.INT64, [None, None]
        )
    )
    for j, b in enumerate(scorecard.bins):
        if b.categorical:
            continue
        edges = np.asarray(b.splits, np.float32)
        values = np.concatenate(
            [
                edges,
                np.nextafter(edges, np.float32(-np.inf)),
                np.nextafter(edges, np.float32(np.inf)),
            ]
        )
        rows = pd.DataFrame({n: x[n].iloc[0] for n in SPEC.feature_names}, index=[0])
        rows = rows.loc[rows.index.repeat(len(values))].reset_index(drop=True)
        rows[b.name] = values.astype(np.float64)
        graph_bins = run(proto, rows)[BINS_TENSOR][:, j] - scorecard.flat.offsets[j]
        np.testing.assert_array_equal(graph_bins, b.bin_index(rows[b.name]))
        reference = OptimalBinning(b.name, dtype="numerical", user_splits=b.splits)
        reference.fit(x[b.name].to_numpy(np.float64), y.to_numpy())
        expected = reference.transform(values.astype(np.float64), metric="indices")
        np.testing.assert_array_equal(graph_bins, expected)
        assert (graph_bins[: len(edges)] == np.arange(1, len(edges) + 1)).all()


def test_unseen_category_and_missing_values_land_in_their_bins(fitted) -> None:
    scorecard, _, _ = fitted
    proto, reasons = contract_graph(scorecard)
    bins = {b.name: b for b in scorecard.bins}
    x = applicants(
        {"worst_status": 1, "income": 5000, "years_at_address": 3, "channel": "fax"},
        {
            "worst_status": np.nan,
            "income": np.nan,
            "years_at_address": 3,
            "channel": "",
        },
    )
    out = run(proto, x)  # an unseen category is no error
    flat = scorecard.flat.flat_index(x)
    offsets = dict(zip(scorecard.flat.order, scorecard.flat.offsets, strict=True))
    channel = bins["channel"]
    assert flat[0, scorecard.flat.order.index("channel")] - offsets["channel"] == (
        channel.unknown_bin
    )
    assert channel.woe[channel.unknown_bin] == 0.0  # the documented fallback
    for name in ("worst_status", "income", "channel"):
        column = scorecard.flat.order.index(name)
        assert flat[1, column] - offsets[name] == bins[name].missing_bin
    np.testing.assert_array_equal(
        out[REASONS_OUTPUT], reasons.table.native(x, out["approved"], 4).astype(str)
    )
    for code in out[REASONS_OUTPUT][0]:
        if code.startswith("channel"):
            assert code == "channel: sales channel is a category not seen in training"
    missing_codes = [c for c in out[REASONS_OUTPUT][1] if c]
    assert all(c.endswith("is missing") for c in missing_codes)


def test_a_declined_applicant_always_has_a_reason(fitted) -> None:
    scorecard, x, _ = fitted
    best = {
        b.name: int(np.argmax(p[: b.value_bins]))
        for b, p in zip(scorecard.bins, scorecard.points(SCALING.factor), strict=True)
    }
    assert best["worst_status"] == 0
    # a cut-off above the best attainable score: everyone is declined
    proto, _ = contract_graph(scorecard, cutoff=10_000)
    out = run(proto, x[:2000])
    assert not out["approved"].any()
    assert (out[REASONS_OUTPUT][:, 0] != "").all()
    # ... even the applicant whose every feature is in its best bin
    best_row = applicants(
        {
            "worst_status": 1,
            "income": 1e6,
            "years_at_address": x["years_at_address"].iloc[0],
            "channel": scorecard.bins[-1].groups[best["channel"]][0],
        }
    )
    proto, reasons = contract_graph(scorecard, cutoff=10_000)
    cost = reasons.table.cost_table[scorecard.flat.flat_index(best_row)]
    assert np.all(cost[:, :2] == 0)
    assert run(proto, best_row)[REASONS_OUTPUT][0, 0] != ""


def test_an_approved_applicant_may_have_reasons(fitted) -> None:
    scorecard, x, _ = fitted
    proto, _ = contract_graph(scorecard, cutoff=0.0)
    out = run(proto, x[:2000])
    assert out["approved"].all()
    assert (out[REASONS_OUTPUT][:, 0] != "").any()  # what held the score down
    assert (out[REASONS_OUTPUT] == "").any()  # padding when fewer features cost points


def test_k_is_configurable_and_capped_by_the_features(fitted) -> None:
    scorecard, x, _ = fitted
    proto, _ = contract_graph(scorecard, k=1)
    assert run(proto, x[:5])[REASONS_OUTPUT].shape == (5, 1)
    proto, _ = contract_graph(scorecard, k=10)
    assert run(proto, x[:5])[REASONS_OUTPUT].shape == (5, len(SPEC.features))


def test_reasons_beside_a_gradient_boosting_winner(fitted) -> None:
    """Any other winner gets the scorecard's reasons beside its own PD (the documented
    approximation), computed from the same inputs, and no feature_points."""
    scorecard, x, y = fitted
    gbm = GbmCandidate(SPEC, seed=0)
    gbm.fit(x, y, None, None, {**DEFAULTS, "n_estimators": 40})
    proto, probability, column = gbm.to_onnx()
    proto = add_credit_decision(proto, probability, column, SCALING, 560.0)
    reasons = credit_reasons(scorecard, False, SCALING.factor, None, 4)
    proto = finalize(add_reason_codes(proto, reasons.table, 4, False))
    out = run(proto, x[:2000])
    assert POINTS_OUTPUT not in out
    np.testing.assert_allclose(
        out["default_probability"], gbm.predict_proba(x[:2000]), atol=1e-5
    )
    np.testing.assert_array_equal(
        out[REASONS_OUTPUT], reasons.table.native(x[:2000], out["approved"], 4)
    )
    declined = ~out["approved"]
    assert declined.any() and (out[REASONS_OUTPUT][declined, 0] != "").all()


def test_reason_table_in_metadata_and_tags(fitted) -> None:
    scorecard, _, _ = fitted
    _, reasons = contract_graph(scorecard)
    meta = reasons.table.metadata(4)
    assert meta["reason_method"] == "scorecard"
    assert meta["reason_features"].split(",") == scorecard.flat.order
    import json

    rows = json.loads(meta["reason_table"])
    assert {r["feature"] for r in rows} == set(SPEC.feature_names)
    generated = [r["code"] for r in rows if r["feature"] == "years_at_address"]
    assert generated[0].startswith("years_at_address: years at address is ")
    tags = reasons.table.tags(4)
    assert all(len(v) <= 5000 for v in tags.values())
    assert "worst status in the last 3 months is 4" in tags["reason_table.worst_status"]
    assert math.isfinite(rows[0]["points"])
