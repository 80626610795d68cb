"""The whole loop on real processes: train -> serve with the inference log on ->
drifted traffic -> `riskserve monitor --on-drift retrain --rollout auto` -> a new
version trained as challenger and validated -> (with the development override) an
automatic canary of it, judged; `champion` names the version that serves afterwards,
promoted or rolled back."""

from __future__ import annotations

import json
import os
import random
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
from riskserve.localplatform.client import apply_yaml, wait_ready
from riskserve.model.synthetic import generate
from riskserve.rollout.controller import LocalBackend, Rollout, resolve_model
from riskserve.rollout.settings import RolloutSettings

from tests.localplatform.platform_helpers import FRAUD_FEATURES, Platform, isvc_yaml

# Two training jobs and an automatic rollout: minutes, more on a busy machine.
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(2400)]

REPO = Path(__file__).resolve().parents[2]
REGISTERED = "fraud-loop"  # its own registered model: other tests' aliases stay put
SMALL_JOB = ["--rows", "12000", "--epochs", "2", "--budget", "3", "--candidates", "gbm"]


def drifted_request(rng: random.Random, rows: int = 5) -> dict:
    """Purchases three times the customer's median (the rest as in training)."""
    frame = generate("fraud", rows, rng.randrange(1 << 30))
    frame["ratio_to_median_purchase_price"] *= 3.0
    return {
        "inputs": [
            {
                "name": name,
                "shape": [rows, 1],
                "datatype": "FP32",
                "data": frame[name].astype(float).tolist(),
            }
            for name in FRAUD_FEATURES
        ]
    }


class DriftedTraffic:
    """Drifted requests on the gateway from a thread, bounded in count and time."""

    def __init__(self, url: str) -> None:
        self.url, self.sent, self.codes = url, 0, set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        rng = random.Random(5)
        with httpx.Client(base_url=self.url, timeout=10) as client:
            for _ in range(100_000):
                if self._stop.is_set():
                    return
                response = client.post(
                    "/v2/models/fraud/infer", json=drifted_request(rng)
                )
                self.codes.add(response.status_code)
                self.sent += 1
                self._stop.wait(0.01)

    def __enter__(self) -> DriftedTraffic:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=15)


@pytest.fixture
def served(mlflow_server, tmp_path):
    """fraud-loop v1 trained, registered and served with the inference log on."""
    # A busy machine: the fresh MLflow server may take more than the default 10 s to
    # answer its first artifact listing.
    env = {
        **os.environ,
        **mlflow_server,
        "RISKSERVE_TRAINING_REGISTRY_TIMEOUT_S": "60",
        # Not about approval: v1 is served as champion, which only an approval or the
        # development override gives a draft.
        "RISKSERVE_ROLLOUT_ALLOW_UNAPPROVED": "true",
    }
    job = subprocess.run(
        [
            sys.executable,
            "-m",
            "riskserve.training",
            "fraud",
            "--model-name",
            REGISTERED,
            *SMALL_JOB,
        ],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=1500,
        check=False,
    )
    assert job.returncode == 0, job.stdout[-2000:] + job.stderr[-2000:]
    platform = Platform(tmp_path / "state")
    platform.env.update(mlflow_server)
    platform.env["RISKSERVE_SERVING_INFERENCE_LOG_URI"] = str(tmp_path / "log")
    platform.env["RISKSERVE_SERVING_INFERENCE_LOG_FLUSH_SECONDS"] = "0.3"
    platform.start()
    try:
        settings = RolloutSettings(
            mlflow_tracking_uri=mlflow_server["MLFLOW_TRACKING_URI"]
        )
        champion = resolve_model(f"models:/{REGISTERED}@champion", settings, False)
        apply_yaml(platform.settings, isvc_yaml("fraud", champion.storage_uri))
        wait_ready(platform.settings, ["fraud"], 120)
        yield platform
    finally:
        platform.stop()
        platform.client.close()


