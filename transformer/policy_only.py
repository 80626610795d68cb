"""The policy-only decision (`--features none`): a deployment without a feature store
runs the same transformer with a decision policy only. The raw request IS the model's
inputs (v2 tensors named and typed as the predictor's metadata lists them), nothing
is looked up or pushed, and the answer is the predictor's outputs plus the policy's
(`action`, `policy_version`, `policy_rule`, `reason_code`).

The model's inputs are known once the predictor's metadata answers (`take_inputs`,
before the policy is checked against them); until then the transformer is not ready.
"""

from __future__ import annotations

from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import numpy as np
from riskserve.serving.errors import InvalidInput
from riskserve.serving.tensors import InputTensor
from riskserve.transformer.decisions import decision_for
from riskserve.transformer.inference_log import event_attribute
from riskserve.transformer.predictor_client import PredictorAnswer, PredictorPool

# The model input datatypes a policy-only transformer passes on, and as what: those
# the predictor client sends (`features_request`: FP32 columns, BYTES as objects).
_DTYPES: dict[str, Any] = {"FP32": np.float32, "BYTES": object}


class PolicyOnlyDecision:
    """A `Decision` (`riskserve.transformer.decisions`) whose raw inputs are the
    model's inputs: no lookup, no push, no features answered beside the outputs."""

    extra_outputs: tuple[tuple[str, str], ...] = ()

    def __init__(self, model_name: str, kind: str = "auto") -> None:
        # The kind (card or customer) picks the policy's kind, as with features.
        self.kind = decision_for(model_name, kind).kind
        self.raw_inputs: tuple[tuple[str, str, str], ...] = ()

    def take_inputs(self, inputs: list[dict[str, Any]]) -> None:
        """The model's inputs from the predictor's v2 metadata; ValueError (one line)
        when it lists none or one of a datatype this mode cannot pass on."""
        found = []
        for item in inputs:
            name, datatype = str(item.get("name")), str(item.get("datatype"))
            if datatype not in _DTYPES:
                raise ValueError(
                    f"the model's input {name!r} is {datatype}, which a policy-only "
                    f"transformer cannot pass on ({', '.join(_DTYPES)})"
                )
            found.append((name, datatype, "the model's input"))
        if not found:
            raise ValueError("the predictor's metadata lists no inputs")
        self.raw_inputs = tuple(found)

    def column(self, tensor: InputTensor, rows: int) -> list[Any]:
        datatype = dict((n, d) for n, d, _ in self.raw_inputs)[tensor.name]
        if tensor.datatype != datatype:
            raise InvalidInput(
                f"input tensor {tensor.name!r} must be {datatype} (the model's "
                f"input), got {tensor.datatype}"
            )
        values = tensor.array.reshape(rows)
        if datatype == "BYTES":
            return [
                v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v)
                for v in values
            ]
        return values.tolist()

    def events(self, columns: dict[str, list[Any]], rows: int) -> list[Any]:
        # One namespace a row: the inference log and the policy read raw fields as
        # attributes of the request's events, under the feature layer's attribute
        # names (`used_chip` as `chip`, as a card transaction holds it).
        attributes = {name: event_attribute(name) for name in columns}
        return [
            SimpleNamespace(
                **{attributes[name]: column[i] for name, column in columns.items()}
            )
            for i in range(rows)
        ]

    def json_column(self, name: str, values: list) -> list | None:
        return None  # the general path: the v2 decoder's checks, then `column`

    def entity(self, event: Any) -> tuple[str, str]:
        return "row", ""

    def lookup_one(self, store: Any, direct: bool) -> Callable[[Any], Any]:
        raise RuntimeError("a policy-only transformer looks nothing up")

    def pusher(self, store: Any) -> Callable[[Any, Any], object]:
        raise RuntimeError("a policy-only transformer pushes nothing")

    def request_only(self, event: Any) -> dict[str, Any]:
        return {
            name: getattr(event, event_attribute(name))
            for name, _, _ in self.raw_inputs
        }

    def unknown(self, features: dict[str, Any]) -> bool:
        return False

    def model_inputs(
        self, features: list[dict[str, Any]], rows: int
    ) -> dict[str, np.ndarray]:
        inputs = {}
        for name, datatype, _ in self.raw_inputs:
            array = np.empty(rows, dtype=_DTYPES[datatype])
            array[:] = [row[name] for row in features]
            inputs[name] = array
        return inputs

    async def infer(
        self,
        predictor: PredictorPool,
        model_name: str,
        inputs: dict[str, np.ndarray],
        request_id: str,
    ) -> PredictorAnswer:
        return await predictor.infer(model_name, inputs, request_id)
