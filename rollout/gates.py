"""The arithmetic of the rollout gates over two snapshots of a revision's counters:
the window's delta, its interpolated latency quantile, and the PSI of two score
histograms; and the outcomes gate, over the monitor's outcomes report of an
experiment."""

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
    }


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
