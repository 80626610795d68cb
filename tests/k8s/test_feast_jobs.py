"""What the chart's `feast apply` Job and materialisation CronJob run
(`python -m riskserve.features.store_config`), against a real S3 (SeaweedFS on
loopback): the registry on S3, the offline Parquet on S3, the online store a scratch
SQLite file. The CronJob materialises the views whose Parquet exists, says which it
skipped, and fails only when none exists or S3 cannot be asked."""

from __future__ import annotations

import secrets
import sqlite3
from pathlib import Path

import boto3
import pandas as pd
import pytest
from riskserve.features.customer_offline import write_customer_offline_store
from riskserve.features.offline import write_offline_store
from riskserve.features.repo import (
    CARD_ACTIVITY_FILE,
    CARDS_FILE,
    CUSTOMER_ACTIVITY_FILE,
    PROJECT,
)
from riskserve.features.store_config import main
from riskserve.localplatform.processes import free_port
from riskserve.model.events import bnpl_events, card_transactions

from riskserve.services import S3Endpoint

pytestmark = pytest.mark.e2e


def online_rows(repo: Path, view: str) -> int:
    """Entities the SQLite online store holds for `view` (0 before any)."""
    with sqlite3.connect(repo / "online.db") as db:
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master")}
        table = f"{PROJECT}_{view}"
        if table not in tables:
            return 0
        return int(
            db.execute(f"SELECT COUNT(DISTINCT entity_key) FROM {table}").fetchone()[0]
        )


@pytest.fixture
def cluster_env(
    s3_server: S3Endpoint, monkeypatch: pytest.MonkeyPatch
) -> tuple[str, str]:
    """The ConfigMap's and the Secret's variables, a registry and an offline prefix
    of this test's own on the shared bucket: (offline URI, prefix)."""
    prefix = f"feast-{secrets.token_hex(4)}"
    for name, value in s3_server.client_env().items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("FEAST_S3_ENDPOINT_URL", s3_server.url)
    monkeypatch.setenv(
        "RISKSERVE_FEATURES_REGISTRY", f"s3://{s3_server.bucket}/{prefix}/registry.db"
    )
    return f"s3://{s3_server.bucket}/{prefix}/offline", prefix


def upload(s3_server: S3Endpoint, folder: Path, prefix: str, names: list[str]) -> None:
    bucket = boto3.client("s3", **_client_kwargs(s3_server))
    for name in names:
        bucket.upload_file(
            str(folder / name), s3_server.bucket, f"{prefix}/offline/{name}"
        )


def _client_kwargs(s3_server: S3Endpoint) -> dict[str, str]:
    return {
        "endpoint_url": s3_server.url,
        "aws_access_key_id": s3_server.access_key,
        "aws_secret_access_key": s3_server.secret_key,
        "region_name": s3_server.region,
    }


def test_the_cronjob_materialises_the_card_side_and_skips_the_missing_customer_side(
    s3_server: S3Endpoint,
    cluster_env: tuple[str, str],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    offline, prefix = cluster_env
    cards = card_transactions(cards=12, days=2, seed=5)
    write_offline_store(tmp_path / "offline", cards.cards, cards.transactions)
    upload(s3_server, tmp_path / "offline", prefix, [CARDS_FILE, CARD_ACTIVITY_FILE])
    repo = tmp_path / "scratch"
    assert main(["apply", f"--offline={offline}", f"--repo={repo}"]) == 0
    capsys.readouterr()

    assert main(["materialize", f"--offline={offline}", f"--repo={repo}"]) == 0
    out = capsys.readouterr().out
    # One line for the view left out, naming it and the file it looked for.
    assert (
        f"skipped customer_activity: its offline source "
        f"{offline}/{CUSTOMER_ACTIVITY_FILE} does not exist"
    ) in out.splitlines()
    in_full = out.rsplit(": ", 1)[-1].split(" in full")[0]
    assert sorted(in_full.split(", ")) == ["card_activity", "card_profile"]
    assert online_rows(repo, "card_profile") == len(cards.cards)
    assert online_rows(repo, "customer_activity") == 0

    # Once the customer side is written, the next run takes it in full, the card
    # side incrementally, and skips nothing.
    customers = bnpl_events(customers=8, days=60, seed=6)
    write_customer_offline_store(
        tmp_path / "offline", customers.checkouts, customers.payments
    )
    upload(s3_server, tmp_path / "offline", prefix, [CUSTOMER_ACTIVITY_FILE])
    assert main(["materialize", f"--offline={offline}", f"--repo={repo}"]) == 0
    out = capsys.readouterr().out
    assert "skipped" not in out
    assert ": customer_activity in full, " in out
    assert "card_activity" in out.split(" in full, ")[1]
    activity = pd.read_parquet(tmp_path / "offline" / CUSTOMER_ACTIVITY_FILE)
    assert online_rows(repo, "customer_activity") == activity["customer_id"].nunique()


def test_the_cronjob_fails_in_one_line_when_no_offline_parquet_exists(
    cluster_env: tuple[str, str],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    offline, _ = cluster_env
    repo = tmp_path / "scratch"
    assert main(["apply", f"--offline={offline}", f"--repo={repo}"]) == 0
    capsys.readouterr()
    assert main(["materialize", f"--offline={offline}", f"--repo={repo}"]) == 1
    captured = capsys.readouterr()
    skipped = [line for line in captured.out.splitlines() if line.startswith("skipped")]
    assert len(skipped) == 3  # card_profile, card_activity, customer_activity
    assert captured.err.strip().splitlines() == [
        "error: none of the feature views to materialise has its offline Parquet"
    ]


def test_an_unknown_view_is_refused_by_name(
    cluster_env: tuple[str, str],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    offline, _ = cluster_env
    repo = tmp_path / "scratch"
    assert main(["apply", f"--offline={offline}", f"--repo={repo}"]) == 0
    capsys.readouterr()
    args = ["materialize", f"--offline={offline}", f"--repo={repo}", "--view=cards"]
    assert main(args) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: no online feature view cards in the registry")
    assert "card_profile" in err and "\n" not in err


def test_an_s3_that_cannot_be_reached_fails_the_run_rather_than_skipping(
    s3_server: S3Endpoint,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A real error is not a missing file: the run fails, nothing is skipped."""
    for name, value in s3_server.client_env().items():
        monkeypatch.setenv(name, value)
    dead = f"http://127.0.0.1:{free_port()}"
    monkeypatch.setenv("AWS_ENDPOINT_URL", dead)
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    monkeypatch.delenv("RISKSERVE_FEATURES_REGISTRY", raising=False)  # local
    offline = f"s3://{s3_server.bucket}/feast-unreachable/offline"
    repo = tmp_path / "scratch"
    assert main(["apply", f"--offline={offline}", f"--repo={repo}"]) == 0
    capsys.readouterr()
    assert main(["materialize", f"--offline={offline}", f"--repo={repo}"]) == 1
    captured = capsys.readouterr()
    assert "skipped" not in captured.out
    (line,) = captured.err.strip().splitlines()
    assert line.startswith(f"error: cannot list {offline}/")
    assert dead in line
