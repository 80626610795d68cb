"""`python -m riskserve.features push-payments FILE`: the payments ledger's events
into the online store, and the checkout transformer's features of that customer
moving as the credit feature definitions say. Against the SQLite store in process,
and against a real Redis (Debian's redis-server) through the command as a process."""

from __future__ import annotations

import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from riskserve.features.__main__ import main
from riskserve.features.customer import (
    Checkout,
    CustomerState,
    PaymentEvent,
    advance,
    credit_features,
)
from riskserve.features.customer_offline import payments_of
from riskserve.features.customer_online import CustomerReader
from riskserve.features.store_config import open_feature_store
from riskserve.localplatform.processes import free_port
from riskserve.transformer.checkout import CHECKOUT

from riskserve.services import start_redis
from tests.transformer.transformer_helpers import (
    REPO_ROOT,
    CustomerRepo,
    build_customer_repo,
    child_environment,
)

DAY_US = 86_400_000_000


def _with_open_invoice(repo: CustomerRepo) -> tuple[str, CustomerState]:
    reader = CustomerReader(open_feature_store(repo.repo))
    for customer in repo.events.checkouts["customer_id"].unique():
        state = reader.state(str(customer))
        if state.open_issued_us:
            return str(customer), state
    raise AssertionError("no customer with an open invoice in the generated log")


def _events(customer: str, state: CustomerState) -> list[PaymentEvent]:
    """The customer's oldest open invoice reminded, then paid in full, then archived
    with status 1: moves sum_paid_inv, has_paid, num_arch_ok, the archived statuses."""
    issued, owed = state.open_issued_us[0], state.open_amounts[0]
    now = max(state.open_issued_us[-1], *state.added_us) + DAY_US
    return [
        PaymentEvent(customer, now, issued, "reminder"),
        PaymentEvent(customer, now + DAY_US, issued, "payment", amount=owed),
        PaymentEvent(customer, now + 2 * DAY_US, issued, "archived", status=1),
    ]


def _jsonl(path: Path, events: list[PaymentEvent]) -> Path:
    path.write_bytes(b"".join(orjson.dumps(vars(e)) + b"\n" for e in events))
    return path


def _expected(
    state: CustomerState, events: list[PaymentEvent], checkout: Checkout
) -> dict:
    for event in events:
        state = advance(state, event)
    return credit_features(checkout, state)


@pytest.fixture(scope="module")
def sqlite_repo(tmp_path_factory: pytest.TempPathFactory) -> CustomerRepo:
    return build_customer_repo(tmp_path_factory.mktemp("payments"))


