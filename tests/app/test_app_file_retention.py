"""Uploaded CSV files and scored files hold customers' data: the app keeps them for
RISKSERVE_APP_FILE_RETENTION_SECONDS, then deletes them (Gradio's cached copies and
its own), and removes what is left when it stops. A real app process, headless
Chromium."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from riskserve.model.specs import FRAUD

from tests.app.app_processes import APP_API_KEY, start_app

pytestmark = pytest.mark.browser

RETENTION_S = 3


def _files(root: Path) -> list[Path]:
    """The files under `root` that hold anything (Gradio leaves an empty temporary
    file of its own in its cache)."""
    return [p for p in root.rglob("*") if p.is_file() and p.stat().st_size]


def _gone_within(root: Path, seconds: float) -> list[Path]:
    deadline = time.monotonic() + seconds
    while _files(root) and time.monotonic() < deadline:
        time.sleep(0.5)
    return _files(root)


def test_uploads_and_scored_files_are_deleted_after_the_retention(
    browser, fraud_predictor, credit_predictor, app_logs, tmp_path
):
    temporary, gradio_cache = tmp_path / "tmp", tmp_path / "gradio"
    temporary.mkdir()
    gradio_cache.mkdir()
    app = start_app(
        app_logs,
        {
            "RISKSERVE_APP_FRAUD_URL": fraud_predictor.url,
            "RISKSERVE_APP_CREDIT_URL": credit_predictor.url,
            "RISKSERVE_APP_API_KEY": APP_API_KEY,
            "RISKSERVE_APP_FILE_RETENTION_SECONDS": str(RETENTION_S),
            "TMPDIR": str(temporary),
            "GRADIO_TEMP_DIR": str(gradio_cache),
        },
    )
    context = browser.new_context(accept_downloads=True)
    try:
        page = context.new_page()
        page.set_default_timeout(20_000)
        page.goto(app.url)
        source = tmp_path / "customers-cards.csv"
        source.write_text(
            ",".join(FRAUD.feature_names)
            + "\n8.5,0.6,0.9,1,1,1,0\n160,45,6.2,0,0,0,1\n"
        )
        page.get_by_role("tab", name="Batch").click()
        page.locator("#batch-upload input[type=file]").set_input_files(str(source))
        page.wait_for_timeout(500)
        page.click("#batch-score")
        page.locator("#batch-download").wait_for(state="visible", timeout=30_000)
        assert "2 rows read, 2 scored" in page.locator("#batch-summary").inner_text()

        # Both exist now: the upload and the scored file in Gradio's cache, the
        # app's own scored file in its folder.
        cached = {p.name for p in _files(gradio_cache)}
        assert "customers-cards.csv" in cached
        assert any(
            p.suffix == ".csv" and p.name != source.name for p in _files(gradio_cache)
        )
        assert [p for p in _files(temporary) if p.suffix == ".csv"]

        left = _gone_within(gradio_cache, RETENTION_S + 2 * RETENTION_S + 10)
        assert not left, f"still in Gradio's cache: {left}"
        left = _gone_within(temporary, 2 * RETENTION_S + 10)
        assert not [p for p in left if p.suffix == ".csv"], left
    finally:
        context.close()
        app.stop()
    assert not list(temporary.glob("riskserve-app-*"))  # removed at exit
