"""Importing the feature layer leaves the environment as it was: Feast's import sets
prometheus_client's multiprocess variables, which every server started afterwards
would inherit."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.inprocess

CHECK = """
import json, os
import riskserve.features
import feast
from prometheus_client import values
print(json.dumps({
    "env": sorted(k for k in os.environ if k.startswith("PROMETHEUS_MULTIPROC")),
    "value_class": values.ValueClass.__name__,
}))
"""


def test_importing_the_feature_layer_leaves_no_multiprocess_variables(tmp_path):
    env = {
        k: v for k, v in os.environ.items() if not k.startswith("PROMETHEUS_MULTIPROC")
    }
    env["TMPDIR"] = str(tmp_path)  # where Feast would make its metrics folder
    done = subprocess.run(
        [sys.executable, "-c", CHECK],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen["env"] == []
    assert seen["value_class"] != "MultiProcessValue"
    # and no /tmp/feast_metrics_* folder, which a SIGKILLed process would leave
    assert list(tmp_path.iterdir()) == []


def test_a_sigkilled_feature_process_leaves_no_folder_behind(tmp_path):
    env = {
        k: v for k, v in os.environ.items() if not k.startswith("PROMETHEUS_MULTIPROC")
    }
    env["TMPDIR"] = str(tmp_path)
    process = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import riskserve.features, time; print(1, flush=True); time.sleep(60)",
        ],
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None and process.stdout.readline().strip() == "1"
    process.kill()
    process.wait(timeout=10)
    assert list(tmp_path.iterdir()) == []


def test_this_test_process_has_none_either():
    # tests/conftest.py imports the feature layer before any test module imports Feast.
    assert not [k for k in os.environ if k.startswith("PROMETHEUS_MULTIPROC")]
