"""v2 gRPC transport (`inference.GRPCInferenceService`) over the data plane.

Requests may carry typed `contents` or `raw_input_contents`; the response answers in
the same form. Errors map to INVALID_ARGUMENT, UNAUTHENTICATED, NOT_FOUND, UNAVAILABLE.
"""

from __future__ import annotations

import time

import grpc

from serving.dataplane import DataPlane, InferRequest, new_request_id
from serving.errors import InvalidInput, ServingError
from serving.grpc_v2 import grpc_predict_v2_pb2 as pb
from serving.grpc_v2 import grpc_predict_v2_pb2_grpc as pb_grpc
from serving.tensors import InputTensor, decode_raw_input, decode_values, encode_raw

# v2 datatype -> the InferTensorContents field that carries it
CONTENTS_FIELD = {
    "BOOL": "bool_contents",
    "INT8": "int_contents",
    "INT16": "int_contents",
    "INT32": "int_contents",
    "INT64": "int64_contents",
    "UINT8": "uint_contents",
    "UINT16": "uint_contents",
    "UINT32": "uint_contents",
    "UINT64": "uint64_contents",
    "FP32": "fp32_contents",
    "FP64": "fp64_contents",
    "BYTES": "bytes_contents",
}


class InferenceServicer(pb_grpc.GRPCInferenceServiceServicer):
    def __init__(self, dataplane: DataPlane, revision: str | None = None) -> None:
        self.dataplane = dataplane
        self._trailing = (("x-riskserve-revision", revision),) if revision else None

    async def _fail(
        self,
        context: grpc.aio.ServicerContext,
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

    def _revision(self, context: grpc.aio.ServicerContext) -> None:
        if self._trailing:
            context.set_trailing_metadata(self._trailing)

    def _authorize(self, context: grpc.aio.ServicerContext) -> None:
        if not self.dataplane.auth_enabled:
            return
        authorization = api_key = None
        for key, value in context.invocation_metadata() or ():
            if key == "authorization":
                authorization = value
            elif key == "x-api-key":
                api_key = value
        self.dataplane.authorize(authorization, api_key)

    async def ServerLive(self, request, context):  # noqa: N802, ANN001, ANN201
        self._revision(context)
        return pb.ServerLiveResponse(live=self.dataplane.live())

    async def ServerReady(self, request, context):  # noqa: N802, ANN001, ANN201
        self._revision(context)
        return pb.ServerReadyResponse(ready=self.dataplane.ready())

    async def ModelReady(self, request, context):  # noqa: N802, ANN001, ANN201
        try:
            ready = self.dataplane.model_ready(request.name, request.version or None)
        except ServingError as error:
            await self._fail(context, error, request.name)
        self._revision(context)
        return pb.ModelReadyResponse(ready=ready)

    async def ServerMetadata(self, request, context):  # noqa: N802, ANN001, ANN201
        try:
            self._authorize(context)
        except ServingError as error:
            await self._fail(context, error, None)
        self._revision(context)
        return pb.ServerMetadataResponse(**self.dataplane.server_metadata())

    async def ModelMetadata(self, request, context):  # noqa: N802, ANN001, ANN201
        try:
            self._authorize(context)
            metadata = self.dataplane.model_metadata(
                request.name, request.version or None
            )
        except ServingError as error:
            await self._fail(context, error, request.name)
        self._revision(context)
        tensor = pb.ModelMetadataResponse.TensorMetadata
        return pb.ModelMetadataResponse(
            name=metadata["name"],
            versions=metadata["versions"],
            platform=metadata["platform"],
            inputs=[tensor(**t) for t in metadata["inputs"]],
            outputs=[tensor(**t) for t in metadata["outputs"]],
        )

    async def ModelInfer(self, request, context):  # noqa: N802, ANN001, ANN201
        started = time.perf_counter()
        request_id = request.id or new_request_id()
        try:
            self._authorize(context)
            # Decoding, scoring and encoding a big batch all leave the loop: the
            # data plane decides by the rows the first input declares.
            shape = request.inputs[0].shape if request.inputs else ()
            response = await self.dataplane.run(
                shape[0] if shape else 1, self._infer, request, request_id, started
            )
        except Exception as error:  # every failure answers with a status code
            await self._fail(context, error, request.model_name, request_id)
        self._revision(context)
        return response

    def _infer(
        self, request: pb.ModelInferRequest, request_id: str, started: float
    ) -> pb.ModelInferResponse:
        result = self.dataplane.infer_now(
            InferRequest(
                request.model_name,
                request.model_version or None,
                _decode_inputs(request),
                [o.name for o in request.outputs] or None,
                request_id,
                _parameters(request.parameters),
                "grpc",
                started,
            )
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
                values = tensor.array.ravel().tolist()
                if tensor.datatype == "BYTES":
                    values = [
                        v if isinstance(v, bytes) else str(v).encode() for v in values
                    ]
                getattr(output.contents, CONTENTS_FIELD[tensor.datatype]).extend(values)
        return response


def _parameters(parameters) -> dict[str, object]:  # noqa: ANN001
    """InferParameter map -> plain values (whichever of its oneof fields is set)."""
    plain = {}
    for key, value in parameters.items():
        which = value.WhichOneof("parameter_choice")
        plain[key] = getattr(value, which) if which else None
    return plain


def _decode_inputs(request: pb.ModelInferRequest) -> list[InputTensor]:
    raw = request.raw_input_contents
    if raw and len(raw) != len(request.inputs):
        raise InvalidInput(
            f"{len(raw)} raw_input_contents for {len(request.inputs)} inputs; send one "
            "per input"
        )
    tensors = []
    for i, tensor in enumerate(request.inputs):
        shape = tuple(tensor.shape)
        if raw:
            tensors.append(
                decode_raw_input(tensor.name, tensor.datatype, shape, raw[i])
            )
            continue
        field = CONTENTS_FIELD.get(tensor.datatype)
        if field is None:
            raise InvalidInput(
                f"input tensor {tensor.name!r} has unknown datatype {tensor.datatype!r}"
            )
        contents = tensor.contents
        for other in set(CONTENTS_FIELD.values()) - {field}:
            if len(getattr(contents, other)):
                raise InvalidInput(
                    f"input tensor {tensor.name!r} is {tensor.datatype} but its data "
                    f"is in {other}"
                )
        tensors.append(
            decode_values(tensor.name, tensor.datatype, shape, getattr(contents, field))
        )
    return tensors


def create_server(
    dataplane: DataPlane,
    port: int,
    max_message_bytes: int,
    revision: str | None = None,
    host: str = "[::]",
) -> grpc.aio.Server:
    server = grpc.aio.server(
        options=[
            ("grpc.max_send_message_length", max_message_bytes),
            ("grpc.max_receive_message_length", max_message_bytes),
        ]
    )
    pb_grpc.add_GRPCInferenceServiceServicer_to_server(
        InferenceServicer(dataplane, revision), server
    )
    server.add_insecure_port(f"{host}:{port}")
    return server
