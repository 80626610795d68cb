"""The serving image as KServe runs it: the ServingRuntime's own arguments, the model
mounted at /mnt/models, UID 10001, a read-only root filesystem, no capabilities."""

from __future__ import annotations

import json

import httpx
import pytest
from riskserve.localplatform.processes import free_port

from tests.images.containers import REPO_ROOT, Container, engine
from tests.images.scanning import scan_image
from tests.images.serving_container import kserve_args, wait_ready

# The first test of a session without the image waits for its build.
pytestmark = [pytest.mark.images, pytest.mark.timeout(1800)]

REQUEST = REPO_ROOT / "tests" / "testdata" / "serving" / "fraud_infer_request.json"


def test_the_runtime_arguments_are_kserves(predictor) -> None:
    container, _ = predictor
    config = json.loads(engine("inspect", container.name).stdout)[0]
    args = config["Args"] if "Args" in config else config["Config"]["Cmd"]
    assert "--model_name=fraud" in args and "--model_dir=/mnt/models" in args
    # The image's own entrypoint, not one the test chose.
    assert config["Config"]["Entrypoint"] in (
        ["python", "-m", "riskserve.serving"],
        "python -m riskserve.serving",
    )


def test_serving_answers_ready_metadata_and_infer(predictor) -> None:
    _, url = predictor
    assert httpx.get(f"{url}/v2/health/live").status_code == 200
    assert httpx.get(f"{url}/v2/models/fraud/ready").status_code == 200
    metadata = httpx.get(f"{url}/v2/models/fraud").json()
    assert metadata["name"] == "fraud" and metadata["versions"] == ["3"]
    assert {i["name"] for i in metadata["inputs"]} >= {"distance_from_home"}
    body = json.loads(REQUEST.read_text())
    answer = httpx.post(f"{url}/v2/models/fraud/infer", json=body)
    assert answer.status_code == 200, answer.text
    outputs = {o["name"]: o for o in answer.json()["outputs"]}
    assert answer.json()["model_name"] == "fraud"
    rows = len(body["inputs"][0]["data"])
    assert outputs and all(len(o["data"]) >= rows for o in outputs.values())


def test_serving_runs_as_10001_read_only_without_capabilities(predictor) -> None:
    container, _ = predictor
    assert container.exec("id", "-u").strip() == "10001"
    # PID 1 is the predictor itself, as that user, with no capability at all.
    status = container.exec("cat", "/proc/1/status")
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    assert fields["Uid"].split()[0] == "10001"
    assert int(fields["CapEff"].strip(), 16) == 0
    assert int(fields["CapBnd"].strip(), 16) == 0
    write = engine("exec", container.name, "touch", "/opt/venv/written", check=False)
    assert write.returncode != 0 and "Read-only file system" in write.stderr


def test_serving_stops_within_5_s_on_sigterm(serving_image, models) -> None:
    http_port, grpc_port = free_port(), free_port()
    container = Container(
        serving_image,
        ["--read-only", "--cap-drop=all", "-v", f"{models / 'fraud'}:/mnt/models:ro"],
        kserve_args("fraud", http_port, grpc_port),
    ).start()
    try:
        wait_ready(f"http://127.0.0.1:{http_port}", container)
        took = container.stop(grace=10)
        print(f"serving image: stopped in {took:.2f} s")
        state = container.state()
        # Exit code 137 would be SIGKILL after the grace period.
        assert state["ExitCode"] == 0, container.logs()[-2000:]
        assert took < 5
    finally:
        container.remove()


def test_serving_image_is_lean_and_holds_no_secret(serving_image) -> None:
    found = scan_image(serving_image)
    assert found["first_party"] == ["riskserve.model", "riskserve.serving"]
    assert found["tensorflow"] == []
    assert found["git"] == [] and found["tests"] == []
    assert found["credentials"] == []
    assert found["broken_commands"] == []
