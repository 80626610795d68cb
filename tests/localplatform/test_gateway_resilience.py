"""The gateway with a revision that is alive but never answers (SIGSTOP), deadlines,
and binary tensors forwarded unparsed: real platform daemon, real predictors."""

from __future__ import annotations

import concurrent.futures
import os
import signal
import time

import httpx
import numpy as np
import pytest
import tritonclient.http as triton
from riskserve.localplatform.client import apply_yaml, status, wait_ready
from riskserve.model.specs import FRAUD

from tests.fixtures.contract_models import expected_fraud
from tests.localplatform.platform_helpers import Platform, fraud_request, isvc_yaml

pytestmark = pytest.mark.e2e

TRY_TIMEOUT_S = 0.5


@pytest.fixture
def fast_platform(tmp_path):
    running = Platform(tmp_path / "state")
    running.env["RISKSERVE_GATEWAY_TRY_TIMEOUT_S"] = str(TRY_TIMEOUT_S)
    running.start()
    yield running
    running.stop()


def revision_pids(platform: Platform) -> dict[str, int]:
    return {
        name: revision["pid"]
        for name, revision in status(platform.settings)["revisions"].items()
    }


def revision_ready(platform: Platform, name: str) -> tuple[bool, str]:
    revision = status(platform.settings)["revisions"][name]
    return revision["ready"], revision["reason"]


def answer_all(platform: Platform, requests: int) -> list[tuple[int, float, str]]:
    def one(_):
        started = time.perf_counter()
        response = platform.client.post(
            "/v2/models/fraud/infer", json=fraud_request(), timeout=10
        )
        return (
            response.status_code,
            time.perf_counter() - started,
            response.headers.get("x-riskserve-revision", ""),
        )

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        return list(pool.map(one, range(requests)))


def test_a_hung_canary_costs_one_try_timeout_and_rejoins_when_it_answers(
    fast_platform, model_dirs
):
    apply_yaml(fast_platform.settings, isvc_yaml("fraud", model_dirs["v1"]))
    wait_ready(fast_platform.settings, ["fraud"], 60)
    apply_yaml(fast_platform.settings, isvc_yaml("fraud", model_dirs["v2"], canary=50))
    wait_ready(fast_platform.settings, ["fraud"], 60)
    canary = "fraud-predictor-00002"
    pid = revision_pids(fast_platform)[canary]
    os.kill(pid, signal.SIGSTOP)
    try:
        results = answer_all(fast_platform, 200)
        codes = [code for code, _, _ in results]
        assert codes.count(200) == 200, codes
        assert {revision for _, _, revision in results} == {"fraud-predictor-00001"}
        slowest = max(seconds for _, seconds, _ in results)
        # Only the requests already sent to the canary waited, one try each.
        assert slowest < TRY_TIMEOUT_S + 2.0, slowest
        ready, reason = revision_ready(fast_platform, canary)
        assert not ready and "did not answer" in reason
    finally:
        os.kill(pid, signal.SIGCONT)
    deadline = time.monotonic() + 30
    while not revision_ready(fast_platform, canary)[0]:
        assert time.monotonic() < deadline, revision_ready(fast_platform, canary)
        time.sleep(0.2)
    served = {revision for _, _, revision in answer_all(fast_platform, 100)}
    assert served == {"fraud-predictor-00001", canary}


def test_the_deadline_header_and_the_spec_timeout_bound_a_hung_service(
    fast_platform, model_dirs
):
    apply_yaml(fast_platform.settings, isvc_yaml("fraud", model_dirs["v1"]))
    wait_ready(fast_platform.settings, ["fraud"], 60)
    pid = revision_pids(fast_platform)["fraud-predictor-00001"]
    os.kill(pid, signal.SIGSTOP)
    try:
        started = time.monotonic()
        response = fast_platform.client.post(
            "/v2/models/fraud/infer",
            json=fraud_request(),
            headers={"x-riskserve-timeout-ms": "800"},
        )
        took = time.monotonic() - started
        assert response.status_code == 504
        assert "800 ms" in response.json()["error"]
        assert took < 5, took
        bad = fast_platform.client.post(
            "/v2/models/fraud/infer",
            json=fraud_request(),
            headers={"x-riskserve-timeout-ms": "soon"},
        )
        assert bad.status_code == 400 and "x-riskserve-timeout-ms" in bad.text
    finally:
        os.kill(pid, signal.SIGCONT)
    # `spec.predictor.timeout` (seconds, as KServe) is the default for that service.
    apply_yaml(
        fast_platform.settings,
        isvc_yaml("fraud", model_dirs["v1"], extra="    timeout: 1\n"),
    )
    wait_ready(fast_platform.settings, ["fraud"], 60)
    pid = revision_pids(fast_platform)["fraud-predictor-00002"]
    os.kill(pid, signal.SIGSTOP)
    try:
        response = fast_platform.client.post(
            "/v2/models/fraud/infer", json=fraud_request()
        )
        assert response.status_code == 504 and "1000 ms" in response.json()["error"]
    finally:
        os.kill(pid, signal.SIGCONT)


def test_binary_tensors_pass_through_the_gateway(fast_platform, model_dirs):
    apply_yaml(fast_platform.settings, isvc_yaml("fraud", model_dirs["v1"]))
    wait_ready(fast_platform.settings, ["fraud"], 60)
    rows = np.random.default_rng(5).gamma(2.0, 5.0, (16, 7)).astype(np.float32)
    client = triton.InferenceServerClient(
        f"127.0.0.1:{fast_platform.settings.gateway_port}"
    )
    try:
        inputs = []
        for i, name in enumerate(FRAUD.feature_names):
            tensor = triton.InferInput(name, [16, 1], "FP32")
            tensor.set_data_from_numpy(rows[:, [i]])
            inputs.append(tensor)
        result = client.infer("fraud", inputs)
    finally:
        client.close()
    expected, decided = expected_fraud(rows)
    np.testing.assert_allclose(
        result.as_numpy("fraud_probability"), expected, atol=1e-6
    )
    np.testing.assert_array_equal(result.as_numpy("is_fraud"), decided)
    assert (
        httpx.get(
            f"{fast_platform.settings.gateway_url}/v2/models/fraud/ready"
        ).status_code
        == 200
    )
