"""The gateway's gRPC side: `inference.GRPCInferenceService`, routed like HTTP.

A ModelInfer, ModelMetadata or ModelReady call goes to one ready revision of the
InferenceService its model name names (of its transformer component when it has one,
whose v2 gRPC server takes raw events, as KServe's ingress sends to the transformer),
chosen by the same traffic split as HTTP (`Gateway.pick`), within the same deadline (the call's gRPC deadline, the
`x-riskserve-timeout-ms` metadata, the service's `predictor.timeout` or the platform's
default, whichever is shortest), with the same per-try timeout and retry on another
ready revision, the same shadow copies and the same key. The payload is forwarded as
the bytes that came: the gateway reads only the model's name (field 1 of all three
request messages) off the wire, so a 100,000-row batch costs it a copy, not a parse.
The revision that answered is named in the trailing metadata, `x-riskserve-revision`,
as the predictor names itself.

The server-level calls (ServerLive, ServerReady, ServerMetadata) are the gateway's own,
as on HTTP; calls the predictors do not serve (the repository, statistics and streaming
extensions) are UNIMPLEMENTED.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any

import grpc
import numpy as np
from riskserve.localplatform.control_guard import key_matches, presented_key
from riskserve.localplatform.spec_rules import excerpt
from riskserve.serving.grpc_v2 import grpc_predict_v2_pb2 as pb

if TYPE_CHECKING:
    from riskserve.localplatform.gateway import Gateway

log = logging.getLogger("riskserve.gateway.grpc")

SERVICE = "inference.GRPCInferenceService"
# The calls routed to a revision: each request message holds the model's name in its
# field 1 (ModelInferRequest.model_name, ModelMetadataRequest.name, ModelReadyRequest.name).
ROUTED = ("ModelInfer", "ModelMetadata", "ModelReady")
REVISION_KEY = "x-riskserve-revision"
# Metadata passed on to the predictor: the key, and what identifies the request.
FORWARDED_METADATA = ("authorization", "x-api-key", "x-request-id", "traceparent")

# The HTTP status each gRPC code is counted as, so one set of counters (and the
# rollout gates that read them: errors are >= 500) covers both protocols. The mapping
# is the usual one (grpc-gateway's, Envoy's).
HTTP_STATUS = {
    grpc.StatusCode.OK: 200,
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.FAILED_PRECONDITION: 400,
    grpc.StatusCode.OUT_OF_RANGE: 400,
    grpc.StatusCode.UNAUTHENTICATED: 401,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.ABORTED: 409,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.CANCELLED: 499,
    grpc.StatusCode.UNIMPLEMENTED: 501,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
}

Context = grpc.aio.ServicerContext


class MalformedMessage(ValueError):
    """The request bytes are not a protobuf message."""


def _varint(data: bytes, at: int) -> tuple[int, int]:
    value, shift = 0, 0
    while True:
        if at >= len(data) or shift > 63:
            raise MalformedMessage("truncated varint")
        byte = data[at]
        at += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, at
        shift += 7


def model_name(message: bytes) -> str:
    """Field 1 (a string) of a serialized request: the model's name, "" when absent.

    Walks the message's top-level fields only, skipping each by its wire type, so its
    cost does not grow with the tensors' size. As protobuf does, the last occurrence
    of the field wins, so the gateway routes by the name the predictor will read.
    """
    name: bytes = b""
    at, end = 0, len(message)
    while at < end:
        key, at = _varint(message, at)
        number, wire = key >> 3, key & 7
        if number == 0:
            raise MalformedMessage("field number 0")
        if wire == 0:
            _, at = _varint(message, at)
        elif wire == 1:
            at += 8
        elif wire == 2:
            length, at = _varint(message, at)
            if number == 1:
                name = message[at : at + length]
            at += length
        elif wire == 5:
            at += 4
        else:
            raise MalformedMessage(f"wire type {wire}")
        if at > end:
            raise MalformedMessage("a field runs past the end")
    try:
        return name.decode()
    except UnicodeDecodeError:
        raise MalformedMessage("the model name is not UTF-8") from None


class Upstream:
    """A channel to one predictor, and its calls made once (bytes in and out)."""

    __slots__ = ("port", "channel", "_calls")

    def __init__(self, port: int, channel: grpc.aio.Channel) -> None:
        self.port, self.channel = port, channel
        self._calls: dict[str, grpc.aio.UnaryUnaryMultiCallable[bytes, bytes]] = {}

    def call(self, path: str) -> grpc.aio.UnaryUnaryMultiCallable[bytes, bytes]:
        call = self._calls.get(path)
        if call is None:
            # No (de)serializers: the bytes go as they came.
            call = self._calls[path] = self.channel.unary_unary(path)
        return call


class GrpcGateway:
    """The gRPC half of the gateway: routing state, stats and key are `gateway`'s."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self.platform = gateway.platform
        self.max_message = self.platform.settings.gateway_max_body_bytes
        self._channels: dict[str, Upstream] = {}
        self._shadow_tasks: set[asyncio.Task[None]] = set()

    # -- the server ----------------------------------------------------------------------

    def server(self, host: str, port: int) -> grpc.aio.Server:
        server = grpc.aio.server(
            options=[
                ("grpc.max_send_message_length", self.max_message),
                ("grpc.max_receive_message_length", self.max_message),
                ("grpc.so_reuseport", 0),
                # A connection that never completes its HTTP/2 handshake is closed
                # as HTTP closes a stalled head; an idle one after five minutes (its
                # client reconnects by itself when it calls again).
                (
                    "grpc.server_handshake_timeout_ms",
                    int(self.platform.settings.gateway_header_timeout_s * 1000),
                ),
                ("grpc.max_connection_idle_ms", 300_000),
            ],
            # Beyond it a call is refused with RESOURCE_EXHAUSTED, as HTTP gets a 503.
            maximum_concurrent_rpcs=self.platform.settings.gateway_max_concurrent_requests,
        )
        handlers: dict[str, grpc.RpcMethodHandler] = {
            "ServerLive": grpc.unary_unary_rpc_method_handler(
                self.server_live,
                request_deserializer=pb.ServerLiveRequest.FromString,
                response_serializer=pb.ServerLiveResponse.SerializeToString,
            ),
            "ServerReady": grpc.unary_unary_rpc_method_handler(
                self.server_ready,
                request_deserializer=pb.ServerReadyRequest.FromString,
                response_serializer=pb.ServerReadyResponse.SerializeToString,
            ),
            "ServerMetadata": grpc.unary_unary_rpc_method_handler(
                self.server_metadata,
                request_deserializer=pb.ServerMetadataRequest.FromString,
                response_serializer=pb.ServerMetadataResponse.SerializeToString,
            ),
        }
        for method in ROUTED:
            # No (de)serializers: the call's bytes in, the predictor's bytes out.
            handlers[method] = grpc.unary_unary_rpc_method_handler(
                self._forwarder(method)
            )
        server.add_generic_rpc_handlers(
            (grpc.method_handlers_generic_handler(SERVICE, handlers),)
        )
        # add_insecure_port raises when it cannot bind: the daemon reports it.
        server.add_insecure_port(f"{_grpc_host(host)}:{port}")
        return server

    async def close(self) -> None:
        for task in list(self._shadow_tasks):
            task.cancel()
        for upstream in self._channels.values():
            await upstream.channel.close()
        self._channels.clear()

    # -- the gateway's own calls -----------------------------------------------------------

    async def server_live(
        self, request: pb.ServerLiveRequest, context: Context
    ) -> pb.ServerLiveResponse:
        return pb.ServerLiveResponse(live=True)

    async def server_ready(
        self, request: pb.ServerReadyRequest, context: Context
    ) -> pb.ServerReadyResponse:
        services = self.platform.state.services.values()
        return pb.ServerReadyResponse(ready=all(s.routes() for s in services))

    async def server_metadata(
        self, request: pb.ServerMetadataRequest, context: Context
    ) -> pb.ServerMetadataResponse:
        if not self._authorized(context):
            await context.abort(
                grpc.StatusCode.UNAUTHENTICATED, "missing or invalid API key"
            )
        return pb.ServerMetadataResponse(name="riskserve-gateway", version="0.1.0")

    # -- routed calls ----------------------------------------------------------------------

    def _authorized(
        self, context: Context, headers: list[tuple[bytes, bytes]] | None = None
    ) -> bool:
        key = self.gateway._api_key
        if key is None:
            return True
        if headers is None:
            headers = _metadata_bytes(context)
        return key_matches(presented_key(headers), key)

    def _forwarder(self, method: str) -> Callable[[bytes, Context], Awaitable[bytes]]:
        path = f"/{SERVICE}/{method}"

        async def forward(request: bytes, context: Context) -> bytes:
            return await self.forward(path, method, request, context)

        return forward

    async def forward(
        self, path: str, method: str, request: bytes, context: Context
    ) -> bytes:
        received: tuple[tuple[str, str | bytes], ...] = tuple(
            context.invocation_metadata() or ()
        )
        headers = _metadata_bytes(context, received)
        # The key before the lookup: without it, NOT_FOUND would say which models exist.
        if not self._authorized(context, headers):
            await context.abort(
                grpc.StatusCode.UNAUTHENTICATED, "missing or invalid API key"
            )
        try:
            isvc = model_name(request)
        except MalformedMessage as exc:
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"the request is not a valid {method}Request: {exc}",
            )
        if isvc not in self.platform.state.services:
            await context.abort(
                grpc.StatusCode.NOT_FOUND,
                f"unknown InferenceService {excerpt(isvc)!r}",
            )
        # A transformer pushes each entity's new state once it has answered: a call it
        # may have received is never sent to another revision, and no try is cut short
        # for a retry (as on HTTP). Only a revision that could not be reached is
        # passed over: its transformer had not answered, so had pushed nothing.
        fronted = self.platform.state.services[isvc].transformer is not None
        try:
            deadline_s = self._deadline_s(isvc, context, headers)
        except ValueError as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        metadata = tuple((k, v) for k, v in received if k in FORWARDED_METADATA)
        deadline = time.monotonic() + deadline_s
        tried: set[str] = set()
        timed_out = False
        pick = self.gateway.pick
        while True:
            revision = pick(isvc, tried)
            remaining = deadline - time.monotonic()
            if revision is None or remaining <= 0:
                if remaining <= 0 or timed_out:
                    await context.abort(
                        grpc.StatusCode.DEADLINE_EXCEEDED,
                        f"{isvc}: no revision answered within "
                        f"{deadline_s * 1000:.0f} ms",
                    )
                reason = (
                    "no ready revision" if not tried else "no revision could be reached"
                )
                await context.abort(grpc.StatusCode.UNAVAILABLE, f"{isvc}: {reason}")
            assert revision is not None  # abort() above raises
            channel = await self._channel(revision)
            if channel is None:
                tried.add(revision)
                continue
            another = pick(isvc, tried | {revision}) is not None
            try_timeout = (
                min(self.gateway.try_timeout_s, remaining)
                if another and not fronted
                else remaining
            )
            started = time.perf_counter()
            try:
                response = await channel.call(path)(
                    request, timeout=try_timeout, metadata=metadata
                )
            except grpc.aio.AioRpcError as error:
                seconds = time.perf_counter() - started
                if _not_answered(error) and not (
                    fronted and error.code() == grpc.StatusCode.DEADLINE_EXCEEDED
                ):
                    # Unreachable, or not answered within the try: as on HTTP, out of
                    # the split until its readiness probe answers, and on to another.
                    timed_out = timed_out or (
                        error.code() == grpc.StatusCode.DEADLINE_EXCEEDED
                    )
                    log.warning(
                        "%s: %s %s; retrying on another revision",
                        revision,
                        error.code().name,
                        excerpt(error.details() or "", 200),
                    )
                    self.platform.mark_suspect(revision, f"gRPC {error.code().name}")
                    self.gateway.stats[revision].record(599, seconds)
                    tried.add(revision)
                    continue
                # The predictor's own answer (a 4xx-like refusal or its error): passed on.
                self.gateway.stats[revision].record(
                    HTTP_STATUS.get(error.code(), 500), seconds
                )
                context.set_trailing_metadata(((REVISION_KEY, revision),))
                await context.abort(error.code(), error.details() or "")
            self.gateway.stats[revision].record(200, time.perf_counter() - started)
            context.set_trailing_metadata(((REVISION_KEY, revision),))
            if method == "ModelInfer":
                self._mirror_later(isvc, path, request, metadata, response)
            return response

    def _deadline_s(
        self, isvc: str, context: Context, headers: list[tuple[bytes, bytes]]
    ) -> float:
        """The shortest of the call's own deadline and what HTTP would use (the
        `x-riskserve-timeout-ms` metadata, else the service's timeout, else the
        platform's default)."""
        deadline_s = self.gateway.deadline_s(isvc, headers)
        remaining = context.time_remaining()
        if remaining is not None:
            deadline_s = min(deadline_s, max(remaining, 0.0))
        return deadline_s

    async def _channel(self, revision: str) -> Upstream | None:
        """The revision's running predictor (None when it does not run): a channel
        made on first use, remade when the predictor restarted on another port."""
        port = self.platform.grpc_port(revision)
        cached = self._channels.get(revision)
        if cached is not None and cached.port == port:
            return cached
        if cached is not None:
            del self._channels[revision]
            await cached.channel.close()
        if port is None:
            return None
        if len(self._channels) >= 64:
            await self._forget_stopped()
        upstream = Upstream(
            port,
            grpc.aio.insecure_channel(
                f"{_grpc_host(self.platform.settings.host)}:{port}",
                options=[
                    ("grpc.max_send_message_length", self.max_message),
                    ("grpc.max_receive_message_length", self.max_message),
                ],
            ),
        )
        self._channels[revision] = upstream
        return upstream

    async def _forget_stopped(self) -> None:
        for revision in [
            r for r in self._channels if self.platform.grpc_port(r) is None
        ]:
            await self._channels.pop(revision).channel.close()

    # -- shadow copies ------------------------------------------------------------------

    def _mirror_later(
        self,
        isvc: str,
        path: str,
        request: bytes,
        metadata: Sequence[tuple[str, Any]],
        primary: bytes,
    ) -> None:
        # The routed component's shadow (a transformer has none: see state.shadow).
        shadow = self.gateway.component(isvc).shadow_revision()
        if shadow is None:
            return
        task = asyncio.get_running_loop().create_task(
            self.mirror(shadow.name, path, request, metadata, primary)
        )
        self._shadow_tasks.add(task)
        task.add_done_callback(self._shadow_tasks.discard)

    async def mirror(
        self,
        revision: str,
        path: str,
        request: bytes,
        metadata: Sequence[tuple[str, Any]],
        primary: bytes,
    ) -> None:
        """A copy of the call to the shadow revision; its answer is compared with the
        one returned (the same counters as HTTP's shadow) and never returned."""
        stats = self.gateway.stats[revision].shadow
        channel = await self._channel(revision)
        if channel is None:
            return
        started = time.perf_counter()
        try:
            payload = await channel.call(path)(
                request,
                timeout=self.platform.settings.gateway_deadline_s,
                metadata=metadata,
            )
        except grpc.aio.AioRpcError as error:
            self.gateway.stats[revision].record(
                HTTP_STATUS.get(error.code(), 500), time.perf_counter() - started
            )
            stats["errors"] += 1
            return
        self.gateway.stats[revision].record(200, time.perf_counter() - started)
        from riskserve.localplatform.gateway import compare_outputs

        try:
            diff, disagree = compare_outputs(
                response_outputs(primary), response_outputs(payload)
            )
        except (ValueError, KeyError, TypeError):
            stats["errors"] += 1
            return
        stats["compared"] += 1
        stats["sum_abs_diff"] += diff
        stats["disagreements"] += disagree


