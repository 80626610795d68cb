"""The transformer in process: raw-request parsing, the order and form of its errors,
flags, fail-open, pushes after the answer, the predictor hop's wire form, and the
command line. The store and the predictor are fakes here; test_transformer_e2e.py
runs the real ones."""

from __future__ import annotations

import asyncio
import logging
import math
import struct
import time
from typing import Any

import httpx
import numpy as np
import orjson
import pytest
from riskserve.features.card import CardState, Transaction, fraud_features
from riskserve.features.online import CardLookup
from riskserve.serving.binary_tensors import (
    encode_outputs,
    requested_outputs,
    response_body,
)
from riskserve.serving.errors import InvalidInput
from riskserve.serving.tensors import OutputTensor
from riskserve.transformer.__main__ import build_parser
from riskserve.transformer.app import (
    Transformer,
    TransformerApp,
    fetch_predictor_outputs,
)
from riskserve.transformer.features_source import (
    FeatureSource,
    Lookups,
    PushHooks,
    PushWorker,
    StoreUnavailable,
)
from riskserve.transformer.predictor_client import (
    PredictorAnswer,
    PredictorPool,
    features_request,
    parse_response,
)
from riskserve.transformer.raw_request import RAW_NAMES, parse_raw_request

from tests.asyncio_runner import run as run_async
from tests.transformer.transformer_helpers import raw_request

pytestmark = pytest.mark.inprocess

KEY = "transformer-test-key"
NOW_US = 1_767_225_600_000_000  # 2026-01-01 UTC
HOME = (48.85, 2.35)


def body(**changes: Any) -> bytes:
    request = raw_request("card-1", NOW_US)
    for item in request["inputs"]:
        if item["name"] in changes:
            item.update(changes[item["name"]])
    return orjson.dumps(request)


# -- parsing ---------------------------------------------------------------------------
def test_a_raw_transaction_becomes_a_transaction() -> None:
    raw = parse_raw_request(body(), None, 64)
    assert raw.transactions == [
        Transaction("card-1", NOW_US, 42.5, "m00-001", 48.85, 2.35, 1, 0, 0)
    ]


def test_binary_tensors_and_two_dimensional_shapes_parse_alike() -> None:
    ids = [b"card-1", b"m00-001"]
    parts: dict[str, tuple[str, bytes]] = {
        "card_id": ("BYTES", struct.pack("<I", 6) + ids[0]),
        "amount": ("FP64", np.array([42.5], "<f8").tobytes()),
        "merchant_id": ("BYTES", struct.pack("<I", 7) + ids[1]),
        "merchant_latitude": ("FP64", np.array([48.85], "<f8").tobytes()),
        "merchant_longitude": ("FP64", np.array([2.35], "<f8").tobytes()),
        "used_chip": ("BOOL", b"\x01"),
        "used_pin_number": ("BOOL", b"\x00"),
        "online_order": ("INT32", np.array([0], "<i4").tobytes()),
        "timestamp": ("INT64", np.array([NOW_US], "<i8").tobytes()),
    }
    header = orjson.dumps(
        {
            "inputs": [
                {
                    "name": name,
                    "datatype": datatype,
                    "shape": [1, 1],
                    "parameters": {"binary_data_size": len(data)},
                }
                for name, (datatype, data) in parts.items()
            ]
        }
    )
    payload = header + b"".join(data for _, data in parts.values())
    raw = parse_raw_request(payload, str(len(header)).encode(), 64)
    assert raw.transactions == parse_raw_request(body(), None, 64).transactions


@pytest.mark.parametrize(
    ("changes", "says"),
    [
        ({"amount": {"data": ["x"]}}, "'amount'"),
        ({"amount": {"data": [-1.0]}}, "'amount' holds a negative amount"),
        ({"amount": {"data": [math.nan]}}, "'amount'"),
        ({"merchant_latitude": {"data": [91.0]}}, "'merchant_latitude'"),
        ({"merchant_longitude": {"data": [-181.0]}}, "'merchant_longitude'"),
        ({"used_chip": {"datatype": "INT32", "data": [2]}}, "'used_chip'"),
        ({"card_id": {"datatype": "INT32", "data": [7]}}, "'card_id' must be BYTES"),
        ({"card_id": {"data": [""]}}, "'card_id' holds an empty id"),
        ({"merchant_id": {"data": ["m" * 300]}}, "'merchant_id'"),
        ({"timestamp": {"datatype": "FP64", "data": [1.5]}}, "'timestamp'"),
        ({"timestamp": {"data": [-5]}}, "'timestamp'"),
        ({"online_order": {"shape": [1, 2], "data": [0, 1]}}, "'online_order'"),
        ({"amount": {"shape": [2], "data": [1.0, 2.0]}}, "'amount' has 2 rows"),
    ],
)
def test_bad_raw_input_is_refused_naming_the_field(
    changes: dict[str, dict], says: str
) -> None:
    with pytest.raises(InvalidInput) as refused:
        parse_raw_request(body(**changes), None, 64)
    assert says in refused.value.message


