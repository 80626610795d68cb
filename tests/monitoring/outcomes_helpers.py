"""Experiment records and outcomes reports for the outcomes pass's tests (and the
rollout gate's and the app's, which judge its report): transformer records in the
format transformer/inference_log.py writes behind an experiment (`experiment`,
`arms`, `"shadow": true` on a shadow arm's copy), a labels CSV, and the pass's JSON."""

from __future__ import annotations

import contextlib
import datetime as dt
import io
from pathlib import Path

import numpy as np
import orjson
import pandas as pd
from riskserve.monitoring.cli import main as monitor

EXPERIMENT = "credit-cutoff"
EXPERIMENT_YAML = f"""\
name: {EXPERIMENT}
salt: s1
arms:
  - {{name: champion, share: 0.5}}
  - {{name: challenger, share: 0.5}}
  - {{name: shadow-gbm, shadow: true}}
economics: {{gain_rate: 0.05, loss_given_default: 0.8}}
"""


ECONOMICS_ARGS = ("--gain-rate", "0.05", "--loss-given-default", "0.8")


def record(rid: str, arms: list[str], amounts, probabilities, actions, **extra):
    return {
        "timestamp": (dt.datetime.now(dt.UTC) - dt.timedelta(hours=2)).isoformat(),
        "request_id": rid,
        "model_name": "credit",
        "model_version": "3",
        "protocol": "rest",
        "latency_ms": 1.0,
        "stage": "transformer",
        "inputs": {"x": [0.0] * len(arms)},
        "outputs": {
            "default_probability": list(probabilities),
            "approved": [a == "approve" for a in actions],
            "action": list(actions),
        },
        "raw_inputs": {
            "customer_id": [f"cust-{rid}-{i}" for i in range(len(arms))],
            "basket_amount": list(amounts),
        },
        "features": {},
        "experiment": EXPERIMENT,
        "arms": arms,
        **extra,
    }


def write_experiment_log(
    root: Path, bad_rates: dict[str, float], rows: int = 3000, seed: int = 0
) -> Path:
    """One record per decision (and one two-row record per arm), a shadow copy of
    every champion decision; the labels CSV beside the log: bad at the arm's rate,
    with the loss amount on some."""
    rng = np.random.default_rng(seed)
    day = dt.datetime.now(dt.UTC) - dt.timedelta(hours=2)
    folder = root / "credit" / day.date().isoformat()
    folder.mkdir(parents=True)
    lines, labels = [], []
    for arm, rate in bad_rates.items():
        for i in range(rows):
            rid = f"{arm}-{i}"
            amount = float(rng.uniform(50, 500))
            declined = i % 10 == 0
            action = "decline" if declined else "approve"
            lines.append(record(rid, [arm], [amount], [rate], [action]))
            if arm == "champion":
                shadow_action = "decline" if i % 5 == 0 else "approve"
                lines.append(
                    record(
                        rid,
                        ["shadow-gbm"],
                        [amount],
                        [rate],
                        [shadow_action],
                        shadow=True,
                    )
                )
            bad = int(rng.random() < rate)
            loss = round(amount * 0.5, 2) if bad and i % 2 else None
            labels.append({"request_id": rid, "label": bad, "amount": loss})
        # a two-row request: keys ID:0 and ID:1
        lines.append(
            record(
                f"{arm}-pair", [arm, arm], [100.0, 200.0], [rate, rate], ["approve"] * 2
            )
        )
        labels.append({"request_id": f"{arm}-pair:1", "label": 1, "amount": None})
    (folder / "part-0.jsonl").write_bytes(b"\n".join(orjson.dumps(r) for r in lines))
    labels.append({"request_id": "nobody", "label": 0, "amount": None})
    path = root / "labels.csv"
    pd.DataFrame(labels).to_csv(path, index=False)
    return path


def outcomes_arguments(log: Path, labels: Path, *extra: str) -> list[str]:
    """`riskserve monitor outcomes credit` on `log` and `labels`: the experiment by
    name, champion `champion`, the economics as options, no HTML report."""
    return [
        "outcomes",
        "credit",
        "--log",
        str(log),
        "--experiment",
        EXPERIMENT,
        "--champion",
        "champion",
        *ECONOMICS_ARGS,
        "--labels",
        str(labels),
        "--no-report",
        *extra,
    ]


def run_outcomes(log: Path, labels: Path, *extra: str) -> tuple[int, str]:
    """The pass in process: its exit code and what it printed."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = monitor(outcomes_arguments(log, labels, *extra))
    return code, out.getvalue()


def outcomes_report(
    folder: Path, bad_rates: dict[str, float], rows: int, seed: int = 0
) -> Path:
    """The outcomes pass's JSON (champion `champion`, judged on profit) on a log of
    `bad_rates` written under `folder`, as a file."""
    log = folder / "log"
    labels = write_experiment_log(log, bad_rates, rows=rows, seed=seed)
    _, text = run_outcomes(log, labels, "--json")
    path = folder / "outcomes.json"
    path.write_text(text)
    return path
