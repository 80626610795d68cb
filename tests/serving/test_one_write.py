"""The predictor's HTTP protocol writes a response's head and body in one write."""

from __future__ import annotations

import asyncio

import pytest
import uvicorn
from riskserve.serving.http_limits import HttpTimeouts, timeout_protocol
from uvicorn.server import ServerState

from tests.asyncio_runner import run as run_async

pytestmark = pytest.mark.inprocess

REQUEST = (
    b"POST /v2/models/fraud/infer HTTP/1.1\r\nhost: x\r\ncontent-length: 2\r\n\r\n{}"
)


class Transport(asyncio.Transport):
    """Records every write; never pauses."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []
        self.closed = False
        self.closed_by_server = False  # before the test drops the connection

    def write(self, data: bytes) -> None:  # type: ignore[override]
        self.writes.append(bytes(data))

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def get_extra_info(self, name: str, default: object = None) -> object:
        return {"peername": ("127.0.0.1", 5000), "sockname": ("127.0.0.1", 8080)}.get(
            name, default
        )

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


async def _answer(app, one_write: bool, request: bytes = REQUEST) -> Transport:  # noqa: ANN001
    config = uvicorn.Config(app, lifespan="off", access_log=False, log_config=None)
    config.load()
    protocol = timeout_protocol(HttpTimeouts(), one_write=one_write)(
        config=config, server_state=ServerState(), app_state={}
    )
    transport = Transport()
    protocol.connection_made(transport)
    protocol.data_received(request)
    for _ in range(20):
        await asyncio.sleep(0)
    transport.closed_by_server = transport.closed
    protocol.connection_lost(None)
    return transport


async def _json_app(scope, receive, send) -> None:  # noqa: ANN001
    await receive()
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", b"2"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": b"{}"})


def test_head_and_body_go_out_in_one_write() -> None:
    one = run_async(_answer(_json_app, one_write=True))
    two = run_async(_answer(_json_app, one_write=False))
    assert len(one.writes) == 1 and len(two.writes) == 2
    # The same bytes, uvicorn's own head (date header aside).
    assert one.writes[0].startswith(b"HTTP/1.1 200 OK\r\n")
    assert one.writes[0].endswith(b"\r\n\r\n{}")
    assert b"".join(two.writes).endswith(b"\r\n\r\n{}")
    assert not one.closed_by_server  # keep-alive


def test_a_streamed_body_and_connection_close_still_arrive() -> None:
    async def streaming(scope, receive, send) -> None:  # noqa: ANN001
        await receive()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"a", "more_body": True})
        await send({"type": "http.response.body", "body": b"b"})

    transport = run_async(
        _answer(
            streaming,
            one_write=True,
            request=REQUEST.replace(b"host: x", b"host: x\r\nconnection: close"),
        )
    )
    data = b"".join(transport.writes)
    assert len(transport.writes) == 2  # head + first chunk, then the last chunk
    assert b"transfer-encoding: chunked" in data
    assert data.endswith(b"1\r\na\r\n1\r\nb\r\n0\r\n\r\n")
    assert transport.closed_by_server


def test_an_app_failing_before_its_answer_still_gets_uvicorns_500() -> None:
    async def failing(scope, receive, send) -> None:  # noqa: ANN001
        raise RuntimeError("boom")

    transport = run_async(_answer(failing, one_write=True))
    assert len(transport.writes) == 1
    assert transport.writes[0].startswith(b"HTTP/1.1 500 ")
    assert transport.writes[0].endswith(b"Internal Server Error")


def test_nothing_is_written_for_a_client_gone_before_the_body() -> None:
    gone = asyncio.Event()
    failures: list[BaseException] = []

    async def slow(scope, receive, send) -> None:  # noqa: ANN001
        await receive()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await gone.wait()
        try:
            await send({"type": "http.response.body", "body": b"late"})
        except BaseException as error:  # noqa: BLE001 - the test reports it
            failures.append(error)
            raise

    async def scenario() -> Transport:
        config = uvicorn.Config(slow, lifespan="off", access_log=False, log_config=None)
        config.load()
        protocol = timeout_protocol(HttpTimeouts(), one_write=True)(
            config=config, server_state=ServerState(), app_state={}
        )
        transport = Transport()
        protocol.connection_made(transport)
        protocol.data_received(REQUEST)
        for _ in range(10):
            await asyncio.sleep(0)
        protocol.connection_lost(None)  # the client went away after the head
        gone.set()
        for _ in range(10):
            await asyncio.sleep(0)
        return transport

    transport = run_async(scenario())
    assert transport.writes == [] and failures == []
