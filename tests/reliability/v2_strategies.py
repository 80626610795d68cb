"""Hypothesis strategies for v2 requests, generated from the protocol's own spec.

`rest_predict_v2.yaml`'s schemas (`inference_request`, `request_input`, `tensor_data`,
...) are turned into strategies by `from_schema`, so every field the spec allows is
drawn. Field hints (names the model knows, the spec's datatypes, plausible shapes)
bias some draws towards requests that get past the first checks and into tensor
decoding and the graph; the rest stay arbitrary.
"""

from __future__ import annotations

import math

import yaml
from hypothesis import strategies as st

from tests.reliability.reliability_helpers import SPEC_DIR

SPEC = yaml.safe_load((SPEC_DIR / "rest_predict_v2.yaml").read_text())
SCHEMAS = SPEC["components"]["schemas"]
DATATYPES = [
    "BOOL", "UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64",
    "FP16", "FP32", "FP64", "BYTES",
]  # fmt: skip

# Integers and floats at the edges of what numpy, JSON and onnxruntime take.
EDGE_INTS = st.sampled_from(
    [0, -1, 1, 2, 7, 2**31 - 1, 2**31, 2**53, 2**63 - 1, -(2**63)]
)
FLOATS = st.floats(allow_nan=False, allow_infinity=False) | st.sampled_from(
    [0.0, -0.0, 1e308, -1e308, 5e-324, 3.4e38, 3.5e38, 1e-45]
)
TEXT = st.text(max_size=20) | st.sampled_from(["", "\u0000", "🙂", "\ud7ff", "a" * 300])


def hints(names: list[str], outputs: list[str]) -> dict[str, st.SearchStrategy]:
    """Strategies for fields by name: mostly plausible, sometimes anything."""
    shape_dim = st.integers(min_value=-3, max_value=70) | EDGE_INTS
    return {
        "name": st.sampled_from(names + outputs) | TEXT,
        "datatype": st.sampled_from(DATATYPES) | TEXT,
        "shape": st.lists(shape_dim, max_size=4),
        "id": TEXT,
    }


def from_schema(
    schema: dict,
    field_hints: dict[str, st.SearchStrategy],
    depth: int = 0,
    field: str | None = None,
) -> st.SearchStrategy:
    """A strategy for JSON values matching `schema` (the subset the v2 spec uses)."""
    if field is not None and field in field_hints:
        return field_hints[field]
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[1]
        return st.deferred(
            lambda: from_schema(SCHEMAS[name], field_hints, depth + 1, None)
        )
    if "anyOf" in schema:
        return st.one_of(
            *(from_schema(s, field_hints, depth + 1) for s in schema["anyOf"])
        )
    kind = schema.get("type")
    if kind == "object":
        properties = schema.get("properties")
        if not properties:  # `parameters`: any small object
            return st.dictionaries(
                TEXT, st.none() | st.booleans() | FLOATS | TEXT, max_size=3
            )
        required = set(schema.get("required", []))
        fixed = {
            k: from_schema(v, field_hints, depth + 1, k)
            for k, v in properties.items()
            if k in required
        }
        optional = {
            k: from_schema(v, field_hints, depth + 1, k)
            for k, v in properties.items()
            if k not in required
        }
        return st.fixed_dictionaries(fixed, optional=optional)
    if kind == "array":
        items = schema.get("items", {})
        if depth > 6:  # deep nesting comes from the hand-written cases
            return st.just([])
        return st.lists(from_schema(items, field_hints, depth + 1), max_size=8)
    if kind == "string":
        return TEXT
    if kind == "integer":
        return st.integers(min_value=-(2**63), max_value=2**64) | EDGE_INTS
    if kind == "number":
        return FLOATS | st.integers(min_value=-(2**70), max_value=2**70)
    if kind == "boolean":
        return st.booleans()
    return st.none()


def tensor_data(rows: int, columns: int, kind: str) -> st.SearchStrategy:
    """Data that fits a [rows, columns] tensor: the request gets to the graph."""
    value = {
        "number": FLOATS | st.none(),
        "string": TEXT,
        "any": FLOATS | TEXT | st.booleans() | st.none(),
    }[kind]
    return st.lists(
        st.lists(value, min_size=columns, max_size=columns),
        min_size=rows,
        max_size=rows,
    )


def inference_requests(names: list[str], outputs: list[str]) -> st.SearchStrategy:
    """Requests drawn from the spec's `inference_request`, or well-formed ones with
    random values (one tensor per input, any of them possibly broken)."""
    spec_drawn = from_schema(SCHEMAS["inference_request"], hints(names, outputs))

    @st.composite
    def well_formed(draw: st.DrawFn) -> dict:
        rows = draw(st.integers(min_value=1, max_value=5))
        inputs = []
        for name in names:
            datatype = draw(
                st.sampled_from(["FP32", "FP32", "FP32", "BYTES", "FP64", "INT64"])
            )
            kind = (
                "string"
                if datatype == "BYTES"
                else draw(st.sampled_from(["number", "number", "any"]))
            )
            inputs.append(
                {
                    "name": name,
                    "shape": [rows, 1],
                    "datatype": datatype,
                    "data": draw(tensor_data(rows, 1, kind)),
                }
            )
        if draw(st.booleans()):
            inputs = draw(st.permutations(inputs))
        if draw(st.integers(0, 4)) == 0 and inputs:
            inputs.pop(draw(st.integers(0, len(inputs) - 1)))
        request: dict = {"inputs": inputs}
        if draw(st.booleans()):
            request["outputs"] = [{"name": draw(st.sampled_from(outputs) | TEXT)}]
        return request

    return st.one_of(spec_drawn, well_formed())


