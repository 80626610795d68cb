"""Fixtures of the local platform tests: model folders, and the platform daemon as a
real process (gateway and predictors on free loopback ports, state in tmp_path)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.localplatform.platform_helpers import (
    Platform,
    contract_models,
    erroring,
    shifted,
)


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
    path = state_dir / "platform" / "state.json"
    if not path.exists():
        return []
    data = json.loads(path.read_text())
    components = [
        c
        for s in data["services"].values()
        for c in (s, s.get("transformer") or {"revisions": []})
    ]
    return [r["pid"] for c in components for r in c["revisions"] if r["pid"]]
