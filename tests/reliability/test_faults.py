"""Faults, each with what the user sees: S3 down while a revision loads, MLflow down
during a training job, a predictor killed under load, the inference log's disk full or
read-only."""

from __future__ import annotations

import collections
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import boto3
import httpx
import pytest
from mlflow import MlflowClient
from riskserve.localplatform.client import apply_yaml, status, wait_ready
from riskserve.localplatform.processes import free_port

from riskserve.services import start_mlflow, start_s3
from tests.localplatform.platform_helpers import Platform, isvc_yaml
from tests.reliability.reliability_helpers import (
    REPO_ROOT,
    SteadyLoad,
    fraud_bodies,
)
from tests.serving.predictor_helpers import start_predictor

ACCESS_KEY, SECRET_KEY = "reliability-test", "reliability-test-secret"
CONNECTIONS = 8


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Variants that only the full pass runs (`--reliability-full`)."""
    full = bool(metafunc.config.getoption("reliability_full", default=False))
    if "s3_fault" in metafunc.fixturenames:
        metafunc.parametrize("s3_fault", ["refused", "hangs"] if full else ["refused"])
    if "mlflow_dies_at" in metafunc.fixturenames:
        stages = ["training", "logging the run"] if full else ["training"]
        metafunc.parametrize("mlflow_dies_at", stages)


def predictor_status(platform: Platform, name: str = "fraud") -> dict:
    (item,) = [
        i
        for i in status(platform.settings)["inferenceservices"]
        if i["metadata"]["name"] == name
    ]
    return item["status"]


def revisions_served(platform: Platform, requests: int) -> collections.Counter:
    served: collections.Counter = collections.Counter()
    for body in fraud_bodies(requests):
        response = platform.client.post(
            "/v2/models/fraud/infer",
            content=body,
            headers={"content-type": "application/json"},
        )
        assert response.status_code == 200, response.text
        served[response.headers["x-riskserve-revision"]] += 1
    return served


class SilentServer:
    """Accepts connections and never answers: an S3 endpoint that hangs."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.held: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.held.append(conn)

    def close(self) -> None:
        self.sock.close()
        for conn in self.held:
            conn.close()


def test_s3_down_while_a_new_revision_loads(tmp_path, rel_models, s3_fault, ledger):
    s3_process, endpoint = start_s3(
        tmp_path / "s3", free_port(), "models", ACCESS_KEY, SECRET_KEY
    )
    silent = None
    platform = Platform(tmp_path / "state")
    try:
        boto3.client(
            "s3",
            endpoint_url=endpoint.url,
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
            region_name="us-east-1",
        ).upload_file(
            str(rel_models["fraud-v2"] / "model.onnx"), "models", "v2/model.onnx"
        )
        env = endpoint.client_env()
        if s3_fault == "hangs":
            silent = SilentServer()
            env["AWS_ENDPOINT_URL"] = f"http://127.0.0.1:{silent.port}"
            platform.env["RISKSERVE_PREDICTOR_READY_TIMEOUT_S"] = "8"
        platform.env.update(env)
        platform.start()
        apply_yaml(platform.settings, isvc_yaml("fraud", rel_models["fraud-v1"]))
        wait_ready(platform.settings, ["fraud"], 60)
        s3_process.stop(grace=2)  # S3 goes away (throwaway data: SIGKILL after 2 s)

        apply_yaml(platform.settings, isvc_yaml("fraud", "s3://models/v2", canary=50))
        served: collections.Counter = collections.Counter()
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            # While it tries to load, the old revision answers everything.
            served += revisions_served(platform, 10)
            revision = status(platform.settings)["revisions"]["fraud-predictor-00002"]
            if revision["failed"]:
                break
            time.sleep(0.2)
        assert revision["failed"] and not revision["ready"], revision
        assert set(served) == {"fraud-predictor-00001"}, served

        st = predictor_status(platform)
        conditions = {c["type"]: c for c in st["conditions"]}
        message = conditions["LatestDeploymentReady"]["message"]
        print(f"S3 {s3_fault}: status says: {message}")
        assert conditions["Ready"]["status"] == "True"
        assert conditions["LatestDeploymentReady"]["status"] == "False"
        assert "fraud-predictor-00002" in message
        if s3_fault == "refused":
            assert "s3://models/v2" in message and "connect" in message.lower()
        else:
            assert "not ready within 8 s" in message
        traffic = {
            t["revisionName"]: t["percent"]
            for t in st["components"]["predictor"]["traffic"]
        }
        assert traffic == {"fraud-predictor-00002": 0, "fraud-predictor-00001": 100}
        assert revisions_served(platform, 50) == {"fraud-predictor-00001": 50}
        ledger.fault_note(
            f"test_s3_down_while_a_new_revision_loads[{s3_fault}]",
            f"S3 {s3_fault}: old revision served {sum(served.values())} of "
            f"{sum(served.values())} requests; status: {message[:90]}",
        )
    finally:
        platform.stop()
        platform.client.close()
        s3_process.stop()
        if silent is not None:
            silent.close()


