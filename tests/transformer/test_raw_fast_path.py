"""The raw request's fast path (plain JSON read without the v2 decoder) against the
general path: the same events for good bodies, the same 400 for bad ones.

The general path is reached by adding a key to every tensor (`"parameters": {}`,
which the v2 decoder ignores and the fast path does not take)."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from riskserve.serving.errors import InvalidInput
from riskserve.transformer import raw_request as raw_module
from riskserve.transformer.checkout import CHECKOUT
from riskserve.transformer.raw_request import RawKind, parse_raw_request

from tests.transformer.transformer_helpers import raw_checkout, raw_request

pytestmark = pytest.mark.inprocess

NOW_US = 1_767_225_600_000_000  # 2026-01-01 UTC


def _card(**changes: dict) -> dict:
    request = raw_request("card-1", NOW_US)
    for item in request["inputs"]:
        item.update(changes.get(item["name"], {}))
    return request


def _checkout(**changes: dict) -> dict:
    request = raw_checkout("cust-1", NOW_US, 99.5, "Home & Garden")
    for item in request["inputs"]:
        item.update(changes.get(item["name"], {}))
    return request


def _general(request: dict) -> bytes:
    """The same request with a key the fast path does not take on every tensor."""
    inputs = request.get("inputs")
    if not isinstance(inputs, list):
        return orjson.dumps(request)
    return orjson.dumps(
        {
            **request,
            "inputs": [
                {**item, "parameters": {}} if isinstance(item, dict) else item
                for item in inputs
            ],
        }
    )


def _outcome(body: bytes, kind: RawKind | None, max_rows: int = 64) -> Any:
    try:
        raw = parse_raw_request(body, None, max_rows, kind)
    except InvalidInput as refused:
        return ("400", refused.message)
    return ("ok", raw.id, raw.events, raw.outputs)


def _without_decoder(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*_: Any) -> Any:
        raise AssertionError("the fast path used the v2 decoder")

    monkeypatch.setattr(raw_module, "decode_inputs", refuse)


GOOD_CARDS = {
    "one row": _card(),
    "two-dimensional shape": _card(
        **{name: {"shape": [1, 1]} for name in raw_module.RAW_NAMES}
    ),
    "an integer amount": _card(amount={"data": [42]}),
    "negative zero and the edges": _card(
        amount={"data": [-0.0]},
        merchant_latitude={"data": [-90.0]},
        merchant_longitude={"data": [180]},
    ),
    "an id of 256 characters": _card(card_id={"data": ["c" * 256]}),
    "three rows": {
        "id": "r-3",
        "inputs": [
            {**item, "shape": [3], "data": item["data"] * 3}
            for item in raw_request("card-1", NOW_US)["inputs"]
        ],
    },
}


@pytest.mark.parametrize("name", GOOD_CARDS)
def test_a_good_transaction_reads_alike_on_both_paths(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    request = GOOD_CARDS[name]
    general = _outcome(_general(request), None)
    assert general[0] == "ok"
    _without_decoder(monkeypatch)
    fast = _outcome(orjson.dumps(request), None)
    assert fast == general
    assert all(type(v) is int for t in fast[2] for v in (t.chip, t.pin, t.online))


def test_a_good_checkout_reads_alike_on_both_paths(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    request = _checkout(basket_amount={"data": [12]})
    general = _outcome(_general(request), CHECKOUT)
    assert general[0] == "ok"
    _without_decoder(monkeypatch)
    assert _outcome(orjson.dumps(request), CHECKOUT) == general


BAD_CARDS: dict[str, dict | bytes] = {
    "wrong datatype of an id": _card(card_id={"datatype": "INT32", "data": [7]}),
    "a flag as a number": _card(used_chip={"datatype": "FP64", "data": [2.0]}),
    "a flag as a string": _card(used_chip={"data": ["yes"]}),
    "a fractional timestamp": _card(timestamp={"datatype": "FP64", "data": [1.5]}),
    "a timestamp past INT64": _card(timestamp={"data": [2**63]}),
    "a timestamp of zero": _card(timestamp={"data": [0]}),
    "wrong shape": _card(online_order={"shape": [1, 2], "data": [0, 1]}),
    "a shape and data that disagree": _card(amount={"shape": [2]}),
    "a boolean shape": _card(amount={"shape": [True]}),
    "rows that disagree": _card(amount={"shape": [2], "data": [1.0, 2.0]}),
    "missing data": _card(amount={"data": None}),
    "NaN (null)": _card(amount={"data": [None]}),
    "an amount as a string": _card(amount={"data": ["42"]}),
    "a boolean amount": _card(amount={"data": [True]}),
    "a negative amount": _card(amount={"data": [-1.0]}),
    "a latitude out of range": _card(merchant_latitude={"data": [90.5]}),
    "a longitude out of range": _card(merchant_longitude={"data": [-181]}),
    "an empty id": _card(merchant_id={"data": [""]}),
    "a too-long id": _card(card_id={"data": ["c" * 257]}),
    "an id that is a number": _card(card_id={"data": [7]}),
    "an unknown datatype": _card(amount={"datatype": "FLOAT"}),
    "a non-UTF-8 id": orjson.dumps(_card()).replace(b'"card-1"', b'"card-\xff"'),
    "a lone surrogate in an id": orjson.dumps(_card()).replace(
        b'"card-1"', b'"card-\\ud800"'
    ),
}


def _missing_field() -> dict:
    request = _card()
    request["inputs"] = request["inputs"][1:]
    return request


def _extra_tensor() -> dict:
    request = _card()
    request["inputs"].append(dict(request["inputs"][1], name="distance_from_home"))
    return request


def _twice() -> dict:
    request = _card()
    request["inputs"][-1] = dict(request["inputs"][0])
    return request


BAD_CARDS["a missing field"] = _missing_field()
BAD_CARDS["an extra tensor"] = _extra_tensor()
BAD_CARDS["a field sent twice"] = _twice()


@pytest.mark.parametrize("name", BAD_CARDS)
def test_a_bad_transaction_gets_the_general_paths_400(name: str) -> None:
    bad = BAD_CARDS[name]
    body = bad if isinstance(bad, bytes) else orjson.dumps(bad)
    fast = _outcome(body, None)
    assert fast[0] == "400", fast
    if not isinstance(bad, bytes):
        assert fast == _outcome(_general(bad), None)


def test_more_rows_than_the_limit_gets_the_general_paths_400() -> None:
    request = GOOD_CARDS["three rows"]
    fast = _outcome(orjson.dumps(request), None, max_rows=2)
    assert fast == ("400", "the request has 3 rows; at most 2 per request")
    assert fast == _outcome(_general(request), None, max_rows=2)


def test_an_extra_key_on_a_tensor_is_read_by_the_general_path() -> None:
    request = _card(amount={"parameters": {"content_type": "np"}})
    assert _outcome(orjson.dumps(request), None) == _outcome(_general(_card()), None)


@pytest.mark.parametrize(
    "changes",
    [
        {"merchant_group": {"data": ["Groceries"]}},
        {"merchant_group": {"data": [3]}},
        {"basket_amount": {"data": [None]}},
        {"basket_amount": {"data": [-3.0]}},
        {"customer_id": {"data": ["c" * 300]}},
        {"customer_id": {"datatype": "FP64", "data": [1.0]}},
        {"timestamp": {"data": [-1]}},
        {"timestamp": {"shape": [1, 2]}},
    ],
)
def test_a_bad_checkout_gets_the_general_paths_400(changes: dict) -> None:
    request = _checkout(**changes)
    fast = _outcome(orjson.dumps(request), CHECKOUT)
    assert fast[0] == "400", fast
    assert fast == _outcome(_general(request), CHECKOUT)
