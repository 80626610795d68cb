"""The analyst app's rollout panel against the live gateway (not a stand-in): the
shares and score histograms it shows are the platform's own."""

from __future__ import annotations

import pytest
from riskserve.app.rollout import fetch_traffic, rollout_html
from riskserve.localplatform.client import apply_yaml, wait_ready

from tests.localplatform.platform_helpers import isvc_yaml

pytestmark = pytest.mark.e2e


def test_rollout_panel_reads_the_live_split(platform, model_dirs):
    apply_yaml(platform.settings, isvc_yaml("fraud", model_dirs["v1"]))
    wait_ready(platform.settings, ["fraud"], 60)
    apply_yaml(platform.settings, isvc_yaml("fraud", model_dirs["shifted"], canary=50))
    wait_ready(platform.settings, ["fraud"], 60)
    served = {}
    for _ in range(200):
        response = platform.infer(rows=5)
        assert response.status_code == 200
        name = response.headers["x-riskserve-revision"]
        served[name] = served.get(name, 0) + 1

    url = f"{platform.settings.gateway_url}/platform/traffic"
    traffic = fetch_traffic(url)
    revisions = {r.name: r for r in traffic["fraud"]}
    assert {n: r.requests for n, r in revisions.items()} == served
    assert {n: r.percent for n, r in revisions.items()} == {
        "fraud-predictor-00001": 50,
        "fraud-predictor-00002": 50,
    }
    for name, revision in revisions.items():
        assert sum(revision.score_counts) == 5 * served[name]  # every scored row
        assert len(revision.score_edges) == len(revision.score_counts) + 1

    # The shifted canary scores higher: its histogram sits further right.
    def mean_bucket(r):
        return sum(i * c for i, c in enumerate(r.score_counts)) / sum(r.score_counts)

    assert mean_bucket(revisions["fraud-predictor-00002"]) > mean_bucket(
        revisions["fraud-predictor-00001"]
    )
    html, reading = rollout_html(url, None, None)
    assert "fraud-predictor-00001" in html and "fraud-predictor-00002" in html
    assert reading == traffic
