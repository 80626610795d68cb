"""Limits for an HTTP server on uvicorn + httptools: slow clients and overload.

Two independent pieces, generic (no model, no metric of their own: callers pass hooks),
so the predictor and the local platform's gateway use the same ones:

- `timeout_protocol(HttpTimeouts(...))`: a uvicorn protocol class (pass it as
  `uvicorn.Config(http=...)`) that closes a connection whose request head does not
  arrive in time, or whose request body stalls. uvicorn has a keep-alive timeout but
  none for reading a request, so a client sending its headers a byte a second holds a
  descriptor forever, and a few hundred of them exhaust the process's descriptors.
- `ConcurrencyLimit(app, ...)`: an ASGI wrapper answering 503 with `Retry-After`,
  without reading the body, once too many requests (or too many declared body bytes)
  are in flight. uvicorn's own `limit_concurrency` is not used: it counts idle
  keep-alive connections as load and answers without `Retry-After`.

    config = uvicorn.Config(
        ConcurrencyLimit(app, max_requests=256, max_body_bytes=1 << 30),
        http=timeout_protocol(HttpTimeouts(header_seconds=10, body_seconds=30)),
        ...
    )
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from uvicorn._types import ASGISendEvent
from uvicorn.protocols.http.httptools_impl import (
    HttpToolsProtocol,
    RequestResponseCycle,
)

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict]]
Send = Callable[[dict], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


# -- read timeouts ----------------------------------------------------------------------
@dataclass(frozen=True)
class HttpTimeouts:
    header_seconds: float = 10.0
    """A request head (request line and headers) must be complete this long after the
    connection opened (its first request) or after its first byte arrived (later
    requests: between requests the keep-alive timeout rules, as before)."""

    body_seconds: float = 30.0
    """A request body may send nothing for at most this long (measured only while the
    server is reading it, not while flow control has paused reading)."""

    on_timeout: Callable[[str], None] | None = None
    """Called with "header" or "body" for each connection closed (e.g. a counter)."""


def timeout_protocol(
    timeouts: HttpTimeouts, one_write: bool = False
) -> type[HttpToolsProtocol]:
    """A subclass of uvicorn's httptools protocol enforcing `timeouts`, for
    `uvicorn.Config(http=...)` (uvicorn instantiates the class per connection).

    `one_write`: a response's head is held until its first body message and both go
    out in one `transport.write` (see `OneWriteCycle`); for apps that send the body
    right after the head (the predictor), not for a proxy streaming a slow upstream.
    """
    return type(
        "TimeoutHttpToolsProtocol",
        (TimeoutHttpToolsProtocol,),
        {"timeouts": timeouts, "one_write": one_write},
    )


class _Captured:
    """Stands in for the transport while uvicorn's `send` formats one message."""

    __slots__ = ("chunks", "closed")

    def __init__(self) -> None:
        self.chunks: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        self.chunks.append(data)

    def close(self) -> None:
        self.closed = True


class OneWriteCycle(RequestResponseCycle):
    """uvicorn's request/response cycle, writing a response's head together with its
    first body message: one `transport.write` (one send syscall, one TCP segment for a
    small answer) instead of uvicorn's two. The head is formatted by uvicorn itself
    (same checks, same bytes): its `send` writes into a `_Captured` stand-in, and the
    bytes reach the real transport with the next body message. Later body messages
    (streaming) are written as they come.
    """

    _head: bytes = b""

    async def send(self, message: ASGISendEvent) -> None:
        transport = self.transport
        captured = _Captured()
        self.transport = captured  # type: ignore[assignment]
        try:
            await super().send(message)
        finally:
            self.transport = transport
        if message["type"] == "http.response.start":
            self._head = b"".join(captured.chunks)
            return
        if self.disconnected:
            return  # the client went away: uvicorn wrote nothing, nor does this
        data = b"".join([self._head, *captured.chunks])
        self._head = b""
        if data:
            transport.write(data)
        if captured.closed:
            transport.close()


_TIMEOUT_BODY = b'{"error":"the request did not arrive in time"}'
_TIMEOUT_RESPONSE = (
    b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\n"
    b"content-length: " + str(len(_TIMEOUT_BODY)).encode() + b"\r\n"
    b"connection: close\r\n\r\n" + _TIMEOUT_BODY
)


class TimeoutHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a header-read and a body-idle timeout.

    One deadline per connection and at most one timer: the parser callbacks only move
    the deadline (a float), and the timer re-arms itself when it fires early, so a busy
    keep-alive connection costs a `loop.time()` per request, not a timer.
    Use `timeout_protocol()` to set the timeouts.
    """

    timeouts: ClassVar[HttpTimeouts] = HttpTimeouts()
    one_write: ClassVar[bool] = False

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._deadline: float | None = None
        self._phase = "header"
        self._timer: asyncio.TimerHandle | None = None
        self._request_begun = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._expect("header")

    def connection_lost(self, exc: Exception | None) -> None:
        self._deadline = None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._request_begun = True
        if self._deadline is None:
            self._expect("header")

    def on_headers_complete(self) -> None:
        super().on_headers_complete()
        if self.one_write and self.cycle is not None:
            # uvicorn builds its RequestResponseCycle in on_headers_complete with no
            # hook for the class; the cycle's app task has not started yet.
            self.cycle.__class__ = OneWriteCycle
        # Cleared at once by on_message_complete when the request has no body.
        self._expect("body")

    def on_body(self, body: bytes) -> None:
        self._deadline = self.loop.time() + self.timeouts.body_seconds
        super().on_body(body)

    def on_message_complete(self) -> None:
        self._deadline = None
        self._request_begun = False
        super().on_message_complete()

    def _expect(self, phase: str) -> None:
        seconds = (
            self.timeouts.header_seconds
            if phase == "header"
            else self.timeouts.body_seconds
        )
        self._phase = phase
        self._deadline = self.loop.time() + seconds
        if self._timer is None:
            self._timer = self.loop.call_at(self._deadline, self._check_deadline)

    def _check_deadline(self) -> None:
        self._timer = None
        deadline = self._deadline
        if deadline is None or self.transport.is_closing():
            return
        now = self.loop.time()
        if self._phase == "body" and self.flow.read_paused:
            # The server stopped reading (the app has not taken the body yet): the
            # client is not the slow one.
            deadline = self._deadline = now + self.timeouts.body_seconds
        if now < deadline:
            self._timer = self.loop.call_at(deadline, self._check_deadline)
            return
        self._deadline = None
        if self.timeouts.on_timeout is not None:
            self.timeouts.on_timeout(self._phase)
        cycle = self.cycle
        responding = cycle is not None and cycle.response_started
        if self._request_begun and not responding:
            # Part of a request came: say why. A connection that sent nothing is
            # closed silently, as on a keep-alive timeout.
            self.transport.write(_TIMEOUT_RESPONSE)
        self.transport.close()


# -- concurrency -------------------------------------------------------------------------
def is_health_or_metrics(path: str) -> bool:
    """The v2 health and readiness probes and /metrics: exempt from the caps, so an
    overloaded process is seen as busy, not as dead."""
    return (
        path in ("/v2/health/live", "/v2/health/ready", "/metrics")
        or path.startswith("/v2/models/")
        and path.endswith("/ready")
    )


class ConcurrencyLimit:
    """An ASGI wrapper capping the requests one process handles at once.

    Beyond `max_requests` in flight, or when the declared bodies (Content-Length) of
    the requests in flight would go above `max_body_bytes`, the answer is a 503 with
    `Retry-After: retry_after_seconds` and `{"error": ...}`, sent without reading the
    body; when the request has a body the connection is closed after the answer, so
    it is not read either. One request is always let in, whatever its size (the app's
    own body limit bounds it). Requests for which `exempt(path)` is true are never
    refused nor counted. A body without Content-Length (chunked) counts as 0 bytes:
    the app's own limit on a body's size still applies to it.
    """

    def __init__(
        self,
        app: ASGIApp,
        max_requests: int,
        max_body_bytes: int | None = None,
        retry_after_seconds: int = 1,
        exempt: Callable[[str], bool] = is_health_or_metrics,
        on_reject: Callable[[str], None] | None = None,
        headers: Sequence[tuple[bytes, bytes]] = (),
    ) -> None:
        self.app = app
        self.max_requests = max_requests
        self.max_body_bytes = max_body_bytes
        self.retry_after_seconds = retry_after_seconds
        self.exempt = exempt
        self.on_reject = on_reject
        """Called with "requests" or "body_bytes" for each refused request."""
        self.in_flight = 0
        self.in_flight_body_bytes = 0
        self._headers = [
            (b"content-type", b"application/json"),
            (b"retry-after", str(retry_after_seconds).encode()),
            *headers,
        ]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self.exempt(scope["path"]):
            await self.app(scope, receive, send)
            return
        declared, has_body = 0, False
        for key, value in scope["headers"]:
            if key == b"content-length":
                declared = int(value) if value.isdigit() else 0
                has_body = declared > 0
            elif key == b"transfer-encoding":
                has_body = True
        if self.in_flight >= self.max_requests:
            await self._reject(send, "requests", has_body)
            return
        limit = self.max_body_bytes
        if (
            limit is not None
            and declared
            and self.in_flight
            and self.in_flight_body_bytes + declared > limit
        ):
            await self._reject(send, "body_bytes", has_body)
            return
        self.in_flight += 1
        self.in_flight_body_bytes += declared
        try:
            await self.app(scope, receive, send)
        finally:
            self.in_flight -= 1
            self.in_flight_body_bytes -= declared

    async def _reject(self, send: Send, limit: str, has_body: bool) -> None:
        if self.on_reject is not None:
            self.on_reject(limit)
        what = (
            f"{self.max_requests} requests"
            if limit == "requests"
            else f"{self.max_body_bytes} bytes of request bodies"
        )
        body = (
            b'{"error":"the server is at its limit of '
            + what.encode()
            + b" in flight; retry after "
            + str(self.retry_after_seconds).encode()
            + b' s"}'
        )
        headers = [*self._headers, (b"content-length", str(len(body)).encode())]
        if has_body:
            headers.append((b"connection", b"close"))
        await send({"type": "http.response.start", "status": 503, "headers": headers})
        await send({"type": "http.response.body", "body": body})