# The numpy type of each v2 datatype in raw_output_contents (little-endian, as v2 says).
RAW_DTYPES = {
    "BOOL": np.dtype(np.bool_),
    "INT8": np.dtype("<i1"),
    "INT16": np.dtype("<i2"),
    "INT32": np.dtype("<i4"),
    "INT64": np.dtype("<i8"),
    "UINT8": np.dtype("<u1"),
    "UINT16": np.dtype("<u2"),
    "UINT32": np.dtype("<u4"),
    "UINT64": np.dtype("<u8"),
    "FP16": np.dtype("<f2"),
    "FP32": np.dtype("<f4"),
    "FP64": np.dtype("<f8"),
}


def response_outputs(payload: bytes) -> dict[str, list[dict[str, Any]]]:
    """A serialized ModelInferResponse in the JSON form `compare_outputs` reads:
    {"outputs": [{"name", "data"}]}, typed contents or raw alike (BYTES outputs are
    left out: nothing compares them)."""
    response = pb.ModelInferResponse.FromString(payload)
    outputs = []
    for index, output in enumerate(response.outputs):
        if output.datatype == "BYTES":
            continue
        if response.raw_output_contents:
            dtype = RAW_DTYPES[output.datatype]
            data = np.frombuffer(
                response.raw_output_contents[index], dtype=dtype
            ).tolist()
        else:
            # The one repeated field the values are in (the datatype says which).
            fields = output.contents.ListFields()
            data = list(fields[0][1]) if fields else []
            if output.datatype == "BOOL":
                data = [bool(v) for v in data]
        outputs.append({"name": output.name, "data": data})
    return {"outputs": outputs}


def _not_answered(error: grpc.aio.AioRpcError) -> bool:
    """True when the revision did not answer the call itself: it could not be reached,
    its connection broke, or the try's timeout passed. A predictor names itself in the
    trailers of every answer, errors included, so an UNAVAILABLE without that name is
    the transport's."""
    code = error.code()
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return True
    if code == grpc.StatusCode.UNAVAILABLE:
        trailers = error.trailing_metadata() or ()
        return not any(key == REVISION_KEY for key, _ in trailers)
    return False


def _metadata_bytes(
    context: Context, received: Sequence[tuple[str, str | bytes]] | None = None
) -> list[tuple[bytes, bytes]]:
    """The call's metadata as HTTP headers (names and values as bytes), for the key
    and deadline rules the HTTP side applies."""
    if received is None:
        received = tuple(context.invocation_metadata() or ())
    return [(k.encode(), v.encode() if isinstance(v, str) else v) for k, v in received]


def _grpc_host(host: str) -> str:
    """An address as gRPC wants it: IPv6 literals in brackets."""
    return f"[{host}]" if ":" in host and not host.startswith("[") else host
