"""The app over a credit model behind the checkout transformer: the credit tab takes a
customer id and a basket, the answer shows the decision, the reasons, the features
the transformer computed from the customer's history and whether it knew the
customer. Real processes: a fitted scorecard (reason codes) served by a predictor,
riskserve's checkout transformer over a repository built as the demo builds it, the
app, headless Chromium."""

from __future__ import annotations

import numpy as np
import pytest
from riskserve.app.fields import fields_from_metadata, parse_timestamp_us
from riskserve.app.v2_client import V2Client
from riskserve.features.customer import CREDIT_FEATURES, Checkout
from riskserve.features.customer_online import CustomerReader
from riskserve.model.specs import CREDIT, MERCHANT_GROUPS
from riskserve.transformer.features_source import open_feature_store

from tests.app.app_processes import ARTIFACTS
from tests.app.test_app_reasons_browser import served_answer


def _expected(repo, example: dict, basket: float) -> dict:
    """What the transformer will compute for this checkout (the store as it is now)
    and what the model answers on it."""
    checkout = Checkout(
        str(example["customer_id"]),
        parse_timestamp_us("timestamp", example["timestamp"]),
        basket,
        str(example["merchant_group"]),
    )
    reader = CustomerReader(open_feature_store(repo))
    features = reader.lookup(checkout).features
    row = {
        name: None
        if isinstance(features[name], float) and np.isnan(features[name])
        else features[name]
        for name in CREDIT_FEATURES
    }
    return {"features": features, "row": row}


@pytest.mark.e2e
def test_the_checkout_transformer_metadata_gives_a_customer_and_basket_form(
    credit_transformer,
) -> None:
    client = V2Client("credit", f"{credit_transformer.url}/v2/models/credit")
    metadata = client.metadata()
    assert metadata.takes_raw_events
    fields = {f.name: f for f in fields_from_metadata(metadata, CREDIT)}
    assert tuple(fields) == (
        "customer_id",
        "basket_amount",
        "merchant_group",
        "timestamp",
    )
    assert fields["customer_id"].kind == "id"
    assert fields["merchant_group"].categories == MERCHANT_GROUPS
    assert fields["timestamp"].kind == "timestamp"
    with pytest.raises(ValueError, match=r"^basket_amount -5 is below 0$"):
        fields["basket_amount"].parse("-5")
    with pytest.raises(ValueError, match="merchant_group 'Groceries' is not one of"):
        fields["merchant_group"].parse("Groceries")
    client.close()


@pytest.mark.browser
def test_a_customer_id_and_basket_get_the_decision_reasons_and_history_features(
    raw_credit_page, customer_features, raw_credit_examples_of_demo, scorecard_model
) -> None:
    page = raw_credit_page
    page.get_by_role("tab", name="Credit decision").click()
    status = page.locator(".rs-status", has_text="credit model").last.inner_text()
    assert "behind a transformer" in status and "a customer and a basket" in status
    label = next(k for k in raw_credit_examples_of_demo if "defaulted before" in k)
    example = raw_credit_examples_of_demo[label]
    # The example sets the merchant group and the time; the customer and the basket
    # are typed in, as an analyst would.
    page.get_by_text(label, exact=False).first.click()
    page.wait_for_function(
        "[...document.querySelectorAll('#field-customer_id textarea, "
        "#field-customer_id input')].some(e => e.value.startsWith('cust-'))"
    )
    customer = str(example["customer_id"])
    basket = 240.5
    page.locator("#field-customer_id").locator("textarea, input").first.fill(customer)
    page.locator("#field-basket_amount input").fill(str(basket))
    expected = _expected(customer_features.repo, example, basket)
    model = served_answer(scorecard_model, expected["row"])

    page.click("#score-credit")
    answer = page.locator("#answer-credit")
    answer.locator(".rs-features").wait_for(timeout=30_000)
    text = answer.inner_text()
    approved = bool(model["approved"][0])
    assert f"Decision: {'APPROVED' if approved else 'DECLINED'}" in text
    assert "Known customer" in text and "Unknown customer" not in text
    reasons = answer.locator(".rs-reason").all_inner_texts()
    assert reasons and reasons == [c for c in model["reason_codes"][0] if c]
    shown_probability = float(answer.locator(".rs-probability").inner_text())
    assert shown_probability == pytest.approx(
        float(model["default_probability"][0]), abs=1e-3
    )
    shown = {
        row.get_attribute("data-name"): row.locator(".rs-feature-value").inner_text()
        for row in answer.locator(".rs-feature").all()
    }
    assert set(CREDIT.feature_names) <= set(shown)
    for name in ("sum_paid_inv_0_12m", "num_arch_ok_0_12m", "has_paid"):
        assert float(shown[name]) == pytest.approx(
            float(expected["features"][name]), rel=1e-4
        ), name
    assert shown["merchant_group"] == example["merchant_group"]
    assert (
        int(shown["customer_checkouts"]) == expected["features"]["customer_checkouts"]
    )
    assert expected["features"]["customer_checkouts"] > 0
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "app-raw-credit.png"), full_page=True)

    # The customer never seen: scored on the empty history, and the page says so.
    page.get_by_text("A customer never seen", exact=False).first.click()
    page.wait_for_function(
        "[...document.querySelectorAll('#field-customer_id textarea, "
        "#field-customer_id input')].some(e => e.value.startsWith('cust-new-'))"
    )
    page.click("#score-credit")
    answer.locator(".rs-unknown").wait_for(timeout=30_000)
    assert "Unknown customer: no history" in answer.inner_text()
    assert "Decision:" in answer.inner_text()
