"""The app in headless Chromium: a real app process over real predictor processes."""

from __future__ import annotations

import csv
import re

import numpy as np
import pytest
from playwright.sync_api import expect
from riskserve.model.specs import FRAUD

from tests.app.app_processes import ARTIFACTS, FRAUD_REVISION
from tests.fixtures.contract_models import expected_fraud

pytestmark = pytest.mark.browser

ORDINARY = {
    "distance_from_home": 12.0,
    "distance_from_last_transaction": 1.5,
    "ratio_to_median_purchase_price": 2.5,
    "repeat_retailer": 1,
    "used_chip": 0,
    "used_pin_number": 0,
    "online_order": 1,
}


def _probability(page, kind: str) -> float:
    text = page.locator(f"#answer-{kind} .rs-probability").inner_text(timeout=20_000)
    return float(text)


def test_fraud_form_scores_with_decision_version_and_revision(page) -> None:
    for name, value in ORDINARY.items():
        if name in ("repeat_retailer", "used_chip", "used_pin_number", "online_order"):
            page.locator(f"#field-{name} input").set_checked(bool(value))
        else:
            page.locator(f"#field-{name} input").fill(str(value))
    page.click("#score-fraud")
    probability = _probability(page, "fraud")
    row = np.array([[ORDINARY[n] for n in FRAUD.feature_names]], dtype=np.float32)
    expected, flagged = expected_fraud(row)
    assert probability == pytest.approx(float(expected[0]), abs=1e-4)
    answer = page.locator("#answer-fraud").inner_text()
    assert ("FRAUD" in answer) == bool(flagged[0])
    assert "threshold 0.5" in answer
    assert re.search(r"version\s+3", answer)
    assert FRAUD_REVISION in answer
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "app-fraud.png"), full_page=True)

    # The fraud-like example fills the form; its answer is a block.
    page.get_by_text("Fraud-like", exact=False).first.click()
    page.wait_for_function(
        "document.querySelector('#field-distance_from_home input').value === '160'"
    )
    page.click("#score-fraud")
    page.wait_for_function(
        "document.querySelector('#answer-fraud .rs-probability')?.textContent "
        f"!== '{probability:.4f}'"
    )
    assert _probability(page, "fraud") > 0.99
    assert "FRAUD: block" in page.locator("#answer-fraud").inner_text()


def test_credit_example_with_missing_values_gets_score_and_band(page) -> None:
    page.get_by_role("tab", name="Credit decision").click()
    page.get_by_text("New customer", exact=False).first.click()
    page.wait_for_function(
        "document.querySelector('#field-has_paid input').checked === false"
    )
    page.click("#score-credit")
    assert 0 < _probability(page, "credit") < 1
    answer = page.locator("#answer-credit").inner_text()
    assert re.search(r"Credit score \d+, band [A-E]", answer)
    assert re.search(r"APPROVED|DECLINED", answer)
    assert re.search(r"version\s+7", answer)


def test_batch_upload_scores_reports_bad_lines_and_downloads(page, tmp_path) -> None:
    source = tmp_path / "transactions.csv"
    rows = [
        "8.5,0.6,0.9,1,1,1,0",
        "160,45,6.2,0,0,0,1",
        "abc,1,1,1,1,1,0",
        "1,2,3,0,1,0,1",
        "2,2,2,0,0,0,0",
        "3,3,3,1,0,1,1",
    ]
    source.write_text(",".join(FRAUD.feature_names) + "\n" + "\n".join(rows) + "\n")
    page.get_by_role("tab", name="Batch").click()
    page.locator("#batch-upload input[type=file]").set_input_files(str(source))
    page.wait_for_timeout(500)  # let the upload settle before scoring
    page.click("#batch-score")
    download_button = page.locator("#batch-download")
    download_button.wait_for(state="visible", timeout=30_000)
    summary = page.locator("#batch-summary").inner_text()
    assert "6 rows read, 5 scored" in summary
    assert "line 4: distance_from_home 'abc' is not a number" in summary
    assert (
        "fraud_probability of the scored rows"
        in page.locator("#batch-histogram").inner_text()
    )
    page.screenshot(path=str(ARTIFACTS / "app-batch.png"), full_page=True)

    with page.expect_download() as info:
        download_button.click()
    saved = tmp_path / "scored.csv"
    info.value.save_as(saved)
    with open(saved, newline="") as handle:
        scored = list(csv.DictReader(handle))
    assert len(scored) == 6
    assert scored[2]["error"] and not scored[2]["fraud_probability"]
    good = [r for r in scored if not r["error"]]
    features = np.array(
        [[float(r[n]) for n in FRAUD.feature_names] for r in good], dtype=np.float32
    )
    expected, _ = expected_fraud(features)
    np.testing.assert_allclose(
        [float(r["fraud_probability"]) for r in good], expected, rtol=1e-5
    )
    assert {r["revision"] for r in good} == {FRAUD_REVISION}


def test_rollout_tab_says_it_needs_the_gateway(page) -> None:
    page.get_by_role("tab", name="Rollout").click()
    expect(page.locator("#rollout-panel")).to_contain_text(
        "needs the local platform gateway", timeout=20_000
    )
