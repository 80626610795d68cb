"""The transformer's v2 gRPC server (`inference.GRPCInferenceService`), as KServe's
transformers serve it beside REST (`--grpc_port`, `--enable_grpc`).

`ModelInfer` takes the raw fields as tensors, typed `contents` or
`raw_input_contents`, decoded by the predictor's own decoder and checked by the REST
side's checks (`raw_request.events_from_tensors`); the decision is REST's
(`app.decide`): same outputs, request id, inference log record and state push. The
answer is in the request's form (raw contents back for raw contents). Errors map as
the predictor's gRPC server maps them (`ServingError.grpc_code`): 400
INVALID_ARGUMENT, 401 UNAUTHENTICATED, 404 NOT_FOUND, 503 UNAVAILABLE, a predictor's
502 UNAVAILABLE and 504 DEADLINE_EXCEEDED; anything else INTERNAL.
"""

from __future__ import annotations

import functools
import hmac
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import grpc
from riskserve.serving.errors import (
    InvalidInput,
    ModelNotFound,
    ServingError,
    Unauthorized,
)
from riskserve.serving.grpc_contents import fill_contents
from riskserve.serving.grpc_inputs import CONTENTS_FIELD, decode_grpc_inputs
from riskserve.serving.grpc_lenient import Undecodable, add_v2_service
from riskserve.serving.grpc_v2 import grpc_predict_v2_pb2 as pb
from riskserve.serving.grpc_v2 import grpc_predict_v2_pb2_grpc as pb_grpc
from riskserve.serving.tensors import OutputTensor, encode_raw
from riskserve.transformer import metrics
from riskserve.transformer.app import (
    Transformer,
    TransformerApp,
    UpstreamFailed,
    _request_id,
    decide,
    require_ready,
)
from riskserve.transformer.raw_request import bounded, events_from_tensors

log = logging.getLogger("transformer")
Context = grpc.aio.ServicerContext
Response = TypeVar("Response")
Rpc = Callable[["TransformerServicer", Any, Context], Awaitable[Response]]
# A predictor's failure as REST answers it (502, 504) -> its gRPC status.
_UPSTREAM_CODES = {504: grpc.StatusCode.DEADLINE_EXCEEDED}


def _status_on_error(rpc: Rpc[Response]) -> Rpc[Response]:
    """Every failure of an RPC as a status: counted and logged as REST's, the
    revision in the trailers (on success too)."""

    @functools.wraps(rpc)
    async def answer(
        self: TransformerServicer, request: Any, context: Context
    ) -> Response:
        try:
            if isinstance(request, Undecodable):
                raise InvalidInput(request.message)
            response = await rpc(self, request, context)
        except Exception as error:  # every failure answers with a status code
            await self._fail(context, error, request)
        self._revision(context)
        return response

    return answer


