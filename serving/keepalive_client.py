"""Pooled keep-alive HTTP/1.1 to one server: the gateway's hop to a revision
(`localplatform/upstream.py`) and the transformer's hop to its predictor
(`transformer/predictor_client.py`).

httpx costs more per request than the predictor spends scoring it; both hops send one
request shape to one kind of server, so a pool of asyncio streams with just enough
HTTP/1.1 (content-length or chunked answers) is all it takes. It lives beside the
predictor because both rooms may import from it and neither may import the other; it
imports nothing of the predictor.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Sequence

Connection = tuple[asyncio.StreamReader, asyncio.StreamWriter]
Headers = list[tuple[bytes, bytes]]
# Hop-by-hop and per-server headers: read here, never handed back to the caller
# (the gateway forwards what it gets and sets its own content-length).
_DROPPED = frozenset({b"date", b"server", b"keep-alive"})


class KeepAliveError(Exception):
    """The server could not be reached, did not answer in time, or closed the
    connection without answering.

    `connect_failed`: no connection could be made, so the request was provably not
    processed. `timed_out`: it was sent but not answered within the timeout. Neither:
    the connection broke while the request was in flight.
    """

    def __init__(
        self, message: str, connect_failed: bool, timed_out: bool = False
    ) -> None:
        super().__init__(message)
        self.message = message
        self.connect_failed = connect_failed
        self.timed_out = timed_out


class KeepAlivePool:
    """Idle keep-alive connections to `host:port` (at most `max_idle` kept).

    A request on a pooled connection the server had closed meanwhile is sent once
    more on a fresh one; a request on a fresh connection is never retried here.
    `label` names the server in error messages; `default_headers` go on every
    request (an `authorization` header, say).
    """

    def __init__(
        self,
        host: str,
        port: int,
        *,
        max_idle: int = 64,
        connect_timeout: float = 2.0,
        label: str | None = None,
        default_headers: Sequence[tuple[bytes, bytes]] = (),
    ) -> None:
        self.host, self.port = host, port
        self.label = label or f"{host}:{port}"
        self.connect_timeout = connect_timeout
        self._idle: deque[Connection] = deque()
        self._max_idle = max_idle
        # The request head up to the caller's headers, encoded once.
        self._head = b"host: " + f"{host}:{port}".encode() + b"\r\n"
        for name, value in default_headers:
            self._head += name + b": " + value + b"\r\n"

    async def _connect(self) -> Connection:
        try:
            async with asyncio.timeout(self.connect_timeout):
                return await asyncio.open_connection(self.host, self.port)
        except (OSError, TimeoutError) as exc:
            raise KeepAliveError(
                f"cannot connect to {self.label}: {exc or type(exc).__name__}", True
            ) from None

    async def request(
        self,
        method: str,
        target: str,
        headers: Headers,
        body: bytes,
        timeout: float,
    ) -> tuple[int, Headers, bytes]:
        """(status, the answer's end-to-end headers, body)."""
        reused = bool(self._idle)
        reader, writer = self._idle.pop() if reused else await self._connect()
        head = [method.encode(), b" ", target.encode(), b" HTTP/1.1\r\n", self._head]
        for name, value in headers:
            head.append(name + b": " + value + b"\r\n")
        head.append(b"content-length: %d\r\n\r\n" % len(body))
        head.append(body)
        try:
            # asyncio.timeout, not wait_for: on Python 3.11 wait_for wraps the read in
            # a task of its own, a cost on every request of the hop.
            async with asyncio.timeout(timeout):
                writer.write(b"".join(head))
                status, response_headers, payload, keep = await read_response(reader)
        except TimeoutError:  # before OSError, of which it is a subclass
            writer.close()
            raise KeepAliveError(
                f"{self.label} did not answer within {timeout * 1000:.0f} ms",
                False,
                timed_out=True,
            ) from None
        except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
            writer.close()
            if reused:
                # A pooled connection the server had closed: once more, fresh.
                return await self.request(method, target, headers, body, timeout)
            raise KeepAliveError(
                f"{self.label} closed the connection: {exc!r}", False
            ) from None
        if keep and len(self._idle) < self._max_idle:
            self._idle.append((reader, writer))
        else:
            writer.close()
        return status, response_headers, payload

    def close(self) -> None:
        while self._idle:
            _, writer = self._idle.pop()
            writer.close()


def header(headers: Headers, name: bytes) -> bytes | None:
    """The first value of `name` (lower case) among an answer's headers."""
    for key, value in headers:
        if key == name:
            return value
    return None


async def read_response(
    reader: asyncio.StreamReader,
) -> tuple[int, Headers, bytes, bool]:
    """(status, end-to-end headers, body, whether the connection stays open)."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split(b" ", 2)[1])
    headers: Headers = []
    length, chunked, keep = None, False, True
    for line in lines[1:]:
        if not line:
            continue
        name, _, value = line.partition(b":")
        name, value = name.strip().lower(), value.strip()
        if name == b"content-length":
            length = int(value)
        elif name == b"transfer-encoding":
            chunked = b"chunked" in value.lower()
        elif name == b"connection":
            keep = value.lower() != b"close"
        elif name not in _DROPPED:
            headers.append((name, value))
    if chunked:
        parts = []
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            if size == 0:
                await reader.readuntil(b"\r\n")
                break
            parts.append(await reader.readexactly(size))
            await reader.readexactly(2)
        body = b"".join(parts)
    elif length is not None:
        body = await reader.readexactly(length)
    else:
        body = await reader.read()
        keep = False
    return status, headers, body, keep
