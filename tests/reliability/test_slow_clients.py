"""Slow clients and overload against a real predictor process.

Slowloris: connections that send their headers a byte a second are closed after the
header timeout, and so is a body that stalls, while normal requests keep getting 200.
Overload: beyond the cap of concurrent requests (or of in-flight body bytes) the
answer is a 503 with Retry-After, while the health probes still answer 200.
"""

from __future__ import annotations

import json
import socket
import threading
import time

import httpx
import pytest

from tests.localplatform.platform_helpers import fraud_request
from tests.serving.predictor_helpers import start_predictor

SLOW_CONNECTIONS = 60
HEADER_TIMEOUT = 1.0
BODY_TIMEOUT = 1.5


def _connect(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def _read_until_closed(sock: socket.socket, timeout: float) -> tuple[bytes, bool]:
    """What the server sent, and whether it closed the connection within `timeout`."""
    sock.settimeout(timeout)
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except TimeoutError:
        return data, False
    except ConnectionResetError:
        pass
    return data, True


def _request_head(port: int, path: str, length: int) -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nhost: 127.0.0.1:{port}\r\n"
        f"content-type: application/json\r\ncontent-length: {length}\r\n\r\n"
    ).encode()


@pytest.fixture
def limited_predictor(rel_models, rel_logs, request):
    env = {
        "RISKSERVE_SERVING_HTTP_HEADER_TIMEOUT_SECONDS": str(HEADER_TIMEOUT),
        "RISKSERVE_SERVING_HTTP_BODY_TIMEOUT_SECONDS": str(BODY_TIMEOUT),
        **getattr(request, "param", {}),
    }
    predictor = start_predictor(
        rel_logs,
        f"limits-{request.node.name}",
        "fraud",
        rel_models["fraud-v1"],
        env=env,
    )
    yield predictor
    predictor.stop()


def test_slowloris_connections_are_closed_and_normal_requests_go_on(
    limited_predictor, ledger
):
    name = "test_slowloris_connections_are_closed_and_normal_requests_go_on"
    ledger.fault_outcome(name, False)
    port = limited_predictor.http_port
    head = _request_head(port, "/v2/models/fraud/infer", 100)
    slow = [_connect(port) for _ in range(SLOW_CONNECTIONS)]
    silent = _connect(port)  # connects and sends nothing
    closed_at: dict[int, float] = {}
    started = time.monotonic()
    stop = threading.Event()

    def trickle() -> None:
        # One byte a second on every connection, until the server closes it.
        for offset in range(len(head)):
            for k, sock in enumerate(slow):
                if k in closed_at:
                    continue
                try:
                    sock.send(head[offset : offset + 1])
                except OSError:
                    closed_at[k] = time.monotonic() - started
            if stop.wait(1.0) or len(closed_at) == len(slow):
                return

    trickler = threading.Thread(target=trickle)
    trickler.start()
    statuses = []
    body = fraud_request(1)
    try:
        with httpx.Client(base_url=limited_predictor.url, timeout=5) as client:
            deadline = time.monotonic() + 4 * HEADER_TIMEOUT
            while time.monotonic() < deadline:
                statuses.append(
                    client.post("/v2/models/fraud/infer", json=body).status_code
                )
                time.sleep(0.02)
        answers = []
        for sock in slow:
            answer, closed = _read_until_closed(sock, 3 * HEADER_TIMEOUT)
            answers.append((answer.split(b"\r\n", 1)[0], closed))
        silent_answer, silent_closed = _read_until_closed(silent, 3 * HEADER_TIMEOUT)
    finally:
        stop.set()
        trickler.join()
        for sock in [*slow, silent]:
            sock.close()
    assert all(status == 200 for status in statuses), statuses
    assert all(closed for _, closed in answers), answers
    assert {line for line, _ in answers} == {b"HTTP/1.1 408 Request Timeout"}
    assert silent_closed and silent_answer == b""  # nothing started: closed silently
    metrics = httpx.get(f"{limited_predictor.url}/metrics").text
    assert (
        f'riskserve_http_timeouts_total{{phase="header"}} {SLOW_CONNECTIONS + 1}.0'
        in (metrics)
    ), [m for m in metrics.splitlines() if "timeouts" in m]
    ledger.fault_outcome(name, True)
    ledger.fault_note(
        name,
        f"{SLOW_CONNECTIONS} one-byte-a-second connections closed (408) after "
        f"{HEADER_TIMEOUT:.0f} s; {len(statuses)} of {len(statuses)} normal requests 200",
    )


