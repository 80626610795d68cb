"""v2 gRPC transport (`inference.GRPCInferenceService`) over the data plane.

Requests may carry typed `contents` or `raw_input_contents`; the response answers in
the same form. Every RPC answers its errors through `_status_on_error`: a
`ServingError` with its own code (INVALID_ARGUMENT, UNAUTHENTICATED, NOT_FOUND,
UNAVAILABLE), anything else with INTERNAL.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import grpc
from riskserve.serving.dataplane import DataPlane, new_request_id
from riskserve.serving.errors import InvalidInput, ServingError
from riskserve.serving.grpc_contents import fill_contents
from riskserve.serving.grpc_lenient import Undecodable, add_v2_service
from riskserve.serving.grpc_v2 import grpc_predict_v2_pb2 as pb
from riskserve.serving.grpc_v2 import grpc_predict_v2_pb2_grpc as pb_grpc
from riskserve.serving.infer_request import CONTENTS_FIELD, infer_request_from_grpc
from riskserve.serving.tensors import encode_raw

Context = grpc.aio.ServicerContext
Response = TypeVar("Response")
Rpc = Callable[["InferenceServicer", Any, Context], Awaitable[Response]]


def _status_on_error(
    model_name_field: str | None = None,
) -> Callable[[Rpc[Response]], Rpc[Response]]:
    """The one place an RPC's failure becomes a status, as MLServer's
    `handle_mlserver_error`: counted and logged by the data plane, the revision in the
    trailers (on success too), then the status. `model_name_field` names the request
    field that holds the model's name, for the metrics and the log."""

    def decorate(rpc: Rpc[Response]) -> Rpc[Response]:
        @functools.wraps(rpc)
        async def answer(
            self: InferenceServicer, request: Any, context: Context
        ) -> Response:
            try:
                if isinstance(request, Undecodable):
                    raise InvalidInput(request.message)
                response = await rpc(self, request, context)
            except Exception as error:  # every failure answers with a status code
                model_name = (
                    getattr(request, model_name_field, None)
                    if model_name_field
                    else None
                )
                await self._fail(
                    context, error, model_name, getattr(request, "id", None) or None
                )
            self._revision(context)
            return response

        return answer

    return decorate