def finite(value: object) -> bool:
    """True when `value` holds no NaN or infinity (JSON cannot carry them)."""
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, dict):
        return all(finite(v) for v in value.values())
    if isinstance(value, list):
        return all(finite(v) for v in value)
    return True


# -- the binary tensor data extension ---------------------------------------------------

_PACK = {
    "BOOL": "?",
    "UINT8": "B",
    "UINT16": "H",
    "UINT32": "I",
    "UINT64": "Q",
    "INT8": "b",
    "INT16": "h",
    "INT32": "i",
    "INT64": "q",
    "FP16": "e",
    "FP32": "f",
    "FP64": "d",
}


@st.composite
def binary_requests(draw: st.DrawFn, names: list[str], outputs: list[str]):
    """(body, headers): a binary-extension request, right or wrong in any of the ways
    a client can be: sizes against shapes, header lengths, leftovers, junk parameters,
    BYTES length prefixes, binary and JSON inputs mixed."""
    import json
    import struct

    rows = draw(st.integers(0, 3))
    inputs, raw = [], []
    for name in draw(st.lists(st.sampled_from(names) | TEXT, min_size=0, max_size=8)):
        datatype = draw(st.sampled_from(["FP32"] * 4 + DATATYPES))
        shape = draw(
            st.sampled_from([[rows, 1], [rows], [1, rows], [-1, 1], [rows, 7]])
        )
        if draw(st.booleans()):  # a JSON input among the binary ones
            inputs.append(
                {
                    "name": name,
                    "datatype": datatype,
                    "shape": shape,
                    "data": [0.5] * rows,
                }
            )
            continue
        count = max(0, shape[0] * (shape[1] if len(shape) > 1 else 1))
        if datatype == "BYTES":
            items = [draw(TEXT).encode("utf-8", "surrogatepass") for _ in range(count)]
            data = b"".join(struct.pack("<I", len(i)) + i for i in items)
            if draw(st.booleans()):
                data = data[: draw(st.integers(0, len(data)))]  # a cut length prefix
        else:
            fmt = _PACK[datatype]
            values = [draw(st.integers(0, 1)) for _ in range(count)]
            data = struct.pack(f"<{count}{fmt}", *values)
        data += draw(st.binary(max_size=3)) if draw(st.booleans()) else b""
        size = draw(
            st.sampled_from([len(data)] * 4 + [len(data) + 1, -1, 0, 1 << 40])
            | st.sampled_from(["8", None, 2.5, True])
        )
        inputs.append(
            {
                "name": name,
                "datatype": datatype,
                "shape": shape,
                "parameters": {"binary_data_size": size},
            }
        )
        raw.append(data)
    request: dict = {"inputs": inputs}
    if draw(st.booleans()):
        request["parameters"] = {
            "binary_data_output": draw(st.sampled_from([True, False, "yes", 1]))
        }
    if draw(st.booleans()):
        request["outputs"] = [
            {
                "name": name,
                "parameters": {"binary_data": draw(st.sampled_from([True, False, 0]))},
            }
            for name in draw(st.lists(st.sampled_from(outputs) | TEXT, max_size=3))
        ]
    header = json.dumps(request).encode()
    binary = b"".join(raw) + draw(st.sampled_from([b"", b"", b"\x00", b"junk"]))
    length = draw(
        st.sampled_from(
            [str(len(header))] * 6
            + [str(len(header) - 1), str(len(header) + 3), "-1", "x", "9" * 30, None]
        )
    )
    headers = {"content-type": "application/octet-stream"}
    if length is not None:
        headers["inference-header-content-length"] = length
    return header + binary, headers


# -- raw events (the transformer) -------------------------------------------------------
# A value a raw field may be sent: plausible or hostile (wrong type, huge, not finite,
# unicode, nested); the fields' own checks must refuse what they cannot use.
RAW_VALUES = (
    st.booleans()
    | st.none()
    | EDGE_INTS
    | st.integers()
    | FLOATS
    | st.sampled_from([math.nan, math.inf, -math.inf, 2**64, -(2**64), 10**30])
    | TEXT
    | st.sampled_from(["Electronics", "\u202eabc", "x" * 100_000, "1e5", "true"])
    | st.lists(st.integers(0, 1), max_size=2)
    | st.dictionaries(TEXT, st.integers(), max_size=2)
)


@st.composite
def corrupted_raw_requests(draw: st.DrawFn, valid: dict) -> tuple[dict, str]:
    """(request, field): `valid` (one raw event as v2 JSON tensors, shape [1]) with one
    field's datatype, shape or data replaced by something drawn: the field a 400
    must name, if the request is refused."""
    request = {"inputs": [dict(tensor) for tensor in valid["inputs"]]}
    tensor = draw(st.sampled_from(request["inputs"]))
    what = draw(st.sampled_from(["data", "data", "data", "datatype", "shape"]))
    if what == "data":
        tensor["data"] = [draw(RAW_VALUES)]
    elif what == "datatype":
        tensor["datatype"] = draw(st.sampled_from(DATATYPES) | TEXT)
    else:
        tensor["shape"] = draw(
            st.sampled_from([[1, 1], [1, 2], [2], [0], [-1], [1, 1, 1], [2**63]])
        )
    return request, tensor["name"]
