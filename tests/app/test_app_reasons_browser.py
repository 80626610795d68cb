"""Reason codes in headless Chromium: a real app over a real predictor serving a
fitted scorecard with reason codes and points per feature."""

from __future__ import annotations

import csv
import re

import pytest

from model.specs import CREDIT
from tests.app.app_processes import ARTIFACTS

pytestmark = pytest.mark.browser


def test_a_decline_shows_its_reasons_and_the_points_chart(scorecard_page) -> None:
    page = scorecard_page
    page.get_by_role("tab", name="Credit decision").click()
    page.get_by_text("In debt recovery", exact=False).first.click()
    page.wait_for_function(
        "document.querySelector('#field-recovery_debt input').value === '2500'"
    )
    page.click("#score-credit")
    answer = page.locator("#answer-credit")
    answer.locator(".rs-probability").wait_for(timeout=20_000)
    text = answer.inner_text()
    assert "DECLINED" in text
    assert "Reasons for the decline" in text
    reasons = answer.locator(".rs-reason").all_inner_texts()
    assert 1 <= len(reasons) <= 4
    assert all(r.split(":")[0] in CREDIT.feature_names for r in reasons)
    assert any("is 4" in r or "is 3" in r for r in reasons)  # the worst statuses
    bars = answer.locator(".rs-points-row")
    assert bars.count() == len(CREDIT.features)
    values = [float(v) for v in answer.locator(".rs-points-value").all_inner_texts()]
    assert values == sorted(values, reverse=True)
    score = float(re.search(r"Credit score (-?\d+)", text).group(1))
    total = float(re.search(r"sum of these points \((-?[\d.]+)\)", text).group(1))
    offset = 600 - 20 / 0.6931471805599453 * 3.912023005428146
    assert abs(offset + total - score) <= 1.0  # the score is shown rounded
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "app-credit-reasons.png"), full_page=True)

    # a good payer is approved; no decline reasons are claimed
    page.get_by_text("Long history", exact=False).first.click()
    page.wait_for_function(
        "document.querySelector('#field-recovery_debt input').value === '0'"
    )
    page.click("#score-credit")
    page.wait_for_function(
        "document.querySelector('#answer-credit').innerText.includes('APPROVED')"
    )
    assert "Reasons for the decline" not in answer.inner_text()


def test_batch_adds_a_reasons_column(scorecard_page, tmp_path) -> None:
    page = scorecard_page
    from model.synthetic import generate

    frame = generate("credit", 12, 21)[CREDIT.feature_names]
    source = tmp_path / "applicants.csv"
    frame.to_csv(source, index=False)
    page.get_by_role("tab", name="Batch").click()
    page.locator("#batch-model").get_by_label("credit").check()
    page.locator("#batch-upload input[type=file]").set_input_files(str(source))
    page.wait_for_timeout(500)
    page.click("#batch-score")
    download_button = page.locator("#batch-download")
    download_button.wait_for(state="visible", timeout=30_000)
    assert "12 rows read, 12 scored" in page.locator("#batch-summary").inner_text()
    with page.expect_download() as info:
        download_button.click()
    saved = tmp_path / "scored.csv"
    info.value.save_as(saved)
    with open(saved, newline="") as handle:
        scored = list(csv.DictReader(handle))
    assert "reason_codes" in scored[0]
    for row in scored:
        codes = [c for c in row["reason_codes"].split(" | ") if c]
        assert len(codes) <= 4
        assert all(c.split(": ")[0] in CREDIT.feature_names for c in codes)
        if row["approved"] == "False":
            assert codes  # a decline always has a reason
    assert any(row["reason_codes"] for row in scored)
