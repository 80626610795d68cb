"""Outcomes per experiment arm, in money, with statistics: the decisions each arm made
(monitoring/outcomes_log.py) joined to late labels (a label 0/1 per decision, and
optionally the `amount` lost: the default's loss, the chargeback), judged challenger
against champion (monitoring/outcomes_stats.py).

Per arm: volume, approval rate (a fraud model's allow rate; its block rate is the
rest), bad rate among the approved that have a label, expected profit (from each
decision's probability) and realised profit (from the labels), fraud caught (blocked
fraud amount) and missed (allowed fraud amount). A decision's money, with `amount`
the request's amount, `p` its probability of bad, `g` the gain rate and `lgd` the
loss given default:

    declined (blocked):  0
    approved, expected:  amount * (g * (1 - p) - lgd * p)
    approved, good:      amount * g
    approved, bad:       -(the label's amount if given, else amount * lgd)

Realised profit per decision is over the decisions whose money is known: every
declined one (0, known at once, with a label or without: a declined customer's
default costs nothing) and every approved one with a label (an approved decision
without one yet is left out). While labels are incomplete an arm's figure leans to
its declines' zeros, the more the more it declines: judge arms on matured labels.

A shadow arm's decisions were never returned: its "would have" approval rate and, on
the requests that have a label, its bad rate and profit are reported apart and
judged by nothing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd
from riskserve.monitoring.log_reader import BadInput
from riskserve.monitoring.outcomes_experiment import Economics
from riskserve.monitoring.outcomes_log import ExperimentDecisions, join_keys
from riskserve.monitoring.outcomes_stats import (
    bootstrap_difference,
    sample_size_per_arm,
    two_proportion_z,
    wilson_interval,
)

HOLDOUT_ARM = "holdout"
"""The arm an experiment's random holdout is recorded as: answered as the champion,
reported as an arm, judged by nothing."""

Verdict = Literal["better", "worse", "inconclusive"]
JudgedOn = Literal["profit", "bad_rate"]


@dataclass(frozen=True, kw_only=True)
class Judging:
    """How a challenger is judged against the champion."""

    champion: str
    alpha: float = 0.05
    """The tests' level: a difference with p below it is called real."""
    judge: JudgedOn = "profit"
    """The verdict's measure: realised profit per decision, or the bad rate."""
    mde: float = 0.01
    """The bad rate's minimum detectable effect (absolute) for the sample size."""
    power: float = 0.8
    resamples: int = 4000
    seed: int = 0


def decision_money(frame: pd.DataFrame, economics: Economics) -> pd.DataFrame:
    """`expected` and (where known) `realised` money of each decision, as the
    module docstring says."""
    amount = frame["amount"].to_numpy(np.float64)
    p = frame["probability"].to_numpy(np.float64)
    approved = frame["approved"].to_numpy(bool)
    g, lgd = economics.gain_rate, economics.loss_given_default
    out = frame.copy()
    out["expected"] = np.where(approved, amount * (g * (1 - p) - lgd * p), 0.0)
    if "label" in frame:
        label = frame["label"].to_numpy(np.float64)
        loss = frame["loss"].to_numpy(np.float64)
        loss = np.where(np.isnan(loss), amount * lgd, loss)
        money = np.where(label == 1, -loss, amount * g)
        out["realised"] = np.where(
            approved, np.where(np.isnan(label), np.nan, money), 0.0
        )
    return out


def join_labels(
    decisions: pd.DataFrame, labels: pd.DataFrame, key: str
) -> pd.DataFrame:
    """Each decision with its `label` (NaN: none yet) and `loss` (the label's amount,
    NaN when not given). Labels are deduplicated as the labels pass does (the last
    kept)."""
    frame = decisions.copy()
    frame["join"] = join_keys(frame, key)
    kept = labels.drop_duplicates("key", keep="last").set_index("key")
    frame["label"] = frame["join"].map(kept["label"]).astype(np.float64)
    loss = kept["amount"] if "amount" in kept else pd.Series(dtype=np.float64)
    frame["loss"] = frame["join"].map(loss).astype(np.float64)
    return frame


