"""A v2 gRPC `ModelInferRequest`'s input tensors, decoded: typed `contents` or
`raw_input_contents`. Shared by the predictor's gRPC server (through
`serving.infer_request`) and the transformer's (`transformer/grpc_server.py`), which
must not load the predictor's data plane and model runtime.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from riskserve.serving.errors import InvalidInput
from riskserve.serving.tensors import InputTensor, decode_raw_input, decode_values

if TYPE_CHECKING:
    from riskserve.serving.grpc_v2 import grpc_predict_v2_pb2 as pb

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


def decode_grpc_inputs(request: pb.ModelInferRequest) -> list[InputTensor]:
    # gRPC's own module (it loads the stubs), imported by gRPC requests only.
    from riskserve.serving.grpc_contents import contents_array

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
        values = getattr(contents, field)
        # The packed field's own bytes when it has that form (no Python object per
        # value, see grpc_contents), else value by value.
        array = contents_array(contents, field, len(values))
        tensors.append(
            decode_values(
                tensor.name, tensor.datatype, shape, values if array is None else array
            )
        )
    return tensors
