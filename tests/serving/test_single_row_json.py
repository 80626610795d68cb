"""The single-row JSON fast path decodes exactly what the general path does, and
leaves every request it does not fully check to the general path (issue 24)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from riskserve.serving.binary_tensors import decode_inputs
from riskserve.serving.errors import InvalidInput
from riskserve.serving.tensors import (
    InputTensor,
    _decode_json_input_checked,
    decode_single_row,
)

pytestmark = pytest.mark.inprocess


def feature(name: str, value: object, shape: object = (1, 1), **extra) -> dict:
    data = [value] if shape != [1, 1] else [[value]]
    return {
        "name": name,
        "datatype": "FP32",
        "shape": list(shape) if isinstance(shape, tuple) else shape,
        "data": data,
        **extra,
    }


def general(inputs: list) -> list[InputTensor]:
    return [_decode_json_input_checked(item, i) for i, item in enumerate(inputs)]


def same(fast: list[InputTensor], slow: list[InputTensor]) -> None:
    assert [(t.name, t.datatype, t.shape) for t in fast] == [
        (t.name, t.datatype, t.shape) for t in slow
    ]
    for a, b in zip(fast, slow, strict=True):
        assert a.array.dtype == b.array.dtype == np.float32
        assert a.array.shape == b.array.shape
        np.testing.assert_array_equal(a.array, b.array)  # NaN equals NaN here


@pytest.mark.parametrize(
    "inputs",
    [
        [feature("a", 1.5), feature("b", 0), feature("c", -3)],  # flat [x], [1, 1]
        [feature("a", 2.25, [1, 1]), feature("b", 7, [1, 1])],  # nested [[x]]
        [feature("a", 0.5, (1,)), feature("b", 1, (1,))],  # [1]
        [feature("a", None), feature("b", 3.0)],  # null: a missing value, NaN
    ],
)
def test_a_single_row_decodes_as_the_general_path_does(inputs: list) -> None:
    fast = decode_single_row(inputs)
    assert fast is not None
    same(fast, general(inputs))
    same(decode_inputs(inputs, b""), general(inputs))


@pytest.mark.parametrize(
    ("inputs", "says"),
    [
        ([feature("a", True)], "holds booleans"),
        ([feature("a", "1.5")], "non-numeric"),
        ([feature("a", 1.0, (1, 2))], "2 values"),
        ([feature("a", 1.0, (True, 1))], "non-negative integers"),
        ([feature("a", 1.0, (1.0, 1))], "non-negative integers"),
        ([feature("", 1.0)], "has no name"),
        ([{**feature("a", 1.0), "datatype": "FP33"}], "unknown datatype"),
        ([{**feature("a", 1.0), "data": [[1.0, 2.0]]}], "2 values"),
        ([feature("a", 1.0), "not an object"], "not a JSON object"),
    ],
)
def test_what_the_fast_path_does_not_check_gets_the_general_error(
    inputs: list, says: str
) -> None:
    assert decode_single_row(inputs) is None
    with pytest.raises(InvalidInput, match=says):
        decode_inputs(inputs, b"")


def test_binary_inputs_are_not_taken_by_the_fast_path() -> None:
    inputs = [{**feature("a", 1.0), "parameters": {"binary_data_size": 4}}]
    assert decode_single_row(inputs) is None
    with pytest.raises(InvalidInput, match="both 'data' and a binary_data_size"):
        decode_inputs(inputs, b"\0\0\0\0")


@pytest.mark.parametrize(
    ("item", "datatype"),
    [
        (
            feature("big", 1e39),
            "FP32",
        ),  # the single-row shape: left to the general path
        (
            {"name": "big", "datatype": "FP32", "shape": [2], "data": [1.0, -1e300]},
            "FP32",
        ),
        (
            {"name": "big", "datatype": "FP32", "shape": [2], "data": [None, 4e38]},
            "FP32",
        ),
        ({"name": "big", "datatype": "FP16", "shape": [1], "data": [70000]}, "FP16"),
        ({"name": "big", "datatype": "FP16", "shape": [1], "data": [1e6]}, "FP16"),
    ],
)
def test_a_number_the_datatype_cannot_hold_is_a_400_not_inf(item, datatype) -> None:
    """Before, it became inf (numpy printing an overflow warning to stderr) and went
    to the model; a user sees a 400 naming the tensor and the datatype."""
    assert decode_single_row([item]) is None
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no RuntimeWarning on the way
        with pytest.raises(InvalidInput) as refused:
            general([item])
    assert str(refused.value) == (
        f"input tensor 'big' holds a value outside the range of {datatype}"
    )
    # The largest FP32 still passes, on both paths.
    edge = feature("edge", float(np.finfo(np.float32).max))
    same(decode_single_row([edge]), general([edge]))
