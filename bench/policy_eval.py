"""`make bench`, decision policies: what `Policy.decide` adds to a request, in process.

The policy runs on the transformer's hot path after the predictor answers
(docs/policies.md). Measured here, on the columns a request hands it (FP32 features
and outputs, BYTES merchant group, BOOL graph decision):

1. one row (the usual request): the starter credit policy (2 rules) and a segmented
   policy of 12 rules (knock-outs, per-segment cut-offs, refer bands) where most rows
   fall through to the last rules, the worst case of first-match;
2. a 1,000-row request: the same policies, per row.

Each figure is the median over rounds of the mean of a timed loop; rounds alternate
the policies so that a busy machine weighs on both alike. Goal: a single-row request
in a few microseconds (GOAL_SINGLE_ROW_US).

    python -m bench.policy_eval [--rounds 7]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

GOAL_SINGLE_ROW_US = 5.0
REPO = Path(__file__).resolve().parents[1]
CREDIT_OUTPUTS = [
    ("default_probability", "FP32", [-1]),
    ("credit_score", "FP32", [-1]),
    ("approved", "BOOL", [-1]),
    ("reason_codes", "BYTES", [-1, 4]),
]
SEGMENTED = """\
name: segmented
kind: credit
model: credit
rules:
  - {name: collections, when: [{field: recovery_debt, gt: 0}], action: decline,
     reason: KO_COLLECTIONS}
  - {name: basket_limit, when: [{field: basket_amount, gt: 3000}], action: decline,
     reason: KO_LIMIT}
  - {name: worst_status, when: [{field: account_worst_status_0_3m, ge: 4}],
     action: decline, reason: KO_STATUS}
  - {name: new_customer, when: [{field: customer_checkouts, eq: 0},
     {field: basket_amount, gt: 500}], action: refer, reason: NEW_LARGE}
  - {name: electronics_ok, when: [{field: merchant_group, eq: Electronics},
     {field: credit_score, ge: 640}], action: approve, reason: E_OK}
  - {name: electronics_band, when: [{field: merchant_group, eq: Electronics},
     {field: credit_score, ge: 625, lt: 640}], action: refer, reason: E_BAND}
  - {name: electronics_low, when: [{field: merchant_group, eq: Electronics}],
     action: decline, reason: E_LOW}
  - {name: travel_ok, when: [{field: merchant_group, in: [Travel, Jewelry]},
     {field: credit_score, ge: 630}], action: approve, reason: T_OK}
  - {name: travel_low, when: [{field: merchant_group, in: [Travel, Jewelry]}],
     action: decline, reason: T_LOW}
  - {name: refer_band, when: [{field: credit_score, ge: 600, lt: 615}],
     action: refer, reason: BAND}
  - {name: high_pd, when: [{field: default_probability, ge: 0.2}],
     action: decline, reason: PD}
  - {name: cutoff, when: [{field: credit_score, ge: 615}], action: approve,
     reason: OK}
default: {action: decline, reason: BELOW_CUTOFF}
"""


def request_columns(rows: int, seed: int) -> dict[str, np.ndarray]:
    """A request's columns as the transformer holds them after the predictor."""
    from riskserve.model.specs import MERCHANT_GROUPS

    rng = np.random.default_rng(seed)
    score = rng.normal(630, 25, rows).astype(np.float32)
    groups = ["Food & Beverage", *(g for g in MERCHANT_GROUPS if g != "Electronics")]
    return {
        "recovery_debt": np.zeros(rows, np.float32),
        "basket_amount": rng.uniform(10, 400, rows),
        "account_worst_status_0_3m": np.ones(rows, np.float32),
        "customer_checkouts": np.full(rows, 3, np.int64),
        "merchant_group": rng.choice(groups, rows).astype(object),
        "credit_score": score,
        "default_probability": np.full(rows, 0.05, np.float32),
        "approved": score >= 620,
    }


def policies():
    from riskserve.transformer.checkout import CHECKOUT
    from riskserve.transformer.policy import load_policy, parse_policy, policy_fields

    fields = policy_fields(
        "credit", CHECKOUT.raw_inputs, CHECKOUT.extra_outputs, CREDIT_OUTPUTS
    )
    starter = load_policy(str(REPO / "policies" / "credit.yaml"))
    segmented = parse_policy(SEGMENTED)
    for policy in (starter, segmented):
        policy.check_fields(fields)
    return {"starter (2 rules)": starter, "segmented (12 rules)": segmented}


def timed_us(call, loops: int) -> float:
    start = time.perf_counter()
    for _ in range(loops):
        call()
    return (time.perf_counter() - start) / loops * 1e6


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.policy_eval")
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args(argv)
    chosen = policies()
    one = request_columns(1, 1)
    batch = request_columns(1000, 2)
    single: dict[str, list[float]] = {name: [] for name in chosen}
    per_row: dict[str, list[float]] = {name: [] for name in chosen}
    floor: list[float] = []  # the machine's pace: one field read and compared
    column = one["credit_score"]
    for _ in range(args.rounds):
        floor.append(timed_us(lambda: column[0] >= 615.0, 20_000))
        for name, policy in chosen.items():
            single[name].append(timed_us(lambda p=policy: p.decide(one, 1), 20_000))
            per_row[name].append(
                timed_us(lambda p=policy: p.decide(batch, 1000), 50) / 1000
            )
    print(
        f"decision policy, in process; {args.rounds} rounds; load average "
        f"{os.getloadavg()[0]:.2f} on {os.cpu_count()} cores"
    )
    print(
        f"  floor (one numpy value read and compared, in the same loop): "
        f"{statistics.median(floor):.3f} us"
    )
    met = True
    for name in chosen:
        s, r = single[name], per_row[name]
        median = statistics.median(s)
        met &= median <= GOAL_SINGLE_ROW_US
        print(
            f"  {name}: one-row request {median:.2f} us (rounds {min(s):.2f}-"
            f"{max(s):.2f}); 1,000-row request {statistics.median(r):.3f} us a row "
            f"({min(r):.3f}-{max(r):.3f})"
        )
    print(
        f"  goal: one-row request <= {GOAL_SINGLE_ROW_US:.0f} us: "
        + ("met" if met else "NOT met")
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
