"""Big gRPC batches: typed contents read and written through their packed bytes
(serving/grpc_contents.py) give exactly what the per-value path gives, and fall back to
it whenever the bytes are not of that form; freed memory is kept (serving/memory.py)."""

from __future__ import annotations

import platform
import sys

import numpy as np
import pytest
from riskserve.serving.errors import InvalidInput
from riskserve.serving.grpc_contents import contents_array, fill_contents
from riskserve.serving.grpc_v2 import grpc_predict_v2_pb2 as pb
from riskserve.serving.infer_request import CONTENTS_FIELD, decode_grpc_inputs
from riskserve.serving.memory import keep_freed_memory
from riskserve.serving.tensors import NUMPY_DTYPES, decode_values

pytestmark = pytest.mark.inprocess

FLOATS = [0.0, -0.0, 1.5, -2.25e-39, 3.4e38, float("inf"), float("-inf"), 1e-45]


def _contents(field: str, values: list) -> pb.InferTensorContents:
    contents = pb.InferTensorContents()
    getattr(contents, field).extend(values)
    return contents


@pytest.mark.parametrize(
    ("field", "values", "dtype"),
    [
        ("fp32_contents", FLOATS, np.float32),
        ("fp64_contents", [*FLOATS, 1e300, 5e-324], np.float64),
        ("bool_contents", [True, False, False, True], np.bool_),
        ("int_contents", [0, 1, 127, 5], np.uint8),
        ("int64_contents", [127, 0], np.uint8),
        ("uint_contents", [3, 4], np.uint8),
        ("uint64_contents", [126], np.uint8),
    ],
)
def test_packed_contents_are_read_as_their_values(field, values, dtype) -> None:
    array = contents_array(_contents(field, values), field, len(values))
    assert array is not None and array.dtype == dtype
    expected = np.asarray(values, dtype=np.float32 if dtype == np.float32 else None)
    np.testing.assert_array_equal(array, expected)
    # bit for bit, signed zeros included
    assert array.tobytes() == expected.astype(dtype).tobytes()


def test_nan_keeps_its_bits() -> None:
    values = np.array([np.nan, 1.0], np.float32)
    array = contents_array(
        _contents("fp32_contents", values.tolist()), "fp32_contents", 2
    )
    assert array is not None and np.isnan(array[0]) and array[1] == 1.0


@pytest.mark.parametrize(
    ("field", "values"),
    [
        ("int_contents", [128]),  # two bytes
        ("int_contents", [-1]),  # ten bytes
        ("int64_contents", [1, 1 << 40]),
        ("uint_contents", [255]),
        ("fp32_contents", []),  # nothing to read
        ("bytes_contents", [b"a"]),  # not a packed field
    ],
)
def test_other_forms_fall_back_to_the_per_value_path(field, values) -> None:
    assert contents_array(_contents(field, values), field, len(values)) is None


def test_a_second_field_or_unknown_bytes_fall_back() -> None:
    contents = _contents("fp32_contents", [1.0, 2.0])
    contents.int_contents.append(1)
    assert contents_array(contents, "fp32_contents", 2) is None
    contents = _contents("fp32_contents", [1.0, 2.0])
    contents.MergeFromString(b"\x98\x06\x01")  # unknown field 99, varint 1
    assert contents_array(contents, "fp32_contents", 2) is None


def _per_value(datatype: str, values: list):
    return decode_values("x", datatype, (len(values),), values).array


@pytest.mark.parametrize(
    ("datatype", "values"),
    [
        ("FP32", [1.5, -0.0, 7.0]),
        ("FP64", [1e300, -3.5]),
        ("BOOL", [True, False]),
        ("INT8", [1, 100]),
        ("INT8", [1, 300]),  # out of range: refused either way
        ("INT32", [-5, 100]),
        ("UINT16", [70000]),
        ("INT64", [2, 3]),
        ("UINT64", [1 << 63]),
    ],
)
def test_a_grpc_request_decodes_as_the_per_value_path_did(datatype, values) -> None:
    request = pb.ModelInferRequest(model_name="m")
    tensor = request.inputs.add(name="x", datatype=datatype, shape=[len(values)])
    getattr(tensor.contents, CONTENTS_FIELD[datatype]).extend(values)
    try:
        expected = _per_value(datatype, values)
    except InvalidInput as error:
        with pytest.raises(InvalidInput) as caught:
            decode_grpc_inputs(request)
        assert caught.value.message == error.message
        return
    (decoded,) = decode_grpc_inputs(request)
    assert decoded.array.dtype == NUMPY_DTYPES[datatype]
    np.testing.assert_array_equal(decoded.array, expected)
    assert decoded.array.tobytes() == expected.tobytes()


def test_a_shape_that_disagrees_is_refused_with_the_same_message() -> None:
    request = pb.ModelInferRequest(model_name="m")
    tensor = request.inputs.add(name="x", datatype="FP32", shape=[3, 1])
    tensor.contents.fp32_contents.extend([1.0, 2.0])
    with pytest.raises(InvalidInput, match=r"shape \[3, 1\] \(3 values\) but 2 values"):
        decode_grpc_inputs(request)


@pytest.mark.parametrize(
    ("field", "array"),
    [
        ("fp32_contents", np.array([0.25, -0.0, np.inf, 3.4e38], np.float32)),
        ("fp64_contents", np.array([1e300, -2.5], np.float64)),
        ("bool_contents", np.array([True, False, True])),
        ("fp32_contents", np.arange(12, dtype=np.float32).reshape(3, 4)[:, ::2]),
    ],
)
def test_an_answer_is_written_as_extend_would(field, array) -> None:
    fast, slow = pb.InferTensorContents(), pb.InferTensorContents()
    assert fill_contents(fast, field, array)
    getattr(slow, field).extend(array.ravel().tolist())
    assert fast == slow
    assert fast.SerializeToString() == slow.SerializeToString()


@pytest.mark.parametrize(
    ("field", "array"),
    [
        ("int_contents", np.array([1, 2], np.int32)),
        ("bytes_contents", np.array(["a"], object)),
        ("fp32_contents", np.array([], np.float32)),
        ("int_contents", np.array([True])),
    ],
)
def test_other_answers_are_left_to_extend(field, array) -> None:
    contents = pb.InferTensorContents()
    assert not fill_contents(contents, field, array)
    assert contents == pb.InferTensorContents()


@pytest.mark.skipif(
    not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc",
    reason="mallopt is glibc's",
)
def test_freed_memory_is_kept_for_reuse_on_glibc() -> None:
    assert keep_freed_memory()
