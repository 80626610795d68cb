"""Requests from web pages are refused on the v2 data plane.

The v2 API is for programs (a card network's switch, a checkout's backend, the app's
server side, `curl`): none of them sends `Origin` or `Sec-Fetch-Site`, which browsers
add to every request a page makes and which a page cannot remove. Without this guard a
page the operator opens (any site, or a site that rebinds its own name to 127.0.0.1)
can POST a "simple" request (`text/plain`, no CORS preflight) to a predictor, the
gateway or a transformer on loopback: it cannot read the answer, but the request is
scored, logged as live traffic (drift, retraining) and, through a transformer, moves
the card's or customer's state. So a request is refused with 403, before its body is
read, when it carries

- `Origin` (any value, `null` included): a page's fetch, XHR or form POST; a same-site
  page too (no page is served by these ports, so only DNS rebinding makes one "same
  origin");
- or `Sec-Fetch-Site` other than `none` (`none` is a URL the user typed: a GET of
  `/v2/health/ready` in the address bar still works).

Browser clients belong behind a backend (as the app's are); the control plane
(`/platform/*`) has its own guard with keys (`riskserve.localplatform.control_guard`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from riskserve.serving.http_limits import ASGIApp, Receive, Scope, Send

REFUSED_BODY = (
    b'{"error":"requests from web pages are refused: the v2 API is for programs; '
    b'call it from a backend (the request carried Origin or Sec-Fetch-Site)"}'
)


def from_a_page(headers: list[tuple[bytes, bytes]]) -> bool:
    """True when a browser made this request on a page's behalf."""
    for key, value in headers:
        if key == b"origin":
            return True
        if key == b"sec-fetch-site" and value.strip().lower() != b"none":
            return True
    return False


class BrowserGuard:
    """An ASGI wrapper answering 403 to requests a page made (see the module's
    docstring); `applies(path)` picks the paths it guards (all by default)."""

    def __init__(
        self,
        app: ASGIApp,
        applies: Callable[[str], bool] | None = None,
        on_refuse: Callable[[], None] | None = None,
        headers: list[tuple[bytes, bytes]] | None = None,
    ) -> None:
        self.app = app
        self.applies = applies
        self.on_refuse = on_refuse
        self._headers: list[tuple[bytes, bytes]] = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(REFUSED_BODY)).encode()),
            (b"connection", b"close"),
            *(headers or []),
        ]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> Any:
        if (
            scope["type"] == "http"
            and from_a_page(scope["headers"])
            and (self.applies is None or self.applies(scope["path"]))
        ):
            if self.on_refuse is not None:
                self.on_refuse()
            # The body is not read; the connection is closed after the answer so it
            # is not read as a next request either.
            await send(
                {"type": "http.response.start", "status": 403, "headers": self._headers}
            )
            await send({"type": "http.response.body", "body": REFUSED_BODY})
            return None
        return await self.app(scope, receive, send)
