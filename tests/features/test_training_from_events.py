"""`riskserve train fraud|credit --events DIR`: the training set of a raw event log,
built by the feature layer's point-in-time joins; the CSV and synthetic paths stay."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from riskserve.features.__main__ import main as features_main
from riskserve.features.card import FRAUD_FEATURES, CardState, advance, fraud_features
from riskserve.features.customer import (
    CREDIT_FEATURES,
    Checkout,
    CustomerState,
    credit_features,
)
from riskserve.features.customer import advance as advance_customer
from riskserve.features.customer_offline import customer_events, read_bnpl_log
from riskserve.features.offline import read_event_log, transactions
from riskserve.model.data import DataError
from riskserve.model.specs import CREDIT, FRAUD
from riskserve.training.__main__ import main as train_main
from riskserve.training.dataset import JobConfig, load_data

pytestmark = pytest.mark.inprocess


@pytest.fixture(scope="module")
def event_log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("events")
    assert (
        features_main(
            ["generate", str(out), "--cards", "150", "--days", "10"]
            + ["--customers", "150"]
        )
        == 0
    )
    return out


def test_the_job_trains_on_point_in_time_features_of_the_event_log(
    event_log: Path,
) -> None:
    data = load_data(JobConfig(kind="fraud", events=event_log))
    cards, log = read_event_log(event_log)

    assert data.spec is FRAUD
    assert list(data.features.columns) == list(FRAUD.feature_names)
    assert len(data.features) == len(log)
    assert (data.target.to_numpy() == log["fraud"].to_numpy()).all()
    assert "event log" in data.source
    # Each row is what the card's history said just before that transaction.
    homes = cards.set_index("card_id")[["home_latitude", "home_longitude"]]
    states: dict[str, CardState] = {}
    expected = []
    for t in transactions(log):
        state = states.get(t.card_id, CardState())
        expected.append(fraud_features(t, state, *homes.loc[t.card_id]))
        states[t.card_id] = advance(state, t)
    for name in FRAUD_FEATURES:
        want = np.array([row[name] for row in expected], np.float32)
        got = data.features[name].to_numpy(np.float64).astype(np.float32)
        assert (got == want).all(), name


def test_the_credit_job_trains_on_each_checkouts_payment_history(
    event_log: Path,
) -> None:
    data = load_data(JobConfig(kind="credit", events=event_log))
    checkouts, payments = read_bnpl_log(event_log)

    assert data.spec is CREDIT
    assert list(data.features.columns) == list(CREDIT.feature_names)
    assert len(data.features) == len(checkouts)
    assert (data.target.to_numpy() == checkouts["default"].to_numpy()).all()
    # Each row is what the customer's history said just before that checkout.
    states: dict[str, CustomerState] = {}
    expected: list[dict] = [{}] * len(checkouts)
    for event, row in customer_events(checkouts, payments):
        state = states.get(event.customer_id, CustomerState())
        if isinstance(event, Checkout):
            expected[row] = credit_features(event, state)
        states[event.customer_id] = advance_customer(state, event)
    for name in CREDIT_FEATURES:
        if name == "merchant_group":
            assert list(data.features[name]) == [r[name] for r in expected]
            continue
        want = np.array([row[name] for row in expected], np.float32)
        got = data.features[name].to_numpy(np.float64).astype(np.float32)
        assert ((got == want) | (np.isnan(got) & np.isnan(want))).all(), name
    assert data.features["account_status"].isna().any()  # missing stays missing


def test_a_broken_event_log_is_a_data_error_naming_the_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="cards.parquet"):
        load_data(JobConfig(kind="fraud", events=tmp_path))
    with pytest.raises(DataError, match="bnpl_checkouts.parquet"):
        load_data(JobConfig(kind="credit", events=tmp_path))


def test_events_and_a_csv_together_exit_2(
    event_log: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = train_main(["fraud", "--events", str(event_log), "--data", "x.csv"])
    assert code == 2
    assert "--events" in capsys.readouterr().err
