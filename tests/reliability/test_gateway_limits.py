"""Slow clients and overload against the platform's gateway (the daemon, for real).

Issue 22 found that 420 connections sending headers a byte a second, against a
descriptor limit of 400, made every normal request fail forever. The gateway now closes
a connection whose head does not arrive within its header timeout, and answers 503
with `Retry-After` beyond its cap of requests in flight.
"""

from __future__ import annotations

import resource
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
from riskserve.localplatform.client import apply_yaml, pidfile, wait_ready
from riskserve.localplatform.processes import read_pidfile

from tests.localplatform.platform_helpers import Platform, fraud_request, isvc_yaml
from tests.reliability.test_slow_clients import (
    _connect,
    _read_until_closed,
    _request_head,
)

DESCRIPTORS = 400
SLOW = 420  # more connections than the daemon may open descriptors
HEADER_TIMEOUT = 1.0


def test_slowloris_beyond_the_descriptor_limit_does_not_lock_the_gateway_out(
    tmp_path, rel_models, ledger
):
    platform = Platform(tmp_path / "state")
    platform.env["RISKSERVE_GATEWAY_HEADER_TIMEOUT_S"] = str(HEADER_TIMEOUT)
    slow = []
    try:
        platform.start()
        settings = platform.settings
        apply_yaml(settings, isvc_yaml("fraud", rel_models["fraud-v1"]))
        wait_ready(settings, ["fraud"], 60)
        daemon = read_pidfile(pidfile(settings))
        resource.prlimit(daemon, resource.RLIMIT_NOFILE, (DESCRIPTORS, DESCRIPTORS))
        port = settings.gateway_port
        head = _request_head(port, "/v2/models/fraud/infer", 100)
        started = time.monotonic()
        for _ in range(SLOW):
            try:
                sock = _connect(port)
                sock.send(head[:1])
                slow.append(sock)
            except OSError:
                break
        # Every slow connection is closed once its header time is up (the kernel
        # accepted them; the ones the daemon could not accept are closed by it once it
        # can, and then meet the same timeout).
        closed = 0
        for sock in slow:
            _, was_closed = _read_until_closed(sock, 6 * HEADER_TIMEOUT)
            closed += was_closed
        cleared_after = time.monotonic() - started
        statuses = [platform.infer().status_code for _ in range(50)]
    finally:
        for sock in slow:
            sock.close()
        platform.stop()
        platform.client.close()
    assert closed == len(slow) and len(slow) == SLOW, (closed, len(slow))
    assert statuses == [200] * 50, statuses
    ledger.attack(
        "slowloris on the gateway",
        f"{SLOW} byte-a-second connections at a descriptor limit of {DESCRIPTORS}: "
        f"all closed within {cleared_after:.1f} s, then 50 of 50 requests 200",
    )


def test_overload_on_the_gateway_is_a_503_with_retry_after(
    tmp_path, rel_models, ledger
):
    cap = 4
    platform = Platform(tmp_path / "state")
    platform.env["RISKSERVE_GATEWAY_MAX_CONCURRENT_REQUESTS"] = str(cap)
    platform.env["RISKSERVE_GATEWAY_BODY_TIMEOUT_S"] = "3"
    held = []
    try:
        platform.start()
        settings = platform.settings
        apply_yaml(settings, isvc_yaml("fraud", rel_models["fraud-v1"]))
        wait_ready(settings, ["fraud"], 60)
        port = settings.gateway_port
        # `cap` requests whose body has not arrived yet hold every slot.
        for _ in range(cap):
            sock = _connect(port)
            sock.send(_request_head(port, "/v2/models/fraud/infer", 1000))
            held.append(sock)
        time.sleep(0.3)
        with httpx.Client(base_url=settings.gateway_url, timeout=10) as client:
            refused = client.post("/v2/models/fraud/infer", json=fraud_request(1))
            health = client.get("/v2/health/live")
        for sock in held:
            sock.close()
        time.sleep(0.3)
        with ThreadPoolExecutor(cap) as pool:
            after = list(pool.map(lambda _: platform.infer().status_code, range(20)))
    finally:
        for sock in held:
            sock.close()
        platform.stop()
        platform.client.close()
    assert refused.status_code == 503, refused.text
    assert refused.headers["retry-after"] == "1"
    assert "error" in refused.json()
    assert health.status_code == 200
    assert after == [200] * 20
    ledger.attack(
        "overload on the gateway",
        f"beyond {cap} requests in flight: 503 with Retry-After: 1, health 200, and "
        "200s again once the slots were free",
    )
