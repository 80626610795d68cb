"""v2 tensors: decoding request tensors into numpy and describing output tensors.

Transports (REST JSON, gRPC protobuf, KServe's InferRequest) each turn their wire form
into `InputTensor`s here; the model checks them against its graph.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass
from typing import Any

import numpy as np
from riskserve.serving.errors import InvalidInput

# v2 datatype -> numpy dtype; BYTES travels as an object array of str.
NUMPY_DTYPES: dict[str, type] = {
    "BOOL": np.bool_,
    "UINT8": np.uint8,
    "UINT16": np.uint16,
    "UINT32": np.uint32,
    "UINT64": np.uint64,
    "INT8": np.int8,
    "INT16": np.int16,
    "INT32": np.int32,
    "INT64": np.int64,
    "FP16": np.float16,
    "FP32": np.float32,
    "FP64": np.float64,
    "BYTES": np.object_,
}
FLOAT_TYPES = frozenset({"FP16", "FP32", "FP64"})

# onnxruntime type string -> v2 datatype
ONNX_TO_V2: dict[str, str] = {
    "tensor(float)": "FP32",
    "tensor(double)": "FP64",
    "tensor(float16)": "FP16",
    "tensor(bool)": "BOOL",
    "tensor(string)": "BYTES",
    "tensor(int8)": "INT8",
    "tensor(int16)": "INT16",
    "tensor(int32)": "INT32",
    "tensor(int64)": "INT64",
    "tensor(uint8)": "UINT8",
    "tensor(uint16)": "UINT16",
    "tensor(uint32)": "UINT32",
    "tensor(uint64)": "UINT64",
}


@dataclass(slots=True)
class InputTensor:
    """One request tensor: `array` already has `shape`."""

    name: str
    datatype: str
    shape: tuple[int, ...]
    array: np.ndarray


@dataclass(slots=True)
class OutputTensor:
    name: str
    datatype: str
    array: np.ndarray

    @property
    def shape(self) -> list[int]:
        return list(self.array.shape)


def check_header(name: object, datatype: object, shape: object, where: str) -> None:
    if not isinstance(name, str) or not name:
        raise InvalidInput(f"{where} has no name")
    if datatype not in NUMPY_DTYPES:
        raise InvalidInput(
            f"input tensor {name!r} has unknown datatype {datatype!r}; "
            f"expected one of {', '.join(NUMPY_DTYPES)}"
        )
    if not isinstance(shape, list | tuple) or not all(
        type(d) is int and d >= 0 for d in shape
    ):
        raise InvalidInput(
            f"input tensor {name!r} has shape {shape!r}; "
            "a shape is a list of non-negative integers"
        )
    # Dimensions numpy cannot even describe (a zero elsewhere keeps the size at 0):
    # a 400, not the ValueError numpy raises when reshaping to them.
    if len(shape) > 32 or math.prod(max(d, 1) for d in shape) > 2**40:
        raise InvalidInput(
            f"input tensor {name!r} has shape {list(shape)!r}, larger than any "
            "tensor this server accepts"
        )


def _check_size(name: str, shape: tuple[int, ...], size: int) -> None:
    expected = math.prod(shape)
    if expected != size:
        raise InvalidInput(
            f"input tensor {name!r} has shape {list(shape)} ({expected} values) "
            f"but {size} values of data"
        )


def _flatten(data: list) -> list:
    if data and type(data[0]) is list:
        flat: list = []
        for item in data:
            if type(item) is list:
                flat.extend(_flatten(item))
            else:
                flat.append(item)
        return flat
    return data


def decode_json_input(obj: object, index: int) -> InputTensor:
    """Decode `inputs[index]` of a v2 JSON request (nested or flat `data`)."""
    # Fast path for what nearly every request holds: a numeric feature column
    # ([N, 1] or [N]) of JSON numbers. Anything unusual takes the checked path below,
    # which also produces the error messages.
    if type(obj) is dict and obj.get("datatype") == "FP32":
        name = obj.get("name")
        shape = obj.get("shape")
        data = obj.get("data")
        if type(name) is str and name and type(data) is list and type(shape) is list:
            size = _simple_size(shape)
            if size >= 0:
                try:
                    array = np.asarray(data)
                except ValueError:
                    array = None
                if (
                    array is not None
                    and array.dtype.kind in "fiu"
                    and array.size == size
                ):
                    return InputTensor(
                        name,
                        "FP32",
                        tuple(shape),
                        array.astype(np.float32, copy=False).reshape(shape),
                    )
    return _decode_json_input_checked(obj, index)


_ROW_2D: tuple[int, ...] = (1, 1)
_ROW_1D: tuple[int, ...] = (1,)


_FP32_MAX = float(np.finfo(np.float32).max)


def decode_single_row(inputs: list) -> list[InputTensor] | None:
    """Every input of the commonest request, one row of numeric features (each input
    FP32, shape [1, 1] or [1], data [x] or [[x]], x a JSON number or null), or None
    for anything else, which then takes `decode_json_input` (and its error messages).

    The values are gathered into one numpy array and each tensor is a view of it: one
    array built instead of one per feature (single-row JSON spent 46 us decoding seven
    features one array at a time, 21 us this way, measured in-process). The checks
    are the same as the general path's: a name, a known shape of ints (not bools), as
    many values as the shape, numbers only (a bool or a string is not one); null is a
    missing value (NaN), as there.
    """
    values: list = []
    headers: list[tuple[str, tuple[int, ...]]] = []
    for item in inputs:
        if type(item) is not dict or item.get("datatype") != "FP32":
            return None
        name = item.get("name")
        shape = item.get("shape")
        data = item.get("data")
        if (
            type(name) is not str
            or not name
            or type(data) is not list
            or len(data) != 1
            or type(shape) is not list
            or "parameters" in item
        ):
            return None
        if len(shape) == 2:
            if (
                shape != [1, 1]
                or type(shape[0]) is not int
                or type(shape[1]) is not int
            ):
                return None
            fixed = _ROW_2D
        elif len(shape) == 1:
            if shape != [1] or type(shape[0]) is not int:
                return None
            fixed = _ROW_1D
        else:
            return None
        value = data[0]
        if type(value) is list:
            if len(value) != 1:
                return None
            value = value[0]
        kind = type(value)
        if kind is not float and kind is not int and value is not None:
            return None  # bool, str, list...: the general path says what is wrong
        if kind is float and not -_FP32_MAX <= value <= _FP32_MAX:
            return None  # beyond FP32 (or inf, NaN): the general path refuses it
        values.append(value)
        headers.append((name, fixed))
    if not values:
        return None
    # orjson gives 64-bit ints at most (a longer number is a float or an error).
    array = np.array(values, dtype=np.float32)
    rows = array.reshape(len(values), 1, 1)
    return [
        InputTensor(name, "FP32", shape, rows[i] if shape is _ROW_2D else rows[i, 0])
        for i, (name, shape) in enumerate(headers)
    ]


def _simple_size(shape: list) -> int:
    """Element count of a 1-D or 2-D shape of non-negative ints, else -1."""
    if len(shape) == 2:
        rows, columns = shape
        if type(rows) is int and type(columns) is int and rows >= 0 and columns >= 0:
            return rows * columns
    elif len(shape) == 1:
        rows = shape[0]
        if type(rows) is int and rows >= 0:
            return rows
    return -1


def _decode_json_input_checked(obj: object, index: int) -> InputTensor:
    if not isinstance(obj, dict):
        raise InvalidInput(f"inputs[{index}] is not a JSON object")
    # Unchecked JSON values until check_header has validated them.
    name: Any = obj.get("name")
    datatype: Any = obj.get("datatype")
    shape: Any = obj.get("shape")
    check_header(name, datatype, shape, f"inputs[{index}]")
    data = obj.get("data")
    if not isinstance(data, list):
        raise InvalidInput(f"input tensor {name!r} has no data list")
    shape = tuple(shape)
    if datatype == "BYTES":
        flat = _flatten(data)
        for value in flat:
            if type(value) is not str:
                raise InvalidInput(
                    f"input tensor {name!r} is BYTES but holds {value!r}; "
                    "BYTES data are JSON strings"
                )
        _check_size(name, shape, len(flat))
        array = np.empty(len(flat), dtype=object)
        array[:] = flat
        return InputTensor(name, datatype, shape, array.reshape(shape))
    try:
        array = np.asarray(data)
    except ValueError:
        raise InvalidInput(
            f"input tensor {name!r} has ragged nested data; every row needs the same length"
        ) from None
    array = _numeric_array(name, datatype, array, data)
    _check_size(name, shape, array.size)
    return InputTensor(name, datatype, shape, array.reshape(shape))


def _in_range(name: str, datatype: str, array: np.ndarray, dtype: Any) -> np.ndarray:
    """`array` as the float `dtype`; a number it cannot hold (1e6 as FP16, 1e39 as
    FP32) would become inf, with numpy's overflow warning on stderr: a 400 instead."""
    with np.errstate(over="ignore"):
        cast = array.astype(dtype, copy=False)
    if cast.size and np.isinf(cast).any():
        raise InvalidInput(
            f"input tensor {name!r} holds a value outside the range of {datatype}"
        )
    return cast


