"""The rollout panel against a stand-in gateway: a real HTTP server on loopback serving
the `/platform/traffic` JSON shape. (The live gateway is covered by integration tests.)"""

from __future__ import annotations

import http.server
import json
import re
import threading

import pytest
from riskserve.app.render import band_of, score_bands
from riskserve.app.rollout import TrafficError, parse_traffic, rollout_html
from riskserve.localplatform.processes import free_port

pytestmark = pytest.mark.inprocess

EDGES = [i / 10 for i in range(11)]


def _traffic(stable: int, canary: int) -> dict:
    return {
        "inferenceservices": {
            "fraud": {
                "revisions": [
                    {
                        "name": "fraud-predictor-00001",
                        "percent": 80,
                        "ready": True,
                        "requests": stable,
                        "errors": 1,
                        "score_edges": EDGES,
                        "score_counts": [50, 20, 10, 5, 5, 3, 3, 2, 1, 1],
                    },
                    {
                        "name": "fraud-predictor-00002",
                        "percent": 20,
                        "ready": True,
                        "requests": canary,
                        "errors": 0,
                        "score_edges": EDGES,
                        "score_counts": [5, 5, 2, 2, 2, 1, 1, 1, 0, 1],
                    },
                ]
            },
            "credit": {"revisions": []},
        }
    }


class FakeGateway:
    """Serves whatever `body` is set to, as the platform gateway would."""

    def __init__(self) -> None:
        self.body: object = _traffic(0, 0)
        self.status = 200
        self.paths: list[str] = []
        gateway = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                gateway.paths.append(self.path)
                data = json.dumps(gateway.body).encode()
                self.send_response(gateway.status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def traffic_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_port}/platform/traffic"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def gateway():
    fake = FakeGateway()
    yield fake
    fake.close()


def _shares(html: str) -> list[str]:
    return re.findall(r'<td class="rs-share">([^<]*)</td><td>([^<]*)</td>', html)


def test_the_panel_shows_live_shares_and_score_histograms(gateway) -> None:
    gateway.body = _traffic(800, 200)
    html, reading = rollout_html(gateway.traffic_url, None, None)
    assert gateway.paths == ["/platform/traffic"]
    assert "fraud-predictor-00001" in html and "fraud-predictor-00002" in html
    assert _shares(html) == [("80.0%", "–"), ("20.0%", "–")]
    assert "1000 requests in all" in html
    assert "fraud: scores by revision" in html and "rs-histogram" in html
    assert "credit" in html

    # Since the last refresh the canary took half of the requests.
    gateway.body = _traffic(900, 300)
    html, _ = rollout_html(gateway.traffic_url, None, reading)
    assert _shares(html) == [("75.0%", "50.0%"), ("25.0%", "50.0%")]


def test_without_a_gateway_the_panel_says_what_it_needs() -> None:
    html, reading = rollout_html(None, None, None)
    assert "needs the local platform gateway" in html
    assert "RISKSERVE_APP_GATEWAY_URL" in html and reading is None


def test_gateway_failures_are_sentences_and_keep_the_last_reading(gateway) -> None:
    last = parse_traffic(_traffic(1, 1))
    gateway.status, gateway.body = 503, {"error": "warming up"}
    html, reading = rollout_html(gateway.traffic_url, None, last)
    assert "rs-error" in html and "HTTP 503" in html and reading is last

    down = f"http://127.0.0.1:{free_port()}/platform/traffic"
    html, _ = rollout_html(down, None, None)
    assert "cannot be reached" in html and "Traceback" not in html


def test_a_malformed_answer_is_named() -> None:
    body = _traffic(1, 1)
    body["inferenceservices"]["fraud"]["revisions"][0]["score_counts"] = [1, 2]
    with pytest.raises(TrafficError, match="2 score counts for 11 edges"):
        parse_traffic(body)
    with pytest.raises(TrafficError, match="inferenceservices"):
        parse_traffic({"services": {}})


def test_credit_bands_follow_the_models_scale() -> None:
    bands = score_bands(600, 20)
    assert [band_of(s, bands).name for s in (500, 560, 585, 600, 639, 640)] == [
        "E",
        "D",
        "C",
        "B",
        "B",
        "A",
    ]
    assert band_of(650, score_bands(700, 50)).name == "C"
