"""The app over a fraud model behind a transformer: the form takes a card and a raw
transaction, the answer shows the decision, the features the transformer computed and
whether it knew the card. Real processes: the contract fraud predictor, riskserve's
transformer over the demo's feature repository, the app."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest
from riskserve.app.examples import UNKNOWN_CARD_EXAMPLE
from riskserve.app.fields import fields_from_metadata, parse_timestamp_us
from riskserve.app.render import fraud_answer_html
from riskserve.app.v2_client import V2Client
from riskserve.features.card import haversine_km
from riskserve.model.specs import FRAUD
from riskserve.transformer.raw_request import RAW_NAMES

from tests.app.app_processes import ARTIFACTS
from tests.fixtures.contract_models import expected_fraud


def _client(url: str) -> V2Client:
    return V2Client("fraud", f"{url}/v2/models/fraud")


def _score(client: V2Client, values: dict[str, object]):
    fields = fields_from_metadata(client.metadata(), FRAUD)
    columns = {f.name: [f.parse(values[f.name])] for f in fields}
    return client.infer(columns)


@pytest.mark.e2e
def test_the_transformer_metadata_gives_a_raw_transaction_form(
    fraud_transformer, fraud_predictor
) -> None:
    client = _client(fraud_transformer.url)
    metadata = client.metadata()
    assert metadata.takes_raw_events
    fields = {f.name: f for f in fields_from_metadata(metadata, FRAUD)}
    assert tuple(fields) == RAW_NAMES
    assert fields["card_id"].kind == "id"
    assert fields["timestamp"].kind == "timestamp"
    assert fields["used_chip"].kind == "binary"
    assert (
        fields["merchant_latitude"].minimum,
        fields["merchant_latitude"].maximum,
    ) == (
        -90.0,
        90.0,
    )
    with pytest.raises(ValueError, match=r"^amount -5 is below 0$"):
        fields["amount"].parse("-5")
    with pytest.raises(
        ValueError, match="timestamp 'yesterday' is not a date and time"
    ):
        fields["timestamp"].parse("yesterday")
    # The same app against the bare predictor keeps its feature form.
    bare = _client(fraud_predictor.url).metadata()
    assert not bare.takes_raw_events
    assert [f.name for f in fields_from_metadata(bare, FRAUD)] == FRAUD.feature_names
    client.close()


@pytest.mark.e2e
def test_a_known_card_gets_its_history_features_and_an_unknown_card_the_defaults(
    fraud_transformer, card_features, raw_examples
) -> None:
    client = _client(fraud_transformer.url)
    label = next(k for k in raw_examples if "usual shop" in k)
    example = raw_examples[label]
    result = _score(client, example)
    got = {name: values[0] for name, values in result.outputs.items()}
    assert got["unknown_entity"] is False
    home = card_features.cards.set_index("card_id").loc[example["card_id"]]
    assert got["distance_from_home"] == pytest.approx(
        haversine_km(
            home["home_latitude"],
            home["home_longitude"],
            example["merchant_latitude"],
            example["merchant_longitude"],
        ),
        rel=1e-5,
    )
    assert got["repeat_retailer"] == 1.0  # the shop the card uses most
    assert got["card_transactions"] >= 1
    # The decision is the model's on the features the answer shows.
    row = np.array([[got[n] for n in FRAUD.feature_names]], np.float32)
    probability, flagged = expected_fraud(row)
    assert got["fraud_probability"] == pytest.approx(float(probability[0]), abs=1e-6)
    assert got["is_fraud"] == bool(flagged[0])
    page = fraud_answer_html(result, client.metadata())
    assert "Known card" in page and "Unknown card" not in page
    assert "distance_from_home" in page and "transactions_24h" in page

    # A card no one has scored (the example's own id is left to the browser test).
    unknown = _score(client, {**UNKNOWN_CARD_EXAMPLE, "card_id": "card-client-test"})
    got = {name: values[0] for name, values in unknown.outputs.items()}
    assert got["unknown_entity"] is True
    assert (got["distance_from_home"], got["ratio_to_median_purchase_price"]) == (
        0.0,
        1.0,
    )
    assert "Unknown card: no history" in fraud_answer_html(unknown, client.metadata())
    client.close()


@pytest.mark.inprocess
def test_the_form_time_is_utc_and_empty_is_now() -> None:
    assert parse_timestamp_us("t", "2026-01-31 14:05:00") == 1769868300 * 1_000_000
    assert parse_timestamp_us("t", "2026-01-31T15:05:00+01:00") == 1769868300_000_000
    now = dt.datetime.now(dt.UTC).timestamp() * 1e6
    assert abs(parse_timestamp_us("t", "") - now) < 5e6


@pytest.mark.browser
def test_raw_transaction_form_shows_decision_and_computed_features(
    raw_page, card_features, raw_examples
) -> None:
    page = raw_page
    status = page.locator(".rs-status").first.inner_text()
    assert "behind a transformer" in status
    label = next(k for k in raw_examples if "usual shop" in k)
    example = raw_examples[label]
    card = str(example["card_id"])
    for name in ("card_id", "merchant_id"):
        page.locator(f"#field-{name}").locator("textarea, input").first.fill(
            str(example[name])
        )
    for name in ("amount", "merchant_latitude", "merchant_longitude"):
        page.locator(f"#field-{name} input").fill(str(example[name]))
    page.locator("#field-used_chip input").set_checked(True)
    page.click("#score-fraud")
    answer = page.locator("#answer-fraud")
    answer.locator(".rs-features").wait_for(timeout=30_000)
    text = answer.inner_text()
    assert "Decision:" in text and "Known card" in text
    shown = {
        row.get_attribute("data-name"): float(
            row.locator(".rs-feature-value").inner_text()
        )
        for row in answer.locator(".rs-feature").all()
    }
    assert set(FRAUD.feature_names) <= set(shown)
    home = card_features.cards.set_index("card_id").loc[card]
    assert shown["distance_from_home"] == pytest.approx(
        haversine_km(
            home["home_latitude"],
            home["home_longitude"],
            float(example["merchant_latitude"]),
            float(example["merchant_longitude"]),
        ),
        rel=1e-4,
    )
    assert shown["used_chip"] == 1.0 and shown["online_order"] == 0.0
    row = np.array([[shown[n] for n in FRAUD.feature_names]], np.float32)
    probability, _ = expected_fraud(row)
    shown_probability = float(answer.locator(".rs-probability").inner_text())
    assert shown_probability == pytest.approx(float(probability[0]), abs=1e-3)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "app-raw-fraud.png"), full_page=True)

    # The unknown-card example: scored on the defaults, and the page says so.
    page.get_by_text("A card never seen", exact=False).first.click()
    page.wait_for_function(
        "[...document.querySelectorAll('#field-card_id textarea, #field-card_id input')]"
        ".some(e => e.value.startsWith('card-new-'))"
    )
    page.click("#score-fraud")
    answer.locator(".rs-unknown").wait_for(timeout=30_000)
    assert "Unknown card: no history" in answer.inner_text()

    # Credit has no transformer here: its tab keeps the feature form.
    page.get_by_role("tab", name="Credit decision").click()
    page.locator("#field-has_paid").wait_for()
    page.click("#score-credit")
    credit = page.locator("#answer-credit")
    credit.locator(".rs-probability").wait_for(timeout=30_000)
    assert "Features the transformer computed" not in credit.inner_text()
