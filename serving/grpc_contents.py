"""Typed gRPC `contents` to numpy and back without a Python object per value.

Reading `np.asarray(tensor.contents.fp32_contents)` walks the repeated field one
Python float at a time: ~4 ms for 100,000 values, in one C call that holds the GIL the
whole time (upb's `RepeatedScalarContainer` has no buffer protocol in protobuf 6), and
so does `extend(array.tolist())` for the answer. A 100,000-row, 7-feature request held
the GIL for ~30 ms that way, and health probes waited for it.

But a packed repeated field's wire form *is* the array: a tag, a length, then the
values (little-endian for FP32 / FP64, one byte per value for BOOL and for integers
below 128). Serialising the one-field `InferTensorContents` (upb: a memcpy, ~20 µs for
100,000 floats) and reading it with `np.frombuffer` gives the array; parsing such bytes
into a response's contents (`MergeFromString`) fills the field the same way. When the
bytes are not of that form (values of another width, unknown fields, an empty field)
the functions say so (None / False) and the caller takes the per-value path, which
also produces the error messages.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from google.protobuf.message import Message
from riskserve.serving.grpc_v2 import grpc_predict_v2_pb2 as pb

_FIELDS = pb.InferTensorContents.DESCRIPTOR.fields_by_name
# Fixed-width packed fields: their payload is the little-endian array itself.
_FIXED: dict[str, np.dtype[Any]] = {
    "fp32_contents": np.dtype("<f4"),
    "fp64_contents": np.dtype("<f8"),
}
# Varint packed fields: one byte per value when every value is in 0..127.
_VARINT = frozenset(
    {
        "bool_contents",
        "int_contents",
        "int64_contents",
        "uint_contents",
        "uint64_contents",
    }
)


def _varint(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


# The tag of each packed field (field number, wire type 2: length-delimited).
_TAGS = {name: _varint(_FIELDS[name].number << 3 | 2) for name in (*_FIXED, *_VARINT)}


def _read_varint(data: bytes, offset: int) -> tuple[int, int]:
    value = shift = 0
    while offset < len(data) and shift < 64:
        byte = data[offset]
        offset += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, offset
        shift += 7
    return -1, offset


def contents_array(contents: Message, field: str, count: int) -> np.ndarray | None:
    """`contents.<field>` (`count` values, the only field set) as a read-only numpy
    array over the field's wire bytes; None when they are not of the packed form this
    reads, and the caller decodes value by value."""
    tag = _TAGS.get(field)
    if tag is None or count == 0:
        return None
    wire = contents.SerializeToString()
    if not wire.startswith(tag):
        return None
    length, offset = _read_varint(wire, len(tag))
    if length < 0 or offset + length != len(wire):
        return None  # another field or unknown fields too: not ours to read
    dtype = _FIXED.get(field)
    if dtype is not None:
        if length != count * dtype.itemsize:
            return None
        return np.frombuffer(wire, dtype, count, offset).astype(
            dtype.newbyteorder("="), copy=False
        )
    if length != count:
        return None  # some value took more than one byte
    values = np.frombuffer(wire, np.uint8, count, offset)
    if field == "bool_contents":
        if count and values.max() > 1:
            return None
        return values.view(np.bool_)
    return values


def fill_contents(contents: Message, field: str, array: np.ndarray) -> bool:
    """Set `contents.<field>` (empty) to `array`'s values by parsing their packed wire
    form; False (nothing set) when the array does not have one this writes."""
    tag = _TAGS.get(field)
    if tag is None or array.size == 0:
        return False
    dtype = _FIXED.get(field)
    if dtype is not None:
        if array.dtype.kind != "f":
            return False
        payload = np.ascontiguousarray(array, dtype=dtype).tobytes()
    elif array.dtype == np.bool_:
        if field != "bool_contents":
            return False
        payload = np.ascontiguousarray(array, dtype=np.uint8).tobytes()
    else:
        return False
    contents.MergeFromString(tag + _varint(len(payload)) + payload)
    return True
