"""The images, built once per session by images/build.sh (cached layers make a rebuild
seconds), each only when a test needs it: serving and app first, training last."""

from __future__ import annotations

import time

import pytest
from riskserve.localplatform.processes import free_port

from tests.fixtures.contract_models import fraud_model, write_onnx
from tests.images.containers import Container, build, image_ref
from tests.images.serving_container import kserve_args, wait_ready


@pytest.fixture(scope="session")
def built(request):
    """A function: build(name) -> image reference, built at most once this session."""
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    done: dict[str, str] = {}

    def progress(line: str) -> None:
        # A cold build takes minutes: its lines reach the terminal as they come, past
        # pytest's capture of the fixture's output.
        if reporter is None:
            return
        if capture is None:
            reporter.write_line(f"[images] {line}")
            return
        with capture.global_and_fixture_disabled():
            reporter.write_line(f"[images] {line}")

    def need(name: str) -> str:
        if name not in done:
            started = time.monotonic()
            build([name], progress)
            progress(f"{name}: ready after {time.monotonic() - started:.0f} s")
            done[name] = image_ref(name)
        return done[name]

    return need


@pytest.fixture(scope="session")
def serving_image(built) -> str:
    return built("serving")


@pytest.fixture(scope="session")
def app_image(built) -> str:
    return built("app")


@pytest.fixture(scope="session")
def training_image(built) -> str:
    return built("training")


@pytest.fixture(scope="session")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("image-models")
    write_onnx(fraud_model(version="3"), root / "fraud")
    # The container's user (10001) reads the mounted model as KServe's storage
    # initializer leaves it: world-readable.
    for path in [root, *root.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    return root


@pytest.fixture(scope="session")
def predictor(serving_image, models):
    http_port, grpc_port = free_port(), free_port()
    container = Container(
        serving_image,
        [
            "--read-only",
            "--cap-drop=all",
            "--security-opt=no-new-privileges",
            "-v",
            f"{models / 'fraud'}:/mnt/models:ro",
        ],
        kserve_args("fraud", http_port, grpc_port),
    ).start()
    url = f"http://127.0.0.1:{http_port}"
    try:
        ready = wait_ready(url, container)
        print(f"serving image: ready {ready:.2f} s after `run`")
        yield container, url
    finally:
        container.remove()


@pytest.fixture(scope="session")
def transformer_image(built) -> str:
    return built("transformer")
