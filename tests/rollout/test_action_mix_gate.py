"""The action-mix gate of a policy rollout (`rollout/gates.action_shift`): the share of
each action on the canary transformer against the stable one, beyond a set bound and
the sampling error of two proportions. A typo in a cut-off declines everyone at 0%
errors; this is the gate that sees it."""

from __future__ import annotations

import numpy as np
import pytest
from riskserve.rollout.gates import action_shift, delta

pytestmark = pytest.mark.inprocess


def test_a_policy_that_declines_everyone_breaks_the_gate_naming_the_action() -> None:
    stable = {"approve": 62, "decline": 38}
    canary = {"decline": 30}
    why = action_shift(canary, stable, max_shift=0.10, z=3.0)
    assert why is not None
    assert why.startswith(
        "action mix shifted: approve 0.0% of 30 canary rows vs 62.0% of 100 stable"
    ), why
    assert "62.0 points > 10 allowed" in why


def test_the_intended_shift_passes_when_the_bound_is_set_above_it() -> None:
    # A cut-off moved to decline 15 points more: the default bound refuses it, the
    # operator's --max-action-shift 0.2 lets it through.
    stable = {"approve": 6_000, "decline": 4_000}
    canary = {"approve": 4_500, "decline": 5_500}
    assert action_shift(canary, stable, 0.10, 3.0) is not None
    assert action_shift(canary, stable, 0.20, 3.0) is None


def test_a_few_dozen_canary_rows_are_given_their_sampling_error() -> None:
    # 40 canary rows at 50% approve against 60% stable: 10 points is within the
    # allowance of so few rows even with no bound at all...
    assert (
        action_shift(
            {"approve": 20, "decline": 20}, {"approve": 600, "decline": 400}, 0.0, 3.0
        )
        is None
    )
    # ...and the same shift over 20,000 rows is real.
    big = {"approve": 10_000, "decline": 10_000}
    assert action_shift(big, {"approve": 12_000, "decline": 8_000}, 0.0, 3.0)


def test_no_policy_on_either_side_leaves_nothing_to_compare() -> None:
    assert action_shift({}, {"approve": 10}, 0.1, 3.0) is None
    assert action_shift({"approve": 10}, {}, 0.1, 3.0) is None


def test_an_unchanged_policy_fails_at_about_the_stated_rate() -> None:
    """A/A: canary and stable draw from one mix (a 10% canary's 50 rows against 450);
    with no bound, z=3 should fail about 0.27% of windows per action (two actions of
    a binary mix are one test): over 4,000 windows, well under 1%."""
    rng = np.random.default_rng(7)
    failed = 0
    windows = 4_000
    for _ in range(windows):
        canary = int(rng.binomial(50, 0.3))
        stable = int(rng.binomial(450, 0.3))
        counts = (
            {"decline": canary, "approve": 50 - canary},
            {"decline": stable, "approve": 450 - stable},
        )
        failed += action_shift(*counts, max_shift=0.0, z=3.0) is not None
    assert failed / windows < 0.01, failed
    # and z=1 (a 32% two-sided rate) fails far more: the allowance is what holds it
    loose = sum(
        action_shift(
            {"decline": int(c), "approve": 50 - int(c)},
            {"decline": int(s), "approve": 450 - int(s)},
            0.0,
            1.0,
        )
        is not None
        for c, s in zip(
            rng.binomial(50, 0.3, 1_000), rng.binomial(450, 0.3, 1_000), strict=True
        )
    )
    assert loose > 200, loose


def test_a_window_counts_the_actions_taken_in_it_and_survives_a_restart() -> None:
    before = {"action_counts": {"approve": 10, "decline": 5}}
    after = {"action_counts": {"approve": 25, "decline": 5, "refer": 3}}
    assert delta(before, after)["action_counts"] == {
        "approve": 15,
        "decline": 0,
        "refer": 3,
    }
    # a restarted transformer starts its counters again: clamped, never negative
    assert delta(after, {"action_counts": {"approve": 2}})["action_counts"] == {
        "approve": 0
    }
