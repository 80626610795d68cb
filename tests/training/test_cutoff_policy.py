"""The credit cut-off from the data: what each policy approves, the strategy table, and
the options of `riskserve train credit`."""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pytest
from riskserve.model.data import DataError
from riskserve.training.__main__ import main
from riskserve.training.cutoff_policy import (
    DEFAULT_POLICY,
    CutoffPolicy,
    choose_cutoff,
    format_strategy_table,
    outcome,
    parse_policy,
    strategy_table,
)
from riskserve.training.decision_graph import ScoreScaling

pytestmark = pytest.mark.inprocess

SCALING = ScoreScaling()


def calibrated(n: int = 4000, seed: int = 0):
    """PDs, their scores as the graph computes them, and outcomes drawn from the PDs."""
    rng = np.random.default_rng(seed)
    pd_ = rng.beta(1.2, 5.0, n)
    return pd_, SCALING.score(pd_), (rng.random(n) < pd_).astype(int)


@pytest.mark.parametrize("gain, loss", [(1, 5), (1, 1), (2, 3), (1, 20)])
def test_profit_approves_exactly_the_rows_below_the_break_even_pd(gain, loss):
    pd_, scores, _ = calibrated()
    choice = choose_cutoff(CutoffPolicy("profit", gain=gain, loss=loss), pd_, scores)
    approved = scores >= choice.score
    np.testing.assert_array_equal(approved, pd_ < gain / (gain + loss))
    # The cut-off is the score of the break-even PD itself, not a gap of this sample.
    assert choice.score == pytest.approx(
        SCALING.offset + SCALING.factor * math.log(loss / gain), abs=1e-6
    )
    expected = (gain * (1 - pd_) - loss * pd_)[approved].sum() / pd_.size
    assert choice.profit_per_applicant == pytest.approx(expected)
    assert choice.approval_rate == approved.mean()
    assert choice.bad_rate == pytest.approx(pd_[approved].mean())


def test_the_default_policy_is_profit_1_5_with_a_cutoff_at_pd_one_sixth():
    policy = parse_policy(DEFAULT_POLICY)
    assert (policy.kind, policy.gain, policy.loss) == ("profit", 1.0, 5.0)
    pd_, scores, _ = calibrated()
    choice = choose_cutoff(policy, pd_, scores)
    assert choice.score == pytest.approx(SCALING.score(np.array([1 / 6]))[0])
    assert choice.policy == "profit:1:5"


def test_profit_approves_nobody_when_nobody_is_worth_a_loan():
    pd_ = np.linspace(0.3, 0.9, 50)
    choice = choose_cutoff(parse_policy("profit:1:5"), pd_, SCALING.score(pd_))
    assert choice.approval_rate == 0
    assert choice.profit_per_applicant == 0
    assert math.isnan(choice.bad_rate)


@pytest.mark.parametrize("rate", [0.7, 0.25, 1.0])
def test_approval_rate_approves_that_share(rate):
    pd_, scores, _ = calibrated(n=1000)
    choice = choose_cutoff(parse_policy(f"approval-rate:{rate}"), pd_, scores)
    approved = scores >= choice.score
    assert approved.sum() == round(rate * 1000)
    assert choice.approval_rate == rate
    # The approved are the safest: no declined row scores above an approved one.
    if not approved.all():
        assert scores[~approved].max() < scores[approved].min()


def test_tied_scores_are_approved_or_declined_together():
    # A scorecard gives few distinct scores: 10 groups of 100 rows here.
    pd_ = np.repeat(np.linspace(0.02, 0.4, 10), 100)
    scores = SCALING.score(pd_)
    choice = choose_cutoff(parse_policy("approval-rate:0.73"), pd_, scores)
    assert choice.approval_rate == 0.7  # the reachable share nearest 0.73
    assert (scores >= choice.score).sum() == 700


def test_bad_rate_is_the_largest_approval_within_b():
    pd_, scores, _ = calibrated()
    choice = choose_cutoff(parse_policy("bad-rate:0.05"), pd_, scores)
    approved = scores >= choice.score
    assert pd_[approved].mean() <= 0.05
    assert choice.bad_rate == pytest.approx(pd_[approved].mean())
    # One more applicant (the safest declined) would take it above B.
    next_one = np.argmax(np.where(approved, -np.inf, scores))
    assert pd_[approved | (np.arange(pd_.size) == next_one)].mean() > 0.05


def test_bad_rate_below_every_reachable_rate_is_a_clear_error():
    pd_ = np.linspace(0.05, 0.5, 100)
    with pytest.raises(ValueError, match=r"bad-rate:0\.01: no cut-off .* 5\.00%"):
        choose_cutoff(parse_policy("bad-rate:0.01"), pd_, SCALING.score(pd_))


def test_score_policy_is_the_fixed_score_with_profit_at_the_default_gain_and_loss():
    pd_, scores, _ = calibrated()
    choice = choose_cutoff(parse_policy("score:560"), pd_, scores)
    approved = scores >= 560
    assert choice.score == 560
    assert choice.approval_rate == approved.mean()
    expected = ((1 - pd_) - 5 * pd_)[approved].sum() / pd_.size
    assert choice.profit_per_applicant == pytest.approx(expected)


