"""The arithmetic of the rollout gates over two snapshots of a revision's counters:
the window's delta, its interpolated latency quantile, the PSI of two score
histograms and the action-mix shift of a policy canary; and the outcomes gate, over
the monitor's outcomes report of an experiment."""

from __future__ import annotations

import datetime as dt
import math
from typing import Any, Literal


def delta(before: dict | None, after: dict | None) -> dict[str, Any]:
    """Counters of one revision between two snapshots (a restart resets them: clamp)."""
    after = after or {}
    before = before or {}

    def minus(a, b):
        if not a:
            return []
        b = b if b and len(b) == len(a) else [0] * len(a)
        return [max(x - y, 0) for x, y in zip(a, b, strict=True)]

    return {
        "requests": max(after.get("requests", 0) - before.get("requests", 0), 0),
        "errors": max(after.get("errors", 0) - before.get("errors", 0), 0),
        "latency_counts": minus(
            after.get("latency_counts"), before.get("latency_counts")
        ),
        "latency_bounds_ms": after.get("latency_bounds_ms", []),
        "score_counts": minus(after.get("score_counts"), before.get("score_counts")),
        "action_counts": {
            action: max(count - (before.get("action_counts") or {}).get(action, 0), 0)
            for action, count in (after.get("action_counts") or {}).items()
        },
    }


def action_shift(
    canary: dict[str, int], stable: dict[str, int], max_shift: float, z: float
) -> str | None:
    """Why the canary's action mix broke the gate, or None: an action whose share of
    rows differs from the stable revision's by more than `max_shift` plus `z`
    standard errors of the difference (two-proportion, pooled). None too when either
    side counted no actions (no policy there, or no traffic): nothing to compare."""
    canary_rows, stable_rows = sum(canary.values()), sum(stable.values())
    if not canary_rows or not stable_rows:
        return None
    worst: tuple[float, str] | None = None
    for action in sorted(set(canary) | set(stable)):
        p_canary = canary.get(action, 0) / canary_rows
        p_stable = stable.get(action, 0) / stable_rows
        pooled = (canary.get(action, 0) + stable.get(action, 0)) / (
            canary_rows + stable_rows
        )
        error = math.sqrt(pooled * (1 - pooled) * (1 / canary_rows + 1 / stable_rows))
        allowed = max_shift + z * error
        excess = abs(p_canary - p_stable) - allowed
        if excess > 0 and (worst is None or excess > worst[0]):
            worst = (
                excess,
                f"action mix shifted: {action} {p_canary:.1%} of {canary_rows} canary "
                f"rows vs {p_stable:.1%} of {stable_rows} stable "
                f"({abs(p_canary - p_stable) * 100:.1f} points > {max_shift * 100:g} "
                f"allowed + {z * error * 100:.1f} sampling)",
            )
    return None if worst is None else worst[1]


def quantile_ms(window: dict[str, Any], q: float) -> float:
    """The q-quantile of a latency histogram, interpolated linearly inside the bucket
    it falls in (Prometheus' histogram_quantile): bucket edges alone would make 5.1 ms
    and 9.9 ms the same "10 ms" and double a p99 on a one-request difference."""
    counts, bounds = window["latency_counts"], window["latency_bounds_ms"]
    total = sum(counts)
    if not total or not bounds:
        return 0.0
    rank = q * total
    seen = 0
    for index, count in enumerate(counts):
        if count and seen + count >= rank:
            if index >= len(bounds):  # above the last edge: all we know is its edge
                return float(bounds[-1])
            lower = bounds[index - 1] if index else 0.0
            return lower + (bounds[index] - lower) * (rank - seen) / count
        seen += count
    return float(bounds[-1])


def psi(actual: list[int], expected: list[int], floor: float = 1e-4) -> float | None:
    """Population stability index of two histograms over the same buckets."""
    if not actual or not expected or len(actual) != len(expected):
        return None
    a_total, e_total = sum(actual), sum(expected)
    if not a_total or not e_total:
        return None
    value = 0.0
    for a, e in zip(actual, expected, strict=True):
        pa, pe = max(a / a_total, floor), max(e / e_total, floor)
        value += (pa - pe) * math.log(pa / pe)
    return value


OutcomeDecision = Literal["promote", "stop", "wait"]


def outcome_decision(
    report: dict[str, Any], arm: str | None, now: float, max_age_s: float
) -> tuple[OutcomeDecision, str]:
    """What the outcomes pass's JSON (`riskserve monitor outcomes --json`) says of a
    challenger arm: promote when its verdict is `better` (significant at the pass's
    `--alpha`, on its `--judge` measure), stop when `worse`, else wait. Raises
    ValueError saying why when the report cannot be judged: no such arm, several
    challengers and none named, a report whose window ended over `max_age_s` ago."""
    try:
        comparisons = list(report["comparisons"])
        until = dt.datetime.fromisoformat(report["window"]["until"]).timestamp()
        judged_on, alpha = str(report["judged_on"]), float(report["alpha"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"not an outcomes report (no {exc})") from None
    if now - until > max_age_s:
        raise ValueError(
            f"the outcomes report's window ended {(now - until) / 3600:.1f} h ago "
            f"(at most {max_age_s / 3600:g} h): run the outcomes pass again"
        )
    arms = [str(c.get("arm")) for c in comparisons]
    if arm is None:
        if len(arms) != 1:
            raise ValueError(
                f"the report judges {len(arms)} challengers ({', '.join(arms)}): "
                "name the arm"
            )
        arm = arms[0]
    if arm not in arms:
        raise ValueError(
            f"the report judges no challenger arm {arm!r} (it judges "
            f"{', '.join(arms) or 'none'})"
        )
    comparison = comparisons[arms.index(arm)]
    measure = (
        comparison["realised_profit_per_decision"]
        if judged_on == "profit"
        else comparison["bad_rate"]
    )
    said = (
        f"{arm} vs {comparison['against']} on {judged_on}: difference "
        f"{measure['difference']}, p {measure['p_value']} (alpha {alpha:g})"
    )
    verdict = comparison["verdict"]
    if verdict == "better":
        return "promote", f"{said}: better"
    if verdict == "worse":
        return "stop", f"{said}: worse"
    still = comparison.get("sample_size", {}).get("still_needed_per_arm")
    return "wait", f"{said}: not yet significant" + (
        f" ({still} more labelled approved decisions per arm for the chosen effect)"
        if still
        else ""
    )
