"""The platform daemon killed with SIGKILL: its predictors do not outlive it, and a
predictor that did (started without the death signal) is stopped by the next `down`,
which leaves every process that is not provably one of its predictors alone."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from riskserve.localplatform.client import (
    apply_yaml,
    pidfile,
    status,
    stop_daemon,
    wait_ready,
)
from riskserve.localplatform.orphans import state_path
from riskserve.localplatform.processes import (
    free_port,
    pid_alive,
    port_open,
    read_pidfile,
)
from riskserve.localplatform.state import InferenceServiceState, PlatformState, Revision

from tests.localplatform.platform_helpers import REPO_ROOT, Platform, isvc_yaml
from tests.serving.predictor_helpers import start_predictor


def wait_gone(pids: list[int], timeout: float) -> float | None:
    """Seconds until none of `pids` runs (a zombie counts as gone); None on timeout."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if not any(pid_alive(pid) for pid in pids):
            return time.monotonic() - started
        time.sleep(0.02)
    return None


def children_of(pid: int) -> list[int]:
    """The PIDs whose parent is `pid`, from /proc."""
    children = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            children.append(int(stat.parent.name))
    return children


def test_daemon_sigkill_takes_its_predictors_with_it(tmp_path, rel_models, ledger):
    log_dir = tmp_path / "inference-log"
    platform = Platform(tmp_path / "state")
    platform.env["RISKSERVE_SERVING_INFERENCE_LOG_URI"] = str(log_dir)
    # Nothing is published on its own before the crash: what reaches the log after
    # it was written on the predictors' way out, or before the answer left.
    platform.env["RISKSERVE_SERVING_INFERENCE_LOG_FLUSH_SECONDS"] = "300"
    platform.start()
    settings = platform.settings
    try:
        apply_yaml(settings, isvc_yaml("fraud", rel_models["fraud-v1"]))
        apply_yaml(settings, isvc_yaml("credit", rel_models["credit"]))
        wait_ready(settings, ["fraud", "credit"], 60)
        revisions = status(settings)["revisions"].values()
        predictors = {r["pid"]: r["httpPort"] for r in revisions if r["pid"]}
        assert len(predictors) == 2 and all(map(pid_alive, predictors))
        answered = sum(platform.infer("fraud").status_code == 200 for _ in range(20))
        assert answered == 20
        daemon = read_pidfile(pidfile(settings))
        assert daemon is not None
        # Every other child of the daemon too: the YAML worker of its applies and
        # multiprocessing's resource tracker.
        helpers = [pid for pid in children_of(daemon) if pid not in predictors]
        assert helpers, "the applies above started no YAML worker"

        os.kill(daemon, signal.SIGKILL)
        gone_after = wait_gone(list(predictors), timeout=10)
        survivors = [pid for pid in predictors if pid_alive(pid)]
        assert gone_after is not None, f"predictors outlived the daemon: {survivors}"
        assert wait_gone(helpers, timeout=10) is not None, [
            Path(f"/proc/{pid}/cmdline").read_bytes()[:120]
            for pid in helpers
            if pid_alive(pid)
        ]
        assert not any(port_open(settings.host, port) for port in predictors.values())
        # Each stopped as on a clean `down` (SIGTERM, not SIGKILL), and the decisions
        # it answered are in its inference log.
        for log in (tmp_path / "state" / "platform" / "logs").glob("*.log"):
            assert "Finished server process" in log.read_text(), log.name
        logged = sum(len(p.read_bytes().splitlines()) for p in log_dir.rglob("*.jsonl"))
        ledger.record_count("daemon SIGKILLed", answered, logged, 0)
        assert logged == answered
        # Nothing left for `down` to do, and it says so.
        shutdown = stop_daemon(settings)
        assert not shutdown.daemon_stopped and shutdown.orphans_stopped == ()

        # `up` after the crash serves the same services again.
        platform.start()
        wait_ready(settings, ["fraud", "credit"], 60)
        assert platform.infer("fraud").status_code == 200
        ledger.fault_note(
            "test_daemon_sigkill_takes_its_predictors_with_it",
            f"daemon SIGKILLed: its {len(predictors)} predictors gone after "
            f"{gone_after:.2f} s (SIGTERM from the kernel), `down` had nothing left "
            "to stop, `up` served again",
        )
    finally:
        platform.stop()
        platform.client.close()


def test_down_stops_orphaned_predictors_and_only_those(tmp_path, rel_models, ledger):
    """A predictor left by a daemon that could not take it along (no PR_SET_PDEATHSIG:
    started here, by the test, as the controller starts one, minus the death signal)
    is stopped by `riskserve down`. Two PIDs the state file also lists are not ours
    and stay: a `sleep` that reused a predictor's PID, and another platform's
    predictor on another port."""
    logs = tmp_path / "logs"
    orphan = start_predictor(logs, "orphan", "fraud", rel_models["fraud-v1"])
    neighbour = start_predictor(logs, "neighbour", "fraud", rel_models["fraud-v1"])
    stranger = subprocess.Popen(["sleep", "60"], start_new_session=True)
    env = {
        **os.environ,
        "RISKSERVE_STATE_DIR": str(tmp_path / "state"),
        "RISKSERVE_GATEWAY_PORT": str(free_port()),
        "RISKSERVE_GATEWAY_GRPC_PORT": str(free_port()),
    }
    platform = Platform(tmp_path / "state")

    def revision(number: int, pid: int, http_port: int) -> Revision:
        return Revision(
            name=f"fraud-predictor-{number:05d}",
            storage_uri=str(rel_models["fraud-v1"]),
            predictor={},
            spec_hash=f"{number}",
            ready=True,
            pid=pid,
            http_port=http_port,
        )

    def down() -> str:
        done = subprocess.run(
            [sys.executable, "-m", "riskserve", "down"],
            env=env,
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout.strip()

    try:
        PlatformState(
            {
                "fraud": InferenceServiceState(
                    name="fraud",
                    spec={"predictor": {}},
                    revisions=[
                        revision(1, orphan.process.pid, orphan.http_port),
                        revision(2, stranger.pid, free_port()),
                        revision(3, neighbour.process.pid, free_port()),
                    ],
                )
            }
        ).save(state_path(platform.settings))

        started = time.monotonic()
        said = down()
        took = time.monotonic() - started
        assert said == (
            "the platform was not running; stopped 1 orphaned predictor "
            f"(PID {orphan.process.pid})"
        )
        assert not pid_alive(orphan.process.pid)
        assert not port_open("127.0.0.1", orphan.http_port)
        assert stranger.poll() is None, "a process that is not ours was stopped"
        assert neighbour.infer({}).status_code == 400  # alive and answering
        assert down() == "the platform was not running"
        ledger.fault_note(
            "test_down_stops_orphaned_predictors_and_only_those",
            f"`down` after a crash: {said!r} in {took:.1f} s; a reused PID and "
            "another platform's predictor left running",
        )
    finally:
        stranger.kill()
        stranger.wait()
        orphan.stop()
        neighbour.stop()
        platform.client.close()
