"""REST inference looks the model (and version) up right after auth, before the body is
read or checked: a request for a model this server does not serve is a 404 whatever its
body holds, as in KServe and Triton (issue 24). Auth still comes first."""

from __future__ import annotations

import httpx
import orjson
import pytest
from riskserve.serving.dataplane import DataPlane
from riskserve.serving.metrics import REQUESTS
from riskserve.serving.model import OnnxRiskModel
from riskserve.serving.rest import RestApp

from tests.asyncio_runner import run as run_async
from tests.fixtures.contract_models import fraud_model, write_onnx
from tests.serving.predictor_helpers import load_testdata

pytestmark = pytest.mark.inprocess

MAX_BODY = 4096
OVERSIZED = b'{"inputs": [' + b" " * (2 * MAX_BODY) + b"]}"

# (case id, body): every one of them a 400 when sent to the served model
BODIES = [
    ("empty-inputs", b'{"inputs": []}'),
    ("not-json", b"{not json"),
    ("empty-body", b""),
    ("not-an-object", b"[1, 2]"),
    ("oversized", OVERSIZED),
]


@pytest.fixture(scope="module")
def fraud(tmp_path_factory) -> OnnxRiskModel:
    path = write_onnx(fraud_model(version="3"), tmp_path_factory.mktemp("m") / "f")
    model = OnnxRiskModel("fraud", path)
    model.load()
    return model


def post(plane: DataPlane, path: str, body: bytes, **headers: str) -> httpx.Response:
    async def call() -> httpx.Response:
        app = RestApp(plane, max_body_bytes=MAX_BODY)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://predictor"
        ) as client:
            return await client.post(
                path,
                content=body,
                headers={"content-type": "application/json", **headers},
            )

    return run_async(call())


def unknown_404s() -> float:
    """riskserve_requests_total{model="unknown",status="404"} (REST)."""
    return REQUESTS.labels("unknown", "", "rest", "404")._value.get()


@pytest.mark.parametrize("body", [b for _, b in BODIES], ids=[i for i, _ in BODIES])
def test_an_unknown_model_is_a_404_whatever_the_body(fraud, body: bytes) -> None:
    plane = DataPlane(fraud)
    before = unknown_404s()
    response = post(plane, "/v2/models/nope/infer", body)
    assert response.status_code == 404, response.text
    assert "'nope' not found" in response.json()["error"]
    assert unknown_404s() == before + 1
    # The same body to the served model is the client's mistake: a 400.
    assert post(plane, "/v2/models/fraud/infer", body).status_code == 400


@pytest.mark.parametrize("body", [b for _, b in BODIES], ids=[i for i, _ in BODIES])
def test_an_unknown_version_is_a_404_whatever_the_body(fraud, body: bytes) -> None:
    response = post(DataPlane(fraud), "/v2/models/fraud/versions/9/infer", body)
    assert response.status_code == 404, response.text
    assert "no version '9'" in response.json()["error"]


def test_the_served_version_is_looked_up_and_answers(fraud) -> None:
    body = orjson.dumps(load_testdata("fraud_infer_request.json"))
    response = post(DataPlane(fraud), "/v2/models/fraud/versions/3/infer", body)
    assert response.status_code == 200, response.text
    assert response.json()["model_version"] == "3"


def test_auth_comes_before_the_lookup(fraud) -> None:
    plane = DataPlane(fraud, api_key="k")
    for body in (b'{"inputs": []}', OVERSIZED):
        keyless = post(plane, "/v2/models/nope/infer", body)
        assert keyless.status_code == 401, keyless.text
        assert keyless.headers["www-authenticate"] == "Bearer"
        wrong = post(plane, "/v2/models/nope/infer", body, authorization="Bearer x")
        assert wrong.status_code == 401
        keyed = post(plane, "/v2/models/nope/infer", body, authorization="Bearer k")
        assert keyed.status_code == 404, keyed.text


def test_a_model_not_loaded_yet_is_a_503_before_its_body_is_read(tmp_path) -> None:
    plane = DataPlane(OnnxRiskModel("fraud", tmp_path / "not-loaded.onnx"))
    assert post(plane, "/v2/models/fraud/infer", b"{not json").status_code == 503
    assert post(plane, "/v2/models/nope/infer", b"{not json").status_code == 404
