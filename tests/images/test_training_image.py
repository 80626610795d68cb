"""The training image: its own command (`python -m riskserve.training --help`), and one tiny
training run in it against the loopback MLflow server and S3 store of tests/conftest.py,
as the training Job runs it (UID 10001, read-only root, /tmp writable)."""

from __future__ import annotations

import urllib.request

import pytest
from mlflow.tracking import MlflowClient

from tests.images.containers import run_once
from tests.images.scanning import scan_image

# The first test of a session without the image waits for its build (~10 min cold).
pytestmark = [pytest.mark.images, pytest.mark.timeout(1800)]

RESTRICTED = ["--read-only", "--tmpfs", "/tmp", "--cap-drop=all"]


def test_the_training_image_runs_its_help(training_image) -> None:
    # No command: the image's own CMD.
    result = run_once(training_image, RESTRICTED, [])
    assert result.returncode == 0, result.stderr[-2000:]
    assert "usage: riskserve train" in result.stdout
    assert "--promote-if-better" in result.stdout


def test_the_drift_cronjobs_command_and_the_cli_run_in_the_training_image(
    training_image,
) -> None:
    # The chart's drift-monitor CronJob runs `python -m riskserve.monitoring` in this image.
    monitor = run_once(
        training_image, RESTRICTED, ["python", "-m", "riskserve.monitoring", "--help"]
    )
    assert monitor.returncode == 0, monitor.stderr[-2000:]
    assert "--reference-data" in monitor.stdout
    cli = run_once(training_image, RESTRICTED, ["riskserve", "--help"])
    assert cli.returncode == 0, cli.stderr[-2000:]
    assert "train" in cli.stdout and "monitor" in cli.stdout


def test_a_tiny_training_run_in_the_image_registers_a_model(
    training_image, mlflow_server
) -> None:
    # The server's first artifact listing starts its S3 client; on a loaded machine that
    # can outlast the job's 10 s check, which is about the job, not this image.
    tracking = mlflow_server["MLFLOW_TRACKING_URI"]
    listing = f"{tracking}/api/2.0/mlflow-artifacts/artifacts?path="
    with urllib.request.urlopen(listing, timeout=120) as answer:  # noqa: S310
        answer.read()
    env = []
    for key, value in mlflow_server.items():
        env += ["-e", f"{key}={value}"]
    name = "image-fraud"
    result = run_once(
        training_image,
        [*RESTRICTED, *env],
        [
            "python",
            "-m",
            "riskserve.training",
            "fraud",
            "--rows",
            "2000",
            "--candidates",
            "dnn",
            "--epochs",
            "1",
            "--budget",
            "1",
            "--model-name",
            name,
            "--experiment",
            "image-test",
        ],
        timeout=900,
    )
    assert result.returncode == 0, (result.stdout[-3000:], result.stderr[-3000:])
    client = MlflowClient(tracking)
    versions = client.search_model_versions(f"name='{name}'")
    assert len(versions) == 1
    # The DNN candidate ran in TensorFlow inside the image and was exported to ONNX.
    run = client.get_run(versions[0].run_id)
    assert run.data.tags.get("mlflow.runName") or run.info.run_id
    assert "dnn" in result.stdout


def test_the_training_image_has_tensorflow_and_no_secret(training_image) -> None:
    found = scan_image(training_image)
    assert found["first_party"] == [
        "riskserve.cli",
        "riskserve.governance",
        "riskserve.model",
        "riskserve.monitoring",
        "riskserve.training",
    ]
    assert any("/tensorflow" in p for p in found["tensorflow"])
    assert found["git"] == [] and found["tests"] == []
    assert found["credentials"] == []
    assert found["broken_commands"] == []
