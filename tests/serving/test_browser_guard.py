"""Requests a web page makes are refused on the data plane (serving/browser_guard.py);
what programs send passes untouched."""

from __future__ import annotations

import httpx
import pytest
from riskserve.serving.browser_guard import BrowserGuard, from_a_page

from tests.asyncio_runner import run as run_async

pytestmark = pytest.mark.inprocess


class Recorder:
    """The app behind the guard: records what reached it and answers 200."""

    def __init__(self) -> None:
        self.paths: list[str] = []

    async def __call__(self, scope, receive, send) -> None:
        await receive()  # reads the body, as a real app does
        self.paths.append(scope["path"])
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})


def call(app, path: str, headers: dict[str, str]) -> httpx.Response:
    async def one() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://127.0.0.1:8080"
        ) as c:
            return await c.post(path, content=b'{"inputs": []}', headers=headers)

    return run_async(one())


PAGES = {
    "a foreign page's fetch": {"origin": "https://evil.example"},
    "a sandboxed frame": {"origin": "null"},
    "a rebound name (same origin)": {
        "origin": "http://127.0.0.1:8080",
        "sec-fetch-site": "same-origin",
    },
    "a form POST without Origin": {"sec-fetch-site": "cross-site"},
    "a sibling subdomain": {"sec-fetch-site": "same-site"},
    "header case": {"Origin": "http://localhost:3000"},
}


@pytest.mark.parametrize("headers", PAGES.values(), ids=list(PAGES))
def test_what_a_page_sends_is_refused_before_the_app_sees_it(headers) -> None:
    app = Recorder()
    refused: list[int] = []
    guarded = BrowserGuard(app, on_refuse=lambda: refused.append(1))
    response = call(
        guarded, "/v2/models/fraud/infer", {"content-type": "text/plain", **headers}
    )
    assert response.status_code == 403
    assert "web pages are refused" in response.json()["error"]
    assert response.headers["connection"] == "close"
    assert app.paths == []  # never scored, never logged
    assert refused == [1]


PROGRAMS = {
    "curl": {"content-type": "application/json", "user-agent": "curl/8.5"},
    "a typed URL": {"sec-fetch-site": "none"},
    "binary tensors": {"content-type": "application/octet-stream"},
    "no headers at all": {},
}


@pytest.mark.parametrize("headers", PROGRAMS.values(), ids=list(PROGRAMS))
def test_what_programs_send_passes(headers) -> None:
    app = Recorder()
    response = call(BrowserGuard(app), "/v2/models/fraud/infer", headers)
    assert response.status_code == 200
    assert app.paths == ["/v2/models/fraud/infer"]


def test_only_the_paths_it_guards() -> None:
    """The gateway guards /v2 only: the control plane has a guard of its own that lets
    the same origin in."""
    app = Recorder()
    guarded = BrowserGuard(app, applies=lambda path: path.startswith("/v2"))
    page = {"origin": "http://127.0.0.1:8080"}
    assert call(guarded, "/platform/apply", page).status_code == 200
    assert call(guarded, "/v2/models/fraud/infer", page).status_code == 403
    assert app.paths == ["/platform/apply"]


def test_from_a_page_reads_raw_asgi_headers() -> None:
    assert from_a_page([(b"origin", b"")])
    assert from_a_page([(b"sec-fetch-site", b"Cross-Site")])
    assert not from_a_page([(b"sec-fetch-site", b" none ")])
    assert not from_a_page([(b"host", b"evil.example"), (b"referer", b"https://x")])
