"""KServe's own transformer pattern, for the benchmark: a plain `kserve.Model` whose
`preprocess` looks the card up with the Feast SDK (`FeatureStore.get_online_features`
on the same feature repository as riskserve's transformer, its on-demand view
computing the seven model features), `predict` KServe's own v2 REST call to
`--predictor_host`, and `postprocess` the card's state update through Feast's push API
(`FeatureStore.push`), as KServe's Feast example would write it. Served by KServe's
`ModelServer` with its defaults.

    python -m bench.stock_feast_transformer --model_name fraud \
        --predictor_host 127.0.0.1:8080 --predictor_protocol v2 --http_port 8081 \
        --feature_repo DIR
"""

from __future__ import annotations

import argparse
import uuid
from pathlib import Path

import kserve
import numpy as np
from feast import FeatureStore
from kserve import InferInput, InferRequest, InferResponse
from riskserve.features.card import FRAUD_FEATURES, CardState, Transaction
from riskserve.features.online import lookup, push_transaction
from riskserve.features.repo import repo_config


class FeastTransformer(kserve.Model):
    def __init__(self, name: str, feature_repo: Path) -> None:
        super().__init__(name)
        self.store = FeatureStore(
            config=repo_config(feature_repo, None, None), repo_path=str(feature_repo)
        )
        # The card's state as read, by request id, for postprocess to advance.
        self._pending: dict[str, tuple[Transaction, CardState]] = {}
        self.ready = True

    def preprocess(
        self, payload: InferRequest, headers: dict | None = None
    ) -> InferRequest:
        raw = {item.name: item.as_numpy().reshape(-1) for item in payload.inputs}
        txn = Transaction(
            _text(raw["card_id"][0]),
            int(raw["timestamp"][0]),
            float(raw["amount"][0]),
            _text(raw["merchant_id"][0]),
            float(raw["merchant_latitude"][0]),
            float(raw["merchant_longitude"][0]),
            int(raw["used_chip"][0]),
            int(raw["used_pin_number"][0]),
            int(raw["online_order"][0]),
        )
        found = lookup(self.store, txn)  # get_online_features with the request row
        request_id = payload.id or uuid.uuid4().hex  # the predictor echoes it
        self._pending[request_id] = (txn, found.state)
        inputs = []
        for name in FRAUD_FEATURES:
            tensor = InferInput(name, [1, 1], "FP32")
            tensor.set_data_from_numpy(np.array([[found.features[name]]], np.float32))
            inputs.append(tensor)
        return InferRequest(
            model_name=self.name, infer_inputs=inputs, request_id=request_id
        )

    def postprocess(
        self, response: InferResponse, headers: dict | None = None
    ) -> InferResponse:
        pending = self._pending.pop(response.id or "", None)
        if pending is not None:
            push_transaction(
                self.store, *pending
            )  # FeatureStore.push, to the online store
        return response


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(parents=[kserve.model_server.parser])
    parser.add_argument("--feature_repo", type=Path, required=True)
    args, _ = parser.parse_known_args()
    kserve.ModelServer().start([FeastTransformer(args.model_name, args.feature_repo)])
