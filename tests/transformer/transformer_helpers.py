"""A Feast repository built from generated events, and transformer processes on free
loopback ports (in front of a real predictor), for the tests and the benchmark."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
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

from tests.serving.predictor_helpers import Predictor, start_predictor

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
    args: tuple[str, ...] = (),
) -> TransformerProcess:
    """`args`: more command-line arguments (`--grpc_port P`, ...)."""
    http_port = free_port()
    base = child_environment()
    process = ManagedProcess(
        name=f"transformer {label}",
        argv=[*transformer_argv(model_name, predictor_host, http_port, repo), *args],
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


@dataclass
class TransformerStack:
    """A real predictor and two transformers in front of it: the default one (an
    online store that is down is a 503) and a fail-open one."""

    predictor: Predictor
    transformer: TransformerProcess
    fail_open: TransformerProcess


@contextmanager
def transformer_stack(
    folder: Path, model_name: str, model_dir: Path, repo: Path
) -> Iterator[TransformerStack]:
    """The predictor serving `model_dir` as `model_name` and the two transformers
    (`--model_name model_name`, the feature repository `repo`), all stopped after."""
    with pytest.MonkeyPatch.context() as monkeypatch:
        # The predictor as a platform starts it: without the multiprocess-metrics
        # folder importing Feast put into this process's environment.
        for name in ("PROMETHEUS_MULTIPROC_DIR", "PROMETHEUS_MULTIPROCESS_DIR"):
            monkeypatch.delenv(name, raising=False)
        predictor = start_predictor(folder, "predictor", model_name, model_dir)
        host = f"127.0.0.1:{predictor.http_port}"
        started: list[TransformerProcess] = []
        try:
            started.append(
                start_transformer(folder, "transformer", model_name, host, repo)
            )
            started.append(
                start_transformer(
                    folder,
                    "fail-open",
                    model_name,
                    host,
                    repo,
                    env={"RISKSERVE_TRANSFORMER_FAIL_OPEN": "true"},
                )
            )
            yield TransformerStack(predictor, *started)
        finally:
            for process in started:
                process.stop()
            predictor.stop()


def counter(transformer: TransformerProcess, name: str) -> float:
    """A counter of the transformer's /metrics (0 before its first increment)."""
    for line in transformer.client.get("/metrics").text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def wait_for_pushes(transformer: TransformerProcess, count: float) -> None:
    """Until the transformer has pushed `count` state updates (10 s at most)."""
    deadline = time.monotonic() + 10
    while counter(transformer, "riskserve_transformer_pushes_total") < count:
        assert time.monotonic() < deadline, "the state update was not pushed"
        time.sleep(0.02)


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
