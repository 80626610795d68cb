"""The ONNX risk model: load() and predict() over one onnxruntime session.

This is the runtime's model, in the shape of KServe's and MLServer's hooks; it knows
nothing of HTTP or gRPC. `predict()` checks request tensors against the graph (names,
datatypes, shapes, batch size) so every client mistake is a 400 naming the tensor.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypedDict

import numpy as np
from riskserve.serving.errors import InvalidInput, ModelLoadError, NotReady
from riskserve.serving.tensors import ONNX_TO_V2, InputTensor, OutputTensor

log = logging.getLogger("riskserve.serving.model")

PLATFORM = "onnx_onnxv1"
_COLUMN = (-1, 1)  # the contract's shape of one feature


class TensorMetadata(TypedDict):
    """One tensor in the v2 model metadata response."""

    name: str
    datatype: str
    shape: list[int]


class ModelMetadata(TypedDict):
    """The v2 model metadata response (REST body; the gRPC message's fields)."""

    name: str
    versions: list[str]
    platform: str
    inputs: list[TensorMetadata]
    outputs: list[TensorMetadata]
    parameters: dict[str, str]


@dataclass(frozen=True)
class TensorSpec:
    name: str
    datatype: str
    shape: tuple[int, ...]  # -1 for a dynamic dimension

    def metadata(self) -> TensorMetadata:
        return {"name": self.name, "datatype": self.datatype, "shape": list(self.shape)}


def _spec(node) -> TensorSpec:  # node: an onnxruntime NodeArg
    datatype = ONNX_TO_V2.get(node.type)
    if datatype is None:
        raise ModelLoadError(f"tensor {node.name!r} has unsupported type {node.type}")
    shape = tuple(d if isinstance(d, int) and d >= 0 else -1 for d in node.shape)
    return TensorSpec(node.name, datatype, shape)


class OnnxRiskModel:
    """One ONNX model served under `name`, at `version`."""

    def __init__(
        self,
        name: str,
        onnx_path: Path,
        version: str | None = None,
        max_batch_size: int = 100_000,
        threads: int = 1,
    ) -> None:
        self.name = name
        self.onnx_path = onnx_path
        self._version_override = version
        self.version = version or "1"
        self.max_batch_size = max_batch_size
        self.threads = threads
        self.ready = False
        self.inputs: tuple[TensorSpec, ...] = ()
        self.outputs: tuple[TensorSpec, ...] = ()
        self.metadata_props: dict[str, str] = {}
        self.score_output: str | None = None
        self._session = None
        # (output names, feeds, run options) -> outputs; set by load()
        self._run: Callable[[list[str], dict[str, np.ndarray], None], list] | None = (
            None
        )

    def load(self) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = self.threads
        options.inter_op_num_threads = 1
        # Spinning worker threads steal the core the event loop needs.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.add_session_config_entry("session.inter_op.allow_spinning", "0")
        try:
            session = ort.InferenceSession(
                str(self.onnx_path), options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # onnxruntime raises its own untyped errors
            raise ModelLoadError(f"cannot open {self.onnx_path}: {exc}") from exc
        self.inputs = tuple(_spec(node) for node in session.get_inputs())
        self.outputs = tuple(_spec(node) for node in session.get_outputs())
        self.metadata_props = dict(session.get_modelmeta().custom_metadata_map)
        if self._version_override is None:
            self.version = self.metadata_props.get("model_version") or "1"
        self._input_index = {spec.name: spec for spec in self.inputs}
        self._output_names = [spec.name for spec in self.outputs]
        self._output_types = {spec.name: spec.datatype for spec in self.outputs}
        self._all_numeric = all(spec.datatype == "FP32" for spec in self.inputs)
        probabilities = [
            s.name for s in self.outputs if s.datatype == "FP32" and "probab" in s.name
        ]
        fp32 = [s.name for s in self.outputs if s.datatype == "FP32"]
        self.score_output = (
            probabilities[0] if probabilities else fp32[0] if fp32 else None
        )
        self._session = session
        # onnxruntime's InferenceSession.run checks, before it calls the compiled
        # session, what `_feeds` has already checked (every input present) and what
        # cannot apply here (WebGPU graph capture, OrtValue feeds, a GPU provider to
        # fall back from): 4-5 us of a single-row request's ~19 us in `run`, measured
        # in-process (issue 24). The compiled session's own run is called instead.
        compiled = getattr(session, "_sess", None)
        if compiled is None:
            log.warning(
                "onnxruntime's InferenceSession has no _sess: scoring through run()",
                extra={"model_name": self.name},
            )
            self._run = session.run
        else:
            self._run = compiled.run
        self.ready = True
        log.info(
            "model loaded",
            extra={
                "model_name": self.name,
                "model_version": self.version,
                "onnx_path": str(self.onnx_path),
                "inputs": len(self.inputs),
            },
        )

    def set_registry_version(self, version: str) -> None:
        """The registry's version wins over the ONNX metadata, not over an override."""
        if self._version_override is None:
            self.version = version
            self._version_override = version

    def metadata(self) -> ModelMetadata:
        return {
            "name": self.name,
            "versions": [self.version],
            "platform": PLATFORM,
            "inputs": [spec.metadata() for spec in self.inputs],
            "outputs": [spec.metadata() for spec in self.outputs],
            "parameters": dict(self.metadata_props),
        }

    def check_outputs(self, requested: list[str] | None) -> list[str]:
        if not requested:
            return self._output_names
        for name in requested:
            if name not in self._output_types:
                raise InvalidInput(
                    f"unknown output {name!r}; model {self.name} has "
                    f"{', '.join(self._output_names)}"
                )
        return requested

    def predict(
        self, tensors: list[InputTensor], requested: list[str] | None = None
    ) -> tuple[list[OutputTensor], int]:
        """Run the graph; returns the output tensors and the number of rows."""
        run = self._run
        if run is None or not self.ready:
            raise NotReady(f"model {self.name} is not ready")
        output_names = self.check_outputs(requested)
        feeds, rows = self._feeds(tensors)
        try:
            results = run(output_names, feeds, None)
        except Exception as exc:
            # Inputs were checked against the graph; what onnxruntime still calls an
            # invalid argument (an out-of-range value, say) is the client's.
            if type(exc).__name__ == "InvalidArgument":
                raise InvalidInput(f"the model rejected the inputs: {exc}") from exc
            raise
        return [
            OutputTensor(name, self._output_types[name], array)
            for name, array in zip(output_names, results, strict=True)
        ], rows

    def _feeds(self, tensors: list[InputTensor]) -> tuple[dict[str, np.ndarray], int]:
        if not tensors:
            raise InvalidInput("the request has no input tensors")
        index = self._input_index
        if len(tensors) == 1 and tensors[0].name not in index and len(index) > 1:
            return self._matrix_feeds(tensors[0])
        feeds: dict[str, np.ndarray] = {}
        rows = -1
        first = ""
        for tensor in tensors:
            spec = index.get(tensor.name)
            if spec is None:
                raise InvalidInput(
                    f"unknown input tensor {tensor.name!r}; model {self.name} takes "
                    f"{', '.join(index)}"
                )
            if tensor.name in feeds:
                raise InvalidInput(f"input tensor {tensor.name!r} is sent twice")
            if tensor.datatype != spec.datatype:
                raise InvalidInput(
                    f"input tensor {tensor.name!r} has datatype {tensor.datatype}; "
                    f"the model expects {spec.datatype}"
                )
            shape = tensor.shape
            if spec.shape == _COLUMN and len(shape) == 2 and shape[1] == 1:
                array = tensor.array  # the usual feature column, [N, 1]
            else:
                array = self._fit_shape(tensor, spec)
            n = array.shape[0] if array.ndim else 1
            if rows < 0:
                rows, first = n, tensor.name
            elif n != rows:
                raise InvalidInput(
                    f"input tensors have different batch sizes: {first!r} has {rows} "
                    f"rows, {tensor.name!r} has {n}"
                )
            feeds[tensor.name] = array
        if len(feeds) != len(index):
            missing = [name for name in index if name not in feeds]
            raise InvalidInput(
                f"missing input tensor{'s' if len(missing) > 1 else ''} "
                f"{', '.join(repr(m) for m in missing)}"
            )
        self._check_rows(rows)
        return feeds, rows

    def _fit_shape(self, tensor: InputTensor, spec: TensorSpec) -> np.ndarray:
        array = tensor.array
        expected = spec.shape
        shape = tensor.shape
        if expected == _COLUMN:
            if len(shape) == 2 and shape[1] == 1:
                return array
            # [N] is accepted for a [-1, 1] input: one value per row either way.
            if len(shape) == 1:
                return array.reshape(shape[0], 1)
        elif len(shape) == len(expected) and all(
            want in (-1, got) for want, got in zip(expected, shape, strict=True)
        ):
            return array
        raise InvalidInput(
            f"input tensor {tensor.name!r} has shape {list(shape)}; the model "
            f"expects {list(expected)} (-1: any size)"
        )

    def _matrix_feeds(self, tensor: InputTensor) -> tuple[dict[str, np.ndarray], int]:
        """One 2-D FP32 tensor [N, F] holding the features in the declared order."""
        names = list(self._input_index)
        if len(tensor.shape) != 2 or tensor.shape[1] != len(names):
            raise InvalidInput(
                f"unknown input tensor {tensor.name!r}; send one tensor per feature "
                f"({', '.join(names)}) or one FP32 tensor of shape [N, {len(names)}]"
            )
        if not self._all_numeric:
            strings = [s.name for s in self.inputs if s.datatype == "BYTES"]
            raise InvalidInput(
                f"input tensor {tensor.name!r}: model {self.name} takes BYTES inputs "
                f"({', '.join(strings)}), so send one tensor per feature"
            )
        if tensor.datatype != "FP32":
            raise InvalidInput(
                f"input tensor {tensor.name!r} has datatype {tensor.datatype}; a feature "
                "matrix must be FP32"
            )
        rows = tensor.shape[0]
        self._check_rows(rows)
        columns = np.ascontiguousarray(tensor.array.T)
        feeds = {name: columns[i].reshape(rows, 1) for i, name in enumerate(names)}
        return feeds, rows

    def _check_rows(self, rows: int) -> None:
        if rows <= 0:
            raise InvalidInput("the request has no rows")
        if rows > self.max_batch_size:
            raise InvalidInput(
                f"a batch of {rows} rows is above the limit of {self.max_batch_size}"
            )
