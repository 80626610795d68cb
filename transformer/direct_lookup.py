"""The online lookup without Feast's per-call machinery, for the request path.

`riskserve.features.online.lookup` asks `FeatureStore.get_online_features` for the
on-demand view, which per call resolves the views, converts every value (the card's
recent-transaction lists included) to protobufs and back and type-checks the view's
output: about 1 to 3 ms on this machine, more than the predictor's whole answer. This
reads the same two rows (`card_profile`, `card_activity`) through the same provider
`online_read` Feast uses, and computes the features with the very function the
on-demand view runs (`riskserve.features.card.fraud_features`), so the values are the
view's (a test holds them equal to `lookup`'s). It belongs in the feature layer; it
lives here until the layer offers it (see the transformer's docs).
"""

from __future__ import annotations

from typing import Any

from feast import FeatureStore
from feast.protos.feast.types.EntityKey_pb2 import EntityKey as EntityKeyProto
from feast.protos.feast.types.Value_pb2 import Value as ValueProto
from riskserve.features.card import STATE_FIELDS, CardState, Transaction, fraud_features
from riskserve.features.online import CardLookup

_PROFILE = ("home_latitude", "home_longitude")


def _python(value: ValueProto | None) -> Any:
    if value is None:
        return None
    kind = value.WhichOneof("val")
    if kind is None or kind == "null_val":
        return None
    found = getattr(value, kind)
    return list(found.val) if kind.endswith("_list_val") else found


class DirectLookup:
    """`lookup(txn)`: the card's profile and state rows, then `fraud_features`."""

    def __init__(self, store: FeatureStore) -> None:
        self._config = store.config
        self._provider = store._get_provider()
        self._profile = store.get_feature_view("card_profile")
        self._activity = store.get_feature_view("card_activity")

    def _read(self, view: Any, key: EntityKeyProto, names: tuple[str, ...]) -> dict:
        ((_, values),) = self._provider.online_read(
            config=self._config,
            table=view,
            entity_keys=[key],
            requested_features=list(names),
        )
        values = values or {}
        return {name: _python(values.get(name)) for name in names}

    def lookup(self, txn: Transaction) -> CardLookup:
        key = EntityKeyProto(
            join_keys=["card_id"], entity_values=[ValueProto(string_val=txn.card_id)]
        )
        profile = self._read(self._profile, key, _PROFILE)
        state = CardState.from_row(self._read(self._activity, key, STATE_FIELDS))
        features = fraud_features(
            txn, state, profile["home_latitude"], profile["home_longitude"]
        )
        return CardLookup(features, state)