def test_a_stalled_body_is_closed_and_keep_alive_is_not(limited_predictor):
    port = limited_predictor.http_port
    stalled = _connect(port)
    stalled.sendall(_request_head(port, "/v2/models/fraud/infer", 1000) + b'{"in')
    started = time.monotonic()
    answer, closed = _read_until_closed(stalled, 5 * BODY_TIMEOUT)
    waited = time.monotonic() - started
    stalled.close()
    assert closed and answer.startswith(b"HTTP/1.1 408"), answer
    assert BODY_TIMEOUT * 0.9 <= waited < BODY_TIMEOUT + 2, waited

    # An idle keep-alive connection outlives the header timeout: the keep-alive
    # timeout (65 s) rules between requests, and a new request head starts the clock.
    with httpx.Client(base_url=limited_predictor.url, timeout=5) as client:
        body = fraud_request(1)
        first = client.post("/v2/models/fraud/infer", json=body)
        time.sleep(HEADER_TIMEOUT * 2)
        second = client.post("/v2/models/fraud/infer", json=body)
        assert first.status_code == second.status_code == 200
        assert first.extensions["network_stream"] is second.extensions["network_stream"]


@pytest.mark.parametrize(
    "limited_predictor",
    [
        {
            "RISKSERVE_SERVING_MAX_CONCURRENT_REQUESTS": "4",
            "RISKSERVE_SERVING_MAX_IN_FLIGHT_BODY_BYTES": "1000000",
            "RISKSERVE_SERVING_RETRY_AFTER_SECONDS": "2",
            "RISKSERVE_SERVING_HTTP_BODY_TIMEOUT_SECONDS": "30",
        }
    ],
    indirect=True,
)
def test_overload_is_a_503_with_retry_after_and_health_stays_up(
    limited_predictor, ledger
):
    name = "test_overload_is_a_503_with_retry_after_and_health_stays_up"
    ledger.fault_outcome(name, False)
    port = limited_predictor.http_port
    path = "/v2/models/fraud/infer"
    url = limited_predictor.url
    body = fraud_request(1)
    # Four requests in flight, each waiting for a body that does not come.
    held = [_connect(port) for _ in range(4)]
    for sock in held:
        sock.sendall(_request_head(port, path, 500) + b"{")
    time.sleep(0.3)
    try:
        refused = httpx.post(f"{url}{path}", json=body, timeout=5)
        assert refused.status_code == 503, refused.text
        assert refused.headers["retry-after"] == "2"
        assert "limit of 4 requests" in refused.json()["error"]
        assert refused.headers["connection"] == "close"  # its body is not read
        for probe in ("/v2/health/live", "/v2/health/ready", "/v2/models/fraud/ready"):
            assert httpx.get(f"{url}{probe}", timeout=5).status_code == 200, probe
        assert httpx.get(f"{url}/metrics", timeout=5).status_code == 200
    finally:
        for sock in held:
            sock.close()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        if httpx.post(f"{url}{path}", json=body, timeout=5).status_code == 200:
            break
        time.sleep(0.1)
    else:
        raise AssertionError("requests were still refused once the load was gone")

    # In-flight body bytes: one request declaring 900 kB is let in and held; another
    # declaring 200 kB would go above 1 MB and is refused; a small one still passes.
    big = _connect(port)
    big.sendall(_request_head(port, path, 900_000) + b"{")
    time.sleep(0.3)
    try:
        over = httpx.post(
            f"{url}{path}",
            content=json.dumps(body).encode().ljust(200_000),
            headers={"content-type": "application/json"},
            timeout=5,
        )
        assert over.status_code == 503, over.text
        assert "bytes of request bodies" in over.json()["error"]
        assert httpx.post(f"{url}{path}", json=body, timeout=5).status_code == 200
    finally:
        big.close()
    metrics = httpx.get(f"{url}/metrics").text
    assert 'riskserve_http_rejected_total{limit="requests"} 1.0' in metrics
    assert 'riskserve_http_rejected_total{limit="body_bytes"} 1.0' in metrics
    ledger.fault_outcome(name, True)
    ledger.fault_note(
        name,
        "5th concurrent request and a body over the in-flight bytes: 503 with "
        "Retry-After; health and readiness 200 throughout",
    )