def arm_outcomes(frame: pd.DataFrame, kind: str, alpha: float) -> dict:
    """One arm's figures (see the module docstring); `frame` from `decision_money`."""
    approved = frame["approved"].to_numpy(bool)
    label = frame["label"].to_numpy(np.float64)
    labelled = ~np.isnan(label)
    bad = label == 1
    amount = frame["amount"].to_numpy(np.float64)
    fraud_amount = np.where(np.isnan(frame["loss"]), amount, frame["loss"])
    n, n_approved = len(frame), int(approved.sum())
    n_labelled_approved = int((approved & labelled).sum())
    n_bad_approved = int((approved & bad).sum())
    realised = frame["realised"].to_numpy(np.float64)
    realised = realised[~np.isnan(realised)]
    out = {
        "decisions": n,
        "approved": n_approved,
        "approval_rate": n_approved / n if n else None,
        "approval_rate_ci": wilson_interval(n_approved, n, alpha),
        "labelled": int(labelled.sum()),
        "labelled_approved": n_labelled_approved,
        "bad_approved": n_bad_approved,
        "bad_rate": n_bad_approved / n_labelled_approved
        if n_labelled_approved
        else None,
        "bad_rate_ci": wilson_interval(n_bad_approved, n_labelled_approved, alpha),
        "expected_profit": float(frame["expected"].sum()),
        "expected_profit_per_decision": float(frame["expected"].mean()) if n else None,
        "realised_profit": float(realised.sum()),
        "realised_profit_per_decision": float(realised.mean())
        if len(realised)
        else None,
        "versions": sorted(frame["version"].astype(str).unique().tolist()),
    }
    if kind == "fraud":
        out["fraud_caught_amount"] = float(fraud_amount[~approved & bad].sum())
        out["fraud_missed_amount"] = float(fraud_amount[approved & bad].sum())
        out["fraud_caught"] = int((~approved & bad).sum())
        out["fraud_missed"] = int((approved & bad).sum())
    return out


def compare(
    champion: pd.DataFrame,
    challenger: pd.DataFrame,
    champion_figures: dict,
    challenger_figures: dict,
    judging: Judging,
) -> dict:
    """The challenger against the champion: differences (challenger minus champion),
    their tests, the sample size still needed, and the verdict."""
    a, b = champion_figures, challenger_figures
    z_approval, p_approval = two_proportion_z(
        a["approved"], a["decisions"], b["approved"], b["decisions"]
    )
    z_bad, p_bad = two_proportion_z(
        a["bad_approved"],
        a["labelled_approved"],
        b["bad_approved"],
        b["labelled_approved"],
    )

    def labelled_money(frame: pd.DataFrame) -> np.ndarray:
        money = frame["realised"].to_numpy(np.float64)
        return money[~np.isnan(money)]

    profit = bootstrap_difference(
        labelled_money(champion),
        labelled_money(challenger),
        judging.alpha,
        judging.resamples,
        judging.seed,
    )
    needed = sample_size_per_arm(
        a["bad_rate"] if a["bad_rate"] is not None else math.nan,
        judging.mde,
        judging.alpha,
        judging.power,
    )
    have = min(a["labelled_approved"], b["labelled_approved"])

    def rate_difference(name: str) -> float | None:
        if a[name] is None or b[name] is None:
            return None
        return b[name] - a[name]

    result: dict[str, Any] = {
        "approval_rate": {
            "difference": rate_difference("approval_rate"),
            "z": float(z_approval),
            "p_value": float(p_approval),
        },
        "bad_rate": {
            "difference": rate_difference("bad_rate"),
            "z": float(z_bad),
            "p_value": float(p_bad),
        },
        "realised_profit_per_decision": {
            "difference": profit.difference,
            "ci": (profit.low, profit.high),
            "p_value": profit.p_value,
            "resamples": profit.resamples,
        },
        "expected_profit_per_decision": {
            "difference": (
                b["expected_profit_per_decision"] - a["expected_profit_per_decision"]
                if a["decisions"] and b["decisions"]
                else None
            ),
        },
        "sample_size": {
            "mde": judging.mde,
            "power": judging.power,
            "needed_per_arm": needed,
            "labelled_approved_per_arm": have,
            "still_needed_per_arm": None if needed is None else max(needed - have, 0),
        },
    }
    result["verdict"] = verdict(result, judging)
    return result


