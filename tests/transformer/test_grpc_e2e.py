"""The transformer's v2 gRPC server as it runs: real predictor processes (the
contract fraud and credit models), Feast repositories materialised from generated
events, `python -m riskserve.transformer ... --grpc_port P`, and a stock client
(tritonclient.grpc, in a process of its own: its copy of the v2 protobuf package
cannot share one with riskserve's, see test_gateway_grpc.py). A raw transaction and a raw checkout get the decision REST
gives: the features the store says at that moment, the contract model's score on
them, the same outputs in the same order; a bad field is INVALID_ARGUMENT naming it."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import pytest
from riskserve.features.card import FRAUD_FEATURES, Transaction
from riskserve.features.customer import Checkout
from riskserve.features.customer_online import CustomerReader
from riskserve.features.online import lookup
from riskserve.localplatform.processes import ManagedProcess, free_port
from riskserve.transformer.checkout import NUMERIC
from riskserve.transformer.features_source import open_feature_store

from tests.fixtures.contract_models import (
    credit_model,
    expected_credit,
    expected_fraud,
    fraud_model,
    write_onnx,
)
from tests.serving.predictor_helpers import Predictor, start_predictor
from tests.transformer.transformer_helpers import (
    REPO_ROOT,
    CustomerRepo,
    FeatureRepo,
    build_customer_repo,
    build_feature_repo,
    child_environment,
    counter,
    outputs,
    raw_checkout,
    raw_request,
    transformer_argv,
    wait_for_pushes,
)
from tests.transformer.transformer_helpers import TransformerProcess as Rest

pytestmark = pytest.mark.e2e


@dataclass
class Served:
    predictor: Predictor
    rest: Rest
    grpc_port: int
    model: str

    def stock_client(self, *requests: dict) -> dict:
        """The requests through tritonclient.grpc: readiness, the metadata's inputs,
        and per request its answer (id, model_version, outputs by name) or its
        refusal (status, message)."""
        done = subprocess.run(
            [
                sys.executable,
                "-c",
                STOCK_CLIENT,
                f"127.0.0.1:{self.grpc_port}",
                self.model,
            ],
            input=json.dumps(list(requests)),
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr[-3000:]
        return json.loads(done.stdout.strip().splitlines()[-1])


@contextmanager
def serve(folder: Path, model_name: str, repo: Path) -> Iterator[Served]:
    predictor = start_predictor(folder, "predictor", model_name, folder / "model")
    http_port, grpc_port = free_port(), free_port()
    argv = transformer_argv(
        model_name, f"127.0.0.1:{predictor.http_port}", http_port, repo
    )
    process = ManagedProcess(
        name=f"transformer {model_name}",
        argv=[*argv, "--grpc_port", str(grpc_port)],
        log_path=folder / "transformer.log",
        env={**child_environment(), "RISKSERVE_TRANSFORMER_HOST": "127.0.0.1"},
        cwd=REPO_ROOT,
    ).start()
    rest = Rest(
        process, http_port, httpx.Client(base_url=f"http://127.0.0.1:{http_port}")
    )
    try:
        process.wait_ready(f"http://127.0.0.1:{http_port}/v2/health/ready", 60)
        yield Served(predictor, rest, grpc_port, model_name)
    finally:
        rest.stop()
        predictor.stop()


STOCK_CLIENT = """
import json, sys
import numpy as np
import tritonclient.grpc as triton
from tritonclient.utils import InferenceServerException
target, model = sys.argv[1], sys.argv[2]
requests = json.loads(sys.stdin.read())
DTYPES = {"BYTES": object, "FP64": np.float64, "BOOL": np.bool_, "INT64": np.int64}
client = triton.InferenceServerClient(target)
out = {
    "ready": client.is_model_ready(model),
    "inputs": [i.name for i in client.get_model_metadata(model).inputs],
    "answers": [],
}
for request in requests:
    inputs = []
    for item in request["inputs"]:
        values = item["data"]
        if item["datatype"] == "BYTES":
            values = [v.encode() for v in values]
        tensor = triton.InferInput(item["name"], [len(values)], item["datatype"])
        tensor.set_data_from_numpy(np.array(values, dtype=DTYPES[item["datatype"]]))
        inputs.append(tensor)
    try:
        result = client.infer(model, inputs, request_id=request.get("id", ""))
    except InferenceServerException as exc:
        out["answers"].append({"status": exc.status(), "message": exc.message()})
        continue
    response = result.get_response()
    outputs = {}
    for output in response.outputs:
        values = result.as_numpy(output.name).ravel().tolist()
        outputs[output.name] = [
            v.decode() if isinstance(v, bytes) else v for v in values
        ]
    out["answers"].append(
        {"id": response.id, "model_version": response.model_version, "outputs": outputs}
    )
