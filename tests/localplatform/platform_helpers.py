"""Helpers of the local platform tests: contract models and their bad variants, the
platform daemon as a real process, and fraud requests."""

from __future__ import annotations

import random
from pathlib import Path

import httpx
import numpy as np
import onnx
from onnx import helper, numpy_helper
from pydantic import SecretStr
from riskserve.localplatform.client import start_daemon, stop_daemon
from riskserve.localplatform.processes import free_port
from riskserve.localplatform.settings import PlatformSettings

from tests.fixtures import contract_models

REPO_ROOT = Path(__file__).resolve().parents[2]

FRAUD_FEATURES = contract_models.FRAUD.feature_names


def shifted(model: onnx.ModelProto, bias: float) -> onnx.ModelProto:
    """The same graph with another bias: its score distribution moves."""
    for index, init in enumerate(model.graph.initializer):
        if init.name == "b":
            model.graph.initializer[index].CopyFrom(
                numpy_helper.from_array(np.array([bias], np.float32), "b")
            )
    return model


def erroring(model: onnx.ModelProto) -> onnx.ModelProto:
    """Loads fine, fails at run time for any batch but 3 rows: a genuine server fault."""
    graph = model.graph
    graph.initializer.append(numpy_helper.from_array(np.array([3], np.int64), "three"))
    for node in graph.node:
        if list(node.output) == ["fraud_probability"]:
            node.output[0] = "probability_raw"
    graph.node.append(
        helper.make_node("Reshape", ["probability_raw", "three"], ["fraud_probability"])
    )
    return model


def isvc_yaml(
    name: str, storage_uri: Path | str, canary: int | None = None, extra: str = ""
) -> str:
    canary_line = f"    canaryTrafficPercent: {canary}\n" if canary is not None else ""
    return (
        "apiVersion: serving.kserve.io/v1beta1\n"
        "kind: InferenceService\n"
        f"metadata:\n  name: {name}\n"
        "spec:\n  predictor:\n"
        f"{canary_line}"
        "    model:\n"
        "      modelFormat:\n        name: onnx\n"
        "      protocolVersion: v2\n"
        f"      storageUri: {storage_uri}\n"
        f"{extra}"
    )


class Platform:
    def __init__(self, state_dir: Path) -> None:
        self.settings = PlatformSettings(
            state_dir=state_dir,
            gateway_port=free_port(),
            gateway_grpc_port=free_port(),
        )
        self.env = {
            "RISKSERVE_STATE_DIR": str(state_dir),
            "RISKSERVE_GATEWAY_PORT": str(self.settings.gateway_port),
            "RISKSERVE_GATEWAY_GRPC_PORT": str(self.settings.gateway_grpc_port),
        }
        self.client = httpx.Client(base_url=self.settings.gateway_url, timeout=30)

    def use_key(self, key: str) -> Platform:
        """Predictors and the control API require `key`; the helpers send it."""
        self.env["RISKSERVE_SERVING_API_KEY"] = key  # every predictor inherits it
        self.settings = self.settings.model_copy(
            update={"serving_api_key": SecretStr(key)}
        )
        return self

    def start(self) -> Platform:
        start_daemon(self.settings, self.env)
        return self

    def stop(self) -> None:
        stop_daemon(self.settings)

    def infer(self, isvc: str = "fraud", rows: int = 1) -> httpx.Response:
        return self.client.post(f"/v2/models/{isvc}/infer", json=fraud_request(rows))


def fraud_request(rows: int = 1) -> dict:
    rng = random.Random()
    values = {
        "distance_from_home": [rng.lognormvariate(2.3, 1.4) for _ in range(rows)],
        "distance_from_last_transaction": [
            rng.lognormvariate(0, 1.8) for _ in range(rows)
        ],
        "ratio_to_median_purchase_price": [
            rng.lognormvariate(0, 1.1) for _ in range(rows)
        ],
        "repeat_retailer": [float(rng.random() < 0.88) for _ in range(rows)],
        "used_chip": [float(rng.random() < 0.35) for _ in range(rows)],
        "used_pin_number": [float(rng.random() < 0.1) for _ in range(rows)],
        "online_order": [float(rng.random() < 0.65) for _ in range(rows)],
    }
    return {
        "inputs": [
            {"name": name, "shape": [rows, 1], "datatype": "FP32", "data": values[name]}
            for name in FRAUD_FEATURES
        ]
    }
