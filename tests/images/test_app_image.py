"""The app image as the Deployment runs it: its own command, GRADIO_SERVER_PORT, a
read-only root with /tmp writable, UID 10001, against the serving image's predictor."""

from __future__ import annotations

import time

import httpx
import pytest
from riskserve.localplatform.processes import free_port

from tests.images.containers import Container
from tests.images.scanning import scan_image

# The first test of a session without the image waits for its build.
pytestmark = [pytest.mark.images, pytest.mark.timeout(1800)]


def wait_page(url: str, container: Container, timeout: float = 120) -> float:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return time.monotonic() - container.started
        except httpx.HTTPError:
            pass
        if not container.state().get("Running", False):
            break
        time.sleep(0.25)
    raise AssertionError(f"the app never served its page:\n{container.logs()[-3000:]}")


def test_the_app_serves_its_page_against_a_predictor_and_stops_on_sigterm(
    app_image, predictor
) -> None:
    _, predictor_url = predictor
    port = free_port()
    container = Container(
        app_image,
        [
            "--read-only",
            "--tmpfs",
            "/tmp",
            "--cap-drop=all",
            "--security-opt=no-new-privileges",
            "-e",
            f"RISKSERVE_APP_FRAUD_URL={predictor_url}",
            "-e",
            f"RISKSERVE_APP_CREDIT_URL={predictor_url}",
            "-e",
            f"GRADIO_SERVER_PORT={port}",
        ],
    ).start()
    try:
        url = f"http://127.0.0.1:{port}"
        ready = wait_page(f"{url}/", container)
        print(f"app image: page served {ready:.1f} s after `run`")
        page = httpx.get(f"{url}/")
        assert "riskserve analyst" in page.text
        # The fraud tab's status line, read from the predictor's metadata at start.
        config = httpx.get(f"{url}/config").text
        assert "fraud model `fraud`" in config and "version 3" in config, config[:2000]
        assert container.exec("id", "-u").strip() == "10001"

        took = container.stop(grace=10)
        print(f"app image: stopped in {took:.2f} s")
        state = container.state()
        assert state["ExitCode"] == 0, container.logs()[-2000:]
        assert took < 5
        assert "SIGTERM received, stopping" in container.logs()
    finally:
        container.remove()


def test_app_image_has_no_tensorflow_nor_secret(app_image) -> None:
    found = scan_image(app_image)
    assert found["first_party"] == ["riskserve.app", "riskserve.model"]
    assert found["tensorflow"] == []
    assert found["git"] == [] and found["tests"] == []
    assert found["credentials"] == []
    assert found["broken_commands"] == []