class InferenceServicer(pb_grpc.GRPCInferenceServiceServicer):
    """The v2 RPCs, under the names the protocol gives them."""

    def __init__(self, dataplane: DataPlane, revision: str | None = None) -> None:
        self.dataplane = dataplane
        self._trailing = (("x-riskserve-revision", revision),) if revision else None

    async def _fail(
        self,
        context: Context,
        error: BaseException,
        model_name: str | None,
        request_id: str | None = None,
    ) -> None:
        self.dataplane.record_error(error, "grpc", model_name, request_id)
        if isinstance(error, ServingError):
            code, message = grpc.StatusCode[error.grpc_code], error.message
        else:
            code, message = (
                grpc.StatusCode.INTERNAL,
                f"internal error: {type(error).__name__}",
            )
        self._revision(context)
        await context.abort(code, message)

    def _revision(self, context: Context) -> None:
        if self._trailing:
            context.set_trailing_metadata(self._trailing)

    def _authorize(self, context: Context) -> None:
        if not self.dataplane.auth_enabled:
            return
        authorization = api_key = None
        for key, value in context.invocation_metadata() or ():
            if key == "authorization":
                authorization = value
            elif key == "x-api-key":
                api_key = value
        # grpc types metadata values str | bytes; only "-bin" keys carry bytes, so
        # these two are str.
        self.dataplane.authorize(authorization, api_key)  # type: ignore[arg-type]

    @_status_on_error()
    async def ServerLive(
        self, request: pb.ServerLiveRequest, context: Context
    ) -> pb.ServerLiveResponse:
        return pb.ServerLiveResponse(live=self.dataplane.live())

    @_status_on_error()
    async def ServerReady(
        self, request: pb.ServerReadyRequest, context: Context
    ) -> pb.ServerReadyResponse:
        return pb.ServerReadyResponse(ready=self.dataplane.ready())

    @_status_on_error("name")
    async def ModelReady(
        self, request: pb.ModelReadyRequest, context: Context
    ) -> pb.ModelReadyResponse:
        ready = self.dataplane.model_ready(request.name, request.version or None)
        return pb.ModelReadyResponse(ready=ready)

    @_status_on_error()
    async def ServerMetadata(
        self, request: pb.ServerMetadataRequest, context: Context
    ) -> pb.ServerMetadataResponse:
        self._authorize(context)
        return pb.ServerMetadataResponse(**self.dataplane.server_metadata())

    @_status_on_error("name")
    async def ModelMetadata(
        self, request: pb.ModelMetadataRequest, context: Context
    ) -> pb.ModelMetadataResponse:
        self._authorize(context)
        metadata = self.dataplane.model_metadata(request.name, request.version or None)
        tensor = pb.ModelMetadataResponse.TensorMetadata
        return pb.ModelMetadataResponse(
            name=metadata["name"],
            versions=metadata["versions"],
            platform=metadata["platform"],
            inputs=[tensor(**t) for t in metadata["inputs"]],
            outputs=[tensor(**t) for t in metadata["outputs"]],
        )

    @_status_on_error("model_name")
    async def ModelInfer(
        self, request: pb.ModelInferRequest, context: Context
    ) -> pb.ModelInferResponse:
        started = time.perf_counter()
        self._authorize(context)
        # The model and version right after auth, before the inputs are looked at,
        # as REST and KServe: a request for a model this server does not serve is
        # NOT_FOUND whatever its inputs hold (none, misfiled, of an unknown type).
        self.dataplane.get_model(request.model_name, request.model_version or None)
        # Decoding, scoring and encoding a big batch all leave the loop: the data
        # plane decides by the rows the first input declares.
        shape = request.inputs[0].shape if request.inputs else ()
        return await self.dataplane.run(
            shape[0] if shape else 1,
            self._infer,
            request,
            request.id or new_request_id(),
            started,
        )

    def _infer(
        self, request: pb.ModelInferRequest, request_id: str, started: float
    ) -> pb.ModelInferResponse:
        result = self.dataplane.infer_now(
            infer_request_from_grpc(request, request_id, started)
        )
        response = pb.ModelInferResponse(
            model_name=result.model_name,
            model_version=result.model_version,
            id=result.request_id,
        )
        raw = bool(request.raw_input_contents)
        for tensor in result.outputs:
            output = response.outputs.add(
                name=tensor.name, datatype=tensor.datatype, shape=tensor.shape
            )
            if raw:
                response.raw_output_contents.append(encode_raw(tensor.array))
            else:
                field = CONTENTS_FIELD[tensor.datatype]
                # FP32 / FP64 / BOOL from their packed bytes (grpc_contents): a
                # 100,000-row answer no longer holds the GIL for a Python object
                # per value.
                if fill_contents(output.contents, field, tensor.array):
                    continue
                values = tensor.array.ravel().tolist()
                if tensor.datatype == "BYTES":
                    values = [
                        v if isinstance(v, bytes) else str(v).encode() for v in values
                    ]
                getattr(output.contents, field).extend(values)
        return response


def create_server(
    dataplane: DataPlane,
    port: int,
    max_message_bytes: int,
    revision: str | None = None,
    host: str = "[::]",
    max_concurrent_rpcs: int | None = None,
) -> grpc.aio.Server:
    """The v2 gRPC server; beyond `max_concurrent_rpcs` calls in flight, grpc answers
    RESOURCE_EXHAUSTED without running the handler (None: no cap)."""
    server = grpc.aio.server(
        maximum_concurrent_rpcs=max_concurrent_rpcs,
        options=[
            ("grpc.max_send_message_length", max_message_bytes),
            ("grpc.max_receive_message_length", max_message_bytes),
        ],
    )
    # Bytes that are no request message: INVALID_ARGUMENT, not grpc's UNKNOWN with a
    # traceback logged per call (grpc_lenient.py).
    add_v2_service(InferenceServicer(dataplane, revision), server)
    server.add_insecure_port(f"{host}:{port}")
    return server
