"""`python -m riskserve.monitoring outcomes ... --push URL` as a process against a real
Prometheus Pushgateway (Debian's prometheus-pushgateway): the experiment's gauges land
in a group of their own (`pass="outcomes"`), where the alert
RiskserveChallengerWorse reads riskserve_experiment_verdict."""

from __future__ import annotations

import re

import httpx
import pytest
from riskserve.model.s3_client import S3Settings

from tests.monitoring.outcomes_helpers import (
    EXPERIMENT,
    EXPERIMENT_YAML,
    outcomes_arguments,
    write_experiment_log,
)
from tests.monitoring.test_pushgateway import monitor, pushgateway

pytestmark = pytest.mark.e2e

__all__ = ["pushgateway"]


def test_the_outcomes_pass_pushes_its_gauges(tmp_path, pushgateway):
    log = tmp_path / "log"
    labels = write_experiment_log(log, {"champion": 0.05, "challenger": 0.12}, 2000)
    done = monitor(*outcomes_arguments(log, labels, "--push", pushgateway))
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


def test_the_charts_cronjob_command_reads_the_experiment_from_s3(
    tmp_path, pushgateway, s3_server, monkeypatch
):
    """What the chart's outcomes CronJob runs: --experiment is the transformer's own
    s3:// experiment URI, so its name, champion and economics come from the file the
    transformer reads (no --champion, no economics options)."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_server.url)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", s3_server.access_key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", s3_server.secret_key)
    monkeypatch.setenv("AWS_DEFAULT_REGION", s3_server.region)
    key = "experiments/credit-cutoff.yaml"
    S3Settings().s3_client().put_object(
        Bucket=s3_server.bucket, Key=key, Body=EXPERIMENT_YAML.encode()
    )
    log = tmp_path / "log"
    labels = write_experiment_log(log, {"champion": 0.05, "challenger": 0.12}, 2000)
    common = ("outcomes", "credit", "--log", str(log), "--labels", str(labels))
    done = monitor(
        *common,
        "--experiment",
        f"s3://{s3_server.bucket}/{key}",
        "--no-report",
        "--push",
        pushgateway,
    )
    assert done.returncode == 3, done.stderr  # the challenger is worse
    metrics = httpx.get(f"{pushgateway}/metrics", timeout=10).text
    assert re.search(
        r'riskserve_experiment_verdict\{[^}]*arm="challenger"[^}]*\} -1', metrics
    )
    # an experiment URI that is not there: exit 2, one line naming it
    missing = monitor(*common, "--experiment", f"s3://{s3_server.bucket}/nope.yaml")
    assert missing.returncode == 2, missing.stderr
    (line,) = missing.stderr.strip().splitlines()
    assert f"s3://{s3_server.bucket}/nope.yaml: cannot read the experiment" in line