def verdict(comparison: dict, judging: Judging) -> Verdict:
    """better / worse when the judged difference is significant at `alpha`, its sign
    saying which (a lower bad rate is better); else inconclusive."""
    if judging.judge == "profit":
        test = comparison["realised_profit_per_decision"]
        sign = 1.0
    else:
        test = comparison["bad_rate"]
        sign = -1.0
    difference, p = test["difference"], test["p_value"]
    if difference is None or p is None or not p < judging.alpha or difference == 0:
        return "inconclusive"
    return "better" if sign * difference > 0 else "worse"


def outcomes(
    decisions: ExperimentDecisions,
    labels: pd.DataFrame,
    key: str,
    economics: Economics,
    judging: Judging,
) -> dict:
    """The whole result, JSON-ready (NaN as null): the arms, the shadow arms, and
    each live challenger against the champion."""
    live = decision_money(join_labels(decisions.live, labels, key), economics)
    shadow = decision_money(join_labels(decisions.shadow, labels, key), economics)
    arms = sorted(live["arm"].unique().tolist())
    if judging.champion not in arms:
        raise BadInput(
            f"champion arm {judging.champion!r} made no decision in the window; the "
            f"live arms are {', '.join(arms) or 'none'}"
        )
    known = set(join_keys(live, key)) | set(join_keys(shadow, key))
    unique_labels = labels.drop_duplicates("key", keep="last")
    figures = {
        arm: {"arm": arm, **arm_outcomes(group, decisions.kind, judging.alpha)}
        for arm, group in live.groupby("arm")
    }
    for arm in figures.values():
        arm["share"] = arm["decisions"] / len(live)
    by_arm = dict(tuple(live.groupby("arm")))
    comparisons = [
        {
            "arm": arm,
            "against": judging.champion,
            **compare(
                by_arm[judging.champion],
                by_arm[arm],
                figures[judging.champion],
                figures[arm],
                judging,
            ),
        }
        for arm in arms
        if arm not in (judging.champion, HOLDOUT_ARM)
    ]
    result = {
        "model_kind": decisions.kind,
        "economics": economics.model_dump(),
        "champion": judging.champion,
        "alpha": judging.alpha,
        "judged_on": judging.judge,
        "labels": {
            "rows": len(unique_labels),
            "duplicate_keys": len(labels) - len(unique_labels),
            "matched": int(unique_labels["key"].isin(known).sum()),
            "unknown_keys": int((~unique_labels["key"].isin(known)).sum()),
        },
        "arms": [figures[arm] for arm in arms],
        # Exploration's decisions (approved although the policy declined them):
        # the declined population's outcomes, per arm; also counted in the arm.
        "explored": [
            {"arm": arm, **arm_outcomes(group, decisions.kind, judging.alpha)}
            for arm, group in live[live["explored"].astype(bool)].groupby("arm")
        ]
        if "explored" in live
        else [],
        "shadow_arms": [
            {"arm": arm, **arm_outcomes(group, decisions.kind, judging.alpha)}
            for arm, group in shadow.groupby("arm")
        ],
        "comparisons": comparisons,
        "corrupt_count": decisions.corrupt_count,
        "corrupt": decisions.corrupt,
    }
    return _json_ready(result)


