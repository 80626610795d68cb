"""Shared fixtures: real servers started as processes on free loopback ports."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import pytest
from riskserve.localplatform.processes import free_port

from riskserve.services import S3Endpoint, start_mlflow, start_s3

REPO_ROOT = Path(__file__).resolve().parent.parent

# Before any test module imports Feast directly: the feature layer imports it without
# leaving prometheus_client's multiprocess variables in os.environ, where every server
# a test starts would inherit them (riskserve/features/__init__.py says more).
with contextlib.suppress(ModuleNotFoundError):  # an image without the feature layer
    import riskserve.features  # noqa: F401

# Every test belongs to one layer, so that `-m inprocess` (make test-fast) and the
# others select what they say; tests/reliability marks its own by folder.
LAYERS = ("inprocess", "training", "e2e", "browser", "k8s", "images", "reliability")


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list) -> None:
    unmarked = [
        item.nodeid
        for item in items
        if not any(item.get_closest_marker(layer) for layer in LAYERS)
    ]
    if unmarked:
        raise pytest.UsageError(
            f"{len(unmarked)} tests carry no layer marker (one of {', '.join(LAYERS)}): "
            + ", ".join(unmarked[:5])
        )


# Test-only credentials of the loopback SeaweedFS, which enforces them.
TEST_ACCESS_KEY = "riskserve-test"
TEST_SECRET_KEY = "riskserve-test-secret"


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory) -> S3Endpoint:
    state = tmp_path_factory.mktemp("s3")
    process, endpoint = start_s3(
        state, free_port(), "mlflow", TEST_ACCESS_KEY, TEST_SECRET_KEY
    )
    yield endpoint
    # SeaweedFS takes up to 30 s to stop on SIGTERM; its data dir is throwaway, so
    # after a 2 s grace it gets SIGKILL.
    process.stop(grace=2)


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory, s3_server: S3Endpoint) -> dict[str, str]:
    """A real `mlflow server` whose artifacts live in the loopback S3 bucket.

    Returns the environment a client (training job, predictor) needs to reach it.
    """
    state = tmp_path_factory.mktemp("mlflow")
    env = {**os.environ, **s3_server.client_env()}
    process, url = start_mlflow(
        state, free_port(), f"s3://{s3_server.bucket}/artifacts", env
    )
    yield {**s3_server.client_env(), "MLFLOW_TRACKING_URI": url}
    process.stop()
