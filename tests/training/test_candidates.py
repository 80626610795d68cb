"""Every candidate meets the ONNX contract with exact parity, trees even on rows that
sit exactly on their split thresholds; search, calibration and the registry of names."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pandas as pd
import pytest
from riskserve.model.specs import CREDIT, FRAUD
from riskserve.model.synthetic import generate
from riskserve.training import candidates
from riskserve.training.candidates.base import Candidate
from riskserve.training.candidates.gbm import (
    DEFAULTS,
    GbmCandidate,
    round_down_to_float32,
    round_thresholds_down,
)
from riskserve.training.candidates.logreg import LogisticCandidate
from riskserve.training.competition.compete import graph_probability, onnx_feeds
from riskserve.training.competition.search import tune

pytestmark = pytest.mark.training

SMALL_GBM = {**DEFAULTS, "n_estimators": 60, "min_child_samples": 20}


def small_data(kind: str, rows: int = 3000, seed: int = 3):
    spec = FRAUD if kind == "fraud" else CREDIT
    frame = generate(kind, rows, seed)
    return spec, frame[spec.feature_names], frame[spec.target].astype(int)


def onnx_probability(candidate: Candidate, spec, x: pd.DataFrame) -> np.ndarray:
    proto, name, column = candidate.to_onnx()
    session = ort.InferenceSession(proto.SerializeToString())
    return graph_probability(session, name, column, onnx_feeds(spec, x))


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
def test_candidate_meets_the_contract_with_exact_parity(kind, name):
    spec, x, y = small_data(kind)
    candidate = candidates.create(kind, name, spec, seed=0)
    assert isinstance(candidate, Candidate) and candidate.name == name
    params = SMALL_GBM if name == "gbm" else candidate.default_params(len(y))
    candidate.fit(x[:2000], y[:2000], x[2000:2500], y[2000:2500], params)
    proto, _, _ = candidate.to_onnx()
    session = ort.InferenceSession(proto.SerializeToString())
    inputs = {i.name: (i.type, i.shape[1]) for i in session.get_inputs()}
    assert list(inputs) == spec.feature_names
    for feature in spec.features:
        expected = (
            "tensor(string)" if feature.kind == "categorical" else "tensor(float)"
        )
        assert inputs[feature.name] == (expected, 1)
    held_out = x[2500:]
    native = candidate.predict_proba(held_out)
    assert native.shape == (len(held_out),)
    assert np.all((native >= 0) & (native <= 1))
    if kind == "credit":
        assert held_out.isna().any().any()  # missing values are normal input
    assert np.max(np.abs(onnx_probability(candidate, spec, held_out) - native)) <= 1e-5


def test_round_down_to_float32():
    for value in [0.1, 1 / 3, 2.5, -0.1, 1e-35, 123456.789, -7.0]:
        rounded = round_down_to_float32(value)
        assert rounded <= value
        assert float(np.float32(rounded)) == rounded  # representable in float32
        # and it is the nearest one: the next float32 up is above the value
        up = float(np.nextafter(np.float32(rounded), np.float32(np.inf)))
        assert up > value or rounded == value


def threshold_rows(booster, x: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """Rows of `x` with one feature moved exactly onto a split threshold of that
    feature (and onto the float32 values just below and above it)."""
    rows = []
    model = booster.dump_model()
    base = x.iloc[:40].reset_index(drop=True)

    def walk(node):
        if "split_feature" not in node:
            return
        yield node["split_feature"], float(node["threshold"])
        yield from walk(node["left_child"])
        yield from walk(node["right_child"])

    seen = set()
    for tree in model["tree_info"][:30]:
        for feature, threshold in walk(tree["tree_structure"]):
            if (feature, threshold) in seen or feature >= len(columns):
                continue
            seen.add((feature, threshold))
            t32 = np.float32(threshold)
            for value in (
                np.nextafter(t32, np.float32(-np.inf)),
                t32,
                np.nextafter(t32, np.float32(np.inf)),
            ):
                row = base.iloc[len(rows) % len(base)].copy()
                row[columns[feature]] = float(value)
                rows.append(row)
    return pd.DataFrame(rows).reset_index(drop=True)


def test_gbm_parity_holds_on_rows_exactly_on_split_thresholds():
    spec, x, y = small_data("fraud", rows=4000)
    candidate = GbmCandidate(spec, seed=0)
    candidate.fit(x, y, None, None, SMALL_GBM)
    assert candidate.thresholds_moved > 0  # LightGBM's own thresholds are float64
    booster = candidate.pipeline.named_steps["classifier"].booster_
    on_thresholds = threshold_rows(booster, x, spec.numeric_features)
    assert len(on_thresholds) > 100
    native = candidate.predict_proba(on_thresholds)
    graph = onnx_probability(candidate, spec, on_thresholds)
    assert np.max(np.abs(graph - native)) <= 1e-5


def test_without_rounding_threshold_rows_break_parity():
    """The same rows against the unrounded model: the float32 comparison in
    onnxruntime takes the other branch, so this is what the rounding is for."""
    spec, x, y = small_data("fraud", rows=4000)
    candidate = GbmCandidate(spec, seed=0)
    candidate.fit(x, y, None, None, SMALL_GBM)
    classifier = candidate.pipeline.named_steps["classifier"]
    rounded_booster = classifier.booster_
    unrounded = GbmCandidate(spec, seed=0)
    unrounded.pipeline = unrounded.build(SMALL_GBM, y.to_numpy())
    unrounded.pipeline.fit(x, y.to_numpy())  # the same fit, thresholds untouched
    rows = threshold_rows(rounded_booster, x, spec.numeric_features)
    native = unrounded.predict_proba(rows)
    graph = onnx_probability(unrounded, spec, rows)
    assert np.max(np.abs(graph - native)) > 1e-5
    # and rounding that model fixes it
    classifier = unrounded.pipeline.named_steps["classifier"]
    classifier._Booster, _ = round_thresholds_down(classifier.booster_)
    fixed = unrounded.predict_proba(rows)
    assert np.max(np.abs(onnx_probability(unrounded, spec, rows) - fixed)) <= 1e-5


def test_dnn_candidate_meets_the_contract():
    spec, x, y = small_data("fraud", rows=2000)
    candidate = candidates.create("fraud", "dnn", spec, seed=0)
    candidate.fit(x[:1500], y[:1500], None, None, {"epochs": 1})
    held_out = x[1500:]
    native = candidate.predict_proba(held_out)
    assert np.max(np.abs(onnx_probability(candidate, spec, held_out) - native)) <= 1e-5


def test_search_starts_from_the_defaults_and_keeps_the_best():
    spec, x, y = small_data("fraud", rows=1500)
    seen = []
    result = tune(
        lambda: candidates.create("fraud", "logreg", spec, 0),
        spec,
        x,
        y,
        lambda t, margin: float(np.mean((margin > 0) == t)),
        folds=3,
        budget_s=600.0,
        seed=0,
        say=seen.append,
        max_trials=4,
    )
    assert seen[0].startswith("trial 1: cv ")
    assert result.trials == 4 and len(result.cv_scores) == 3
    reported = [float(line.split("best ")[1]) for line in seen if "best " in line]
    assert result.cv_mean == pytest.approx(max(reported), abs=5e-5)
    # the best trial's out-of-fold margins: every row scored once, by a model
    # that was not fitted on it
    assert result.oof_margin is not None and not np.isnan(result.oof_margin).any()


@pytest.mark.parametrize(
    "budget",
    # 0: what a candidate is left with after one before it overran the budget;
    # it still gets its defaults (Optuna would start no trial at all)
    [1e-3, 0.0],
)
def test_a_budget_smaller_than_one_cv_scores_the_defaults_on_one_fold(budget):
    spec, x, y = small_data("fraud", rows=1500)
    seen = []
    result = tune(
        lambda: candidates.create("fraud", "gbm", spec, 0),
        spec,
        x,
        y,
        lambda t, margin: float(np.mean((margin > 0) == t)),
        folds=3,
        budget_s=budget,  # spent before the first fold ends
        seed=0,
        say=seen.append,
    )
    assert result.trials == 1 and len(result.cv_scores) == 1
    assert result.params == DEFAULTS  # the defaults, never an untried point
    assert seen == [seen[0]] and "on 1 of 3 folds (budget spent)" in seen[0]


class FixedLogistic(LogisticCandidate):
    """Nothing to tune, like the DNN (which costs TensorFlow to import)."""

    def search_space(self, trial, rows: int) -> dict:
        return {}


def test_a_candidate_with_nothing_to_tune_is_cross_validated_with_its_defaults():
    spec, x, y = small_data("fraud", rows=1500)
    result = tune(
        lambda: FixedLogistic(spec, 0),
        spec,
        x,
        y,
        lambda t, margin: float(np.mean((margin > 0) == t)),
        folds=3,
        budget_s=600.0,
        seed=0,
        say=lambda m: None,
    )
    assert result.trials == 1 and len(result.cv_scores) == 3
    assert result.params == FixedLogistic(spec, 0).default_params(len(y))
    assert not np.isnan(result.oof_margin).any()


def test_every_kind_has_its_candidates():
    assert candidates.names("fraud") == ["dnn", "gbm", "logreg"]
    assert {"gbm", "logreg"} <= set(candidates.names("credit"))
    assert candidates.unknown("fraud", ["gbm", "forest"]) == ["forest"]