# -- MLflow down during a training job ----------------------------------------------------
def run_training(args: list[str], env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "riskserve.training", *args],
        env={**os.environ, **env},
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def registry_state(database: Path, name: str) -> tuple[list[str], dict[str, str]]:
    """Versions and aliases of `name`, read from MLflow's own SQLite store (so no
    server has to be started again to look)."""
    with sqlite3.connect(database) as db:
        versions = sorted(
            str(v)
            for (v,) in db.execute(
                "SELECT version FROM model_versions WHERE name = ?", (name,)
            )
        )
        aliases = dict(
            (alias, str(version))
            for alias, version in db.execute(
                "SELECT alias, version FROM registered_model_aliases WHERE name = ?",
                (name,),
            )
        )
    return versions, aliases


def test_mlflow_down_during_a_training_job(tmp_path, s3_server, mlflow_dies_at, ledger):
    port, state = free_port(), tmp_path / "mlflow"
    server_env = {**os.environ, **s3_server.client_env()}
    artifacts = f"s3://{s3_server.bucket}/reliability-{port}"
    mlflow, url = start_mlflow(state, port, artifacts, server_env)
    job_env = {**s3_server.client_env(), "MLFLOW_TRACKING_URI": url}
    name = "reliability-credit"
    args = ["credit", "--rows", "20000", "--model-name", name]
    try:
        # What a previous job left: version 1, champion and challenger.
        client = MlflowClient(tracking_uri=url)
        client.create_registered_model(name)
        client.create_model_version(name, f"{artifacts}/earlier/model")
        for alias in ("champion", "challenger"):
            client.set_registered_model_alias(name, alias, "1")
        before = registry_state(state / "mlflow.db", name)
        assert before == (["1"], {"champion": "1", "challenger": "1"}), before

        job = run_training(args, job_env)
        seen = []
        for line in job.stdout:
            seen.append(line)
            if mlflow_dies_at in line:
                mlflow.stop(grace=2)  # MLflow goes away mid-job
                break
        assert not mlflow.alive(), f"the job never reached {mlflow_dies_at!r}: {seen}"
        started = time.monotonic()
        out, err = job.communicate(timeout=180)
        took = time.monotonic() - started
        lines = err.strip().splitlines()
        print(
            f"MLflow down at {mlflow_dies_at!r}: exit {job.returncode} after "
            f"{took:.1f} s; stderr: {lines[-1] if lines else ''}"
        )
        assert job.returncode == 1, (job.returncode, err[-2000:])
        assert "Traceback" not in err, err[-3000:]
        assert lines and lines[-1].startswith(f"riskserve train {name}: error:")
        assert "nothing was registered" in lines[-1]
        assert "MLflow" in lines[-1] or url in lines[-1], lines[-1]
        assert took < 90

        # Nothing registered, no alias moved.
        assert registry_state(state / "mlflow.db", name) == before
        ledger.fault_note(
            f"test_mlflow_down_during_a_training_job[{mlflow_dies_at}]",
            f"exit 1 in {took:.0f} s: {lines[-1][:100]}",
        )
    finally:
        mlflow.stop()


# -- a predictor killed under load ---------------------------------------------------------
def test_predictor_killed_under_load_fails_only_in_flight_and_rejoins(
    tmp_path, rel_models, budget, ledger
):
    platform = Platform(tmp_path / "state").start()
    try:
        settings = platform.settings
        apply_yaml(settings, isvc_yaml("fraud", rel_models["fraud-v1"]))
        wait_ready(settings, ["fraud"], 60)
        apply_yaml(settings, isvc_yaml("fraud", rel_models["fraud-v2"], canary=30))
        wait_ready(settings, ["fraud"], 60)
        stable = "fraud-predictor-00001"  # the rolled-out revision, 70% of traffic
        old_pid = status(settings)["revisions"][stable]["pid"]

        seconds = 12.0
        load = SteadyLoad(
            settings.gateway_port,
            "/v2/models/fraud/infer",
            fraud_bodies(),
            budget.soak_rate,
            seconds,
            connections=CONNECTIONS,
        ).start()
        time.sleep(3)
        os.kill(old_pid, signal.SIGKILL)
        killed_at = time.monotonic()
        rejoined_after = None
        while time.monotonic() < killed_at + 60:
            revision = status(settings)["revisions"][stable]
            if revision["ready"] and revision["pid"] not in (None, old_pid):
                rejoined_after = time.monotonic() - killed_at
                break
            time.sleep(0.2)
        samples = load.join()
        failed = [s for s in samples if s.status != 200]
        after_kill = collections.Counter(
            s.revision for s in samples if s.offset > 3 + (rejoined_after or 0) + 1
        )
        print(
            f"killed {stable} under load: {len(failed)} of {len(samples)} failed; "
            f"rejoined after {rejoined_after} s; served after: {dict(after_kill)}"
        )
        assert rejoined_after is not None, "the killed revision did not come back"
        assert len(failed) <= CONNECTIONS, f"{len(failed)} failed: {failed[:10]}"
        assert len(samples) >= 0.95 * budget.soak_rate * seconds
        # It serves its share again.
        served = revisions_served(platform, 300)
        assert served["fraud-predictor-00001"] >= 150, served
        assert served["fraud-predictor-00002"] >= 50, served
        ledger.fault_note(
            "test_predictor_killed_under_load_fails_only_in_flight_and_rejoins",
            f"{len(failed)} of {len(samples)} requests failed, ready again after "
            f"{rejoined_after:.1f} s",
        )
    finally:
        platform.stop()
        platform.client.close()


