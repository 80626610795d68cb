"""A v2 inference request off the wire, parsed once into an `InferRequest`.

One decoder per wire form, side by side, as KServe's `InferRequest.from_bytes` and
`from_grpc`: `parse_infer_request` for REST (JSON, with or without the binary tensor
extension) and `infer_request_from_grpc` for `ModelInferRequest` (its tensors decoded
by `serving.grpc_inputs`). The transports only route, call one of these, hand the
result to the data plane and write the answer.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import orjson
from riskserve.serving.binary_tensors import (
    RequestedOutputs,
    decode_inputs,
    requested_outputs,
    split_body,
)
from riskserve.serving.dataplane import InferRequest, new_request_id
from riskserve.serving.errors import InvalidInput

# Re-exported: the gRPC decoding lives in grpc_inputs, which the transformer shares.
from riskserve.serving.grpc_inputs import CONTENTS_FIELD as CONTENTS_FIELD
from riskserve.serving.grpc_inputs import decode_grpc_inputs as decode_grpc_inputs

if TYPE_CHECKING:
    from riskserve.serving.grpc_v2 import grpc_predict_v2_pb2 as pb


# -- REST: a JSON body, its binary section after Inference-Header-Content-Length ----
def parse_infer_request(
    model_name: str,
    model_version: str | None,
    body: bytes,
    header_length: bytes | None,
    received: float,
) -> tuple[InferRequest, RequestedOutputs]:
    """The request, and which outputs it wants back in binary (REST only)."""
    json_part, binary = split_body(body, header_length)
    try:
        request = orjson.loads(json_part)
    except orjson.JSONDecodeError as exc:
        hint = (
            "; a request with binary tensors needs the Inference-Header-Content-"
            "Length header"
            if header_length is None
            else ""
        )
        raise InvalidInput(f"the request body is not valid JSON: {exc}{hint}") from None
    if not isinstance(request, dict):
        raise InvalidInput("the request body is not a JSON object")
    inputs = request.get("inputs")
    if not isinstance(inputs, list):
        raise InvalidInput("the request has no 'inputs' list")
    if not inputs:
        raise InvalidInput(
            "the request's 'inputs' list is empty: send one tensor per feature, or "
            "one [N, F] tensor"
        )
    request_id = request.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise InvalidInput("'id' must be a string")
    parameters = _json_parameters(request.get("parameters"))
    requested = requested_outputs(request.get("outputs"), parameters)
    tensors = decode_inputs(inputs, binary)
    return (
        InferRequest(
            model_name,
            model_version,
            tensors,
            requested.names,
            request_id or new_request_id(),
            parameters,
            "rest",
            received,
        ),
        requested,
    )


def _json_parameters(parameters: object) -> dict[str, object]:
    if parameters is None:
        return {}
    if not isinstance(parameters, dict):
        raise InvalidInput("'parameters' must be a JSON object")
    return parameters


# -- gRPC: ModelInferRequest, typed `contents` or `raw_input_contents` ----------------
def infer_request_from_grpc(
    request: pb.ModelInferRequest, request_id: str, received: float
) -> InferRequest:
    return InferRequest(
        request.model_name,
        request.model_version or None,
        decode_grpc_inputs(request),
        [o.name for o in request.outputs] or None,
        request_id,
        _grpc_parameters(request.parameters),
        "grpc",
        received,
    )


def _grpc_parameters(parameters: Mapping[str, Any]) -> dict[str, object]:
    """InferParameter map -> plain values (whichever of its oneof fields is set)."""
    plain = {}
    for key, value in parameters.items():
        which = value.WhichOneof("parameter_choice")
        plain[key] = getattr(value, which) if which else None
    return plain