def _json_ready(value):
    """NaN (no data) as None, tuples as lists, numpy numbers as Python's."""
    if isinstance(value, dict):
        return {k: _json_ready(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_ready(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def worse_arms(result: dict) -> list[str]:
    return [c["arm"] for c in result["comparisons"] if c["verdict"] == "worse"]


def _rate(value: float | None) -> str:
    return "-" if value is None else f"{value:.2%}"


def _money(value: float | None) -> str:
    return "-" if value is None else f"{value:,.2f}"


def outcomes_summary(result: dict) -> str:
    """The terminal table: one line per arm, then each comparison."""
    kind = result["model_kind"]
    rate_name = "allow" if kind == "fraud" else "approve"
    head = (
        f"experiment {result['experiment']}, model {result['model']} ({kind}): "
        f"{result['labels']['matched']} of {result['labels']['rows']} labels joined, "
        f"{result['labels']['unknown_keys']} with unknown keys; "
        f"gain rate {result['economics']['gain_rate']:g}, "
        f"loss given default {result['economics']['loss_given_default']:g}"
    )
    columns = (
        f"  {'arm':<24}{'decisions':>10}{'share':>8}{rate_name:>9}{'labelled':>9}"
        f"{'bad rate':>10}{'exp/dec':>10}{'real/dec':>10}"
    )
    if kind == "fraud":
        columns += f"{'caught':>13}{'missed':>13}"
    lines = [head, columns]

    def row(arm: dict, share: str) -> str:
        text = (
            f"  {arm['arm'][:23]:<24}{arm['decisions']:>10}{share:>8}"
            f"{_rate(arm['approval_rate']):>9}{arm['labelled']:>9}"
            f"{_rate(arm['bad_rate']):>10}"
            f"{_money(arm['expected_profit_per_decision']):>10}"
            f"{_money(arm['realised_profit_per_decision']):>10}"
        )
        if kind == "fraud":
            text += (
                f"{_money(arm['fraud_caught_amount']):>13}"
                f"{_money(arm['fraud_missed_amount']):>13}"
            )
        return text

    for arm in result["arms"]:
        champion = " *" if arm["arm"] == result["champion"] else ""
        lines.append(row(arm, _rate(arm["share"])) + champion)
    for arm in result["shadow_arms"]:
        lines.append(row({**arm, "arm": f"{arm['arm']} (shadow)"}, "-"))
    for arm in result.get("explored", []):
        lines.append(row({**arm, "arm": f"{arm['arm']} (explored)"}, "-"))
    for c in result["comparisons"]:
        profit = c["realised_profit_per_decision"]
        ci = profit["ci"]
        lines.append(
            f"  {c['arm']} vs {c['against']}: approval {_signed_rate(c, 'approval_rate')}"
            f", bad rate {_signed_rate(c, 'bad_rate')}, profit/decision "
            f"{_money(profit['difference'])} "
            f"[{_money(ci[0])}, {_money(ci[1])}] (bootstrap p "
            f"{_p(profit['p_value'])}); still needed per arm for a "
            f"{c['sample_size']['mde']:.2%} bad-rate effect: "
            f"{_count(c['sample_size']['still_needed_per_arm'])} -> "
            f"{c['verdict'].upper()} on {result['judged_on']}"
        )
    if result["corrupt_count"]:
        lines.append(
            f"  {result['corrupt_count']} log lines skipped, first: "
            f"{result['corrupt'][0]}"
        )
    lines.append(
        "* champion; bad rate: of the approved with a label; exp/dec: expected "
        "profit per decision, real/dec: realised, per decision whose money is known"
    )
    return "\n".join(lines)


def _signed_rate(comparison: dict, name: str) -> str:
    test = comparison[name]
    if test["difference"] is None:
        return "-"
    return f"{test['difference']:+.2%} (p {_p(test['p_value'])})"


def _p(value: float | None) -> str:
    return "-" if value is None else f"{value:.3g}"


def _count(value: int | None) -> str:
    return "-" if value is None else f"{value:,}"