@pytest.mark.inprocess
def test_pushed_payments_move_the_checkout_transformers_features(
    sqlite_repo: CustomerRepo,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    customer, before = _with_open_invoice(sqlite_repo)
    events = _events(customer, before)
    checkout = Checkout(
        customer, events[-1].timestamp_us + DAY_US, 120.0, "Electronics"
    )
    lookup = CHECKOUT.lookup_one(open_feature_store(sqlite_repo.repo), True)
    served_before = lookup(checkout).features

    file = _jsonl(tmp_path / "payments.jsonl", events)
    assert (
        main(
            [
                "push-payments",
                str(file),
                "--repo",
                str(sqlite_repo.repo),
                "--batch",
                "2",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "3 payment events of 1 customers, all valid" in out
    assert "pushed 2/3" in out and "pushed 3/3" in out

    served = CHECKOUT.lookup_one(open_feature_store(sqlite_repo.repo), True)(checkout)
    assert served.features == _expected(before, events, checkout)
    assert served.features["sum_paid_inv_0_12m"] > served_before["sum_paid_inv_0_12m"]
    assert served.features["status_last_archived_0_24m"] == 1
    assert served.state.open_issued_us == before.open_issued_us[1:]


@pytest.mark.inprocess
@pytest.mark.parametrize(
    ("line", "says"),
    [
        ({"kind": "refund"}, "row 2: kind: 'refund'; expected one of payment"),
        ({"amount": -3.0}, "row 2: amount: -3.0 is not a finite amount >= 0"),
        ({"timestamp_us": "soon"}, "row 2: timestamp_us: expected int, got 'soon'"),
        ({"colour": "red"}, "row 2: unknown field(s) colour"),
        ({"timestamp_us": 10}, "row 2: invoice_issued_us"),
    ],
)
def test_a_bad_row_is_one_line_naming_it_and_nothing_is_written(
    sqlite_repo: CustomerRepo,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    line: dict,
    says: str,
) -> None:
    customer, before = _with_open_invoice(sqlite_repo)
    good, second, _ = _events(customer, before)
    bad = {**vars(second), **line}
    file = tmp_path / "payments.jsonl"
    file.write_bytes(orjson.dumps(vars(good)) + b"\n" + orjson.dumps(bad) + b"\n")
    assert main(["push-payments", str(file), "--repo", str(sqlite_repo.repo)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and says in err, err
    assert (
        CustomerReader(open_feature_store(sqlite_repo.repo)).state(customer) == before
    )


@pytest.mark.inprocess
def test_events_out_of_time_order_are_refused(
    sqlite_repo: CustomerRepo, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    customer, before = _with_open_invoice(sqlite_repo)
    events = _events(customer, before)
    file = _jsonl(tmp_path / "payments.jsonl", [events[1], events[0]])
    assert main(["push-payments", str(file), "--repo", str(sqlite_repo.repo)]) == 2
    assert "row 2: timestamp: customer" in capsys.readouterr().err


@pytest.mark.inprocess
def test_the_generated_logs_parquet_is_accepted(
    sqlite_repo: CustomerRepo, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Rows in the event log's payment columns (what `generate` writes as
    payments.parquet): one customer's events, advancing its stored state."""
    log = sqlite_repo.events.payments
    customer = str(log["customer_id"].iloc[-1])
    mine = log[log["customer_id"] == customer].tail(4)
    payments = tmp_path / "payments.parquet"
    mine.to_parquet(payments, index=False)
    reader = CustomerReader(open_feature_store(sqlite_repo.repo))
    expected = reader.state(customer)
    for event in payments_of(mine):
        expected = advance(expected, event)
    assert main(["push-payments", str(payments), "--repo", str(sqlite_repo.repo)]) == 0
    assert f"done: {len(mine)} payment events pushed" in capsys.readouterr().out
    assert reader.state(customer) == expected


@pytest.fixture(scope="module")
def redis_repo(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[CustomerRepo, dict]]:
    folder = tmp_path_factory.mktemp("payments-redis")
    process, endpoint = start_redis(
        folder / "redis", free_port(), "r" + secrets.token_hex(12)
    )
    try:
        with pytest.MonkeyPatch.context() as patch:
            for key, value in endpoint.client_env().items():
                patch.setenv(key, value)
            repo = build_customer_repo(folder)
            assert not (repo.repo / "online.db").exists()  # everything is in Redis
            yield repo, endpoint.client_env()
    finally:
        process.stop()


@pytest.mark.e2e
def test_push_payments_into_redis_as_a_process(
    redis_repo: tuple[CustomerRepo, dict],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    repo, env = redis_repo
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    customer, before = _with_open_invoice(repo)
    events = _events(customer, before)
    checkout = Checkout(customer, events[-1].timestamp_us + DAY_US, 60.0, "Electronics")
    file = _jsonl(tmp_path / "payments.jsonl", events)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "riskserve.features",
            "push-payments",
            str(file),
            "--repo",
            str(repo.repo),
        ],
        env={**child_environment(), **env},
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "done: 3 payment events pushed, 1 customers advanced" in done.stdout
    served = CHECKOUT.lookup_one(open_feature_store(repo.repo), True)(checkout)
    assert served.features == _expected(before, events, checkout)
