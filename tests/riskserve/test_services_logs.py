"""`riskserve services up` and the tests start SeaweedFS many times a day: its log
files belong in the state folder, not in the machine's temporary folder (glog's
default, where every start left six files)."""

from __future__ import annotations

import pytest
from riskserve.localplatform.processes import free_port

from riskserve.services import start_s3
from tests.conftest import TEST_ACCESS_KEY, TEST_SECRET_KEY

pytestmark = pytest.mark.e2e


def test_seaweedfs_writes_its_logs_into_the_state_folder(tmp_path, monkeypatch):
    temporary = tmp_path / "tmp"
    temporary.mkdir()
    monkeypatch.setenv("TMPDIR", str(temporary))  # where glog would write them
    state = tmp_path / "state"
    process, endpoint = start_s3(
        state, free_port(), "logs-probe", TEST_ACCESS_KEY, TEST_SECRET_KEY
    )
    try:
        assert endpoint.bucket == "logs-probe"
        assert list((state / "logs" / "s3").glob("weed.*"))
        assert not list(temporary.glob("weed.*"))
    finally:
        process.stop(grace=2)


def test_seaweedfs_leaves_no_socket_in_tmp_once_stopped(tmp_path):
    """weed puts its gRPC unix sockets at fixed /tmp paths and leaves three behind on
    every stop: the process we started removes its own, by its ports."""
    from riskserve.services import seaweedfs_sockets

    process, _ = start_s3(
        tmp_path / "state",
        free_port(),
        "sockets-probe",
        TEST_ACCESS_KEY,
        TEST_SECRET_KEY,
    )
    sockets = seaweedfs_sockets(process.argv)
    try:
        assert len(sockets) == 4 and any(p.is_socket() for p in sockets), sockets
    finally:
        process.stop(grace=10)
    assert [p for p in sockets if p.exists()] == []


def test_services_down_removes_the_sockets_of_the_weed_it_stops(tmp_path):
    """`riskserve services down` stops SeaweedFS by its pidfile (another process
    started it): it reads the command line first, then removes the sockets."""
    from riskserve.localplatform.settings import PlatformSettings

    from riskserve.local_services import _pidfile, down
    from riskserve.services import seaweedfs_sockets

    settings = PlatformSettings(state_dir=tmp_path / "state")
    pidfile = _pidfile(settings, "s3")
    pidfile.parent.mkdir(parents=True, exist_ok=True)
    process, _ = start_s3(
        tmp_path / "s3",
        free_port(),
        "down-probe",
        TEST_ACCESS_KEY,
        TEST_SECRET_KEY,
        pidfile=pidfile,
    )
    sockets = seaweedfs_sockets(process.argv)
    assert any(p.is_socket() for p in sockets), sockets
    said: list[str] = []
    down(settings, say=said.append)
    assert said == [f"stopping s3 (pid {process.popen.pid})"]
    assert not process.alive()
    assert [p for p in sockets if p.exists()] == []
