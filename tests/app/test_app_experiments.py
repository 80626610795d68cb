"""The experiments panel on an outcomes report made by the real outcomes pass (a file,
and the same JSON over HTTP from a loopback server), and its one-line refusals of
what is no report; then the panel in headless Chromium in a real app process."""

from __future__ import annotations

import html
import http.server
import json
import re
import threading
from pathlib import Path

import pytest
from playwright.sync_api import expect
from riskserve.app.experiments import experiments_html, load_outcomes
from riskserve.localplatform.processes import free_port

from tests.app.app_processes import start_app
from tests.monitoring.outcomes_helpers import EXPERIMENT, outcomes_report


@pytest.fixture(scope="module")
def report_file(tmp_path_factory) -> Path:
    # A worse challenger (twice the champion's bad rate) and a shadow arm.
    return outcomes_report(
        tmp_path_factory.mktemp("outcomes"),
        {"champion": 0.05, "challenger": 0.10},
        2000,
    )


@pytest.mark.inprocess
def test_the_panel_shows_arms_shares_outcomes_and_the_verdict(report_file):
    page = experiments_html(str(report_file))
    report = json.loads(report_file.read_text())
    assert 'class="rs-error"' not in page
    arms = re.findall(r'class="rs-arm-row" data-arm="([^"]+)"', page)
    assert arms == ["challenger", "champion", "shadow-gbm"]
    assert "(shadow: would have)" in page
    champion = next(a for a in report["arms"] if a["arm"] == "champion")
    assert f"{champion['bad_rate']:.2%}" in page
    assert f"{champion['share']:.2%}" in page
    assert re.search(r'class="rs-verdict"[^>]*>WORSE<', page)
    bars = re.findall(r'data-chart="(\w+)"', page)
    assert bars == ["bad_rate", "profit"]


@pytest.mark.inprocess
def test_the_panel_reads_a_url(report_file):
    body = report_file.read_bytes()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200 if self.path == "/outcomes.json" else 404)
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        base = f"http://127.0.0.1:{server.server_port}"
        assert load_outcomes(f"{base}/outcomes.json")["experiment"] == EXPERIMENT
        assert "answered HTTP 404" in experiments_html(f"{base}/missing.json")
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.inprocess
@pytest.mark.parametrize(
    "content, message",
    [
        ("not json", "is not JSON"),
        ('{"drifted": []}', "is not an outcomes report (no 'experiment')"),
        (
            '{"experiment": "e", "model": "m", "champion": "a", "comparisons": [],'
            ' "arms": [{"arm": "a"}]}',
            "'arms' must be a list of arms",
        ),
    ],
)
def test_what_is_no_report_is_said_in_one_line(tmp_path, content, message):
    path = tmp_path / "outcomes.json"
    path.write_text(content)
    page = html.unescape(experiments_html(str(path)))
    assert 'class="rs-error"' in page and message in page
    assert "cannot be read" in experiments_html(str(tmp_path / "absent.json"))
    assert "RISKSERVE_APP_OUTCOMES_REPORT" in experiments_html(None)


@pytest.mark.browser
def test_the_experiments_tab_in_chromium(report_file, browser, tmp_path):
    # No model is served (a gateway nobody listens on): the tab needs only the report.
    app = start_app(
        tmp_path,
        {
            "RISKSERVE_APP_GATEWAY_URL": f"http://127.0.0.1:{free_port()}",
            "RISKSERVE_APP_OUTCOMES_REPORT": str(report_file),
        },
    )
    try:
        page = browser.new_page()
        page.goto(app.url)
        page.get_by_role("tab", name="Experiments").click()
        panel = page.locator("#experiments-panel")
        expect(panel.locator(".rs-arm-row")).to_have_count(3, timeout=20_000)
        expect(panel.locator(".rs-verdict")).to_have_text("WORSE")
        expect(panel.locator(".rs-chart")).to_have_count(2)
        page.close()
    finally:
        app.stop()
