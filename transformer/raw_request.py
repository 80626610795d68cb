"""A raw request as v2 tensors: parsed once, checked field by field.

One tensor per raw field, shape `[N]` or `[N, 1]`, JSON `data` or binary tensors
(the v2 binary extension, decoded by the predictor's own codec so both servers read a
v2 request alike). Every refusal is a 400 naming the field. The fields and their
checks are the decision's (`riskserve.transformer.decisions`); a card transaction's
are here, a checkout's in `riskserve.transformer.checkout`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import orjson
from riskserve.features.card import Transaction
from riskserve.serving.binary_tensors import (
    RequestedOutputs,
    decode_inputs,
    requested_outputs,
    split_body,
)
from riskserve.serving.errors import InvalidInput
from riskserve.serving.errors import bounded as bounded_to
from riskserve.serving.tensors import InputTensor

IDS = ("card_id", "merchant_id")
AMOUNTS = ("amount", "merchant_latitude", "merchant_longitude")
FLAGS = ("used_chip", "used_pin_number", "online_order")
TIMESTAMP = "timestamp"
# The raw inputs of the transformer's metadata: (name, datatype, what it is).
RAW_INPUTS: tuple[tuple[str, str, str], ...] = (
    ("card_id", "BYTES", "the card"),
    ("amount", "FP64", "the transaction's amount, 0 to 1e12"),
    ("merchant_id", "BYTES", "the merchant"),
    ("merchant_latitude", "FP64", "degrees, -90 to 90"),
    ("merchant_longitude", "FP64", "degrees, -180 to 180"),
    ("used_chip", "BOOL", "0/1 or true/false"),
    ("used_pin_number", "BOOL", "0/1 or true/false"),
    ("online_order", "BOOL", "0/1 or true/false"),
    (TIMESTAMP, "INT64", "microseconds since the Unix epoch, UTC, up to 2262-04-11"),
)
RAW_NAMES = tuple(name for name, _, _ in RAW_INPUTS)
_NUMERIC = frozenset(
    {"BOOL", "INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16", "UINT32", "UINT64"}
    | {"FP16", "FP32", "FP64"}
)
_INTEGERS = _NUMERIC - {"FP16", "FP32", "FP64"}
_MAX_ID_LENGTH = 256
# An amount beyond this is no purchase; beyond float32's range it would reach the
# model as infinity (found by tests/reliability/test_transformer_fuzz.py).
MAX_AMOUNT = 1e12
# The feature store's timestamps are pandas nanoseconds: the last one it can hold,
# 2262-04-11 (a later event was answered, then its state push failed).
MAX_TIMESTAMP_US = 9_223_372_036_854_775


@dataclass(frozen=True)
class RawRequest:
    id: str | None
    events: list[Any]  # Transaction (card) or Checkout (customer)
    outputs: RequestedOutputs

    @property
    def transactions(self) -> list[Any]:
        return self.events


class RawKind(Protocol):
    """The raw fields of a decision and how to check and read them."""

    raw_inputs: tuple[tuple[str, str, str], ...]

    def column(self, tensor: InputTensor, rows: int) -> list[Any]: ...

    def events(self, columns: dict[str, list[Any]], rows: int) -> list[Any]: ...

    def json_column(self, name: str, values: list) -> list | None:
        """The field's checked values straight from JSON `data` (already sent with
        its documented datatype), or None for anything not plainly valid."""
        ...


def parse_raw_request(
    body: bytes,
    header_length: bytes | None,
    max_rows: int,
    kind: RawKind | None = None,
) -> RawRequest:
    """The request's raw events (card transactions unless `kind` says otherwise)."""
    names: Sequence[str] = (
        RAW_NAMES if kind is None else tuple(n for n, _, _ in kind.raw_inputs)
    )
    json_part, binary = split_body(body, header_length)
    try:
        request = orjson.loads(json_part)
    except orjson.JSONDecodeError:
        raise InvalidInput("the request body is not valid JSON") from None
    if type(request) is not dict:
        raise InvalidInput("the request body must be a JSON object")
    request_id = request.get("id")
    if request_id is not None and type(request_id) is not str:
        raise InvalidInput("'id' must be a string")
    parameters = request.get("parameters") or {}
    if type(parameters) is not dict:
        raise InvalidInput("'parameters' must be an object")
    inputs = request.get("inputs")
    if type(inputs) is not list or not inputs:
        raise InvalidInput(
            "'inputs' must be a non-empty list of tensors, one per raw field: "
            + ", ".join(names)
        )
    raw_inputs = RAW_INPUTS if kind is None else kind.raw_inputs
    outputs = _requested_outputs(request.get("outputs"), parameters)
    fast = None if binary else _json_columns(inputs, raw_inputs, max_rows, kind)
    if fast is not None:
        columns, rows = fast
        events = (
            transactions(columns, rows) if kind is None else kind.events(columns, rows)
        )
        return RawRequest(request_id, events, outputs)
    return RawRequest(
        request_id,
        events_from_tensors(_decode_inputs(inputs, binary), max_rows, kind),
        outputs,
    )


