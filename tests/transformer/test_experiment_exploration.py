"""An experiment's optional exploration share (docs/experiments.md): off by default;
capped at 5% (refused above, one line); sticky per entity; it approves (allows) the
rows a policy declined (blocked) by one of the named rules, answering
`policy_rule: exploration` with the policy's own `reason_code`, and the inference
log records it as it was answered."""

from __future__ import annotations

import hashlib
import math
from pathlib import Path

import orjson
import pytest
from riskserve.transformer.experiment import load_experiment
from riskserve.transformer.experiment_schema import ExperimentError

from tests.transformer.test_experiment_inprocess import (
    EXPERIMENT,
    arm_of,
    cards_request,
    experiment_app,
    experiment_file,
)
from tests.transformer.test_policy_applied import get, outputs, post

pytestmark = pytest.mark.inprocess

# The challenger's policy blocks every row of its predictor (0.3 >= 0.2) by this rule.
EXPLORED = EXPERIMENT + "exploration: {share: 0.05, rules: [probability_above_0_2]}\n"


def decide(app: object, cards: list[str]) -> dict[str, list]:
    """Each card's answer, in requests of at most 64 rows (the transformer's cap)."""
    got: dict[str, list] = {}
    for start in range(0, len(cards), 64):
        answer = outputs(post(app, "fraud", cards_request(cards[start : start + 64])))  # type: ignore[arg-type]
        for name, values in answer.items():
            got.setdefault(name, []).extend(values)
    return got


def explored_by_formula(card_id: str, share: float = 0.05) -> bool:
    digest = hashlib.blake2b(f"s1:explore:{card_id}".encode(), digest_size=8).digest()
    return (int.from_bytes(digest, "big") >> 11) / 2**53 < share


def test_exploration_allows_a_sticky_share_of_what_the_policy_blocked(
    tmp_path: Path,
) -> None:
    app, _, log = experiment_app(tmp_path, EXPLORED)
    cards = [f"card-{i}" for i in range(2000)]
    got = decide(app, cards)
    challengers = [i for i, arm in enumerate(got["arm"]) if arm == "challenger"]
    explored = [i for i in challengers if explored_by_formula(cards[i])]
    # about 5% of the challenger's cards, within 5 binomial standard deviations
    n = len(challengers)
    assert abs(len(explored) - 0.05 * n) <= 5 * math.sqrt(n * 0.05 * 0.95)
    assert explored
    for i in challengers:
        if i in explored:
            assert got["action"][i] == "allow"
            assert got["policy_rule"][i] == "exploration"
        else:
            assert got["action"][i] == "block"
            assert got["policy_rule"][i] == "probability_above_0_2"
        # why the policy would have blocked it, explored or not
        assert got["reason_code"][i] == "CHALLENGER_CUTOFF"
    # the champion's and holdout's rows were allowed by their policy: untouched
    others = [i for i in range(len(cards)) if i not in challengers]
    assert all(got["policy_rule"][i] != "exploration" for i in others)
    assert all(got["action"][i] == "allow" for i in others)
    # recorded as answered
    recorded: dict[str, list] = {"policy_rule": [], "action": []}
    for record in log.records:
        line = orjson.loads(record.to_json())
        for name, values in recorded.items():
            values.extend(line["outputs"][name])
    assert recorded["policy_rule"] == got["policy_rule"]
    assert recorded["action"] == got["action"]
    # sticky: an explored card alone, again and again, is allowed every time; an
    # unexplored challenger card is blocked every time
    explored_card = cards[explored[0]]
    blocked_card = cards[next(i for i in challengers if i not in explored)]
    for _ in range(5):
        one = outputs(post(app, "fraud", cards_request([explored_card])))
        assert (one["action"], one["policy_rule"]) == (["allow"], ["exploration"])
        one = outputs(post(app, "fraud", cards_request([blocked_card])))
        assert one["action"] == ["block"]
    # the metadata says so
    described = get(app, "/v2/models/fraud").json()["parameters"]["experiment"]
    assert described["exploration"] == {
        "share": 0.05,
        "rules": ["probability_above_0_2"],
    }


def test_off_by_default(tmp_path: Path) -> None:
    app, _, _ = experiment_app(tmp_path)
    cards = [f"card-{i}" for i in range(400)]
    got = decide(app, cards)
    assert "exploration" not in got["policy_rule"]
    assert [
        a
        for a, arm in zip(got["action"], got["arm"], strict=True)
        if arm == "challenger"
    ] == ["block"] * got["arm"].count("challenger")
    described = get(app, "/v2/models/fraud").json()["parameters"]["experiment"]
    assert described["exploration"] is None
    assert arm_of(app.t.experiment, "card-1")  # type: ignore[arg-type]


def test_a_share_above_the_cap_is_refused_in_one_line(tmp_path: Path) -> None:
    path = experiment_file(tmp_path, EXPERIMENT + "exploration: {share: 0.06}\n")
    with pytest.raises(ExperimentError) as refused:
        load_experiment(str(path))
    assert str(refused.value).splitlines() == [
        "exploration.share: 0.06 is above the cap of 0.05: exploration approves "
        "what the policy declines"
    ]


def test_an_unknown_rule_is_refused_in_one_line(tmp_path: Path) -> None:
    with pytest.raises(ExperimentError) as refused:
        experiment_app(
            tmp_path, EXPERIMENT + "exploration: {share: 0.01, rules: [nope]}\n"
        )
    (line,) = str(refused.value).splitlines()
    assert line.startswith("exploration.rules[0]: 'nope' is no rule of the arms'")
    assert "probability_above_0_2" in line
