"""A small keep-alive HTTP/1.1 client for the gateway's hop to a predictor.

httpx costs more per request than the predictor itself spends; the gateway's hop is
one request shape to one kind of server on loopback, so a pooled asyncio stream with
just enough HTTP/1.1 (content-length or chunked responses) is all it takes.
"""

from __future__ import annotations

import asyncio
from collections import deque


class UpstreamError(Exception):
    """The predictor could not be reached, or closed the connection without answering.

    `connect_failed` is True when no connection could be made, so the request was
    provably not processed; `timed_out` when it was sent but not answered in time. The
    gateway retries inference on another revision either way (it is a pure function of
    its input).
    """

    def __init__(
        self, message: str, connect_failed: bool, timed_out: bool = False
    ) -> None:
        super().__init__(message)
        self.connect_failed = connect_failed
        self.timed_out = timed_out


class UpstreamPool:
    """Idle keep-alive connections to one predictor."""

    def __init__(self, host: str, port: int, max_idle: int = 64) -> None:
        self.host, self.port = host, port
        self._idle: deque[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = deque()
        self._max_idle = max_idle

    async def _connect(self):
        try:
            return await asyncio.wait_for(
                asyncio.open_connection(self.host, self.port), timeout=2.0
            )
        except (OSError, TimeoutError) as exc:
            raise UpstreamError(
                f"cannot connect to {self.host}:{self.port}: {exc}", True
            ) from None

    async def request(
        self,
        method: str,
        target: str,
        headers: list[tuple[bytes, bytes]],
        body: bytes,
        timeout: float = 30.0,
    ) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        reused = bool(self._idle)
        reader, writer = self._idle.pop() if reused else await self._connect()
        head = [
            f"{method} {target} HTTP/1.1\r\nhost: {self.host}:{self.port}\r\n".encode()
        ]
        for name, value in headers:
            head.append(name + b": " + value + b"\r\n")
        head.append(b"content-length: %d\r\n\r\n" % len(body))
        try:
            writer.write(b"".join(head) + body)
            status, response_headers, payload, keep = await asyncio.wait_for(
                _read_response(reader), timeout
            )
        except TimeoutError:  # before OSError, of which it is a subclass
            writer.close()
            raise UpstreamError(
                f"{self.host}:{self.port} did not answer within {timeout * 1000:.0f} ms",
                False,
                timed_out=True,
            ) from None
        except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
            writer.close()
            if reused:
                # A pooled connection the server had closed: try once on a fresh one.
                return await self.request(method, target, headers, body, timeout)
            raise UpstreamError(
                f"{self.host}:{self.port} closed the connection: {exc!r}", False
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


async def _read_response(reader: asyncio.StreamReader):
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split(b" ", 2)[1])
    headers = []
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
        elif name not in (b"date", b"server", b"keep-alive"):
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
