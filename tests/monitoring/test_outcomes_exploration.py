"""The outcomes pass reports an experiment's explored decisions apart: the rows the
exploration share approved although the policy declined them (`policy_rule:
exploration`), per arm, with their own bad rate: the declined population measured.
They still count in their arm (its treatment includes the exploration)."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import orjson
import pandas as pd
import pytest

from tests.monitoring.outcomes_helpers import record, run_outcomes

pytestmark = pytest.mark.inprocess


def write_log(root: Path) -> Path:
    """Per arm 400 decisions: 300 approved by the policy (bad 5%), 80 declined, 20
    explored (approved by exploration; bad 40% for the champion, 30% the
    challenger's)."""
    day = dt.datetime.now(dt.UTC) - dt.timedelta(hours=2)
    folder = root / "credit" / day.date().isoformat()
    folder.mkdir(parents=True)
    lines, labels = [], []
    for arm, explored_bad in (("champion", 8), ("challenger", 6)):
        for i in range(400):
            rid = f"{arm}-{i}"
            if i < 300:
                action, rule, bad = "approve", "default", int(i % 20 == 0)
            elif i < 380:
                action, rule, bad = "decline", "default", 0
            else:
                action, rule, bad = (
                    "approve",
                    "exploration",
                    int(i - 380 < explored_bad),
                )
            line = record(rid, [arm], [100.0], [0.2], [action])
            line["outputs"]["policy_rule"] = [rule]
            lines.append(line)
            if action == "approve":
                labels.append({"request_id": rid, "label": bad})
    (folder / "part-0.jsonl").write_bytes(b"\n".join(orjson.dumps(r) for r in lines))
    path = root / "labels.csv"
    pd.DataFrame(labels).to_csv(path, index=False)
    return path


def test_explored_decisions_are_reported_apart_per_arm(tmp_path: Path) -> None:
    labels = write_log(tmp_path)
    _, text = run_outcomes(tmp_path, labels, "--json")
    result = json.loads(text)
    explored = {a["arm"]: a for a in result["explored"]}
    assert set(explored) == {"champion", "challenger"}
    assert explored["champion"]["decisions"] == 20
    assert explored["champion"]["approval_rate"] == 1.0
    assert explored["champion"]["bad_rate"] == pytest.approx(8 / 20)
    assert explored["challenger"]["bad_rate"] == pytest.approx(6 / 20)
    # the arm itself keeps them: 320 approved of 400
    arms = {a["arm"]: a for a in result["arms"]}
    assert arms["champion"]["decisions"] == 400
    assert arms["champion"]["approval_rate"] == pytest.approx(320 / 400)
    # the terminal table has a line for each
    _, table = run_outcomes(tmp_path, labels)
    assert "champion (explored)" in table and "challenger (explored)" in table


def test_without_exploration_nothing_is_reported_apart(tmp_path: Path) -> None:
    labels = write_log(tmp_path)
    for path in (tmp_path / "credit").rglob("*.jsonl"):
        path.write_bytes(path.read_bytes().replace(b'"exploration"', b'"default"'))
    _, text = run_outcomes(tmp_path, labels, "--json")
    assert json.loads(text)["explored"] == []
