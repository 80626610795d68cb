"""card_fraud_pca has the shape of the public credit-card fraud data: 0.17% fraud,
heavy-tailed PCA components, two days of Time, a heavy-tailed Amount, and a signal that
a tree ensemble finds better than a linear model, with probabilities pressed against 0
and 1."""

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest
from riskserve.model.synthetic import card_fraud_pca
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import average_precision_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

pytestmark = pytest.mark.inprocess

COMPONENTS = [f"V{i}" for i in range(1, 29)]


@pytest.fixture(scope="module")
def transactions() -> pd.DataFrame:
    return card_fraud_pca(285_000, seed=0)


def test_columns_and_rows_are_those_of_the_original(transactions):
    assert list(transactions.columns) == ["Time", *COMPONENTS, "Amount", "Class"]
    assert len(transactions) == 285_000
    assert transactions["Class"].dtype == np.int64
    assert not transactions.isna().any().any()


def test_frauds_are_at_most_two_per_mille(transactions):
    assert transactions["Class"].sum() == round(285_000 * 0.00172)
    assert transactions["Class"].mean() <= 0.002
    assert card_fraud_pca(100, seed=0)["Class"].sum() == 1  # at least one
    assert card_fraud_pca(10_000, seed=0, fraud_rate=0.01)["Class"].sum() == 100


def test_a_seed_gives_the_same_rows_and_another_seed_others():
    pd.testing.assert_frame_equal(card_fraud_pca(20_000, 3), card_fraud_pca(20_000, 3))
    assert not card_fraud_pca(20_000, 3).equals(card_fraud_pca(20_000, 4))


def test_components_are_centred_heavy_tailed_and_of_decreasing_spread(transactions):
    components = transactions[COMPONENTS]
    np.testing.assert_allclose(components.mean(), 0.0, atol=1e-9)
    std = components.std()
    assert std["V1"] > std["V10"] > std["V20"] > std["V28"]
    # Pearson kurtosis (3 for a normal distribution): the original's run from 5 to
    # over 900.
    kurtosis = components.kurt() + 3.0
    assert (kurtosis > 6.0).sum() >= 14
    assert kurtosis.max() > 50.0
    # Extreme outliers, like the original's V1 at -56 (28 standard deviations).
    assert (components.abs() / std).max().max() > 25.0


def test_time_covers_two_days_with_a_daily_cycle(transactions):
    time = transactions["Time"]
    assert time.min() >= 0.0 and time.max() <= 172_792
    assert time.is_monotonic_increasing
    per_hour = (time // 3600 % 24).value_counts()
    assert per_hour[[2, 3, 4, 5]].mean() < per_hour[[10, 11, 12, 13]].mean() / 3


def test_amount_is_non_negative_and_heavy_tailed(transactions):
    amount = transactions["Amount"]
    assert amount.min() == 0.0
    assert 15.0 < amount.median() < 30.0
    assert amount.mean() > 3 * amount.median()
    assert amount.max() > 10_000
    np.testing.assert_allclose(amount, amount.round(2))


def test_frauds_sit_far_out_on_the_components_of_the_original(transactions):
    frauds = transactions[transactions["Class"] == 1]
    for component in ("V14", "V17", "V12", "V10"):
        assert frauds[component].mean() < -4.0
    for component in ("V4", "V11"):
        assert frauds[component].mean() > 2.5


def test_trees_beat_a_linear_model_with_probabilities_near_0_and_1():
    # Fitted on one draw, scored on another, larger one: 258 frauds make a holdout
    # PR-AUC that a few rows do not swing.
    train = card_fraud_pca(60_000, seed=1)
    holdout = card_fraud_pca(150_000, seed=1001)
    train_x, train_y = train.drop(columns="Class"), train["Class"]
    holdout_x, holdout_y = holdout.drop(columns="Class"), holdout["Class"].to_numpy()
    gbm = lgb.LGBMClassifier(
        n_estimators=300,
        learning_rate=0.1,
        num_leaves=15,
        reg_lambda=1.0,
        min_child_samples=10,
        random_state=0,
        n_jobs=1,
        verbose=-1,
    ).fit(train_x, train_y)
    linear = make_pipeline(
        StandardScaler(), LogisticRegression(C=0.1, max_iter=1000)
    ).fit(train_x, train_y)
    gbm_p = gbm.predict_proba(holdout_x)[:, 1]
    gbm_pr_auc = average_precision_score(holdout_y, gbm_p)
    linear_pr_auc = average_precision_score(
        holdout_y, linear.predict_proba(holdout_x)[:, 1]
    )
    # Seeds 1-5 give 0.81-0.88 against 0.65-0.74; the real data 0.84-0.86 against
    # 0.72-0.80. Not separable: some frauds look like normal rows.
    assert gbm_pr_auc - linear_pr_auc > 0.08, (gbm_pr_auc, linear_pr_auc)
    assert 0.7 < gbm_pr_auc < 0.95
    # Where float32 has little room, as on the real data.
    assert np.mean(gbm_p[holdout_y == 0] < 1e-5) > 0.5
    assert gbm_p.max() > 1 - 1e-4
