"""`riskserve monitor --push URL` against a real Prometheus Pushgateway (Debian's
prometheus-pushgateway, installed by `make prometheus`), as the chart's CronJobs push:
a drift pass and a labels pass of one model, one after the other, both on the gateway."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest
from riskserve.localplatform.processes import ManagedProcess, free_port

from tests.monitoring.log_helpers import (
    fraud_features,
    fraud_profile,
    fraud_score,
    write_log,
)

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def pushgateway(tmp_path):
    binary = shutil.which("prometheus-pushgateway") or shutil.which("pushgateway")
    if binary is None:
        pytest.fail("prometheus-pushgateway is missing: run `make prometheus`")
    port = free_port()
    process = ManagedProcess(
        "pushgateway",
        # Debian's build persists to /var/lib/prometheus by default: memory only here.
        [binary, f"--web.listen-address=127.0.0.1:{port}", "--persistence.file="],
        tmp_path / "pushgateway.log",
    ).start()
    url = f"http://127.0.0.1:{port}"
    try:
        process.wait_ready(f"{url}/-/ready", timeout=30)
        yield url
    finally:
        process.stop(grace=5)


def monitor(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    return subprocess.run(
        [sys.executable, "-m", "riskserve.monitoring", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def series(text: str, name: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith(name + "{")]


def test_drift_and_labels_passes_both_stay_on_the_pushgateway(tmp_path, pushgateway):
    live = fraud_features(4_000, seed=51)
    live["online_order"] = 1.0  # drifted
    score = fraud_score(live)
    ids = write_log(tmp_path / "log", live, scores=score)
    profile = fraud_profile().save(tmp_path / "profile.json")
    rng = np.random.default_rng(2)
    pd.DataFrame(
        {"request_id": ids, "label": (rng.random(len(ids)) < score).astype(int)}
    ).to_csv(tmp_path / "labels.csv", index=False)
    common = ["--log", str(tmp_path / "log"), "--reference-data", str(profile)]

    drift = monitor(
        "fraud", *common, "--no-mlflow", "--no-report", "--push", pushgateway
    )
    assert drift.returncode == 3, drift.stderr[-2000:]
    labels = monitor(
        "labels",
        "fraud",
        *common,
        "--labels",
        str(tmp_path / "labels.csv"),
        "--push",
        pushgateway,
    )
    assert labels.returncode in (0, 3), labels.stderr[-2000:]
    assert "could not push" not in drift.stdout + drift.stderr + labels.stdout

    text = httpx.get(f"{pushgateway}/metrics", timeout=10).text
    # The labels pass pushed after the drift pass and did not erase its gauges.
    (drifted,) = [
        s
        for s in series(text, "riskserve_feature_drifted")
        if 'feature="online_order"' in s
    ]
    assert 'model="fraud"' in drifted and 'pass="drift"' in drifted
    assert drifted.endswith(" 1")
    degraded = series(text, "riskserve_model_degraded")
    assert degraded and all('pass="labels"' in s for s in degraded)
    assert series(text, "riskserve_realised_metric")


def test_an_unreachable_pushgateway_is_one_line_and_the_verdict_stands(tmp_path):
    live = fraud_features(2_000, seed=52)
    live["online_order"] = 1.0
    write_log(tmp_path / "log", live)
    profile = fraud_profile().save(tmp_path / "profile.json")
    closed = f"http://127.0.0.1:{free_port()}"
    run = monitor(
        "fraud",
        "--log",
        str(tmp_path / "log"),
        "--reference-data",
        str(profile),
        "--no-mlflow",
        "--no-report",
        "--push",
        closed,
    )
    assert run.returncode == 3  # drift, whatever became of the push
    said = run.stdout + run.stderr
    assert f"could not push the gauges to {closed}" in said
    assert "Traceback" not in said
