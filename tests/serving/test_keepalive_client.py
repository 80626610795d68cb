"""The keep-alive client the gateway and the transformer share, against small asyncio
HTTP servers on loopback that answer as a predictor would, or misbehave."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest
from riskserve.localplatform.processes import free_port
from riskserve.serving.keepalive_client import KeepAliveError, KeepAlivePool, header

from tests.asyncio_runner import run

pytestmark = pytest.mark.inprocess

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter, list[int]], Awaitable]


async def _read_request(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    return head + await reader.readexactly(length)


async def _serve(
    handler: Handler, body: Callable[[KeepAlivePool, list[int]], Awaitable]
):
    """Run `body(pool, connections)` against a server running `handler` per
    connection; `connections` counts the connections the server accepted."""
    connections: list[int] = []

    async def accept(reader, writer):
        connections.append(1)
        try:
            await handler(reader, writer, connections)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(accept, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    pool = KeepAlivePool("127.0.0.1", port, default_headers=[(b"x-key", b"k")])
    try:
        return await body(pool, connections)
    finally:
        pool.close()
        server.close()


async def _echo_forever(reader, writer, _connections) -> None:
    """Answers every request on the connection, with its head echoed back."""
    while True:
        request = await _read_request(reader)
        payload = request.split(b"\r\n\r\n", 1)[0]
        writer.write(
            b"HTTP/1.1 200 OK\r\ndate: now\r\nserver: x\r\nx-riskserve-revision: r1\r\n"
            b"content-length: %d\r\n\r\n" % len(payload) + payload
        )
        await writer.drain()


def test_requests_reuse_one_connection_and_carry_the_default_headers() -> None:
    async def body(pool: KeepAlivePool, connections: list[int]):
        answers = [
            await pool.request("POST", "/v2/models/m/infer", [], b"{}", 1.0)
            for _ in range(3)
        ]
        return answers, len(connections)

    answers, connections = run(_serve(_echo_forever, body))
    assert connections == 1
    status, headers, payload = answers[-1]
    assert status == 200
    assert payload.startswith(b"POST /v2/models/m/infer HTTP/1.1\r\nhost: 127.0.0.1:")
    assert b"\r\nx-key: k\r\n" in payload and b"content-length: 2" in payload
    # The server's own and hop-by-hop headers stay in the client.
    assert headers == [(b"x-riskserve-revision", b"r1")]
    assert header(headers, b"x-riskserve-revision") == b"r1"


def test_a_pooled_connection_the_server_closed_is_replaced_without_an_error() -> None:
    async def one_answer_then_close(reader, writer, _connections) -> None:
        await _read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
        await writer.drain()  # and close, although the answer said keep-alive

    async def body(pool: KeepAlivePool, connections: list[int]):
        first = await pool.request("GET", "/v2/health/ready", [], b"", 1.0)
        await asyncio.sleep(0.05)
        second = await pool.request("GET", "/v2/health/ready", [], b"", 1.0)
        return first, second, len(connections)

    first, second, connections = run(_serve(one_answer_then_close, body))
    assert first[0] == second[0] == 200 and second[2] == b"ok"
    assert connections == 2


def test_a_fresh_connection_that_breaks_is_an_error_and_not_sent_again() -> None:
    async def close_without_answering(reader, writer, _connections) -> None:
        await _read_request(reader)

    async def body(pool: KeepAlivePool, connections: list[int]):
        with pytest.raises(KeepAliveError) as caught:
            await pool.request("POST", "/v2/models/m/infer", [], b"{}", 1.0)
        return caught.value, len(connections)

    error, connections = run(_serve(close_without_answering, body))
    assert connections == 1
    assert not error.connect_failed and not error.timed_out
    assert "closed the connection" in error.message


def test_an_answer_later_than_the_timeout_is_a_timed_out_error() -> None:
    async def slow(reader, writer, _connections) -> None:
        await _read_request(reader)
        await asyncio.sleep(1.0)

    async def body(pool: KeepAlivePool, _connections: list[int]):
        with pytest.raises(KeepAliveError) as caught:
            await pool.request("POST", "/v2/models/m/infer", [], b"{}", 0.1)
        return caught.value

    error = run(_serve(slow, body))
    assert error.timed_out and not error.connect_failed
    assert error.message.endswith("did not answer within 100 ms")


def test_a_port_nobody_listens_on_is_a_connect_failure_naming_the_server() -> None:
    pool = KeepAlivePool("127.0.0.1", free_port(), label="the predictor at here")
    with pytest.raises(KeepAliveError) as caught:
        run(pool.request("GET", "/", [], b"", 1.0))
    assert caught.value.connect_failed
    assert caught.value.message.startswith("cannot connect to the predictor at here: ")


def test_a_chunked_answer_is_read_whole_and_the_connection_kept() -> None:
    async def chunked(reader, writer, _connections) -> None:
        while True:
            await _read_request(reader)
            writer.write(
                b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n"
                b"3\r\nabc\r\n4;ext=1\r\ndefg\r\n0\r\n\r\n"
            )
            await writer.drain()

    async def body(pool: KeepAlivePool, connections: list[int]):
        answers = [await pool.request("GET", "/", [], b"", 1.0) for _ in range(2)]
        return answers, len(connections)

    answers, connections = run(_serve(chunked, body))
    assert [a[2] for a in answers] == [b"abcdefg", b"abcdefg"]
    assert answers[0][1] == [] and connections == 1