# -- the inference log's disk full or read-only ---------------------------------------------
def mount_tmpfs(path: Path, options: str) -> None:
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)],
        check=True,
        capture_output=True,
    )


def fill(path: Path) -> Path:
    filler = path / "filler"
    descriptor = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        while True:
            os.write(descriptor, b"\0" * 4096)
    except OSError:
        pass  # ENOSPC: the disk is full
    finally:
        os.close(descriptor)
    return filler


def metrics_of(url: str) -> dict[str, float]:
    text = httpx.get(f"{url}/metrics", timeout=5).text
    wanted = {
        "riskserve_inference_log_written_total": 0.0,
        "riskserve_inference_log_dropped_total": 0.0,
        "riskserve_inference_log_write_errors_total": 0.0,
    }
    for line in text.splitlines():
        name = line.split(" ")[0].split("{")[0]
        if name in wanted:
            wanted[name] += float(line.rsplit(" ", 1)[1])
    return wanted


@pytest.mark.parametrize("disk", ["full", "read-only"])
def test_inference_log_disk_full_or_read_only(
    tmp_path, rel_models, rel_logs, disk, ledger
):
    if os.geteuid() != 0:
        pytest.fail("mounting a small tmpfs for the inference log needs root")
    # A private folder, not tmp_path: a concurrent pytest session may rename old
    # basetemps, and a mount must not move under us.
    mount = Path(tempfile.mkdtemp(prefix="riskserve-log-disk-"))
    mount_tmpfs(mount, "size=256k" if disk == "full" else "size=1m,ro")
    predictor = None
    try:
        filler = fill(mount) if disk == "full" else None
        predictor = start_predictor(
            rel_logs,
            f"log-disk-{disk}",
            "fraud",
            rel_models["fraud-v1"],
            env={
                "RISKSERVE_SERVING_INFERENCE_LOG_URI": str(mount / "log"),
                "RISKSERVE_SERVING_INFERENCE_LOG_FLUSH_SECONDS": "0.2",
            },
        )
        bodies = fraud_bodies(300)

        def send(count: int) -> int:
            answered = 0
            for body in bodies[:count]:
                response = predictor.client.post(
                    "/v2/models/fraud/infer",
                    content=body,
                    headers={"content-type": "application/json"},
                )
                assert response.status_code == 200, response.text  # inference goes on
                answered += 1
                if answered % 50 == 0:
                    time.sleep(0.25)  # several batches, several failed writes
            return answered

        answered = send(300)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            seen = metrics_of(predictor.url)
            if sum(seen.values()) >= answered:
                break
            time.sleep(0.2)
        errors = seen["riskserve_inference_log_write_errors_total"]
        log_text = predictor.process.log_path.read_text()
        print(f"inference log on a {disk} disk: {seen}")
        assert errors > 0 and seen["riskserve_inference_log_written_total"] == 0
        assert log_text.count("inference log write failed") == 1, log_text[-2000:]

        # The disk recovers: writes resume, and that is logged once too.
        if filler is not None:
            filler.unlink()
        else:
            subprocess.run(
                ["mount", "-o", "remount,rw", str(mount)],
                check=True,
                capture_output=True,
            )
        answered += send(100)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            seen = metrics_of(predictor.url)
            if sum(seen.values()) >= answered:
                break
            time.sleep(0.2)
        log_text = predictor.process.log_path.read_text()
        written = seen["riskserve_inference_log_written_total"]
        assert written > 0
        assert log_text.count("inference log writes recovered") == 1
        on_disk = sum(
            len(p.read_bytes().splitlines()) for p in (mount / "log").rglob("*.jsonl")
        )
        assert on_disk == written
        counted = errors + seen["riskserve_inference_log_dropped_total"]
        ledger.record_count(f"log disk {disk}", answered, int(written), int(counted))
        assert written + counted == answered
        ledger.fault_note(
            f"test_inference_log_disk_full_or_read_only[{disk}]",
            f"{answered} of {answered} answered, {int(errors)} records counted as "
            "write errors, one log line, writes resumed",
        )
    finally:
        if predictor is not None:
            predictor.stop()
        subprocess.run(["umount", str(mount)], check=False, capture_output=True)
        if not os.path.ismount(mount):
            shutil.rmtree(mount, ignore_errors=True)
