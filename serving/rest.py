"""v2 REST transport: a small raw ASGI app over the data plane.

No framework: routing is a split of the path, bodies are parsed and written with orjson,
and small requests are scored on the event loop. This is what keeps one single-row
request well under a millisecond of server time (docs/benchmarks.md has the numbers).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

import orjson
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    generate_latest,
    multiprocess,
)
from riskserve.serving.binary_tensors import (
    HEADER_LENGTH,
    OCTET_STREAM,
    encode_outputs,
    response_body,
)
from riskserve.serving.dataplane import DataPlane
from riskserve.serving.errors import InvalidInput, ModelNotFound, ServingError
from riskserve.serving.infer_request import parse_infer_request

Scope = dict
Receive = Callable[[], Awaitable[dict]]
Send = Callable[[dict], Awaitable[None]]

JSON = b"application/json"
# A fraud row in v2 JSON is about 60 bytes (a credit row ten times that): the body's
# size stands in for its rows when the data plane chooses loop or worker thread.
JSON_BYTES_PER_ROW = 64


class MethodNotAllowed(ServingError):
    status = 405
    grpc_code = "UNIMPLEMENTED"

    def __init__(self, message: str, allowed: str) -> None:
        super().__init__(message)
        self.allowed = allowed


class ClientDisconnected(Exception):
    """The client went away (or was cut off by a read timeout) before its body came:
    nothing is scored, logged or answered."""


class RestApp:
    def __init__(
        self,
        dataplane: DataPlane,
        max_body_bytes: int,
        revision: str | None = None,
        multiprocess_metrics: bool = False,
    ) -> None:
        self.dataplane = dataplane
        self.max_body_bytes = max_body_bytes
        self.metrics = metrics_registry(multiprocess_metrics)
        extra = [(b"x-riskserve-revision", revision.encode())] if revision else []
        self._json_headers = [(b"content-type", JSON), *extra]
        self._metrics_headers = [
            (b"content-type", CONTENT_TYPE_LATEST.encode()),
            *extra,
        ]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # uvicorn runs this app with lifespan="off": HTTP is the only scope type.
        await self._http(scope, receive, send)

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        path: str = scope["path"]
        method: str = scope["method"]
        parts = path.strip("/").split("/")
        model_name: str | None = None
        request_id: str | None = None
        try:
            if parts[0] == "v2":
                if len(parts) >= 3 and parts[1] == "models":
                    # /v2/models/{name}[/versions/{v}][/ready | /infer]
                    model_name = parts[2]
                    rest = parts[3:]
                    version = None
                    if len(rest) >= 2 and rest[0] == "versions":
                        version, rest = rest[1], rest[2:]
                    if rest == ["infer"]:
                        _require(method, "POST", path)
                        self._authorize(scope)
                        # The model and version before the body, as KServe and
                        # Triton: a request for a model this server does not serve
                        # is a 404 whatever its body holds (empty, not JSON, too big).
                        self.dataplane.get_model(model_name, version)
                        body = await self._read_body(scope, receive)
                        # Parsing, scoring and writing a big batch all leave the
                        # loop; the data plane decides by the (estimated) rows. A
                        # small one is answered here without `run`'s coroutine.
                        rows = len(body) // JSON_BYTES_PER_ROW
                        if self.dataplane.runs_inline(rows):
                            payload, request_id, headers = self._infer(
                                model_name,
                                version,
                                body,
                                _header(scope, HEADER_LENGTH),
                                started,
                            )
                        else:
                            payload, request_id, headers = await self.dataplane.run(
                                rows,
                                self._infer,
                                model_name,
                                version,
                                body,
                                _header(scope, HEADER_LENGTH),
                                started,
                            )
                        await self._send(send, 200, payload, headers)
                        return
                    await self._model_get(
                        scope, send, model_name, version, rest, method
                    )
                    return
                await self._server_get(scope, send, parts, method, path)
                return
            if path == "/metrics":
                _require(method, "GET", path)
                await self._send(
                    send, 200, generate_latest(self.metrics), self._metrics_headers
                )
                return
            raise ModelNotFound(f"no route {method} {path}")
        except ClientDisconnected:
            return
        except ServingError as error:
            status = self.dataplane.record_error(
                error, "rest", model_name, request_id, path
            )
            await self._send(
                send, status, _error_body(error.message), self._error_headers(error)
            )
        except Exception as error:  # a genuine fault: 500, logged with its traceback
            status = self.dataplane.record_error(
                error, "rest", model_name, request_id, path
            )
            await self._send(
                send, 500, _error_body(f"internal error: {type(error).__name__}")
            )

    async def _server_get(
        self, scope: Scope, send: Send, parts: list[str], method: str, path: str
    ) -> None:
        _require(method, "GET", path)
        if len(parts) == 1:
            self._authorize(scope)
            await self._send(send, 200, orjson.dumps(self.dataplane.server_metadata()))
            return
        if len(parts) == 3 and parts[1] == "health":
            if parts[2] == "live":
                await self._send(send, 200, b'{"live":true}')
                return
            if parts[2] == "ready":
                if self.dataplane.ready():
                    await self._send(send, 200, b'{"ready":true}')
                else:
                    await self._send(send, 503, _error_body("the model is not ready"))
                return
        raise ModelNotFound(f"no route {path}")

    async def _model_get(
        self,
        scope: Scope,
        send: Send,
        name: str,
        version: str | None,
        rest: list[str],
        method: str,
    ) -> None:
        path = scope["path"]
        if rest == ["ready"]:
            _require(method, "GET", path)
            if self.dataplane.model_ready(name, version):
                await self._send(send, 200, orjson.dumps({"name": name, "ready": True}))
            else:
                await self._send(send, 503, _error_body(f"model {name!r} is not ready"))
            return
        if rest:
            raise ModelNotFound(f"no route {path}")
        _require(method, "GET", path)
        self._authorize(scope)
        await self._send(
            send, 200, orjson.dumps(self.dataplane.model_metadata(name, version))
        )

    def _authorize(self, scope: Scope) -> None:
        if not self.dataplane.auth_enabled:
            return
        authorization = api_key = None
        for key, value in scope["headers"]:
            if key == b"authorization":
                authorization = value.decode("latin-1")
            elif key == b"x-api-key":
                api_key = value.decode("latin-1")
        self.dataplane.authorize(authorization, api_key)

    async def _read_body(self, scope: Scope, receive: Receive) -> bytes:
        limit = self.max_body_bytes
        for key, value in scope["headers"]:
            if key == b"content-length":
                if value.isdigit() and int(value) > limit:
                    raise InvalidInput(
                        f"the request body of {int(value)} bytes is above the limit of "
                        f"{limit} bytes"
                    )
                break
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnected
        body = message.get("body", b"")
        if not message.get("more_body", False):
            return body
        chunks = [body]
        size = len(body)
        while message.get("more_body", False):
            message = await receive()
            if message["type"] == "http.disconnect":
                raise ClientDisconnected
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise InvalidInput(
                    f"the request body is above the limit of {limit} bytes"
                )
            chunks.append(chunk)
        return b"".join(chunks)

    def _infer(
        self,
        name: str,
        version: str | None,
        body: bytes,
        header_length: bytes | None,
        started: float,
    ) -> tuple[bytes, str | None, list[tuple[bytes, bytes]]]:
        request, requested = parse_infer_request(
            name, version, body, header_length, started
        )
        result = self.dataplane.infer_now(request)
        outputs, raw = encode_outputs(result.outputs, requested)
        payload, json_length = response_body(
            {
                "model_name": result.model_name,
                "model_version": result.model_version,
                "id": result.request_id,
                "outputs": outputs,
            },
            raw,
        )
        if json_length is None:
            return payload, request.id, self._json_headers
        return (
            payload,
            request.id,
            [
                (b"content-type", OCTET_STREAM),
                (HEADER_LENGTH, str(json_length).encode()),
                *self._json_headers[1:],
            ],
        )

    def _error_headers(self, error: ServingError) -> list[tuple[bytes, bytes]]:
        if error.status == 401:
            return [*self._json_headers, (b"www-authenticate", b"Bearer")]
        if isinstance(error, MethodNotAllowed):
            return [*self._json_headers, (b"allow", error.allowed.encode())]
        return self._json_headers

    async def _send(
        self,
        send: Send,
        status: int,
        body: bytes,
        headers: list[tuple[bytes, bytes]] | None = None,
    ) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    *(headers or self._json_headers),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


def _require(method: str, allowed: str, path: str) -> None:
    if method != allowed:
        raise MethodNotAllowed(
            f"{method} is not allowed on {path}; use {allowed}", allowed
        )


def metrics_registry(multiprocess_mode: bool) -> CollectorRegistry:
    """This process's metrics, or under `--workers N` (prometheus_client's
    multiprocess mode) the sum over every worker's."""
    if not multiprocess_mode:
        return REGISTRY
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    return registry


def _header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope["headers"]:
        if key == name:
            return value
    return None


def _error_body(message: str) -> bytes:
    return orjson.dumps({"error": message})