def test_drift_retrains_and_rolls_out_the_new_version(served, mlflow_server, tmp_path):
    platform = served
    with DriftedTraffic(platform.settings.gateway_url) as traffic:
        deadline = time.monotonic() + 120
        while traffic.sent < 300 and time.monotonic() < deadline:
            time.sleep(0.5)
    assert traffic.sent >= 300 and traffic.codes == {200}
    time.sleep(1.5)  # the log's last batch is flushed

    retraining_data = generate("fraud", 12_000, seed=3)
    retraining_data["ratio_to_median_purchase_price"] *= 3.0
    retraining_data.to_csv(tmp_path / "recent.csv", index=False)
    env = {
        **os.environ,
        **mlflow_server,
        **platform.env,
        "RISKSERVE_ROLLOUT_MIN_REQUESTS": "10",
        "RISKSERVE_TRAINING_REGISTRY_TIMEOUT_S": "60",
        "RISKSERVE_ROLLOUT_P99_SLACK_MS": "50",
        # The loop validates what it retrained and, without an approval, stops there
        # (tests/monitoring/test_retrain_stops_at_validated.py); the development
        # override lets this test follow the rollout's promotion path.
        "RISKSERVE_ROLLOUT_ALLOW_UNAPPROVED": "true",
    }
    log_before = {p for p in (tmp_path / "log").rglob("*") if p.is_file()}
    command = [
        sys.executable,
        "-m",
        "riskserve",
        "monitor",
        "fraud",
        "--log",
        str(tmp_path / "log"),
        "--registered-model",
        REGISTERED,
        "--on-drift",
        "retrain",
        "--data",
        str(tmp_path / "recent.csv"),
        "--rollout",
        "auto",
        "--training-args",
        " ".join(SMALL_JOB[2:]),
        "--rollout-args",
        "--window 3 --steps 50,100",
    ]
    # The canary is judged on live traffic: keep (drifted) requests coming.
    with DriftedTraffic(platform.settings.gateway_url):
        loop = subprocess.run(
            command, env=env, cwd=REPO, capture_output=True, text=True, timeout=1800
        )
    output = loop.stdout + loop.stderr
    print(output[-4000:])
    assert loop.returncode == 3, output[-3000:]  # drift found; the loop ran
    assert "DRIFT: " in loop.stdout and "ratio_to_median_purchase_price" in loop.stdout
    assert "retraining: -m riskserve.training fraud" in loop.stderr
    assert re.search(rf"registered {REGISTERED} v2 ", loop.stdout + loop.stderr)
    assert f"validating: -m riskserve report {REGISTERED}/2" in loop.stderr
    assert (
        f"rolling out: -m riskserve rollout start fraud --model models:/{REGISTERED}/2"
        in loop.stderr
    )
    decided = re.search(
        r"the new version is promoted|the rollout's gates rolled the new version back",
        loop.stderr,
    )
    assert decided, output[-3000:]

    status = Rollout(LocalBackend(platform.settings), RolloutSettings()).status("fraud")
    assert status.latest_created == "fraud-predictor-00002"
    if decided.group(0).endswith("promoted"):
        assert status.split() == "fraud-predictor-00002 100%"
    else:
        assert status.latest_rolledout == "fraud-predictor-00001"
    # The monitor wrote its report and nothing else into the log folder (beside it:
    # the predictors' published .jsonl files and their spool of records not yet
    # published, <log>/.spool/).
    report = re.search(r"report: (\S+)", loop.stdout).group(1)
    added = {p for p in (tmp_path / "log").rglob("*") if p.is_file()} - log_before
    assert Path(report) in added
    spool = tmp_path / "log" / ".spool"
    assert all(
        p.parent.name == "reports" or p.suffix == ".jsonl" or p.parent == spool
        for p in added
    ), sorted(map(str, added))
    # And the registry holds the retrained version as challenger.
    from mlflow import MlflowClient

    client = MlflowClient(mlflow_server["MLFLOW_TRACKING_URI"])
    challenger = client.get_model_version_by_alias(REGISTERED, "challenger")
    assert challenger.version == "2"
    assert json.loads(json.dumps(challenger.tags))["reference_profile"]
    assert challenger.tags["validation_status"] == "validated"
    champion = client.get_model_version_by_alias(REGISTERED, "champion")
    assert champion.version == ("2" if decided.group(0).endswith("promoted") else "1")
