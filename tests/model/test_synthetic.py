"""The synthetic generators reproduce DATA.md's statistics and relationships."""

import numpy as np
import pytest
from riskserve.model.specs import CREDIT, FRAUD
from riskserve.model.synthetic import credit_applicants, fraud_transactions, generate

pytestmark = pytest.mark.inprocess


@pytest.fixture(scope="module")
def fraud():
    return fraud_transactions(200_000, seed=7)


@pytest.fixture(scope="module")
def credit():
    return credit_applicants(90_000, seed=7)


def test_fraud_has_the_published_schema_and_rate(fraud):
    assert list(fraud.columns) == [*FRAUD.feature_names, "fraud"]
    assert fraud["fraud"].mean() == pytest.approx(0.0874, abs=0.004)
    assert not fraud.isna().any().any()


@pytest.mark.parametrize(
    ("column", "quartiles"),
    [
        ("distance_from_home", (3.88, 9.97, 25.74)),
        ("distance_from_last_transaction", (0.30, 1.00, 3.36)),
        ("ratio_to_median_purchase_price", (0.48, 1.00, 2.10)),
    ],
)
def test_fraud_quartiles_match_the_original(fraud, column, quartiles):
    observed = np.percentile(fraud[column], [25, 50, 75])
    np.testing.assert_allclose(observed, quartiles, rtol=0.06)


@pytest.mark.parametrize(
    ("column", "share"),
    [
        ("repeat_retailer", 0.8815),
        ("used_chip", 0.3504),
        ("used_pin_number", 0.1006),
        ("online_order", 0.6506),
    ],
)
def test_fraud_flags_match_the_original(fraud, column, share):
    assert fraud[column].mean() == pytest.approx(share, abs=0.005)


def test_fraud_concentrates_where_data_md_says(fraud):
    rate = fraud["fraud"].mean()
    risky = fraud[
        (fraud.ratio_to_median_purchase_price > 4)
        & (fraud.online_order == 1)
        & (fraud.used_pin_number == 0)
    ]
    safe = fraud[(fraud.used_pin_number == 1) & (fraud.online_order == 0)]
    assert risky["fraud"].mean() > 5 * rate
    assert safe["fraud"].mean() < rate / 5


def test_credit_has_the_published_schema_and_rates(credit):
    assert list(credit.columns) == ["uuid", *CREDIT.feature_names, "default"]
    assert credit["default"].mean() == pytest.approx(0.0143, abs=0.002)
    assert credit["account_status"].isna().mean() == pytest.approx(0.54, abs=0.01)
    assert credit["uuid"].is_unique
    assert set(credit["merchant_group"]) <= set(
        CREDIT.feature("merchant_group").categories
    )
    statuses = credit["account_worst_status_0_3m"].dropna()
    assert set(statuses.unique()) <= {1.0, 2.0, 3.0, 4.0}


def test_credit_amounts_are_heavy_tailed(credit):
    paid = credit["max_paid_inv_0_24m"]
    assert paid.mean() > 2 * paid.median()


def test_generators_are_seeded():
    a, b = generate("credit", 500, seed=3), generate("credit", 500, seed=3)
    assert a.equals(b)
    assert not generate("fraud", 500, seed=3).equals(generate("fraud", 500, seed=4))


def test_any_row_count():
    assert len(generate("fraud", 1, seed=0)) == 1
    with pytest.raises(ValueError, match="at least 1"):
        generate("fraud", 0)
