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
