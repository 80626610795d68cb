"""A web page in the operator's browser is an attacker: a real Chromium opens a page
served from another loopback port, and the page fires what any site can fire at a
predictor on 127.0.0.1 without asking (a no-cors fetch with a text/plain JSON body,
an HTML form POST). Neither is scored: the predictor's row counter does not move,
and its refusal counter counts both."""

from __future__ import annotations

import http.server
import json
import re
import threading

import httpx
import pytest

from tests.serving.predictor_helpers import load_testdata

pytestmark = pytest.mark.browser


def metric(base: str, name: str) -> float:
    text = httpx.get(f"{base}/metrics", timeout=10).text
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if re.match(rf"{name}(\{{|\s)", line)
    )


@pytest.fixture
def attacker_site():
    """A page on another port of loopback (another origin), served by a plain
    static server: what a site the operator visits would hold."""
    pages: dict[str, bytes] = {}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (the stdlib's name)
            body = pages.get(self.path, b"")
            self.send_response(200 if body else 404)
            self.send_header("content-type", "text/html")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield pages, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_a_page_cannot_score_through_the_predictor(
    browser, fraud_predictor, attacker_site
) -> None:
    pages, site = attacker_site
    target = f"{fraud_predictor.url}/v2/models/fraud/infer"
    body = json.dumps(load_testdata("fraud_infer_request.json"))
    # The request itself is well formed: a program sending it is scored.
    assert (
        fraud_predictor.client.post("/v2/models/fraud/infer", content=body).status_code
        == 200
    )
    rows_before = metric(fraud_predictor.url, "riskserve_inference_rows_total")
    refused_before = metric(fraud_predictor.url, "riskserve_http_browser_refused_total")

    pages["/fetch.html"] = f"""<!doctype html><script>
      window.done = fetch({json.dumps(target)}, {{
        method: "POST", mode: "no-cors",
        headers: {{"content-type": "text/plain"}},
        body: {json.dumps(body)}
      }}).then(() => "sent", e => "failed: " + e);
    </script>""".encode()
    field_name, field_value = body.split(":", 1)  # a text/plain form sends a=b
    pages["/form.html"] = f"""<!doctype html>
      <form method="POST" action={json.dumps(target)} enctype="text/plain">
      <input name={json.dumps(field_name)} value={json.dumps(":" + field_value)}>
      </form><script>document.forms[0].submit()</script>""".encode()

    context = browser.new_context()
    try:
        page = context.new_page()
        page.goto(f"{site}/fetch.html")
        assert page.evaluate("window.done") == "sent"  # the browser did send it
        rows = metric(fraud_predictor.url, "riskserve_inference_rows_total")
        assert rows == rows_before  # a program's same request is scored (above)
        with page.expect_navigation():
            page.goto(f"{site}/form.html")
        assert "web pages are refused" in page.content()
    finally:
        context.close()

    assert metric(fraud_predictor.url, "riskserve_inference_rows_total") == rows_before
    # Both requests, and whatever else the page's navigation asked the predictor for
    # (Chromium's favicon request after the form's navigation).
    assert (
        metric(fraud_predictor.url, "riskserve_http_browser_refused_total")
        >= refused_before + 2
    )
