"""The v2 gRPC service registered with forgiving request parsers, for the predictor
and the transformer alike.

grpcio parses each request with the message type's `FromString` before any handler
runs; bytes that are no such message make grpcio answer UNKNOWN itself and log an
ERROR with a traceback, once per call: a hostile client could fill the log at line
rate. Here the parser turns such bytes into an `Undecodable`, which the server's RPC
wrapper refuses with INVALID_ARGUMENT and one bounded log line, as any bad input.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import grpc
from google.protobuf.message import DecodeError
from riskserve.serving.grpc_v2 import grpc_predict_v2_pb2 as pb

SERVICE = "inference.GRPCInferenceService"
# The RPCs served (the others, streaming and the repository extensions, are
# UNIMPLEMENTED), with their messages.
UNARY_RPCS: dict[str, tuple[Any, Any]] = {
    "ServerLive": (pb.ServerLiveRequest, pb.ServerLiveResponse),
    "ServerReady": (pb.ServerReadyRequest, pb.ServerReadyResponse),
    "ModelReady": (pb.ModelReadyRequest, pb.ModelReadyResponse),
    "ServerMetadata": (pb.ServerMetadataRequest, pb.ServerMetadataResponse),
    "ModelMetadata": (pb.ModelMetadataRequest, pb.ModelMetadataResponse),
    "ModelInfer": (pb.ModelInferRequest, pb.ModelInferResponse),
}


class Undecodable:
    """Request bytes that are no message of the RPC's type."""

    __slots__ = ("type_name",)

    def __init__(self, type_name: str) -> None:
        self.type_name = type_name

    @property
    def message(self) -> str:
        return f"the request is not a valid {self.type_name}"


def lenient(request_type: Any) -> Callable[[bytes], Any]:
    """The request's parser, bytes that are no message becoming an `Undecodable`."""
    parse = request_type.FromString
    name = request_type.DESCRIPTOR.name

    def parse_or_mark(data: bytes) -> Any:
        try:
            return parse(data)
        except DecodeError:
            return Undecodable(name)

    return parse_or_mark


def add_v2_service(servicer: Any, server: grpc.aio.Server) -> None:
    """Register `servicer`'s v2 RPCs (methods named as the protocol names them) on
    `server`, each with the lenient parser."""
    handlers = {
        name: grpc.unary_unary_rpc_method_handler(
            getattr(servicer, name),
            request_deserializer=lenient(request_type),
            response_serializer=response_type.SerializeToString,
        )
        for name, (request_type, response_type) in UNARY_RPCS.items()
    }
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler(SERVICE, handlers),)
    )
