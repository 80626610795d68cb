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
