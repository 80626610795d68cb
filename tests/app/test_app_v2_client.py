"""The app's v2 client against real predictor processes serving contract models."""

from __future__ import annotations

import http.server
import threading
import time

import numpy as np
import pytest
from riskserve.app.v2_client import EndpointError, V2Client
from riskserve.localplatform.processes import free_port
from riskserve.model.specs import FRAUD

from tests.app.app_processes import APP_API_KEY, FRAUD_REVISION
from tests.fixtures.contract_models import (
    CREDIT_NUMERIC,
    expected_credit,
    expected_fraud,
)

pytestmark = pytest.mark.e2e

ROWS = np.array(
    [
        [8.5, 0.6, 0.9, 1, 1, 1, 0],
        [160.0, 45.0, 6.2, 0, 0, 0, 1],
        [1.0, 2.0, 3.0, 0, 1, 0, 1],
    ],
    dtype=np.float32,
)


def _fraud_columns(rows: np.ndarray) -> dict[str, list[float]]:
    return {name: rows[:, i].tolist() for i, name in enumerate(FRAUD.feature_names)}


@pytest.fixture
def fraud_client(fraud_predictor):
    client = V2Client("fraud", f"{fraud_predictor.url}/v2/models/fraud")
    yield client
    client.close()


@pytest.fixture
def credit_client(credit_predictor):
    client = V2Client("credit", f"{credit_predictor.url}/v2/models/credit", APP_API_KEY)
    yield client
    client.close()


def test_metadata_gives_inputs_outputs_and_the_threshold(fraud_client) -> None:
    metadata = fraud_client.metadata()
    assert metadata.name == "fraud"
    assert metadata.versions == ("3",)
    assert metadata.input_names == FRAUD.feature_names
    assert {t.datatype for t in metadata.inputs} == {"FP32"}
    assert metadata.output_names == ["fraud_probability", "is_fraud"]
    assert metadata.parameter("threshold") == 0.5


def test_fraud_answers_match_the_model_with_version_and_revision(fraud_client) -> None:
    result = fraud_client.infer(_fraud_columns(ROWS))
    probability, flagged = expected_fraud(ROWS)
    np.testing.assert_allclose(
        result.outputs["fraud_probability"], probability, atol=1e-6
    )
    assert result.outputs["is_fraud"] == flagged.tolist()
    assert result.model_name == "fraud"
    assert result.model_version == "3"
    assert result.revision == FRAUD_REVISION


def test_credit_sends_strings_and_missing_values_with_the_key(credit_client) -> None:
    metadata = credit_client.metadata()
    assert {t.name: t.datatype for t in metadata.inputs}["merchant_group"] == "BYTES"
    numeric = np.full((2, len(CREDIT_NUMERIC)), np.nan, dtype=np.float32)
    numeric[0] = np.arange(len(CREDIT_NUMERIC))
    groups = ["Electronics", "Entertainment"]
    columns: dict[str, list] = {
        name: [None if np.isnan(v) else float(v) for v in numeric[:, i]]
        for i, name in enumerate(CREDIT_NUMERIC)
    }
    columns["merchant_group"] = groups
    result = credit_client.infer(columns)
    probability, score, approved = expected_credit(numeric, groups)
    np.testing.assert_allclose(
        result.outputs["default_probability"], probability, atol=1e-6
    )
    np.testing.assert_allclose(result.outputs["credit_score"], score, rtol=1e-5)
    assert result.outputs["approved"] == approved.tolist()
    assert result.model_version == "7"


def test_a_missing_key_is_reported_in_plain_words(credit_predictor) -> None:
    client = V2Client("credit", f"{credit_predictor.url}/v2/models/credit")
    with pytest.raises(EndpointError, match="needs a valid API key") as caught:
        client.metadata()
    assert caught.value.status == 401
    assert "RISKSERVE_APP_API_KEY" in str(caught.value)


def test_the_servers_400_message_reaches_the_analyst(fraud_client) -> None:
    rows = np.zeros((65, 7), dtype=np.float32)  # the predictor takes at most 64 rows
    with pytest.raises(EndpointError) as caught:
        fraud_client.infer(_fraud_columns(rows))
    assert caught.value.status == 400
    message = str(caught.value)
    assert message.startswith("The fraud model rejected the request: ")
    assert "65" in message and "64" in message


def test_an_unknown_model_is_a_404_sentence(fraud_predictor) -> None:
    client = V2Client("fraud", f"{fraud_predictor.url}/v2/models/nope")
    with pytest.raises(EndpointError, match="was not found") as caught:
        client.metadata()
    assert caught.value.status == 404


def test_missing_columns_are_named_before_any_request(fraud_client) -> None:
    columns = _fraud_columns(ROWS)
    del columns["online_order"]
    with pytest.raises(EndpointError, match="online_order"):
        fraud_client.infer(columns)


def test_an_endpoint_that_is_down_is_reported_not_raised_raw() -> None:
    url = f"http://127.0.0.1:{free_port()}/v2/models/fraud"
    client = V2Client("fraud", url, connect_timeout=1)
    with pytest.raises(EndpointError, match="cannot be reached") as caught:
        client.metadata()
    assert url in str(caught.value)
    assert "Traceback" not in str(caught.value)


class _SlowHandler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        time.sleep(2)
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def test_a_timeout_is_reported_with_the_limit() -> None:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _SlowHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        client = V2Client(
            "fraud",
            f"http://127.0.0.1:{server.server_port}/v2/models/fraud",
            request_timeout=0.3,
        )
        started = time.monotonic()
        with pytest.raises(EndpointError, match=r"did not answer within 0\.3 s"):
            client.metadata()
        assert time.monotonic() - started < 1.5
    finally:
        server.shutdown()
        server.server_close()
