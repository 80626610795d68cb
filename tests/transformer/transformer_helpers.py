"""A Feast repository built from generated events, and transformer processes on free
loopback ports (in front of a real predictor), for the tests and the benchmark."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
from riskserve.features.customer_offline import write_customer_offline_store
from riskserve.features.offline import write_offline_store
from riskserve.features.repo import open_store
from riskserve.localplatform.processes import ManagedProcess, free_port
from riskserve.model.events import (
    BnplEvents,
    CardEvents,
    bnpl_events,
    card_transactions,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
# Materialise everything the register and the activity log hold.
MATERIALISE_FROM = datetime(2000, 1, 1, tzinfo=UTC)
MATERIALISE_TO = datetime(2030, 1, 1, tzinfo=UTC)


@dataclass
class FeatureRepo:
    repo: Path
    events: CardEvents


def build_feature_repo(
    folder: Path, cards: int = 50, days: int = 3, seed: int = 11
) -> FeatureRepo:
    """A local repository (registry and SQLite online store) whose online store
    holds every card's profile and its state after its last generated transaction."""
    events = card_transactions(cards=cards, days=days, seed=seed)
    repo, offline = folder / "repo", folder / "offline"
    write_offline_store(offline, events.cards, events.transactions)
    store = open_store(repo, offline)
    store.materialize(MATERIALISE_FROM, MATERIALISE_TO)
    return FeatureRepo(repo, events)


def child_environment() -> dict[str, str]:
    """This process's environment for a server child, without RISKSERVE_* and
    without the prometheus_client multiprocess folder importing Feast set here (a
    child inheriting it would keep its metrics in Feast's temporary folder)."""
    return {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("RISKSERVE_")
        and k not in ("PROMETHEUS_MULTIPROC_DIR", "PROMETHEUS_MULTIPROCESS_DIR")
    }


@dataclass
class TransformerProcess:
    process: ManagedProcess
    http_port: int
    client: httpx.Client

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def stop(self) -> None:
        self.client.close()
        self.process.stop()


def transformer_argv(
    model_name: str, predictor_host: str, http_port: int, repo: Path
) -> list[str]:
    """The command line, as KServe (or the local platform) passes it."""
    return [
        sys.executable,
        "-m",
        "riskserve.transformer",
        "--model_name",
        model_name,
        "--predictor_host",
        predictor_host,
        "--http_port",
        str(http_port),
        "--protocol",
        "v2",
        "--feature_repo",
        str(repo),
    ]


def start_transformer(
    logs: Path,
    label: str,
    model_name: str,
    predictor_host: str,
    repo: Path,
    env: dict[str, str] | None = None,
    wait: bool = True,
    timeout: float = 60.0,
) -> TransformerProcess:
    http_port = free_port()
    base = child_environment()
    process = ManagedProcess(
        name=f"transformer {label}",
        argv=transformer_argv(model_name, predictor_host, http_port, repo),
        log_path=logs / f"{label}.log",
        env={**base, "RISKSERVE_TRANSFORMER_HOST": "127.0.0.1", **(env or {})},
        cwd=REPO_ROOT,
    ).start()
    if wait:
        try:
            process.wait_ready(f"http://127.0.0.1:{http_port}/v2/health/ready", timeout)
        except Exception:
            process.stop()
            raise
    client = httpx.Client(base_url=f"http://127.0.0.1:{http_port}", timeout=30)
    return TransformerProcess(process, http_port, client)


def raw_request(
    card_id: str,
    timestamp_us: int,
    amount: float = 42.5,
    merchant_id: str = "m00-001",
    latitude: float = 48.85,
    longitude: float = 2.35,
    chip: int = 1,
    pin: int = 0,
    online: int = 0,
) -> dict:
    """One raw transaction as v2 JSON tensors."""

    def tensor(name: str, datatype: str, value: object) -> dict:
        return {"name": name, "datatype": datatype, "shape": [1], "data": [value]}

    return {
        "inputs": [
            tensor("card_id", "BYTES", card_id),
            tensor("amount", "FP64", amount),
            tensor("merchant_id", "BYTES", merchant_id),
            tensor("merchant_latitude", "FP64", latitude),
            tensor("merchant_longitude", "FP64", longitude),
            tensor("used_chip", "BOOL", bool(chip)),
            tensor("used_pin_number", "BOOL", bool(pin)),
            tensor("online_order", "BOOL", bool(online)),
            tensor("timestamp", "INT64", timestamp_us),
        ]
    }


def outputs(response: httpx.Response) -> dict[str, list]:
    return {o["name"]: o["data"] for o in response.json()["outputs"]}


@dataclass
class CustomerRepo:
    repo: Path
    events: BnplEvents


def build_customer_repo(
    folder: Path, customers: int = 40, days: int = 400, seed: int = 12
) -> CustomerRepo:
    """A local repository whose online store holds every customer's state after its
    last generated checkout or payment event."""
    events = bnpl_events(customers=customers, days=days, seed=seed)
    repo, offline = folder / "repo", folder / "offline"
    write_customer_offline_store(offline, events.checkouts, events.payments)
    store = open_store(repo, offline)
    store.materialize(MATERIALISE_FROM, MATERIALISE_TO, ["customer_activity"])
    return CustomerRepo(repo, events)


def raw_checkout(
    customer_id: str,
    timestamp_us: int,
    basket_amount: float = 80.0,
    merchant_group: str = "Electronics",
) -> dict:
    """One raw BNPL checkout as v2 JSON tensors (what the app's credit tab sends)."""

    def tensor(name: str, datatype: str, value: object) -> dict:
        return {"name": name, "datatype": datatype, "shape": [1], "data": [value]}

    return {
        "inputs": [
            tensor("customer_id", "BYTES", customer_id),
            tensor("basket_amount", "FP64", basket_amount),
            tensor("merchant_group", "BYTES", merchant_group),
            tensor("timestamp", "INT64", timestamp_us),
        ]
    }
