"""A raw transaction through the transformer and the predictor, against the predictor
alone with the same features: what the transformer adds, and where its time goes.

One predictor (the contract fraud model), one Feast repository (SQLite online store,
materialised from generated events) and `python -m riskserve.transformer` in front of
the predictor. One client on one keep-alive connection sends single-row requests back
to back (the same small asyncio HTTP/1.1 client for both targets, so the client's own
cost cancels out):

- predictor alone: the transformer's own request to it (the seven features as binary
  v2 tensors), features looked up beforehand;
- transformer: the raw transaction as v2 JSON tensors; each request a later
  transaction of a known card, so every one reads real state and pushes a new one.

Targets alternate within each round (order reversed every other round); the medians
over rounds are reported. Then the split: the lookup and the state write timed alone
in this process (the same feature-layer calls the transformer makes), and the
transformer's own stage histograms (lookup, predictor call, push) from its /metrics.

    python -m bench.transformer_latency [--requests 2000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import orjson
from feast import FeatureStore
from riskserve.features.card import FRAUD_FEATURES, Transaction
from riskserve.features.offline import write_offline_store
from riskserve.features.online import (
    CardReader,
    CardStateWriter,
    lookup,
    record_transaction,
)
from riskserve.features.repo import open_store
from riskserve.localplatform.processes import ManagedProcess, free_port
from riskserve.model.events import card_transactions
from riskserve.transformer.predictor_client import PredictorPool, features_request

REPO_ROOT = Path(__file__).resolve().parent.parent
GOAL_ADDED_P50_MS = 1.5


@dataclass
class World:
    """What the transformer benchmarks serve: the contract fraud model, a Feast
    repository materialised from generated events, and a clock of later transactions
    (each a known card's, one second after the last, cards in turn)."""

    work: Path
    model_dir: Path
    repo: Path
    store: FeatureStore
    next_txn: Callable[[], Transaction]


def build_world(cards: int, prefix: str = "bench-transformer-") -> World:
    sys.path.insert(0, str(REPO_ROOT))
    from tests.fixtures.contract_models import fraud_model, write_onnx

    work = Path(tempfile.mkdtemp(prefix=prefix))
    events = card_transactions(cards=cards, days=7, seed=3)
    repo, offline = work / "repo", work / "offline"
    write_offline_store(offline, events.cards, events.transactions)
    store = open_store(repo, offline)
    store.materialize(  # the card's views: the benchmarks score transactions only
        datetime(2000, 1, 1, tzinfo=UTC),
        datetime(2030, 1, 1, tzinfo=UTC),
        feature_views=["card_profile", "card_activity"],
    )
    write_onnx(fraud_model(), work / "model")
    card_ids = events.cards["card_id"].tolist()
    clock = itertools.count(
        int(events.transactions["event_timestamp"].max().value // 1000) + 1_000_000,
        1_000_000,
    )

    def next_txn() -> Transaction:
        t = next(clock)
        card = card_ids[t // 1_000_000 % len(card_ids)]
        return Transaction(card, t, 37.5, "m01-002", 47.1, 8.3, 1, 0, 0)

    return World(work, work / "model", repo, store, next_txn)


def server_env() -> dict[str, str]:
    """This environment for a server child, without RISKSERVE_* and without the
    prometheus_client multiprocess folder that importing Feast put into it."""
    return {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("RISKSERVE_")
        and k not in ("PROMETHEUS_MULTIPROC_DIR", "PROMETHEUS_MULTIPROCESS_DIR")
    }


def predictor_argv(model_dir: Path, port: int) -> list[str]:
    return [
        sys.executable, "-m", "riskserve.serving", "--model_name", "fraud",
        "--model_dir", str(model_dir), "--http_port", str(port),
        "--enable_grpc", "false",
    ]  # fmt: skip


def transformer_argv(predictor_port: int, port: int, repo: Path) -> list[str]:
    return [
        sys.executable, "-m", "riskserve.transformer", "--model_name", "fraud",
        "--predictor_host", f"127.0.0.1:{predictor_port}", "--http_port", str(port),
        "--protocol", "v2", "--feature_repo", str(repo),
    ]  # fmt: skip


def raw_body(txn: Transaction) -> bytes:
    def tensor(name: str, datatype: str, value: object) -> dict:
        return {"name": name, "datatype": datatype, "shape": [1], "data": [value]}

    return orjson.dumps(
        {
            "inputs": [
                tensor("card_id", "BYTES", txn.card_id),
                tensor("amount", "FP64", txn.amount),
                tensor("merchant_id", "BYTES", txn.merchant_id),
                tensor("merchant_latitude", "FP64", txn.merchant_latitude),
                tensor("merchant_longitude", "FP64", txn.merchant_longitude),
                tensor("used_chip", "BOOL", bool(txn.chip)),
                tensor("used_pin_number", "BOOL", bool(txn.pin)),
                tensor("online_order", "BOOL", bool(txn.online)),
                tensor("timestamp", "INT64", txn.timestamp_us),
            ]
        }
    )


def percentiles(samples: list[float]) -> tuple[float, float]:
    array = np.asarray(samples) * 1000
    return float(np.percentile(array, 50)), float(np.percentile(array, 99))


async def closed_loop(
    port: int,
    make: Callable[[int], tuple[str, list[tuple[bytes, bytes]], bytes]],
    n: int,
) -> list[float]:
    pool = PredictorPool(f"127.0.0.1:{port}", 10.0)
    times = []
    for i in range(-50, n):  # 50 warm-up requests
        target, headers, body = make(i)
        started = time.perf_counter()
        status, _, payload = await pool.request("POST", target, headers, body)
        elapsed = time.perf_counter() - started
        if status != 200:
            raise RuntimeError(f"{target}: {status} {payload[:300]!r}")
        if i >= 0:
            times.append(elapsed)
    pool.close()
    return times


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


Histogram = tuple[float, list[tuple[float, float]]]  # (sum, [(edge, cumulative)])


def histograms(metrics_text: str, family: str, label: str) -> dict[str, Histogram]:
    """A Prometheus histogram family from a /metrics text, by the value of `label`
    (series that differ in other labels are added up)."""
    sums: dict[str, float] = {}
    buckets: dict[str, dict[float, float]] = {}
    marker = f'{label}="'
    for line in metrics_text.splitlines():
        if not line.startswith(family) or marker not in line:
            continue
        key = line.split(marker)[1].split('"')[0]
        value = float(line.rsplit(" ", 1)[1])
        if line.startswith(f"{family}_sum"):
            sums[key] = sums.get(key, 0.0) + value
        elif line.startswith(f"{family}_bucket"):
            edge = float(line.split('le="')[1].split('"')[0])
            series = buckets.setdefault(key, {})
            series[edge] = series.get(edge, 0.0) + value
    return {
        key: (sums.get(key, 0.0), sorted(series.items()))
        for key, series in buckets.items()
    }


def bucket_p50(buckets: list[tuple[float, float]]) -> float:
    """The median, interpolated within cumulative buckets [(edge, count), ...]."""
    half, previous_edge, previous_count = buckets[-1][1] / 2, 0.0, 0.0
    for edge, cumulative in buckets:
        if cumulative >= half:
            if edge == float("inf"):
                return previous_edge
            share = (half - previous_count) / max(cumulative - previous_count, 1)
            return previous_edge + (edge - previous_edge) * share
        previous_edge, previous_count = edge, cumulative
    return previous_edge


def stage_summary(metrics_text: str) -> dict[str, tuple[float, float, float]]:
    """Per stage: the mean, and the p50 interpolated within the histogram's buckets
    (ms), and the count, from the transformer's /metrics."""
    summary = {}
    found = histograms(
        metrics_text, "riskserve_transformer_stage_duration_seconds", "stage"
    )
    for stage, (total, buckets) in found.items():
        count = buckets[-1][1]
        if count:
            summary[stage] = (total / count * 1000, bucket_p50(buckets) * 1000, count)
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.transformer_latency")
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--cards", type=int, default=2000)
    args = parser.parse_args(argv)
    world = build_world(args.cards)
    work, repo, store, next_txn = world.work, world.repo, world.store, world.next_txn
    env = server_env()
    predictor_port = free_port()
    # The transformer's variants: (where store I/O runs, how the lookup is made).
    variants = {
        "transformer (default)": {},
        "transformer, store_io=thread": {"RISKSERVE_TRANSFORMER_STORE_IO": "thread"},
        "transformer, lookup_path=feast": {
            "RISKSERVE_TRANSFORMER_LOOKUP_PATH": "feast"
        },
    }
    transformer_ports = {name: free_port() for name in variants}
    predictor = ManagedProcess(
        name="predictor",
        argv=predictor_argv(world.model_dir, predictor_port),
        log_path=work / "predictor.log",
        env={**env, "RISKSERVE_SERVING_HOST": "127.0.0.1"},
        cwd=REPO_ROOT,
    ).start()
    transformers = {
        name: ManagedProcess(
            name=name,
            argv=transformer_argv(predictor_port, transformer_ports[name], repo),
            log_path=work / f"transformer-{index}.log",
            env={**env, "RISKSERVE_TRANSFORMER_HOST": "127.0.0.1", **extra},
            cwd=REPO_ROOT,
        ).start()
        for index, (name, extra) in enumerate(variants.items())
    }
    try:
        predictor.wait_ready(f"http://127.0.0.1:{predictor_port}/v2/health/ready")
        for name, process in transformers.items():
            port = transformer_ports[name]
            process.wait_ready(f"http://127.0.0.1:{port}/v2/health/ready")
        # The predictor's request, with the features of real lookups (done up front).
        bodies = []
        for _ in range(64):
            features = lookup(store, next_txn()).features
            arrays = {n: np.array([features[n]], np.float32) for n in FRAUD_FEATURES}
            bodies.append(features_request(arrays, "bench"))
        predictor_target = "/v2/models/fraud/infer"

        def to_predictor(i: int) -> tuple[str, list[tuple[bytes, bytes]], bytes]:
            body, length = bodies[i % len(bodies)]
            return (
                predictor_target,
                [
                    (b"content-type", b"application/octet-stream"),
                    (b"inference-header-content-length", length),
                ],
                body,
            )

        def to_transformer(i: int) -> tuple[str, list[tuple[bytes, bytes]], bytes]:
            return (
                predictor_target,
                [(b"content-type", b"application/json")],
                raw_body(next_txn()),
            )

        targets = {
            "predictor alone": (predictor_port, to_predictor),
            **{
                name: (port, to_transformer) for name, port in transformer_ports.items()
            },
        }
        pids = {name: p.popen.pid for name, p in transformers.items() if p.popen}
        predictor_pid = predictor.popen.pid if predictor.popen else 0
        results: dict[str, list[tuple[float, float, float, float]]] = {
            name: [] for name in targets
        }
        for round_ in range(args.rounds):
            order = list(targets) if round_ % 2 == 0 else list(reversed(targets))
            for name in order:
                port, make = targets[name]
                own = pids.get(name)
                before = (cpu_seconds(own) if own else 0.0, cpu_seconds(predictor_pid))
                times = asyncio.run(closed_loop(port, make, args.requests))
                own_cpu = (cpu_seconds(own) - before[0]) if own else 0.0
                predictor_cpu = cpu_seconds(predictor_pid) - before[1]
                per = 1000 / len(times)  # seconds per run -> ms per request
                results[name].append(
                    (*percentiles(times), own_cpu * per, predictor_cpu * per)
                )
                p50, p99, cpu, pcpu = results[name][-1]
                print(
                    f"round {round_ + 1}: {name:32s} p50 {p50:.3f} ms  p99 "
                    f"{p99:.3f} ms  CPU/request: transformer {cpu:.3f} ms, "
                    f"predictor {pcpu:.3f} ms"
                )
        print(f"\nsingle row, one keep-alive connection, {args.requests} requests x "
              f"{args.rounds} rounds (median over rounds):")  # fmt: skip
        medians = {}
        for name, rows in results.items():
            p50 = statistics.median(r[0] for r in rows)
            p99 = statistics.median(r[1] for r in rows)
            cpu = statistics.median(r[2] for r in rows)
            pcpu = statistics.median(r[3] for r in rows)
            medians[name] = (p50, p99)
            print(
                f"  {name:32s} p50 {p50:.3f} ms  p99 {p99:.3f} ms  CPU/request: "
                f"transformer {cpu:.3f} ms, predictor {pcpu:.3f} ms"
            )
        import httpx

        for name, port in transformer_ports.items():
            added = medians[name][0] - medians["predictor alone"][0]
            verdict = "met" if added <= GOAL_ADDED_P50_MS else "NOT met"
            print(
                f"\n{name} adds p50 {added:.3f} ms (goal <= {GOAL_ADDED_P50_MS} ms: "
                f"{verdict}); its stages (from its /metrics; p50 within buckets):"
            )
            text = httpx.get(f"http://127.0.0.1:{port}/metrics").text
            for stage, (mean, p50, count) in sorted(stage_summary(text).items()):
                print(
                    f"  {stage:10s} p50 {p50:.3f} ms  mean {mean:.3f} ms "
                    f"over {count:.0f}"
                )
            for line in text.splitlines():
                if line.startswith("riskserve_transformer_push_failures_total"):
                    print(" ", line)
        writer = CardStateWriter(store)
        direct = CardReader(store)
        lookups, directs, writes = [], [], []
        for _ in range(1000):
            txn = next_txn()
            started = time.perf_counter()
            found = lookup(store, txn)
            lookups.append(time.perf_counter() - started)
            started = time.perf_counter()
            direct.lookup(txn)
            directs.append(time.perf_counter() - started)
            started = time.perf_counter()
            record_transaction(writer, txn, found.state)
            writes.append(time.perf_counter() - started)
        print("\nthe feature layer alone, in this process (1,000 calls):")
        for name, samples in (
            ("lookup (Feast)", lookups),
            ("lookup (direct)", directs),
            ("state write", writes),
        ):
            p50, p99 = percentiles(samples)
            print(f"  {name:16s} p50 {p50:.3f} ms  p99 {p99:.3f} ms")
    finally:
        for process in transformers.values():
            process.stop()
        predictor.stop()
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
