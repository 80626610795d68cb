"""The outcomes pass's statistics and money: a challenger with a truly lower bad rate
is found (right sign, p below alpha), A/A experiments are rejected at the stated
rate over repeated simulated runs (a binomial bound, not a tuned tolerance), and the
money of a tiny experiment is what a hand calculation says."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from riskserve.monitoring.outcomes import (
    Judging,
    arm_outcomes,
    decision_money,
    join_labels,
    outcomes,
)
from riskserve.monitoring.outcomes_experiment import Economics
from riskserve.monitoring.outcomes_log import ExperimentDecisions
from riskserve.monitoring.outcomes_stats import (
    bootstrap_difference,
    sample_size_per_arm,
    two_proportion_z,
    wilson_interval,
)
from scipy import stats

pytestmark = pytest.mark.inprocess

ECONOMICS = Economics(gain_rate=0.05, loss_given_default=0.8)
RUNS = 200
ALPHA = 0.05


def rejections_bound(runs: int, alpha: float) -> tuple[int, int]:
    """Rejections an exact level-alpha test makes in `runs` independent A/A runs,
    within its binomial's 99.9% interval."""
    return (
        int(stats.binom.ppf(0.0005, runs, alpha)),
        int(stats.binom.ppf(0.9995, runs, alpha)),
    )


def simulated_credit(
    rng: np.random.Generator, rows: int, bad_rates: dict[str, float]
) -> tuple[ExperimentDecisions, pd.DataFrame]:
    """Each arm approves everyone; an arm's customers go bad at its rate."""
    frames, labels = [], []
    for arm, rate in bad_rates.items():
        keys = [f"{arm}-{i}" for i in range(rows)]
        amount = rng.uniform(50, 500, rows)
        frames.append(
            pd.DataFrame(
                {
                    "key": keys,
                    "time": 0.0,
                    "version": "1",
                    "arm": arm,
                    "amount": amount,
                    "probability": rate,
                    "approved": True,
                }
            )
        )
        labels.append(
            pd.DataFrame({"key": keys, "label": (rng.random(rows) < rate).astype(int)})
        )
    live = pd.concat(frames, ignore_index=True)
    return (
        ExperimentDecisions(live, live.iloc[:0], "credit"),
        pd.concat(labels, ignore_index=True),
    )


def test_a_challenger_with_a_truly_lower_bad_rate_is_found():
    rng = np.random.default_rng(7)
    decisions, labels = simulated_credit(
        rng, 6000, {"champion": 0.10, "challenger": 0.07}
    )
    for judge in ("bad_rate", "profit"):
        result = outcomes(
            decisions,
            labels,
            "request_id",
            ECONOMICS,
            Judging(champion="champion", judge=judge, resamples=2000),
        )
        (comparison,) = result["comparisons"]
        assert comparison["arm"] == "challenger"
        assert comparison["bad_rate"]["difference"] < 0
        assert comparison["bad_rate"]["p_value"] < ALPHA
        # Fewer defaults at the same gain: more money per decision.
        profit = comparison["realised_profit_per_decision"]
        assert profit["difference"] > 0 and profit["p_value"] < ALPHA
        assert profit["ci"][0] > 0
        assert comparison["verdict"] == "better"
    # ... and the other way round, the challenger is worse.
    decisions, labels = simulated_credit(
        rng, 6000, {"champion": 0.07, "challenger": 0.10}
    )
    result = outcomes(
        decisions, labels, "request_id", ECONOMICS, Judging(champion="champion")
    )
    assert result["comparisons"][0]["verdict"] == "worse"


def test_a_a_z_test_rejects_at_the_stated_rate():
    rng = np.random.default_rng(11)
    rows, rate = 4000, 0.08
    bads = rng.binomial(rows, rate, size=(2, RUNS))
    _, p = two_proportion_z(bads[0], rows, bads[1], rows)
    rejected = int((p < ALPHA).sum())
    low, high = rejections_bound(RUNS, ALPHA)
    assert low <= rejected <= high, (rejected, low, high)


