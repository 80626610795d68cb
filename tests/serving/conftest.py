"""Fixtures of the predictor tests: contract models, predictor processes, the v2 spec."""

from __future__ import annotations

from pathlib import Path

import jsonschema
import pytest
import yaml

from tests.fixtures.contract_models import (
    credit_model,
    fraud_model,
    write_mlflow_folder,
    write_onnx,
)
from tests.serving.predictor_helpers import (
    API_KEY,
    REVISION,
    SPEC_DIR,
    Predictor,
    start_predictor,
)


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("models")
    write_onnx(fraud_model(version="3"), root / "fraud")
    write_mlflow_folder(credit_model(version="7"), root / "credit")
    return root


@pytest.fixture(scope="session")
def logs_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("predictor-logs")


@pytest.fixture(scope="session")
def inference_log_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("inference-log")


@pytest.fixture(scope="session")
def fraud_server(models_dir, logs_dir, inference_log_dir) -> Predictor:
    """fraud from a plain folder; auth off; small limits; a revision; inference log."""
    predictor = start_predictor(
        logs_dir,
        "fraud",
        "fraud",
        models_dir / "fraud",
        env={
            "RISKSERVE_SERVING_MAX_BATCH_SIZE": "64",
            "RISKSERVE_SERVING_MAX_BODY_BYTES": "65536",
            "RISKSERVE_SERVING_REVISION": REVISION,
            "RISKSERVE_SERVING_INFERENCE_LOG_URI": str(inference_log_dir),
            "RISKSERVE_SERVING_INFERENCE_LOG_FLUSH_SECONDS": "0.2",
            "RISKSERVE_SERVING_INLINE_MAX_ROWS": "8",
        },
    )
    yield predictor
    predictor.stop()


@pytest.fixture(scope="session")
def credit_server(models_dir, logs_dir) -> Predictor:
    """credit from an MLflow model folder; auth on."""
    predictor = start_predictor(
        logs_dir,
        "credit",
        "credit",
        models_dir / "credit",
        env={"RISKSERVE_SERVING_API_KEY": API_KEY},
    )
    predictor.client.headers["authorization"] = f"Bearer {API_KEY}"
    yield predictor
    predictor.stop()


# -- the v2 REST spec as JSON schemas ------------------------------------------------
@pytest.fixture(scope="session")
def v2_spec() -> dict:
    return yaml.safe_load((SPEC_DIR / "rest_predict_v2.yaml").read_text())


@pytest.fixture(scope="session")
def conforms(v2_spec):
    """`conforms(body, "inference_response")` validates against the spec's schema."""

    def check(body: object, schema_name: str) -> None:
        assert schema_name in v2_spec["components"]["schemas"], schema_name
        schema = {
            "$ref": f"#/components/schemas/{schema_name}",
            "components": v2_spec["components"],
        }
        jsonschema.Draft7Validator(schema).validate(body)

    return check
