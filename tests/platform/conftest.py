"""Fixtures of the local platform tests: model folders, and the platform daemon as a
real process (gateway and predictors on free loopback ports, state in tmp_path)."""

from __future__ import annotations

import importlib.util
import os
import random
from pathlib import Path

import httpx
import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper

from riskserve.platform_cli import start_daemon, stop_daemon
from serving.platform_settings import PlatformSettings
from serving.processes import free_port

REPO_ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location(
    "contract_models", REPO_ROOT / "tests" / "serving" / "contract_models.py"
)
contract_models = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(contract_models)

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


@pytest.fixture(scope="session")
def model_dirs(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("platform-models")
    write = contract_models.write_onnx
    dirs = {
        "v1": write(contract_models.fraud_model(version="1"), root / "v1").parent,
        "v2": write(contract_models.fraud_model(version="2"), root / "v2").parent,
        "shifted": write(
            shifted(contract_models.fraud_model(version="9"), 3.0), root / "shifted"
        ).parent,
        "erroring": write(
            erroring(contract_models.fraud_model(version="8")), root / "erroring"
        ).parent,
    }
    broken = root / "broken"
    broken.mkdir()
    (broken / "model.onnx").write_bytes(b"this is not an ONNX file")
    dirs["broken"] = broken
    dirs["missing"] = root / "does-not-exist"
    return dirs


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
        self.settings = PlatformSettings(state_dir=state_dir, gateway_port=free_port())
        self.env = {
            "RISKSERVE_STATE_DIR": str(state_dir),
            "RISKSERVE_GATEWAY_PORT": str(self.settings.gateway_port),
        }
        self.client = httpx.Client(base_url=self.settings.gateway_url, timeout=30)

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


@pytest.fixture
def platform(tmp_path):
    running = Platform(tmp_path / "state").start()
    yield running
    running.stop()
    running.client.close()
    leftovers = [
        pid for pid in _pids(tmp_path / "state") if os.path.exists(f"/proc/{pid}")
    ]
    assert not leftovers, f"predictors left running after `down`: {leftovers}"


def _pids(state_dir: Path) -> list[int]:
    import json

    path = state_dir / "platform" / "state.json"
    if not path.exists():
        return []
    data = json.loads(path.read_text())
    return [
        r["pid"] for s in data["services"].values() for r in s["revisions"] if r["pid"]
    ]