def events_from_tensors(
    decoded: Sequence[InputTensor], max_rows: int, kind: RawKind | None = None
) -> list[Any]:
    """The raw events of decoded v2 tensors (REST's general path and gRPC's
    `ModelInferRequest`): one tensor per raw field, each checked; a 400 naming the
    field otherwise."""
    names: Sequence[str] = (
        RAW_NAMES if kind is None else tuple(n for n, _, _ in kind.raw_inputs)
    )
    tensors: dict[str, InputTensor] = {}
    for tensor in decoded:
        if tensor.name not in names:
            raise InvalidInput(
                f"unknown input tensor {excerpt(tensor.name)}; the raw fields are "
                + ", ".join(names)
            )
        if tensor.name in tensors:
            raise InvalidInput(f"input tensor {excerpt(tensor.name)} is sent twice")
        tensors[tensor.name] = tensor
    missing = [name for name in names if name not in tensors]
    if missing:
        raise InvalidInput("missing input tensor(s): " + ", ".join(missing))
    rows = _rows(tensors, max_rows, names)
    if kind is None:
        columns = {name: card_column(tensors[name], rows) for name in names}
        return transactions(columns, rows)
    columns = {name: kind.column(tensors[name], rows) for name in names}
    return kind.events(columns, rows)


_POSITION = re.compile(r"^inputs\[(\d+)\]")
_MAX_ERROR_LENGTH = 400
_MAX_OUTPUTS = 64
_MAX_OUTPUT_NAME_LENGTH = 128


def _decode_inputs(inputs: list, binary: bytes) -> list[InputTensor]:
    """The predictor's v2 decoder, its refusals reworded for a raw field: the field
    named where the decoder gives a position (`inputs[1]`), the message bounded."""
    try:
        return decode_inputs(inputs, binary)
    except InvalidInput as exc:
        message = exc.message
        position = _POSITION.match(message)
        if position is not None:
            item = inputs[int(position.group(1))]
            name = item.get("name") if type(item) is dict else None
            if type(name) is str:
                message = f"input tensor {excerpt(name)}" + message[position.end() :]
        raise InvalidInput(bounded(message)) from None


def _requested_outputs(outputs: object, parameters: dict) -> RequestedOutputs:
    """The requested outputs, their count and names bounded before anything quotes
    them back (an unknown name is an error that names it)."""
    if type(outputs) is list:
        if len(outputs) > _MAX_OUTPUTS:
            raise InvalidInput(
                f"'outputs' lists {len(outputs)} outputs; at most {_MAX_OUTPUTS}"
            )
        for item in outputs:
            name = item.get("name") if type(item) is dict else None
            if type(name) is str and len(name) > _MAX_OUTPUT_NAME_LENGTH:
                raise InvalidInput(
                    f"'outputs' names {excerpt(name)}, longer than "
                    f"{_MAX_OUTPUT_NAME_LENGTH} characters"
                )
    return requested_outputs(outputs, parameters)


def bounded(message: str) -> str:
    """The predictor's `bounded`, at the transformer's shorter limit."""
    return bounded_to(message, _MAX_ERROR_LENGTH)


def excerpt(text: str, limit: int = 80) -> str:
    """`text` as an error quotes it: repr'd, cut to `limit` characters (a hostile
    client's megabyte is not sent back)."""
    if len(text) <= limit:
        return repr(text)
    return repr(text[:limit]) + f"... ({len(text)} characters)"