def test_missing_unknown_and_repeated_tensors_are_named() -> None:
    request = raw_request("card-1", NOW_US)
    without = {**request, "inputs": request["inputs"][1:]}
    with pytest.raises(InvalidInput, match="missing input tensor.*card_id"):
        parse_raw_request(orjson.dumps(without), None, 64)
    extra = {**request, "inputs": [*request["inputs"], {**request["inputs"][0]}]}
    with pytest.raises(InvalidInput, match="'card_id' is sent twice"):
        parse_raw_request(orjson.dumps(extra), None, 64)
    stray = dict(request["inputs"][0], name="distance_from_home")
    other = {**request, "inputs": [*request["inputs"], stray]}
    with pytest.raises(InvalidInput, match="unknown input tensor 'distance_from_home'"):
        parse_raw_request(orjson.dumps(other), None, 64)


def test_more_rows_than_the_limit_is_a_400() -> None:
    request = raw_request("card-1", NOW_US)
    for item in request["inputs"]:
        item["shape"] = [3]
        item["data"] = item["data"] * 3
    with pytest.raises(InvalidInput, match="3 rows; at most 2"):
        parse_raw_request(orjson.dumps(request), None, 2)
    assert len(parse_raw_request(orjson.dumps(request), None, 3).transactions) == 3


# -- the app over fakes ----------------------------------------------------------------
class FakePredictor(PredictorPool):
    def __init__(self) -> None:
        super().__init__("127.0.0.1:9", 1.0)
        self.calls: list[dict[str, np.ndarray]] = []

    async def infer(
        self, model_name: str, features: dict[str, np.ndarray], request_id: str
    ) -> PredictorAnswer:
        self.calls.append(features)
        rows = len(features["distance_from_home"])
        return PredictorAnswer(
            "3",
            [
                OutputTensor("fraud_probability", "FP32", np.full(rows, 0.25, "f4")),
                OutputTensor("is_fraud", "BOOL", np.zeros(rows, bool)),
            ],
        )


class FakeSource(FeatureSource):
    """Known cards have a home and one earlier transaction; `down` fails lookups."""

    def __init__(self) -> None:
        self.down = False

    async def lookup(self, transactions: list[Transaction]) -> Lookups:
        if self.down:
            raise StoreUnavailable("the online store failed: OperationalError: gone")
        found = []
        for txn in transactions:
            if txn.card_id.startswith("unknown"):
                state, home = CardState(), (None, None)
            else:
                state = CardState(
                    last_latitude=48.0,
                    last_longitude=2.0,
                    last_timestamp_us=txn.timestamp_us - 60_000_000,
                    median_purchase=20.0,
                    transactions=1,
                    merchants_seen=["m00-001"],
                    recent_amounts=[20.0],
                    recent_timestamps_us=[txn.timestamp_us - 60_000_000],
                    recent_window_amounts=[20.0],
                )
                home = HOME
            found.append(CardLookup(fraud_features(txn, state, *home), state))
        return Lookups(found, 0.0)


class RecordedPushes(PushWorker):
    def __init__(self) -> None:
        self.submitted: list[tuple[Transaction, CardState]] = []

    def submit(self, txn: Transaction, state: CardState) -> None:
        self.submitted.append((txn, state))


def make_app(
    api_key: str | None = None, fail_open: bool = False
) -> tuple[TransformerApp, FakeSource, RecordedPushes, FakePredictor]:
    source, pushes, predictor = FakeSource(), RecordedPushes(), FakePredictor()
    transformer = Transformer(
        model_name="fraud",
        predictor=predictor,
        source=source,
        pushes=pushes,
        api_key=api_key,
        fail_open=fail_open,
    )
    return TransformerApp(transformer), source, pushes, predictor