client.close()
print(json.dumps(out))
"""


@dataclass
class CardStack:
    repo: FeatureRepo
    served: Served

    @property
    def after_us(self) -> int:
        last = self.repo.events.transactions["event_timestamp"].max()
        return int(last.value // 1000) + 3_600_000_000


@pytest.fixture(scope="module")
def cards(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CardStack]:
    folder = tmp_path_factory.mktemp("grpc-cards")
    repo = build_feature_repo(folder)
    write_onnx(fraud_model(), folder / "model")
    with serve(folder, "fraud", repo.repo) as served:
        yield CardStack(repo, served)


def test_a_raw_transaction_over_grpc_gets_the_rest_decision(cards: CardStack) -> None:
    served = cards.served
    card = str(cards.repo.events.cards["card_id"].iloc[3])
    when = cards.after_us
    store = open_feature_store(cards.repo.repo)
    txn = Transaction(card, when, 250.0, "m-grpc-1", 41.0, 12.5, 0, 0, 1)
    expected = lookup(store, txn).features  # before the transformer pushes
    request = raw_request(card, when, 250.0, "m-grpc-1", 41.0, 12.5, 0, 0, 1)
    pushed = counter(served.rest, "riskserve_transformer_pushes_total")

    seen = served.stock_client({**request, "id": "grpc-1"})
    assert seen["ready"] and seen["inputs"][0] == "card_id"
    (answer,) = seen["answers"]
    assert answer["id"] == "grpc-1" and answer["model_version"] == "3"
    got = answer["outputs"]
    for name in FRAUD_FEATURES:
        assert np.float32(got[name][0]) == np.float32(expected[name]), name
    assert got["unknown_entity"] == [False] and got["features_unavailable"] == [False]
    row = np.array([[expected[name] for name in FRAUD_FEATURES]], np.float32)
    probability, is_fraud = expected_fraud(row)
    assert got["fraud_probability"][0] == pytest.approx(float(probability[0]), abs=1e-6)
    assert got["is_fraud"] == [bool(is_fraud[0])]
    # The card's state was pushed after the answer, as after a REST answer.
    wait_for_pushes(served.rest, pushed + 1)

    # The next transaction of the card, over REST and (for another card with the
    # same history, an unknown one each) alike: the same outputs in the same order.
    later = raw_request(card, when + 60_000_000, 20.0, "m-grpc-1", 41.0, 12.5)
    rest_answer = served.rest.client.post("/v2/models/fraud/infer", json=later)
    assert rest_answer.status_code == 200, rest_answer.text
    assert outputs(rest_answer)["repeat_retailer"] == [1.0]  # it saw the gRPC one
    fresh = [raw_request(f"grpc-new-{i}", when, 99.0) for i in range(2)]
    by_rest = outputs(served.rest.client.post("/v2/models/fraud/infer", json=fresh[0]))
    by_grpc = served.stock_client(fresh[1])["answers"][0]["outputs"]
    assert list(by_grpc) == list(by_rest)
    for name, values in by_rest.items():
        if isinstance(values[0], float):
            assert by_grpc[name] == pytest.approx(values), name
        else:
            assert by_grpc[name] == values, name


def test_a_bad_field_over_grpc_is_invalid_argument_naming_it(cards: CardStack) -> None:
    bad = raw_request("card-x", cards.after_us, amount=-1.0)
    late = raw_request("card-x", 2**62)
    good = raw_request("card-y", cards.after_us)
    refused, too_late, answered = cards.served.stock_client(bad, late, good)["answers"]
    assert refused["status"] == "StatusCode.INVALID_ARGUMENT"
    assert "'amount' holds a negative amount" in refused["message"]
    assert too_late["status"] == "StatusCode.INVALID_ARGUMENT"
    assert "'timestamp'" in too_late["message"]
    assert answered["outputs"]["unknown_entity"] == [True]  # and it answers on


@pytest.fixture(scope="module")
def customers(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[CustomerRepo, Served]]:
    folder = tmp_path_factory.mktemp("grpc-customers")
    repo = build_customer_repo(folder)
    write_onnx(credit_model(), folder / "model")
    with serve(folder, "credit", repo.repo) as served:
        yield repo, served


def test_a_raw_checkout_over_grpc_gets_the_rest_decision(
    customers: tuple[CustomerRepo, Served],
) -> None:
    repo, served = customers
    payments = repo.events.payments
    customer = str(
        payments[payments["kind"] == "reminder"]["customer_id"].value_counts().index[0]
    )
    last = max(
        repo.events.checkouts["event_timestamp"].max(),
        payments["event_timestamp"].max(),
    )
    when = int(last.value // 1000) + 3_600_000_000
    reader = CustomerReader(open_feature_store(repo.repo))
    expected = reader.lookup(Checkout(customer, when, 120.0, "Electronics")).features

    (answer,) = served.stock_client(raw_checkout(customer, when, 120.0, "Electronics"))[
        "answers"
    ]
    got = answer["outputs"]
    assert answer["model_version"] == "7"
    for name in NUMERIC:
        want, value = np.float32(expected[name]), got[name][0]
        if np.isnan(want):
            assert np.isnan(value), name
        else:
            assert np.float32(value) == want, name
    assert got["merchant_group"] == ["Electronics"]
    assert got["unknown_entity"] == [False]
    numeric = np.array([[expected[n] for n in NUMERIC]], np.float32)
    probability, _, approved = expected_credit(numeric, ["Electronics"])
    assert got["default_probability"][0] == pytest.approx(
        float(probability[0]), rel=1e-5, abs=1e-12
    )
    assert got["approved"] == [bool(approved[0])]
    # REST's answer for a checkout of the same form names the same outputs in order.
    rest = served.rest.client.post(
        "/v2/models/credit/infer", json=raw_checkout("grpc-new", when)
    )
    assert rest.status_code == 200, rest.text
    assert list(outputs(rest)) == list(got)
