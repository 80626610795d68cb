"""The credit decision: a raw BNPL checkout (`customer_id`, `basket_amount`,
`merchant_group`, `timestamp`) -> the customer's state from the online store -> the
credit model's 24 features (`riskserve.features.customer`) -> the credit predictor
(23 FP32 inputs, NaN for missing, and `merchant_group` BYTES) -> the customer's new
state pushed after the answer. The payment events that move the state between
checkouts come from the payments ledger, not through here
(`riskserve.features.customer_online.record_payment_event`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from feast import FeatureStore
from riskserve.features.customer import (
    CREDIT_FEATURES,
    Checkout,
    CustomerState,
    credit_features,
)
from riskserve.features.customer_online import (
    CustomerReader,
    CustomerStateWriter,
    lookup,
    record_checkout,
)
from riskserve.model.specs import MERCHANT_GROUPS
from riskserve.serving.errors import InvalidInput
from riskserve.serving.tensors import InputTensor
from riskserve.transformer.decisions import (
    FEATURES_UNAVAILABLE,
    UNKNOWN_ENTITY,
    feature_column,
    float32_columns,
)
from riskserve.transformer.predictor_client import PredictorAnswer, PredictorPool
from riskserve.transformer.raw_request import (
    amount_column,
    id_column,
    json_floats,
    json_ids,
    json_timestamps,
    timestamp_column,
)

# The raw inputs of a checkout (the app's credit tab sends exactly these).
CHECKOUT_INPUTS: tuple[tuple[str, str, str], ...] = (
    ("customer_id", "BYTES", "the customer"),
    ("basket_amount", "FP64", "the basket's amount, 0 to 1e12"),
    ("merchant_group", "BYTES", "one of the credit schema's merchant groups"),
    ("timestamp", "INT64", "microseconds since the Unix epoch, UTC, up to 2262-04-11"),
)
NUMERIC = tuple(n for n in CREDIT_FEATURES if n != "merchant_group")


class CheckoutDecision:
    """A BNPL checkout, the credit model (see the module docstring)."""

    kind = "customer"
    raw_inputs = CHECKOUT_INPUTS
    extra_outputs: tuple[tuple[str, str], ...] = (
        *((name, "FP32") for name in NUMERIC),
        ("merchant_group", "BYTES"),
        ("customer_checkouts", "INT64"),
        (UNKNOWN_ENTITY, "BOOL"),
        (FEATURES_UNAVAILABLE, "BOOL"),
    )

    def column(self, tensor: InputTensor, rows: int) -> list[Any]:
        name = tensor.name
        if name == "customer_id":
            return id_column(tensor, rows)
        if name == "basket_amount":
            return amount_column(tensor, rows)
        if name == "timestamp":
            return timestamp_column(tensor, rows)
        if tensor.datatype != "BYTES":
            raise InvalidInput(
                f"input tensor {name!r} must be BYTES, got {tensor.datatype}"
            )
        groups = [str(v) for v in tensor.array.reshape(rows)]
        for group in groups:
            if group not in MERCHANT_GROUPS:
                raise InvalidInput(
                    f"input tensor {name!r} holds {group[:80]!r}, not a merchant "
                    "group; expected one of " + ", ".join(MERCHANT_GROUPS)
                )
        return groups

    def json_column(self, name: str, values: list) -> list | None:
        if name == "customer_id":
            return json_ids(values)
        if name == "basket_amount":
            return json_floats(values)
        if name == "timestamp":
            return json_timestamps(values)
        for value in values:
            if type(value) is not str or value not in MERCHANT_GROUPS:
                return None
        return values

    def events(self, columns: dict[str, list[Any]], rows: int) -> list[Any]:
        return [
            Checkout(
                columns["customer_id"][i],
                columns["timestamp"][i],
                columns["basket_amount"][i],
                columns["merchant_group"][i],
            )
            for i in range(rows)
        ]

    def entity(self, event: Any) -> tuple[str, str]:
        return "customer_id", event.customer_id

    def lookup_one(self, store: FeatureStore, direct: bool) -> Callable[[Any], Any]:
        if direct:
            return CustomerReader(store).lookup
        return lambda checkout: lookup(store, checkout)

    def pusher(self, store: FeatureStore) -> Callable[[Any, Any], object]:
        writer = CustomerStateWriter(store)

        def push(checkout: Checkout, state: CustomerState) -> object:
            return record_checkout(writer, checkout, state)

        return push

    def request_only(self, event: Any) -> dict[str, Any]:
        return credit_features(event, CustomerState())

    def unknown(self, features: dict[str, Any]) -> bool:
        return features["customer_checkouts"] == 0

    def model_inputs(
        self, features: list[dict[str, Any]], rows: int
    ) -> dict[str, np.ndarray]:
        inputs = float32_columns(features, NUMERIC)
        inputs["merchant_group"] = feature_column(
            features, "merchant_group", "BYTES", rows
        )
        return inputs

    async def infer(
        self,
        predictor: PredictorPool,
        model_name: str,
        inputs: dict[str, np.ndarray],
        request_id: str,
    ) -> PredictorAnswer:
        return await predictor.infer(model_name, inputs, request_id)


CHECKOUT = CheckoutDecision()