def _json_columns(
    inputs: list,
    raw_inputs: tuple[tuple[str, str, str], ...],
    max_rows: int,
    kind: RawKind | None,
) -> tuple[dict[str, list[Any]], int] | None:
    """The checked columns of the commonest body, or None to take the general path.

    The commonest body is JSON only, each raw field sent once with its documented
    datatype (`RAW_INPUTS`), shape `[N]` or `[N, 1]`, flat `data` of N values, no other
    key, N the same for all and within the limit. Its values are read as they are,
    without the v2 decoder and numpy (one card transaction: ~540 us through them, see
    docs/transformer.md). Any value the field's checks would refuse, and any body not
    of that form, returns None: the general path then answers, so every 400 has one
    wording, the general path's.
    """
    if len(inputs) != len(raw_inputs):
        return None
    datatypes = {name: datatype for name, datatype, _ in raw_inputs}
    data_by_name: dict[str, list] = {}
    rows = -1
    for item in inputs:
        if type(item) is not dict or len(item) != 4:
            return None
        name = item.get("name")
        shape = item.get("shape")
        data = item.get("data")
        if (
            type(name) is not str
            or name in data_by_name
            or datatypes.get(name) != item.get("datatype")
            or type(shape) is not list
            or type(data) is not list
        ):
            return None
        if len(shape) == 2:
            if type(shape[1]) is not int or shape[1] != 1:
                return None
        elif len(shape) != 1:
            return None
        n = shape[0]
        if type(n) is not int or n != len(data) or (rows != -1 and n != rows):
            return None
        rows = n
        data_by_name[name] = data
    if rows < 1 or rows > max_rows:
        return None
    columns: dict[str, list[Any]] = {}
    for name, _, _ in raw_inputs:
        column = (
            card_json_column(name, data_by_name[name])
            if kind is None
            else kind.json_column(name, data_by_name[name])
        )
        if column is None:
            return None
        columns[name] = column
    return columns, rows


def json_ids(values: list) -> list[str] | None:
    """`id_column`'s values from JSON strings, or None if it would refuse one."""
    for value in values:
        if type(value) is not str or not value or len(value) > _MAX_ID_LENGTH:
            return None
    return values


def json_timestamps(values: list) -> list[int] | None:
    """`timestamp_column`'s values from JSON integers (INT64), or None."""
    for value in values:
        if type(value) is not int or not 0 < value <= MAX_TIMESTAMP_US:
            return None
    return values


def json_floats(values: list, limit: float | None = None) -> list[float] | None:
    """Finite FP64 values from JSON numbers: 0 to `MAX_AMOUNT` without a `limit`,
    within -limit to limit with one; None if `amount_column`/`card_column` would
    refuse."""
    floats = []
    for value in values:
        kind = type(value)
        if kind is int:
            if not -(2**53) < value < 2**53:
                return None
            value = float(value)
        elif kind is not float:
            return None
        if not math.isfinite(value):
            return None
        if not 0 <= value <= MAX_AMOUNT if limit is None else abs(value) > limit:
            return None
        floats.append(value)
    return floats


def card_json_column(name: str, values: list) -> list | None:
    """`card_column`'s result from a field's JSON `data`, or None (see `_json_columns`)."""
    if name in IDS:
        return json_ids(values)
    if name == TIMESTAMP:
        return json_timestamps(values)
    if name in FLAGS:
        for value in values:
            if type(value) is not bool:
                return None
        return [int(v) for v in values]
    if name == "amount":
        return json_floats(values)
    return json_floats(values, 90.0 if name == "merchant_latitude" else 180.0)


def transactions(columns: dict[str, list[Any]], rows: int) -> list[Transaction]:
    """Card transactions from the checked columns of a request."""
    # Positional: the feature layer's field names for the flags (chip, pin, online)
    # differ from the tensors' (the model's feature names).
    return [
        Transaction(
            columns["card_id"][i],
            columns[TIMESTAMP][i],
            columns["amount"][i],
            columns["merchant_id"][i],
            columns["merchant_latitude"][i],
            columns["merchant_longitude"][i],
            columns["used_chip"][i],
            columns["used_pin_number"][i],
            columns["online_order"][i],
        )
        for i in range(rows)
    ]