class TransformerServicer(pb_grpc.GRPCInferenceServiceServicer):
    """The v2 RPCs over one transformer; health and metadata as its REST app answers
    them (`TransformerApp`)."""

    def __init__(self, transformer: Transformer, revision: str | None = None) -> None:
        self.t = transformer
        self.rest = TransformerApp(transformer, revision)
        self._trailing = (("x-riskserve-revision", revision),) if revision else None
        self._requests_ok = metrics.REQUESTS.labels(transformer.model_name, "200")
        self._latency = metrics.LATENCY.labels(transformer.model_name)
        self._rows = metrics.ROWS.labels(transformer.model_name)

    async def _fail(self, context: Context, error: BaseException, request: Any) -> None:
        name = getattr(request, "model_name", None) or getattr(request, "name", None)
        label = name if name == self.t.model_name else "unknown"
        if isinstance(error, UpstreamFailed):
            code = _UPSTREAM_CODES.get(error.status, grpc.StatusCode.UNAVAILABLE)
            status, message = error.status, error.message
        elif isinstance(error, ServingError):
            code = grpc.StatusCode[error.grpc_code]
            status, message = error.status, error.message
        else:
            log.error(
                "internal error",
                exc_info=(type(error), error, error.__traceback__),
                extra={"transport": "grpc"},
            )
            code, status = grpc.StatusCode.INTERNAL, 500
            message = f"internal error: {type(error).__name__}"
        # Bounded: a status message travels in the trailers, whose size gRPC caps
        # (a 100,000-character tensor name quoted back would reset the stream).
        message = bounded(message)
        metrics.REQUESTS.labels(label, str(status)).inc()
        log.info(
            "request failed",
            extra={"status": status, "transport": "grpc", "error": message[:500]},
        )
        self._revision(context)
        await context.abort(code, message)

    def _revision(self, context: Context) -> None:
        if self._trailing:
            context.set_trailing_metadata(self._trailing)

    def _authorize(self, context: Context) -> None:
        """The REST app's scheme through metadata: `authorization: Bearer <key>` or
        `x-api-key: <key>`."""
        key = self.t.api_key
        if key is None:
            return
        given: str | None = None
        for name, value in context.invocation_metadata() or ():
            text = value.decode("latin-1") if isinstance(value, bytes) else value
            if name == "authorization":
                if text[:7].lower() == "bearer ":
                    given = text[7:].strip()
            elif name == "x-api-key" and given is None:
                given = text
        if given is None or not hmac.compare_digest(given.encode(), key.encode()):
            raise Unauthorized("a valid API key is required")

    def _model(self, name: str) -> None:
        if name != self.t.model_name:
            raise ModelNotFound(f"model {name[:200]!r} is not served here")

    @_status_on_error
    async def ServerLive(
        self, request: pb.ServerLiveRequest, context: Context
    ) -> pb.ServerLiveResponse:
        return pb.ServerLiveResponse(live=True)

    @_status_on_error
    async def ServerReady(
        self, request: pb.ServerReadyRequest, context: Context
    ) -> pb.ServerReadyResponse:
        return pb.ServerReadyResponse(ready=await self.rest._is_ready())

    @_status_on_error
    async def ModelReady(
        self, request: pb.ModelReadyRequest, context: Context
    ) -> pb.ModelReadyResponse:
        self._model(request.name)
        return pb.ModelReadyResponse(ready=await self.rest._is_ready())

    @_status_on_error
    async def ServerMetadata(
        self, request: pb.ServerMetadataRequest, context: Context
    ) -> pb.ServerMetadataResponse:
        self._authorize(context)
        return pb.ServerMetadataResponse(
            name="riskserve-transformer", version="1", extensions=[]
        )

    @_status_on_error
    async def ModelMetadata(
        self, request: pb.ModelMetadataRequest, context: Context
    ) -> pb.ModelMetadataResponse:
        self._authorize(context)
        self._model(request.name)
        metadata = self.rest.model_metadata()
        tensor = pb.ModelMetadataResponse.TensorMetadata
        return pb.ModelMetadataResponse(
            name=metadata["name"],
            versions=metadata["versions"],
            platform=metadata["platform"],
            inputs=[
                tensor(name=t["name"], datatype=t["datatype"], shape=t["shape"])
                for t in metadata["inputs"]
            ],
            outputs=[
                tensor(
                    name=str(t.get("name")),
                    datatype=str(t.get("datatype")),
                    shape=t.get("shape") or [-1],
                )
                for t in metadata["outputs"]
            ],
        )

    @_status_on_error
    async def ModelInfer(
        self, request: pb.ModelInferRequest, context: Context
    ) -> pb.ModelInferResponse:
        started = time.perf_counter()
        t = self.t
        # REST's order: the key, the model, readiness, and only then the inputs.
        self._authorize(context)
        self._model(request.model_name)
        require_ready(t)
        events = events_from_tensors(
            decode_grpc_inputs(request), t.max_batch_size, t.decision
        )
        decided = await decide(
            t,
            events,
            request.id or _request_id(),
            [o.name for o in request.outputs] or None,
            started,
            protocol="grpc",
        )
        response = (
            _response(
                t.model_name, decided.model_version, decided.request_id, decided.outputs
            )
            if not request.raw_input_contents
            else _raw_response(
                t.model_name, decided.model_version, decided.request_id, decided.outputs
            )
        )
        # The push is scheduled for the loop's next step; the response is written
        # as this handler returns.
        decided.answered(t, self._rows)
        self._requests_ok.inc()
        self._latency.observe(time.perf_counter() - started)
        return response


def _response(
    model_name: str,
    model_version: str | None,
    request_id: str,
    outputs: list[OutputTensor],
) -> pb.ModelInferResponse:
    """Outputs as typed `contents` (BYTES as UTF-8)."""
    response = pb.ModelInferResponse(
        model_name=model_name, model_version=model_version or "", id=request_id
    )
    for tensor in outputs:
        output = response.outputs.add(
            name=tensor.name, datatype=tensor.datatype, shape=list(tensor.array.shape)
        )
        field = CONTENTS_FIELD[tensor.datatype]
        if fill_contents(output.contents, field, tensor.array):
            continue
        values = tensor.array.ravel().tolist()
        if tensor.datatype == "BYTES":
            values = [v if isinstance(v, bytes) else str(v).encode() for v in values]
        getattr(output.contents, field).extend(values)
    return response


def _raw_response(
    model_name: str,
    model_version: str | None,
    request_id: str,
    outputs: list[OutputTensor],
) -> pb.ModelInferResponse:
    """Outputs as `raw_output_contents`, for a request sent that way."""
    response = pb.ModelInferResponse(
        model_name=model_name, model_version=model_version or "", id=request_id
    )
    for tensor in outputs:
        response.outputs.add(
            name=tensor.name, datatype=tensor.datatype, shape=list(tensor.array.shape)
        )
        response.raw_output_contents.append(encode_raw(tensor.array))
    return response


def create_server(
    transformer: Transformer,
    port: int,
    max_message_bytes: int,
    revision: str | None = None,
    host: str = "[::]",
    max_concurrent_rpcs: int | None = None,
) -> grpc.aio.Server:
    """The transformer's v2 gRPC server; beyond `max_concurrent_rpcs` calls in
    flight, grpc answers RESOURCE_EXHAUSTED without running the handler."""
    server = grpc.aio.server(
        maximum_concurrent_rpcs=max_concurrent_rpcs,
        options=[
            ("grpc.max_send_message_length", max_message_bytes),
            ("grpc.max_receive_message_length", max_message_bytes),
        ],
    )
    # The predictor's registration: bytes that are no request message are
    # INVALID_ARGUMENT, not grpc's UNKNOWN with a traceback per call.
    add_v2_service(TransformerServicer(transformer, revision), server)
    server.add_insecure_port(f"{host}:{port}")
    return server
