"""The v2 binary tensor data extension over REST, as Triton specifies it and KServe
follows it.

A request with an `Inference-Header-Content-Length: L` header is L bytes of JSON, then
the raw data of every input whose `parameters` carry `binary_data_size`, one after the
other in the order of `inputs`: little-endian values, BYTES elements each prefixed with
their 4-byte little-endian length. Inputs may mix: some binary, some JSON `data`.
Outputs come back the same way when the request's `parameters.binary_data_output` is
true or an output's own `parameters.binary_data` is (the latter wins): the response is
its JSON header (those outputs with `parameters.binary_data_size` and no `data`), then
their raw bytes, and says the header's length in `Inference-Header-Content-Length`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
from riskserve.serving.errors import InvalidInput
from riskserve.serving.tensors import (
    InputTensor,
    OutputTensor,
    check_header,
    decode_json_input,
    decode_raw_input,
    decode_single_row,
    encode_raw,
)

HEADER_LENGTH = b"inference-header-content-length"
OCTET_STREAM = b"application/octet-stream"


def split_body(body: bytes, header_length: bytes | None) -> tuple[bytes, bytes]:
    """(JSON header, binary section); without the header, all of it is JSON."""
    if header_length is None:
        return body, b""
    text = header_length.decode("latin-1").strip()
    if not text.isdigit():
        raise InvalidInput(
            f"Inference-Header-Content-Length must be a byte count, got {text!r}"
        )
    length = int(text)
    if length > len(body):
        raise InvalidInput(
            f"Inference-Header-Content-Length {length} is beyond the body of "
            f"{len(body)} bytes"
        )
    return body[:length], body[length:]


def decode_inputs(inputs: list, binary: bytes) -> list[InputTensor]:
    """Every input, from its JSON `data` or from its slice of the binary section."""
    if not binary:
        single = decode_single_row(inputs)
        if single is not None:
            return single
    tensors = []
    offset = 0
    for index, item in enumerate(inputs):
        size = _binary_size(item, index)
        if size is None:
            tensors.append(decode_json_input(item, index))
            continue
        name = item.get("name")
        if "data" in item:
            raise InvalidInput(
                f"input tensor {name!r} has both 'data' and a binary_data_size; send one"
            )
        if offset + size > len(binary) and not binary:
            raise InvalidInput(
                f"input tensor {name!r} has binary_data_size {size} but the request "
                "has no binary data: send the Inference-Header-Content-Length header "
                "with the length of the JSON part"
            )
        if offset + size > len(binary):
            raise InvalidInput(
                f"input tensor {name!r}: binary_data_size {size} runs past the end of "
                f"the body ({len(binary) - offset} binary bytes left)"
            )
        tensors.append(_decode_binary(item, index, binary[offset : offset + size]))
        offset += size
    if offset != len(binary):
        raise InvalidInput(
            f"{len(binary) - offset} bytes of binary data after the last binary input; "
            "binary_data_size and Inference-Header-Content-Length disagree with the body"
        )
    return tensors


def _binary_size(item: object, index: int) -> int | None:
    if type(item) is not dict:
        return None
    parameters = item.get("parameters")
    if type(parameters) is not dict or "binary_data_size" not in parameters:
        return None
    size = parameters["binary_data_size"]
    if type(size) is not int or size < 0:
        raise InvalidInput(
            f"inputs[{index}]: binary_data_size must be a non-negative integer, "
            f"got {size!r}"
        )
    return size


def _decode_binary(item: dict, index: int, raw: bytes) -> InputTensor:
    # Unchecked JSON values until check_header has validated them.
    name: Any
    datatype: Any
    shape: Any
    name, datatype, shape = item.get("name"), item.get("datatype"), item.get("shape")
    check_header(name, datatype, shape, f"inputs[{index}]")
    return decode_raw_input(name, datatype, tuple(shape), raw)


@dataclass(frozen=True)
class RequestedOutputs:
    names: list[str] | None  # None: every output of the model
    binary: dict[str, bool]  # per-output `binary_data`
    binary_default: bool  # the request's `binary_data_output`

    def is_binary(self, name: str) -> bool:
        return self.binary.get(name, self.binary_default)


_EVERY_OUTPUT_JSON = RequestedOutputs(None, {}, False)
_EVERY_OUTPUT_BINARY = RequestedOutputs(None, {}, True)


def requested_outputs(outputs: object, parameters: dict) -> RequestedOutputs:
    default = parameters.get("binary_data_output", False)
    if type(default) is not bool:
        raise InvalidInput("'binary_data_output' must be true or false")
    if outputs is None:
        # Nearly every request: no per-output choices (a frozen dataclass costs ~1 us
        # to build, so the two answers are built once).
        return _EVERY_OUTPUT_BINARY if default else _EVERY_OUTPUT_JSON
    if not isinstance(outputs, list):
        raise InvalidInput("'outputs' must be a list of {\"name\": ...} objects")
    names, binary = [], {}
    for item in outputs:
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            raise InvalidInput("'outputs' must be a list of {\"name\": ...} objects")
        names.append(item["name"])
        own = item.get("parameters")
        if own is None:
            continue
        if not isinstance(own, dict):
            raise InvalidInput(
                f"output {item['name']!r}: 'parameters' must be an object"
            )
        if "binary_data" in own:
            if type(own["binary_data"]) is not bool:
                raise InvalidInput(
                    f"output {item['name']!r}: 'binary_data' must be true or false"
                )
            binary[item["name"]] = own["binary_data"]
    return RequestedOutputs(names, binary, default)


def encode_outputs(
    outputs: list[OutputTensor], requested: RequestedOutputs
) -> tuple[list[dict], list[bytes]]:
    """The JSON description of each output, and the raw bytes of the binary ones."""
    described, raw = [], []
    for tensor in outputs:
        array = tensor.array
        entry: dict[str, Any] = {
            "name": tensor.name,
            "datatype": tensor.datatype,
            "shape": list(array.shape),
        }
        if requested.is_binary(tensor.name):
            data = encode_raw(array)
            entry["parameters"] = {"binary_data_size": len(data)}
            raw.append(data)
        else:
            entry["data"] = array.tolist() if array.dtype == object else array
        described.append(entry)
    return described, raw


def response_body(header: dict, raw: list[bytes]) -> tuple[bytes, int | None]:
    """The response, and its JSON header's length when binary data follow it."""
    encoded = orjson.dumps(header, option=orjson.OPT_SERIALIZE_NUMPY)
    if not raw:
        return encoded, None
    return encoded + b"".join(raw), len(encoded)
