"""`riskserve rollout gate`: the outcomes gate on the command line refuses, in one
line and exit 2, what it cannot judge (the gate's decisions: tests/rollout)."""

from __future__ import annotations

import json

import pytest

from riskserve import rollout_cli

pytestmark = pytest.mark.inprocess


def test_gate_needs_a_report_and_refuses_a_foreign_one(tmp_path, capsys):
    assert rollout_cli.main(["gate", "credit"]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        "riskserve rollout gate: error: gate needs --outcomes FILE"
    ]
    foreign = tmp_path / "drift.json"
    foreign.write_text(json.dumps({"model": "credit", "psi": 0.3}))
    assert rollout_cli.main(["gate", "credit", "--outcomes", str(foreign)]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith(f"riskserve rollout gate: error: {foreign}: ")
    missing = tmp_path / "nope.json"
    assert rollout_cli.main(["gate", "credit", "--outcomes", str(missing)]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert "not a readable outcomes report" in line
