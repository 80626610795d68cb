"""Reason codes in headless Chromium: a real app over a real predictor serving a
fitted scorecard with reason codes and points per feature."""

from __future__ import annotations

import csv
import re

import numpy as np
import onnxruntime as ort
import pandas as pd
import pytest
from riskserve.app.examples import CREDIT_EXAMPLES
from riskserve.model.specs import CREDIT
from riskserve.training.competition.compete import onnx_feeds

from tests.app.app_processes import ARTIFACTS

pytestmark = pytest.mark.browser


def served_answer(proto, example: dict) -> dict[str, np.ndarray]:
    """What the model itself answers for an example, straight from onnxruntime."""
    row = {
        f.name: (
            example.get(f.name)
            if example.get(f.name) is not None
            else ("" if f.kind == "categorical" else np.nan)
        )
        for f in CREDIT.features
    }
    session = ort.InferenceSession(proto.SerializeToString())
    names = [o.name for o in session.get_outputs()]
    values = session.run(names, onnx_feeds(CREDIT, pd.DataFrame([row])))
    return dict(zip(names, values, strict=True))


def test_a_decline_shows_its_reasons_and_the_points_chart(
    scorecard_page, scorecard_model
) -> None:
    page = scorecard_page
    expected = served_answer(
        scorecard_model, CREDIT_EXAMPLES["In debt recovery, reminders, worst statuses"]
    )
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
    assert reasons == [c for c in expected["reason_codes"][0] if c]  # worst first
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
    from riskserve.model.synthetic import generate

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