def test_a_a_bootstrap_rejects_at_the_stated_rate():
    rng = np.random.default_rng(12)
    rows = 150
    rejected = 0
    for run in range(RUNS):
        money = rng.choice([10.0, -80.0], p=[0.9, 0.1], size=(2, rows))
        result = bootstrap_difference(money[0], money[1], ALPHA, 1000, seed=run)
        rejected += result.p_value < ALPHA
    low, high = rejections_bound(RUNS, ALPHA)
    assert low <= rejected <= high, (rejected, low, high)


def test_the_bootstrap_is_seeded_and_its_interval_holds_the_difference():
    rng = np.random.default_rng(3)
    a, b = rng.normal(0, 1, 500), rng.normal(0.5, 1, 500)
    first = bootstrap_difference(a, b, ALPHA, 2000, seed=1)
    assert first == bootstrap_difference(a, b, ALPHA, 2000, seed=1)
    assert first.low < first.difference < first.high
    assert first.difference == pytest.approx(b.mean() - a.mean())


def test_wilson_interval_and_sample_size_match_textbook_values():
    # Wilson's interval of 0 of 10 at 95%: [0, 0.2775] (Newcombe 1998, table I).
    low, high = wilson_interval(0, 10, 0.05)
    assert low == pytest.approx(0.0, abs=1e-12) and high == pytest.approx(
        0.2775, abs=1e-4
    )
    # 10% against 5%, alpha 0.05 two-sided, power 0.8: 435 per group (Fleiss,
    # without continuity correction: 434.2 rounded up).
    assert sample_size_per_arm(0.10, 0.05, 0.05, 0.8) == 435


def test_the_money_of_a_tiny_experiment_by_hand():
    decisions = pd.DataFrame(
        {
            "key": ["a", "b", "c", "d", "e", "f"],
            "time": 0.0,
            "version": "1",
            "arm": "x",
            "amount": [100.0, 200.0, 300.0, 400.0, 500.0, 600.0],
            "probability": [0.1, 0.5, 0.2, 0.9, 0.1, 0.9],
            "approved": [True, True, True, False, True, False],
        }
    )
    # a good; b bad, no amount given (lgd); c bad, lost 50; d declined, bad; no label
    # yet for e (approved: its money unknown) nor f (declined: 0 all the same).
    labels = pd.DataFrame(
        {
            "key": ["a", "b", "c", "d"],
            "label": [0, 1, 1, 1],
            "amount": [np.nan, np.nan, 50.0, 400.0],
        }
    )
    money = decision_money(join_labels(decisions, labels, "request_id"), ECONOMICS)
    # expected: amount * (0.05 * (1 - p) - 0.8 * p) when approved
    assert money["expected"].tolist() == pytest.approx(
        [
            100 * (0.05 * 0.9 - 0.08),
            200 * (0.025 - 0.4),
            300 * (0.04 - 0.16),
            0.0,
            500 * (0.05 * 0.9 - 0.08),
            0.0,
        ]
    )
    # realised: a +5, b -160 (200 * 0.8), c -50 (its label's amount), d 0, e unknown,
    # f 0
    assert money["realised"].tolist() == pytest.approx(
        [5.0, -160.0, -50.0, 0.0, np.nan, 0.0], nan_ok=True
    )
    figures = arm_outcomes(money, "credit", 0.05)
    assert figures["approval_rate"] == pytest.approx(4 / 6)
    assert figures["labelled_approved"] == 3
    assert figures["bad_rate"] == pytest.approx(2 / 3)
    assert figures["realised_profit"] == pytest.approx(-205.0)
    assert figures["realised_profit_per_decision"] == pytest.approx(-205.0 / 5)
    fraud = arm_outcomes(money, "fraud", 0.05)
    # blocked fraud: d (its label's 400); allowed fraud: b (200) and c (50)
    assert fraud["fraud_caught_amount"] == pytest.approx(400.0)
    assert fraud["fraud_missed_amount"] == pytest.approx(250.0)
