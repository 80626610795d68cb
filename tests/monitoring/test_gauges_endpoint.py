"""`riskserve monitor --serve PORT`: the gauges on a /metrics endpoint, refreshed every
`--every` seconds, as a process."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from riskserve.localplatform.processes import free_port

from tests.monitoring.log_helpers import fraud_features, fraud_profile, write_log

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]


def test_serve_exposes_the_psi_gauges(tmp_path):
    live = fraud_features(3_000, seed=41)
    live["online_order"] = 1.0
    write_log(tmp_path / "log", live)
    profile = fraud_profile().save(tmp_path / "profile.json")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "riskserve.monitoring",
            "fraud",
            "--log",
            str(tmp_path / "log"),
            "--reference-data",
            str(profile),
            "--serve",
            str(port),
            "--every",
            "2",
        ],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        text = ""
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and "riskserve_feature_psi{" not in text:
            time.sleep(1)
            try:
                text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
            except httpx.HTTPError:
                continue
        line = next(
            x
            for x in text.splitlines()
            if x.startswith("riskserve_feature_drifted{")
            and 'feature="online_order"' in x
        )
        assert line.endswith(" 1.0")
        assert 'riskserve_monitor_drifted_columns{model="fraud"} ' in text
    finally:
        process.terminate()
        process.wait(timeout=30)
    assert "Traceback" not in process.stderr.read()