def call(
    app: TransformerApp, requests: list[tuple[str, str, Any]]
) -> list[httpx.Response]:
    async def go() -> list[httpx.Response]:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://transformer"
        ) as client:
            answers = []
            for method, path, kwargs in requests:
                answers.append(await client.request(method, path, **kwargs))
            return answers

    return run_async(go())


def outputs(response: httpx.Response) -> dict[str, list]:
    return {o["name"]: o["data"] for o in response.json()["outputs"]}


def test_a_known_card_gets_the_decision_its_features_and_a_push() -> None:
    app, _, pushes, predictor = make_app()
    (answer,) = call(app, [("POST", "/v2/models/fraud/infer", {"content": body()})])
    assert answer.status_code == 200, answer.text
    got = outputs(answer)
    assert got["fraud_probability"] == [0.25] and got["is_fraud"] == [False]
    assert got["unknown_entity"] == [False] and got["features_unavailable"] == [False]
    assert got["repeat_retailer"] == [1.0] and got["card_transactions"] == [1]
    assert got["distance_from_home"][0] == pytest.approx(0.0, abs=1e-3)
    # The predictor got the seven features as float32, the values answered.
    sent = predictor.calls[0]
    assert list(sent) == [
        "distance_from_home",
        "distance_from_last_transaction",
        "ratio_to_median_purchase_price",
        "repeat_retailer",
        "used_chip",
        "used_pin_number",
        "online_order",
    ]
    assert all(v.dtype == np.float32 for v in sent.values())
    assert got["ratio_to_median_purchase_price"] == [float(np.float32(42.5 / 20.0))]
    assert [txn.card_id for txn, _ in pushes.submitted] == ["card-1"]
    assert pushes.submitted[0][1].transactions == 1  # the state read, to advance


def test_an_unknown_card_gets_the_defaults_and_the_flag() -> None:
    app, *_ = make_app()
    request = orjson.dumps(raw_request("unknown-card", NOW_US, online=1))
    (answer,) = call(app, [("POST", "/v2/models/fraud/infer", {"content": request})])
    got = outputs(answer)
    assert got["unknown_entity"] == [True]
    assert got["distance_from_home"] == [0.0]
    assert got["distance_from_last_transaction"] == [0.0]
    assert got["ratio_to_median_purchase_price"] == [1.0]
    assert got["repeat_retailer"] == [0.0]
    assert got["online_order"] == [1.0]


def test_a_store_that_is_down_is_a_503_and_nothing_is_pushed() -> None:
    app, source, pushes, predictor = make_app()
    source.down = True
    (answer,) = call(app, [("POST", "/v2/models/fraud/infer", {"content": body()})])
    assert answer.status_code == 503
    assert "online store failed" in answer.json()["error"]
    assert not pushes.submitted and not predictor.calls


def test_fail_open_answers_from_the_request_alone_flagged_and_pushes_nothing() -> None:
    app, source, pushes, _ = make_app(fail_open=True)
    source.down = True
    (answer,) = call(app, [("POST", "/v2/models/fraud/infer", {"content": body()})])
    assert answer.status_code == 200
    got = outputs(answer)
    assert got["features_unavailable"] == [True]
    assert got["unknown_entity"] == [False]  # not known to be unknown
    assert got["used_chip"] == [1.0] and got["repeat_retailer"] == [0.0]
    assert not pushes.submitted


def test_errors_come_in_the_predictors_order() -> None:
    app, *_ = make_app(api_key=KEY)
    answers = call(
        app,
        [
            ("GET", "/v2/models/fraud/infer", {}),  # 405 first
            ("POST", "/v2/models/nope/infer", {"content": b"not json"}),  # 401
            (
                "POST",
                "/v2/models/nope/infer",
                {"content": b"not json", "headers": {"x-api-key": KEY}},
            ),  # 404 before the body
            (
                "POST",
                "/v2/models/fraud/infer",
                {"content": b"not json", "headers": {"authorization": f"Bearer {KEY}"}},
            ),  # 400
            ("GET", "/v2/models/fraud", {"headers": {"x-api-key": "wrong"}}),
            ("GET", "/v2/health/ready", {}),
            ("GET", "/v2/models/fraud/ready", {}),
        ],
    )
    assert [a.status_code for a in answers] == [405, 401, 404, 400, 401, 200, 200]
    assert answers[0].headers["allow"] == "POST"
    assert answers[1].headers["www-authenticate"] == "Bearer"
    assert "not valid JSON" in answers[3].json()["error"]