def _numeric_array(
    name: str, datatype: str, array: np.ndarray, data: list
) -> np.ndarray:
    kind = array.dtype.kind
    dtype = NUMPY_DTYPES[datatype]
    if datatype == "BOOL":
        if kind == "b" or array.size == 0:
            return array.astype(np.bool_, copy=False)
        raise InvalidInput(f"input tensor {name!r} is BOOL but holds non-boolean data")
    if kind in "iu" or (kind == "f" and datatype in FLOAT_TYPES):
        if datatype not in FLOAT_TYPES:
            return array.astype(dtype, copy=False)
        return _in_range(name, datatype, array, dtype)
    if kind == "f":
        raise InvalidInput(
            f"input tensor {name!r} is {datatype} but holds non-integer numbers"
        )
    if kind == "O" and datatype in FLOAT_TYPES:
        # null stands for a missing value (NaN): the graph imputes it.
        flat = _flatten(data)
        if all(v is None or type(v) in (int, float) for v in flat):
            return _in_range(name, datatype, np.array(flat, dtype=np.float64), dtype)
    if kind == "b":
        raise InvalidInput(
            f"input tensor {name!r} is {datatype} but holds booleans; send numbers"
        )
    raise InvalidInput(
        f"input tensor {name!r} is {datatype} but holds non-numeric data"
    )


