"""The gateway's own endpoints in one process (no predictor started): the control
API's routes and methods, and its Prometheus metrics."""

from __future__ import annotations

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from riskserve.localplatform.controller import LocalPlatform
from riskserve.localplatform.gateway import Gateway
from riskserve.localplatform.settings import PlatformSettings

from tests.asyncio_runner import run as run_async

pytestmark = pytest.mark.inprocess


@pytest.fixture
def gateway(tmp_path):
    gateway = Gateway(LocalPlatform(PlatformSettings(state_dir=tmp_path), env={}))
    yield gateway
    gateway.apply_worker.close()


def call(gateway: Gateway, method: str, path: str, **kwargs) -> httpx.Response:
    async def one() -> httpx.Response:
        transport = httpx.ASGITransport(app=gateway)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://127.0.0.1:8000"
        ) as c:
            return await c.request(method, path, **kwargs)

    return run_async(one())


def test_control_routes_answer_their_method_and_name_it_otherwise(gateway) -> None:
    assert call(gateway, "GET", "/platform/status").status_code == 200
    assert call(gateway, "GET", "/platform/traffic").json() == {"inferenceservices": {}}
    wrong = call(gateway, "GET", "/platform/apply")
    assert wrong.status_code == 405 and wrong.headers["allow"] == "POST"
    wrong = call(gateway, "DELETE", "/platform/status")
    assert wrong.status_code == 405 and wrong.headers["allow"] == "GET"
    unknown = call(gateway, "POST", "/platform/inferenceservices/nope/patch", json={})
    assert unknown.status_code == 404 and "nope" in unknown.json()["error"]
    bad = call(
        gateway,
        "POST",
        "/platform/apply",
        content=b"\xff\xfe",
        headers={"content-type": "application/yaml"},
    )
    assert bad.status_code == 400 and "UTF-8" in bad.json()["error"]
    assert call(gateway, "GET", "/platform/nothing").status_code == 404


def test_metrics_count_routed_requests_per_revision_and_code(gateway) -> None:
    for status in (200, 200, 503):
        gateway.stats["fraud-predictor-00002"].record(status, 0.002)
    response = call(gateway, "GET", "/metrics")
    assert response.headers["content-type"].startswith("text/plain")
    samples = {
        (s.labels["revision"], s.labels["code"]): s.value
        for family in text_string_to_metric_families(response.text)
        if family.name == "riskserve_gateway_requests"
        for s in family.samples
        if s.name == "riskserve_gateway_requests_total"
    }
    assert samples == {
        ("fraud-predictor-00002", "200"): 2.0,
        ("fraud-predictor-00002", "503"): 1.0,
    }