def _rows(tensors: dict[str, InputTensor], max_rows: int, names: Sequence[str]) -> int:
    rows = None
    for name in names:
        shape = tensors[name].shape
        if len(shape) not in (1, 2) or (len(shape) == 2 and shape[1] != 1):
            raise InvalidInput(
                f"input tensor {name!r} has shape {list(shape)}; expected [N] or [N, 1]"
            )
        if rows is None:
            rows = shape[0]
        elif shape[0] != rows:
            raise InvalidInput(
                f"input tensor {name!r} has {shape[0]} rows but {names[0]!r} has {rows}"
            )
    assert rows is not None
    if rows == 0:
        raise InvalidInput("the request has no rows")
    if rows > max_rows:
        raise InvalidInput(
            f"the request has {rows} rows; at most {max_rows} per request"
        )
    return rows


def id_column(tensor: InputTensor, rows: int) -> list[str]:
    """A BYTES field of ids: each non-empty, at most 256 characters."""
    name, datatype = tensor.name, tensor.datatype
    values = tensor.array.reshape(rows)
    if datatype != "BYTES":
        raise InvalidInput(f"input tensor {name!r} must be BYTES, got {datatype}")
    for value in values:
        if not value or len(value) > _MAX_ID_LENGTH:
            raise InvalidInput(
                f"input tensor {name!r} holds an empty id or one longer than "
                f"{_MAX_ID_LENGTH} characters"
            )
    return [str(v) for v in values]


def timestamp_column(tensor: InputTensor, rows: int) -> list[int]:
    """An integer field of microseconds since the epoch (> 0)."""
    name, datatype = tensor.name, tensor.datatype
    if datatype not in _INTEGERS - {"BOOL"}:
        raise InvalidInput(
            f"input tensor {name!r} must be INT64 microseconds since the epoch, "
            f"got {datatype}"
        )
    stamps = [int(v) for v in tensor.array.reshape(rows)]
    if any(v <= 0 for v in stamps):
        raise InvalidInput(
            f"input tensor {name!r} must hold microseconds since the epoch (> 0)"
        )
    if any(v > MAX_TIMESTAMP_US for v in stamps):
        raise InvalidInput(
            f"input tensor {name!r} holds a time after 2262-04-11, the last the "
            "feature store can keep"
        )
    return stamps


def amount_column(tensor: InputTensor, rows: int) -> list[float]:
    """A numeric field of amounts: finite, not negative."""
    name, datatype = tensor.name, tensor.datatype
    if datatype not in _NUMERIC:
        raise InvalidInput(f"input tensor {name!r} must be numeric, got {datatype}")
    floats = [float(v) for v in tensor.array.reshape(rows).astype(np.float64)]
    if not all(math.isfinite(v) for v in floats):
        raise InvalidInput(f"input tensor {name!r} holds NaN or an infinite value")
    _check_amounts(name, floats)
    return floats


def card_column(tensor: InputTensor, rows: int) -> list:
    """One field of a raw card transaction, checked."""
    name, datatype = tensor.name, tensor.datatype
    values = tensor.array.reshape(rows)
    if name in IDS:
        return id_column(tensor, rows)
    if datatype not in _NUMERIC:
        raise InvalidInput(f"input tensor {name!r} must be numeric, got {datatype}")
    if name == TIMESTAMP:
        return timestamp_column(tensor, rows)
    numbers = values.astype(np.float64)
    if name in FLAGS:
        if not np.all((numbers == 0) | (numbers == 1)):
            raise InvalidInput(f"input tensor {name!r} must hold 0/1 or true/false")
        return [int(v) for v in numbers]
    floats = [float(v) for v in numbers]
    if not all(math.isfinite(v) for v in floats):
        raise InvalidInput(f"input tensor {name!r} holds NaN or an infinite value")
    if name == "amount":
        _check_amounts(name, floats)
    limit = 90.0 if name == "merchant_latitude" else 180.0
    if name != "amount" and any(abs(v) > limit for v in floats):
        raise InvalidInput(
            f"input tensor {name!r} holds a value outside -{limit:g} to {limit:g}"
        )
    return floats


def _check_amounts(name: str, floats: list[float]) -> None:
    if any(v < 0 for v in floats):
        raise InvalidInput(f"input tensor {name!r} holds a negative amount")
    if any(v > MAX_AMOUNT for v in floats):
        raise InvalidInput(
            f"input tensor {name!r} holds an amount above {MAX_AMOUNT:g}"
        )