def decode_raw_input(
    name: str, datatype: str, shape: tuple[int, ...], raw: bytes
) -> InputTensor:
    """Decode a gRPC `raw_input_contents` entry (little-endian; BYTES length-prefixed)."""
    check_header(name, datatype, list(shape), "input tensor")
    if datatype == "BYTES":
        values: list[str] = []
        offset = 0
        try:
            while offset < len(raw):
                (length,) = struct.unpack_from("<I", raw, offset)
                offset += 4
                if offset + length > len(raw):
                    raise ValueError("truncated")
                values.append(raw[offset : offset + length].decode("utf-8"))
                offset += length
        except (struct.error, ValueError, UnicodeDecodeError):
            raise InvalidInput(
                f"input tensor {name!r} has malformed raw BYTES contents"
            ) from None
        _check_size(name, shape, len(values))
        array = np.empty(len(values), dtype=object)
        array[:] = values
        return InputTensor(name, datatype, shape, array.reshape(shape))
    dtype = np.dtype(NUMPY_DTYPES[datatype]).newbyteorder("<")
    if len(raw) % dtype.itemsize:
        raise InvalidInput(
            f"input tensor {name!r} has {len(raw)} raw bytes, not a multiple of "
            f"{dtype.itemsize} for {datatype}"
        )
    array = np.frombuffer(raw, dtype=dtype)
    _check_size(name, shape, array.size)
    return InputTensor(
        name, datatype, shape, array.astype(dtype.newbyteorder("=")).reshape(shape)
    )


def decode_values(
    name: str, datatype: str, shape: tuple[int, ...], values: list | np.ndarray
) -> InputTensor:
    """Decode typed values (gRPC `contents`, KServe's numpy) already of the right type."""
    check_header(name, datatype, list(shape), "input tensor")
    if datatype == "BYTES":
        try:
            flat = [v.decode("utf-8") if isinstance(v, bytes) else v for v in values]
        except UnicodeDecodeError:
            raise InvalidInput(
                f"input tensor {name!r} is BYTES but holds bytes that are not UTF-8"
            ) from None
        for value in flat:
            if type(value) is not str:
                raise InvalidInput(
                    f"input tensor {name!r} is BYTES but holds {value!r}"
                )
        array = np.empty(len(flat), dtype=object)
        array[:] = flat
    else:
        try:
            array = np.asarray(values, dtype=NUMPY_DTYPES[datatype])
        except OverflowError:
            raise InvalidInput(
                f"input tensor {name!r} holds values out of the range of {datatype}"
            ) from None
    _check_size(name, shape, array.size)
    return InputTensor(name, datatype, shape, array.reshape(shape))


def encode_raw(array: np.ndarray) -> bytes:
    """Raw little-endian bytes of an output (BYTES: 4-byte length prefix per element)."""
    if array.dtype == object:
        parts = []
        for value in array.ravel():
            data = value if isinstance(value, bytes) else str(value).encode("utf-8")
            parts.append(struct.pack("<I", len(data)))
            parts.append(data)
        return b"".join(parts)
    return np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<")).tobytes()