def test_the_metadata_lists_the_raw_inputs_and_the_extra_outputs() -> None:
    app, *_ = make_app()
    (answer,) = call(app, [("GET", "/v2/models/fraud", {})])
    metadata = answer.json()
    assert [i["name"] for i in metadata["inputs"]] == list(RAW_NAMES)
    names = [o["name"] for o in metadata["outputs"]]
    assert "unknown_entity" in names and "features_unavailable" in names
    assert "distance_from_home" in names


def test_requested_outputs_and_binary_outputs() -> None:
    app, *_ = make_app()
    request = raw_request("card-1", NOW_US)
    request["outputs"] = [
        {"name": "fraud_probability", "parameters": {"binary_data": True}},
        {"name": "unknown_entity"},
    ]
    wrong = {**request, "outputs": [{"name": "nope"}]}
    answer, refused = call(
        app,
        [
            ("POST", "/v2/models/fraud/infer", {"json": request}),
            ("POST", "/v2/models/fraud/infer", {"json": wrong}),
        ],
    )
    parsed = parse_response(
        answer.content, answer.headers["inference-header-content-length"].encode()
    )
    assert [o.name for o in parsed.outputs] == ["fraud_probability", "unknown_entity"]
    assert parsed.outputs[0].array.tolist() == [0.25]
    assert refused.status_code == 400 and "'nope'" in refused.json()["error"]


# -- the store and the push worker -----------------------------------------------------
class HangingStore:
    def get_online_features(self, **_: Any) -> Any:
        time.sleep(2.0)
        raise AssertionError("never answered in time")


def test_a_store_that_hangs_is_unavailable_after_the_timeout() -> None:
    source = FeatureSource(HangingStore(), 0.2, in_thread=True)  # type: ignore[arg-type]
    txn = parse_raw_request(body(), None, 64).transactions
    started = time.monotonic()
    with pytest.raises(StoreUnavailable, match="did not answer within 200 ms"):
        run_async(source.lookup(txn))
    assert time.monotonic() - started < 1.5
    source.close()


def test_failed_pushes_are_logged_and_counted(caplog: pytest.LogCaptureFixture) -> None:
    failures: list[str] = []
    pushed: list[float] = []

    def push(txn: Transaction, state: CardState) -> None:
        if txn.card_id == "bad":
            raise OSError("disk I/O error")

    worker = PushWorker(
        push, 2, PushHooks(pushed.append, failures.append, lambda _: None)
    )
    txn = parse_raw_request(body(), None, 64).transactions[0]
    bad = Transaction("bad", *list(vars(txn).values())[1:])
    with caplog.at_level(logging.ERROR, logger="transformer"):
        worker.submit(bad, CardState())
        worker.submit(txn, CardState())
        assert worker.close(drain_seconds=5.0) == 0
    assert failures == ["error"] and len(pushed) == 1
    (record,) = caplog.records
    assert record.getMessage() == "state update failed"
    assert record.__dict__["error"] == "OSError: disk I/O error"
    assert record.__dict__["card_id"] == "bad"


def test_a_full_push_queue_drops_loudly() -> None:
    failures: list[str] = []

    def slow(txn: Transaction, state: CardState) -> None:
        time.sleep(0.3)

    worker = PushWorker(
        slow, 1, PushHooks(lambda _: None, failures.append, lambda _: None)
    )
    txn = parse_raw_request(body(), None, 64).transactions[0]
    for _ in range(4):
        worker.submit(txn, CardState())
    worker.close(drain_seconds=2.0)
    assert failures.count("queue_full") >= 2


# -- the predictor hop -----------------------------------------------------------------
def test_the_features_request_is_binary_v2_and_the_answer_decodes() -> None:
    features = {"a": np.array([1.5, 2.0]), "b": np.array([0.0, 1.0])}
    payload, length = features_request(features, "id-1")
    header = orjson.loads(payload[: int(length)])
    assert header["parameters"] == {"binary_data_output": True}
    assert header["inputs"][0] == {
        "name": "a",
        "datatype": "FP32",
        "shape": [2, 1],
        "parameters": {"binary_data_size": 8},
    }
    assert np.frombuffer(payload[int(length) : int(length) + 8], "<f4").tolist() == [
        1.5,
        2.0,
    ]
    outputs = [
        OutputTensor("fraud_probability", "FP32", np.array([0.1, 0.9], "f4")),
        OutputTensor("is_fraud", "BOOL", np.array([False, True])),
    ]
    described, raw = encode_outputs(
        outputs, requested_outputs(None, {"binary_data_output": True})
    )
    answer, json_length = response_body(
        {"model_name": "fraud", "model_version": "3", "outputs": described}, raw
    )
    parsed = parse_response(answer, str(json_length).encode())
    assert parsed.model_version == "3"
    assert parsed.outputs[1].array.tolist() == [False, True]


