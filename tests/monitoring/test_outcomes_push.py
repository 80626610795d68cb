"""`python -m riskserve.monitoring outcomes ... --push URL` as a process against a real
Prometheus Pushgateway (Debian's prometheus-pushgateway): the experiment's gauges land
in a group of their own (`pass="outcomes"`), where the alert
RiskserveChallengerWorse reads riskserve_experiment_verdict."""

from __future__ import annotations

import re

import httpx
import pytest

from tests.monitoring.outcomes_helpers import (
    ECONOMICS_ARGS,
    EXPERIMENT,
    write_experiment_log,
)
from tests.monitoring.test_pushgateway import monitor, pushgateway

pytestmark = pytest.mark.e2e

__all__ = ["pushgateway"]


def test_the_outcomes_pass_pushes_its_gauges(tmp_path, pushgateway):
    log = tmp_path / "log"
    labels = write_experiment_log(log, {"champion": 0.05, "challenger": 0.12}, 2000)
    done = monitor(
        "outcomes",
        "credit",
        "--log",
        str(log),
        "--experiment",
        EXPERIMENT,
        "--champion",
        "champion",
        *ECONOMICS_ARGS,
        "--labels",
        str(labels),
        "--no-report",
        "--push",
        pushgateway,
    )
    assert done.returncode == 3, done.stderr  # the challenger is worse
    assert "could not push" not in done.stderr
    metrics = httpx.get(f"{pushgateway}/metrics", timeout=10).text
    verdict = re.search(
        r'riskserve_experiment_verdict\{([^}]*arm="challenger"[^}]*)\} (\S+)', metrics
    )
    assert verdict, metrics[:2000]
    assert (
        'pass="outcomes"' in verdict[1] and f'experiment="{EXPERIMENT}"' in verdict[1]
    )
    assert float(verdict[2]) == -1
    assert re.search(r'riskserve_experiment_decisions\{[^}]*arm="champion"', metrics)