@pytest.mark.parametrize(
    "text",
    ["profit:1:5", "profit:2.5:10", "approval-rate:0.7", "bad-rate:0.05", "score:560"],
)
def test_policies_read_back_from_their_text(text):
    assert str(parse_policy(text)) == text
    assert parse_policy(str(parse_policy(text))) == parse_policy(text)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "profit",
        "profit:1",
        "profit:1:0",
        "profit:-1:5",
        "approval-rate:0",
        "approval-rate:1.2",
        "bad-rate:0",
        "score:nan",
        "score:abc",
        "fixed:560",
        "560",
    ],
)
def test_bad_policies_are_one_line_naming_the_text_and_the_forms(text):
    with pytest.raises(ValueError) as error:
        parse_policy(text)
    message = str(error.value)
    assert "\n" not in message
    assert repr(text) in message
    for form in ("profit:GAIN:LOSS", "approval-rate:R", "bad-rate:B", "score:S"):
        assert form in message


@pytest.mark.parametrize(
    "pd_, scores, match",
    [
        ([], [], "empty"),
        ([0.1, np.nan], [600.0, 550.0], "NaN"),
        ([0.1, 0.2], [600.0, np.nan], "NaN"),
        ([0.1, 0.2], [600.0], "rows"),
        ([0.1, 1.5], [600.0, 500.0], "outside"),
    ],
)
def test_unusable_rows_are_a_clear_error(pd_, scores, match):
    with pytest.raises(ValueError, match=match):
        choose_cutoff(parse_policy(DEFAULT_POLICY), np.array(pd_), np.array(scores))


@pytest.mark.parametrize("text", ["profit:1:5", "approval-rate:0.6", "score:560"])
def test_strategy_table_marks_the_chosen_cutoff_with_the_holdout_outcome(text):
    policy = parse_policy(text)
    pd_, scores, _ = calibrated(seed=1)
    cutoff = choose_cutoff(policy, pd_, scores).score
    holdout_pd, holdout_scores, holdout_y = calibrated(n=900, seed=2)
    # The holdout's scores come from the ONNX graph, in float32.
    holdout_scores = holdout_scores.astype(np.float32)
    table = strategy_table(holdout_y, holdout_pd, holdout_scores, policy, cutoff)
    marked = table[table["chosen_cutoff"]]
    assert len(marked) == 1
    realised = outcome(holdout_y, holdout_scores, cutoff, policy)
    row = marked.iloc[0]
    for key, value in realised.items():
        assert row[key] == pytest.approx(value, nan_ok=True)
    bands = table[~table["chosen_cutoff"]]
    assert len(bands) == 10 and bands["size"].sum() == 900
    assert bands["share"].sum() == pytest.approx(1.0)
    # Each band edge: declining everything up to it; the last approves nobody.
    assert bands["approval_rate"].is_monotonic_decreasing
    assert bands["approval_rate"].iloc[-1] == 0
    # The marker sits where the cut-off falls: between the bands it separates.
    position = marked.index[0]
    edges = table["band"].str.split("-").str[-1]
    if position > 0:
        assert float(edges[position - 1]) <= cutoff + 0.5
    text_table = format_strategy_table(table)
    assert f">> cut-off {cutoff:.1f}" in text_table
    assert f"{100 * realised['approval_rate']:.1f}%" in text_table


def test_outcome_compares_as_the_graph_does_in_float32():
    scores = np.array([533.56146, 533.5614], dtype=np.float32)
    result = outcome(
        np.array([0, 1]), scores, 533.5614381022526, parse_policy("profit:1:5")
    )
    # float32(533.5614381...) == scores[0]: approved, as GreaterOrEqual in the graph.
    assert result["approval_rate"] == 0.5
    assert result["approved_bad_rate"] == 0.0


def test_cutoff_and_cutoff_policy_together_exit_2_before_loading_data(capsys):
    code = main(
        [
            "credit",
            "--data",
            "/nonexistent.csv",
            "--cutoff",
            "560",
            "--cutoff-policy",
            "approval-rate:0.7",
        ]
    )
    out, err = capsys.readouterr()
    assert code == 2
    assert err.count("\n") == 1
    assert "--cutoff or --cutoff-policy, not both" in err
    assert "loading data" not in out


@pytest.mark.parametrize(
    "args, shown",
    [
        (["--cutoff-policy", "profit:1"], "'profit:1'"),
        (["--cutoff", "nan"], "'score:nan'"),
    ],
)
def test_a_bad_policy_exits_2_with_one_line(capsys, args, shown):
    code = main(["credit", "--data", "/nonexistent.csv", *args])
    out, err = capsys.readouterr()
    assert code == 2
    assert err.count("\n") == 1
    assert shown in err and "approval-rate:R" in err
    assert "loading data" not in out


@pytest.mark.parametrize(
    "args, policy, cutoff",
    [
        ([], "profit:1:5", None),
        (["--cutoff", "600"], "score:600", 600.0),
        (["--cutoff-policy", "Bad-Rate:0.08"], "bad-rate:0.08", None),
    ],
)
def test_the_policy_reaches_the_job_config(monkeypatch, capsys, args, policy, cutoff):
    seen = []

    def stop(config):
        seen.append(config)
        raise DataError("stopped before loading")

    monkeypatch.setattr("riskserve.training.dataset.load_data", stop)
    assert main(["credit", *args]) == 2
    assert seen[0].cutoff_policy == policy
    if cutoff is not None:
        assert seen[0].cutoff == cutoff


def test_option_errors_come_before_any_heavy_import():
    script = (
        "import sys; from riskserve.training.__main__ import main; "
        "code = main(['credit', '--cutoff', '1', '--cutoff-policy', 'score:1']); "
        "heavy = [m for m in ('mlflow', 'sklearn', 'onnxruntime', 'tensorflow') "
        "if m in sys.modules]; print(heavy); sys.exit(code)"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2, result.stderr
    assert result.stdout.strip() == "[]"