# -- the command line ------------------------------------------------------------------
def test_kserves_transformer_arguments_are_accepted() -> None:
    args = build_parser().parse_args(
        [
            "--model_name",
            "fraud",
            "--predictor_host",
            "fraud-predictor.default:80",
            "--http_port",
            "8080",
            "--protocol",
            "v2",
            "--predictor_protocol",
            "v2",
            "--predictor_use_ssl",
            "false",
            "--predictor_request_timeout_seconds",
            "3",
            "--enable_predictor_health_check",
            "--feature_repo",
            "/srv/features",
        ]
    )
    assert args.predictor_host == "fraud-predictor.default:80"
    assert args.predictor_request_timeout_seconds == 3
    assert args.enable_predictor_health_check is True


def test_a_protocol_other_than_v2_is_refused(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from riskserve.transformer.__main__ import main

    with pytest.raises(SystemExit) as exited:
        # Without configuring logging: main's root handler would write to this
        # test's captured stderr, closed once it ends (later tests' logs would fail).
        main(
            [
                "--predictor_host",
                "h:1",
                "--protocol",
                "v1",
                "--feature_repo",
                "/x",
                "--configure_logging",
                "false",
            ]
        )
    assert exited.value.code == 2
    assert "only v2 is served" in capsys.readouterr().err


def test_the_push_runs_after_the_answer_is_sent_in_the_loops_next_step() -> None:
    app, _, pushes, _ = make_app()
    sent: list[str] = []
    seen_at_push: list[list[str]] = []
    record = pushes.submit

    def submit(txn: Transaction, state: CardState) -> None:
        seen_at_push.append(list(sent))
        record(txn, state)

    pushes.submit = submit  # type: ignore[method-assign]
    scope = {
        "type": "http",
        "method": "POST",
        "path": "/v2/models/fraud/infer",
        "headers": [],
    }

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body(), "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message["type"])

    async def go() -> tuple[int, int]:
        await app(scope, receive, send)
        pushed_in_the_step = len(pushes.submitted)
        await asyncio.sleep(0)  # the loop's next step: the push has run
        return pushed_in_the_step, len(pushes.submitted)

    assert run_async(go()) == (0, 1)
    assert seen_at_push == [["http.response.start", "http.response.body"]]


def test_answers_without_an_id_get_distinct_ids() -> None:
    app, *_ = make_app()
    answers = call(app, [("POST", "/v2/models/fraud/infer", {"content": body()})] * 3)
    ids = [a.json()["id"] for a in answers]
    assert all(ids) and len(set(ids)) == 3


def test_the_metadata_passes_on_the_models_own_parameters() -> None:
    """The predictor's cut-off and score scaling reach a client through the
    transformer (the app draws the model's scale and cut-off from them); the
    transformer's own keys win a clash."""
    app, _, _, predictor = make_app()
    predictor_metadata = {
        "name": "fraud",
        "outputs": [{"name": "fraud_probability", "datatype": "FP32", "shape": [-1]}],
        "parameters": {"threshold": "0.42", "decision": "not the transformer's"},
    }

    async def get_json(path: str) -> tuple[int, Any]:
        assert path == "/v2/models/fraud"
        return 200, predictor_metadata

    predictor.get_json = get_json  # type: ignore[method-assign]
    run_async(fetch_predictor_outputs(app.t))
    (answer,) = call(app, [("GET", "/v2/models/fraud", {})])
    parameters = answer.json()["parameters"]
    assert parameters["threshold"] == "0.42"
    assert parameters["decision"] == "card"
    assert answer.json()["outputs"][0]["name"] == "fraud_probability"


def test_unknown_requested_outputs_are_named_within_bounds() -> None:
    app, *_ = make_app()
    request = raw_request("card-1", NOW_US)
    # Names up to the parser's 128 characters, up to its 64 outputs.
    request["outputs"] = [{"name": f"{i}-" + "x" * 120} for i in range(40)]
    (refused,) = call(app, [("POST", "/v2/models/fraud/infer", {"json": request})])
    assert refused.status_code == 400
    message = refused.json()["error"]
    assert message.startswith("unknown requested output(s): '0-xxx")
    assert message.endswith("and 35 more") and len(message) < 500
