"""What the transformer decides on, per kind: card transactions (the fraud model) or
BNPL checkouts (the credit model). A `Decision` holds each step that differs between
them: the raw inputs and their checks, the online lookup and the state push, the
model's inputs, the features answered beside the predictor's outputs, and the
unknown-entity rule. `riskserve.transformer.app` runs the same steps for both.

The kind follows the model (`decision_for`): `RISKSERVE_TRANSFORMER_KIND=card` or
`customer`, or by default (`auto`) by the model's name: `credit` or a name starting
with `credit-` decides checkouts, any other name card transactions.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol

import numpy as np
from feast import FeatureStore
from riskserve.features.card import CONTEXT_FEATURES, FRAUD_FEATURES, VELOCITY_FEATURES
from riskserve.features.online import CardReader, lookup
from riskserve.serving.tensors import InputTensor
from riskserve.transformer.features_source import request_only, state_pusher
from riskserve.transformer.predictor_client import PredictorAnswer, PredictorPool
from riskserve.transformer.raw_request import (
    RAW_INPUTS,
    card_column,
    card_json_column,
    transactions,
)

UNKNOWN_ENTITY = "unknown_entity"
FEATURES_UNAVAILABLE = "features_unavailable"
_NUMPY = {"FP32": np.float32, "FP64": np.float64, "INT64": np.int64, "BOOL": np.bool_}


class Decision(Protocol):
    """One kind of decision's steps (see the module docstring)."""

    kind: str  # "card" or "customer"
    raw_inputs: tuple[tuple[str, str, str], ...]  # (name, datatype, what it is)
    # The features answered beside the predictor's outputs: (name, datatype), the
    # model's inputs first, then context, then the two flags.
    extra_outputs: tuple[tuple[str, str], ...]

    def column(self, tensor: InputTensor, rows: int) -> list[Any]:
        """One raw field's values, checked (a 400 naming the field if not)."""
        ...

    def events(self, columns: dict[str, list[Any]], rows: int) -> list[Any]:
        """The raw events of the request, from its checked columns."""
        ...

    def json_column(self, name: str, values: list) -> list | None:
        """A field's checked values straight from JSON `data`, or None for the
        general path (`riskserve.transformer.raw_request`)."""
        ...

    def entity(self, event: Any) -> tuple[str, str]:
        """(the join key, the entity id) of an event, for logs."""
        ...

    def lookup_one(
        self, store: FeatureStore, direct: bool
    ) -> Callable[[Any], Any]:  # event -> a lookup (.features, .state)
        """The online lookup: the direct reader or Feast's `get_online_features`."""
        ...

    def pusher(self, store: FeatureStore) -> Callable[[Any, Any], object]:
        """The write of an entity's new state after a scored event."""
        ...

    def request_only(self, event: Any) -> dict[str, Any]:
        """The features without the store (fail-open): an unknown entity's."""
        ...

    def unknown(self, features: dict[str, Any]) -> bool:
        """The store knew nothing of the entity (its defaults were applied)."""
        ...

    def model_inputs(
        self, features: list[dict[str, Any]], rows: int
    ) -> dict[str, np.ndarray]:
        """The predictor's inputs, one array per model input."""
        ...

    async def infer(
        self,
        predictor: PredictorPool,
        model_name: str,
        inputs: dict[str, np.ndarray],
        request_id: str,
    ) -> PredictorAnswer:
        """The predictor call (binary v2 over the keep-alive pool)."""
        ...


def float32_columns(
    features: list[dict[str, Any]], names: Sequence[str]
) -> dict[str, np.ndarray]:
    """The named features as FP32 columns: one matrix built per request (a row per
    feature, so each column handed on is contiguous) instead of one array each."""
    matrix = np.array([[row[name] for row in features] for name in names], np.float32)
    return {name: matrix[i] for i, name in enumerate(names)}


def feature_column(
    features: list[dict[str, Any]], name: str, datatype: str, rows: int
) -> np.ndarray:
    """One answered feature as an array of its v2 datatype (BYTES: an object array)."""
    if datatype == "BYTES":
        array = np.empty(rows, dtype=object)
        array[:] = [row[name] for row in features]
        return array
    return np.fromiter((row[name] for row in features), _NUMPY[datatype], rows)


class CardDecision:
    """A card transaction, the fraud model: seven FP32 features."""

    kind = "card"
    raw_inputs = RAW_INPUTS
    extra_outputs: tuple[tuple[str, str], ...] = (
        *((name, "FP32") for name in FRAUD_FEATURES),
        ("transactions_1h", "INT64"),
        ("amount_1h", "FP64"),
        ("transactions_24h", "INT64"),
        ("amount_24h", "FP64"),
        ("card_transactions", "INT64"),
        ("card_registered", "INT64"),
        (UNKNOWN_ENTITY, "BOOL"),
        (FEATURES_UNAVAILABLE, "BOOL"),
    )

    def column(self, tensor: InputTensor, rows: int) -> list[Any]:
        return card_column(tensor, rows)

    def events(self, columns: dict[str, list[Any]], rows: int) -> list[Any]:
        return transactions(columns, rows)

    def json_column(self, name: str, values: list) -> list | None:
        return card_json_column(name, values)

    def entity(self, event: Any) -> tuple[str, str]:
        return "card_id", event.card_id

    def lookup_one(self, store: FeatureStore, direct: bool) -> Callable[[Any], Any]:
        if direct:
            return CardReader(store).lookup
        return lambda txn: lookup(store, txn)

    def pusher(self, store: FeatureStore) -> Callable[[Any, Any], object]:
        return state_pusher(store)

    def request_only(self, event: Any) -> dict[str, Any]:
        return request_only(event)

    def unknown(self, features: dict[str, Any]) -> bool:
        return features["card_transactions"] == 0 and features["card_registered"] == 0

    def model_inputs(
        self, features: list[dict[str, Any]], rows: int
    ) -> dict[str, np.ndarray]:
        return float32_columns(features, FRAUD_FEATURES)

    async def infer(
        self,
        predictor: PredictorPool,
        model_name: str,
        inputs: dict[str, np.ndarray],
        request_id: str,
    ) -> PredictorAnswer:
        return await predictor.infer(model_name, inputs, request_id)


assert {n for n, _ in CardDecision.extra_outputs[7:13]} == {
    *VELOCITY_FEATURES,
    *CONTEXT_FEATURES,
}
CARD = CardDecision()


def decision_for(model_name: str, kind: str = "auto") -> Decision:
    """The decision a transformer in front of `model_name` makes (module docstring)."""
    from riskserve.transformer.checkout import CHECKOUT

    if kind == "card":
        return CARD
    if kind == "customer":
        return CHECKOUT
    if kind != "auto":
        raise ValueError(
            f"unknown decision kind {kind!r}; expected auto, card or customer"
        )
    credit = model_name == "credit" or model_name.startswith("credit-")
    return CHECKOUT if credit else CARD
