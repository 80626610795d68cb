"""The demo's drift story: the monitor flags the drifted slice of the traffic
`riskserve demo` sends, and not its calm slice. The rows come from the demo's own
`traffic_rows`, the windows and the command from its `TrafficSlice`, and the verdict
line from its `verdict`, so this test cannot drift from the demo."""

from __future__ import annotations

import json
import math
import time

import numpy as np
import pandas as pd
import pytest
from riskserve.monitoring.cli import main

from riskserve.demo import (
    DRIFTED_FEATURE,
    ROWS_PER_REQUEST,
    TrafficSlice,
    traffic_rows,
    verdict,
)
from tests.monitoring.log_helpers import fraud_profile, write_log

pytestmark = pytest.mark.inprocess


@pytest.fixture(autouse=True)
def no_mlflow(monkeypatch):
    for name in ("MLFLOW_TRACKING_URI", "RISKSERVE_MONITOR_LOG_URI"):
        monkeypatch.delenv(name, raising=False)


def log_as_served(root, rows: pd.DataFrame, start: float, seconds: float) -> None:
    """`rows` in the demo's requests, every fifth one answered by the 20% canary
    (version 2), spread over [start, start + seconds)."""
    canary = (np.arange(len(rows)) // ROWS_PER_REQUEST) % 5 == 4
    for version, served in (("1", ~canary), ("2", canary)):
        write_log(
            root,
            rows[served],
            version=version,
            start=start,
            seconds=seconds,
            rows_per_record=ROWS_PER_REQUEST,
        )


def test_the_monitor_flags_the_demos_drifted_slice_and_not_its_calm_one(
    tmp_path, capsys
):
    calm, drifted = traffic_rows()
    assert len(drifted) * 2 == len(calm)  # the last third drifted
    reference = fraud_profile().save(tmp_path / "reference_profile.json")
    log = tmp_path / "inference-log"
    start = float(math.floor(time.time()) - 3600)
    slices = [
        (TrafficSlice("calm", start, start + 600, drift_expected=False), calm),
        (
            TrafficSlice("drifted", start + 600, start + 900, drift_expected=True),
            drifted,
        ),
    ]
    for traffic, rows in slices:
        log_as_served(log, rows, traffic.since, traffic.until - traffic.since)

    for traffic, rows in slices:
        command = traffic.monitor_command(str(log))
        assert command[:3] == ["riskserve", "monitor", "fraud"]
        code = main(
            [*command[2:], "--reference-data", str(reference), "--json", "--no-report"]
        )
        result = json.loads(capsys.readouterr().out)
        assert result["rows"] == len(rows), traffic.name  # the window is the slice
        line = verdict(traffic, result)
        assert "NOT what the demo expected" not in line, line
        if traffic.drift_expected:
            assert code == 3, line
            assert DRIFTED_FEATURE in result["drifted"]
            by_name = {f["name"]: f for f in result["features"]}
            assert by_name[DRIFTED_FEATURE]["psi"] > 0.5
            assert line.startswith(f"drifted slice: DRIFT in {DRIFTED_FEATURE} (PSI")
        else:
            assert code == 0, line
            assert result["drifted"] == []
            assert line.startswith("calm slice: no drift")
