"""A training job's console carries its own progress, not other libraries' noise a
user cannot act on: no TensorFlow oneDNN banner, no MLflow "View run ... at: URL"
links, no warning about CUDA providers on a CPU-only machine. Checked on the steps
that printed them: TensorFlow imported as the fraud job imports it, and an ONNX model
logged, registered and its run ended against a real MLflow server."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.training.conftest import REPO_ROOT

pytestmark = pytest.mark.e2e

REGISTER = """
import mlflow
import numpy as np

import riskserve.training.fraud_model  # TensorFlow, as the fraud job imports it
from riskserve.model.specs import FRAUD
from riskserve.training import registry
from tests.fixtures.contract_models import fraud_model
from riskserve.training.settings import TrainingSettings

TrainingSettings().apply_client_limits()
mlflow.set_experiment("quiet-output")
inputs = {name: np.ones((3, 1), np.float32) for name in FRAUD.feature_names}
outputs = {
    "fraud_probability": np.full(3, 0.1, np.float32),
    "is_fraud": np.zeros(3, bool),
}
with mlflow.start_run(run_name="quiet"):
    version = registry.log_and_register_onnx(
        fraud_model(), "quiet-fraud", inputs, outputs, {"model_kind": "fraud"}
    )
print(f"registered quiet-fraud v{version}")
"""

# The variables the fix sets: the test sees the code's defaults, not the runner's.
QUIETING = (
    "TF_CPP_MIN_LOG_LEVEL",
    "TF_ENABLE_ONEDNN_OPTS",
    "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT",
    "MLFLOW_LOGGING_LEVEL",
)


def test_registering_prints_no_run_links_cuda_warning_or_onednn_banner(
    mlflow_server,
):
    env = {k: v for k, v in os.environ.items() if k not in QUIETING}
    done = subprocess.run(
        [sys.executable, "-c", REGISTER],
        env={**env, **mlflow_server},
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-3000:]
    assert "registered quiet-fraud v" in done.stdout
    assert "View run" not in output and "View experiment" not in output, output
    assert "CUDAExecutionProvider" not in output, output
    assert "oneDNN" not in output and "absl::InitializeLog" not in output, output
