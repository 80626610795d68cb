"""A raw card transaction end to end, at a steady 500 req/s: the local platform's
gateway, the transformer (online lookup, the model's features, the card's state
update pushed after the answer) and the predictor; beside it, in the same run, KServe's
own pattern in front of the same predictor.

Targets, each measured with the same open-loop load (issue 25's goals):

- predictor alone: the seven features of real lookups as v2 JSON, straight to a
  predictor (`python -m riskserve.serving`);
- transformer direct: riskserve's transformer in front of that predictor, no gateway;
- gateway e2e: the local platform's daemon serving an InferenceService with
  `spec.transformer` (its own transformer and predictor revisions) through its gateway;
  its transformer calls the one predictor revision directly (direct routes);
- gateway e2e (relayed): the same, with `RISKSERVE_DIRECT_PREDICTOR_ROUTES=false`:
  each predictor call relayed by the gateway's predictor listener, as before;
- kserve+feast: a stock `kserve.Model` transformer whose `preprocess` calls
  `FeatureStore.get_online_features` on the same repository and whose `postprocess`
  pushes the state with `FeatureStore.push` (bench/stock_feast_transformer.py), served
  by KServe's `ModelServer`, in front of the same predictor as the direct transformer.

Every request to a transformer is a later transaction of a known card (each reads the
state the one before it pushed). The load comes from tests/reliability/load_generator.py,
in its own process: 8 keep-alive connections, latency counted from each request's
scheduled send (no coordinated omission). Targets alternate within a round, the order
reversed every other round; medians over rounds are reported with their min-max.
Stage times come from the servers' own histograms, as differences over each run:
the transformer's `riskserve_transformer_stage_duration_seconds` (lookup, predictor
call, push), the predictor's `riskserve_request_duration_seconds` and KServe's
`request_{preprocess,predict,postprocess}_seconds`.

    python -m bench.transformer_e2e [--seconds 10] [--rounds 3] [--rate 500]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np
import orjson
from riskserve.features.card import FRAUD_FEATURES
from riskserve.features.online import lookup
from riskserve.localplatform.processes import ManagedProcess, free_port

from bench import checkout, gateway_target
from bench.transformer_latency import (
    GOAL_ADDED_P50_MS,
    REPO_ROOT,
    Histogram,
    World,
    bucket_p50,
    build_world,
    cpu_seconds,
    histograms,
    predictor_argv,
    raw_body,
    server_env,
    transformer_argv,
)

GOAL_P99_MS = 5.0
LOAD_GENERATOR = REPO_ROOT / "tests" / "reliability" / "load_generator.py"
INFER = "/v2/models/fraud/infer"
# The gateway bench's InferenceService, with KServe's transformer component.
ISVC = (
    gateway_target.ISVC
    + """  transformer:
    containers:
      - name: kserve-container
        image: ghcr.io/example/riskserve-transformer:dev
        args: ["--feature_repo", "{repo}"]
"""
)


# -- the gateway target: the platform daemon in a process of its own ----------------
def serve_gateway(argv: list[str]) -> int:
    """`python -m bench.transformer_e2e gateway ...`: the daemon with one
    InferenceService (predictor + transformer) applied to a fresh state folder; on
    SIGTERM it stops the revisions it started."""
    from riskserve.localplatform.apply_check import parse_documents
    from riskserve.localplatform.controller import LocalPlatform
    from riskserve.localplatform.daemon import serve_forever
    from riskserve.localplatform.settings import PlatformSettings, inherited_environment

    parser = argparse.ArgumentParser(prog="python -m bench.transformer_e2e gateway")
    parser.add_argument("--model_dir", required=True)
    parser.add_argument("--feature_repo", required=True)
    parser.add_argument("--http_port", type=int, required=True)
    parser.add_argument("--state_dir", type=Path, required=True)
    args = parser.parse_args(argv)
    settings = PlatformSettings(
        state_dir=args.state_dir, gateway_port=args.http_port, gateway_grpc_port=0
    )
    platform = LocalPlatform(settings, env=inherited_environment())
    text = ISVC.format(storage_uri=args.model_dir, repo=args.feature_repo)
    platform.apply_documents(parse_documents(text))
    serve_forever(settings)
    return 0


def revision_ports(state_dir: Path) -> dict[str, int]:
    """The platform's revisions' HTTP ports by component, from its state file."""
    state = json.loads((state_dir / "platform" / "state.json").read_text())
    ports: dict[str, int] = {}

    def walk(node: object, component: str) -> None:
        if isinstance(node, dict):
            name = node.get("name")
            if isinstance(name, str) and node.get("http_port"):
                kind = "transformer" if "-transformer-" in name else "predictor"
                ports.setdefault(kind, int(node["http_port"]))
            for value in node.values():
                walk(value, component)
        elif isinstance(node, list):
            for value in node:
                walk(value, component)

    walk(state, "")
    return ports


# -- load ------------------------------------------------------------------------------
def open_loop(port: int, bodies: list[str], rate: float, seconds: float) -> dict:
    """One run of the open-loop generator (its own process): p50/p99 in ms over the
    answered requests, errors, and the generator's own send lag (the host's noise)."""
    config = {
        "port": port,
        "path": INFER,
        "bodies": bodies,
        "rate": rate,
        "seconds": seconds,
        "connections": 8,
        "timeout": 10.0,
    }
    done = subprocess.run(
        [sys.executable, str(LOAD_GENERATOR)],
        input=json.dumps(config),
        capture_output=True,
        text=True,
        check=True,
        timeout=seconds + 120,
    )
    samples = json.loads(done.stdout)
    ok = np.asarray([s[1] for s in samples if s[2] == 200]) * 1000
    lag = np.asarray([s[4] for s in samples]) * 1000
    slow = sorted(s[0] for s in samples if s[2] == 200 and s[1] * 1000 > GOAL_P99_MS)
    return {
        "requests": len(samples),
        "errors": sum(1 for s in samples if s[2] != 200),
        "p50": float(np.percentile(ok, 50)) if len(ok) else float("nan"),
        "p99": float(np.percentile(ok, 99)) if len(ok) else float("nan"),
        "lag_p99": float(np.percentile(lag, 99)) if len(lag) else 0.0,
        "slow": len(slow),
        "stalls": stalls(slow),
    }


def stalls(slow_at: list[float], gap: float = 0.02) -> int:
    """How many runs the answers over the goal came in: requests scheduled within
    `gap` seconds of the previous slow one belong to its run. Few long runs mean
    the chain stalled (a process off the CPU, a blocking write); as many runs as
    slow answers mean scattered per-request delays."""
    runs = 0
    previous = -1.0
    for at in slow_at:
        if previous < 0 or at - previous > gap:
            runs += 1
        previous = at
    return runs


def feature_bodies(world: World, count: int) -> list[str]:
    """The predictor's request: the seven features of real lookups, v2 JSON."""
    bodies = []
    for _ in range(count):
        features = lookup(world.store, world.next_txn()).features
        inputs = [
            {"name": n, "datatype": "FP32", "shape": [1, 1], "data": [features[n]]}
            for n in FRAUD_FEATURES
        ]
        bodies.append(orjson.dumps({"inputs": inputs}).decode())
    return bodies


# -- targets -------------------------------------------------------------------------
@dataclass
class Target:
    name: str
    port: int
    raw: bool  # raw transactions (else the predictor's features)
    pid: int  # the process whose CPU time is reported
    # (metrics URL, histogram family, label) read before and after each run
    histograms: list[tuple[str, str, str]] = field(default_factory=list)
    runs: list[dict] = field(default_factory=list)


def stage_deltas(
    before: dict[str, dict[str, Histogram]], after: dict[str, dict[str, Histogram]]
) -> dict[str, tuple[float, float]]:
    """Per histogram key: (mean ms, p50 ms within buckets) of what a run added."""
    summary = {}
    for family, series in after.items():
        for key, (total, buckets) in series.items():
            old_total, old_buckets = before.get(family, {}).get(key, (0.0, []))
            old = dict(old_buckets)
            added = [(edge, count - old.get(edge, 0.0)) for edge, count in buckets]
            count = added[-1][1] if added else 0.0
            if count <= 0:
                continue
            summary[f"{family}:{key}"] = (
                (total - old_total) / count * 1000,
                bucket_p50(added) * 1000,
            )
    return summary


def scrape(target: Target) -> dict[str, dict[str, Histogram]]:
    found: dict[str, dict[str, Histogram]] = {}
    for url, family, label in target.histograms:
        text = httpx.get(url, timeout=10).text
        found[f"{url.split(':')[-1].split('/')[0]}/{family}"] = histograms(
            text, family, label
        )
    return found


STAGE_NAMES = {
    "riskserve_transformer_stage_duration_seconds:lookup": "lookup",
    "riskserve_transformer_stage_duration_seconds:predictor": "predictor call",
    "riskserve_transformer_stage_duration_seconds:push": "push (after answer)",
    "riskserve_request_duration_seconds:fraud": "predictor server time",
    "request_preprocess_seconds:fraud": "preprocess (Feast lookup)",
    "request_predict_seconds:fraud": "predict (v2 call)",
    "request_postprocess_seconds:fraud": "postprocess (Feast push)",
}


def stage_label(key: str) -> str:
    family_key = key.split("/", 1)[1]
    return STAGE_NAMES.get(family_key, family_key)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["gateway"]:
        return serve_gateway(argv[1:])
    parser = argparse.ArgumentParser(prog="python -m bench.transformer_e2e")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--rate", type=float, default=500.0)
    parser.add_argument("--cards", type=int, default=2000)
    parser.add_argument(
        "--only", nargs="*", default=None, help="target names to measure"
    )
    parser.add_argument(
        "--transformer-source",
        action="append",
        default=[],
        metavar="NAME=DIR",
        help="also measure the transformer of another checkout (e.g. a git worktree "
        "of the commit before a change), in front of the same predictor",
    )
    args = parser.parse_args(argv)
    world = build_world(args.cards, prefix="bench-transformer-e2e-")
    work, env = world.work, server_env()
    ports = {
        n: free_port()
        for n in ("predictor", "transformer", "stock", "gateway", "relayed")
    }
    state_dir = Path(tempfile.mkdtemp(prefix="bench-e2e-platform-"))
    relayed_state_dir = Path(tempfile.mkdtemp(prefix="bench-e2e-platform-relayed-"))

    def gateway_process(
        name: str, port: int, state: Path, extra: dict
    ) -> ManagedProcess:
        return ManagedProcess(
            name=name,
            argv=[
                sys.executable,
                "-m",
                "bench.transformer_e2e",
                "gateway",
                "--model_dir",
                str(world.model_dir),
                "--feature_repo",
                str(world.repo),
                "--http_port",
                str(port),
                "--state_dir",
                str(state),
            ],  # fmt: skip
            log_path=work / f"{name}.log",
            env={**env, **extra},
            cwd=REPO_ROOT,
        )

    processes = {
        "predictor": ManagedProcess(
            name="predictor",
            argv=predictor_argv(world.model_dir, ports["predictor"]),
            log_path=work / "predictor.log",
            env={**env, "RISKSERVE_SERVING_HOST": "127.0.0.1"},
            cwd=REPO_ROOT,
        ),
        "transformer": ManagedProcess(
            name="transformer",
            argv=transformer_argv(ports["predictor"], ports["transformer"], world.repo),
            log_path=work / "transformer.log",
            env={**env, "RISKSERVE_TRANSFORMER_HOST": "127.0.0.1"},
            cwd=REPO_ROOT,
        ),
        "stock": ManagedProcess(
            name="kserve+feast",
            argv=[
                sys.executable,
                "-m",
                "bench.stock_feast_transformer",
                "--model_name",
                "fraud",
                "--predictor_host",
                f"127.0.0.1:{ports['predictor']}",
                "--predictor_protocol",
                "v2",
                "--http_port",
                str(ports["stock"]),
                "--grpc_port",
                str(free_port()),
                "--feature_repo",
                str(world.repo),
            ],  # fmt: skip
            log_path=work / "stock.log",
            env=env,
            cwd=REPO_ROOT,
        ),
        "gateway": gateway_process("gateway", ports["gateway"], state_dir, {}),
        # The same platform with every transformer request relayed by the gateway's
        # predictor listener (the hop the direct routes save), measured beside it.
        "relayed": gateway_process(
            "gateway-relayed",
            ports["relayed"],
            relayed_state_dir,
            {"RISKSERVE_DIRECT_PREDICTOR_ROUTES": "false"},
        ),
    }
    sources = dict(item.split("=", 1) for item in args.transformer_source)
    for name, folder in sources.items():
        root = checkout.importable(Path(folder), work)
        imported = checkout.check(root, "riskserve.transformer")
        if not imported.is_relative_to(Path(folder).resolve()):
            raise SystemExit(f"{name}: riskserve.transformer comes from {imported}")
        ports[name] = free_port()
        processes[name] = ManagedProcess(
            name=f"transformer ({name})",
            argv=transformer_argv(ports["predictor"], ports[name], world.repo),
            log_path=work / f"transformer-{name}.log",
            env={
                **env,
                **checkout.environment(root),
                "RISKSERVE_TRANSFORMER_HOST": "127.0.0.1",
            },
            cwd=root,
        )
    if args.only:
        # Only the servers the chosen targets need: idle stacks beside the one under
        # load share its cores and its SQLite file (their checkpointers run too).
        serves = {
            "predictor alone": "predictor",
            "transformer direct": "transformer",
            "kserve+feast": "stock",
            "gateway e2e": "gateway",
            "gateway e2e (relayed)": "relayed",
            **{f"transformer ({name})": name for name in sources},
        }
        needed = {"predictor"} | {serves.get(name, name) for name in args.only}
        processes = {k: v for k, v in processes.items() if k in needed}
    try:
        for process in processes.values():
            process.start()
        ready = {
            "predictor": "/v2/health/ready",
            "transformer": "/v2/health/ready",
            "stock": "/v2/health/ready",
            "gateway": "/v2/models/fraud/ready",
            "relayed": "/v2/models/fraud/ready",
            **dict.fromkeys(sources, "/v2/health/ready"),
        }
        for name, process in processes.items():
            process.wait_ready(
                f"http://127.0.0.1:{ports[name]}{ready[name]}", timeout=120
            )
        unstarted = {"transformer": 0, "predictor": 0}
        revisions = revision_ports(state_dir) if "gateway" in processes else unstarted
        relayed_revisions = (
            revision_ports(relayed_state_dir) if "relayed" in processes else unstarted
        )

        def pid(name: str) -> int:
            popen = processes[name].popen if name in processes else None
            return popen.pid if popen else 0

        def url(port: int) -> str:
            return f"http://127.0.0.1:{port}/metrics"

        stage = "riskserve_transformer_stage_duration_seconds"
        served = "riskserve_request_duration_seconds"
        targets = [
            Target(
                "predictor alone",
                ports["predictor"],
                False,
                pid("predictor"),
                [(url(ports["predictor"]), served, "model")],
            ),
            Target(
                "transformer direct",
                ports["transformer"],
                True,
                pid("transformer"),
                [
                    (url(ports["transformer"]), stage, "stage"),
                    (url(ports["predictor"]), served, "model"),
                ],
            ),
            Target(
                "gateway e2e",
                ports["gateway"],
                True,
                pid("gateway"),
                [
                    (url(revisions["transformer"]), stage, "stage"),
                    (url(revisions["predictor"]), served, "model"),
                ],
            ),
            Target(
                "gateway e2e (relayed)",
                ports["relayed"],
                True,
                pid("relayed"),
                [
                    (url(relayed_revisions["transformer"]), stage, "stage"),
                    (url(relayed_revisions["predictor"]), served, "model"),
                ],
            ),
            Target(
                "kserve+feast",
                ports["stock"],
                True,
                pid("stock"),
                [
                    *(
                        (url(ports["stock"]), f"request_{step}_seconds", "model_name")
                        for step in ("preprocess", "predict", "postprocess")
                    ),
                    (url(ports["predictor"]), served, "model"),
                ],
            ),
        ]
        targets[2:2] = [
            Target(
                f"transformer ({name})",
                ports[name],
                True,
                pid(name),
                [
                    (url(ports[name]), stage, "stage"),
                    (url(ports["predictor"]), served, "model"),
                ],
            )
            for name in sources
        ]
        if args.only:
            targets = [t for t in targets if t.name in args.only]
        count = int(args.rate * args.seconds)
        predictor_bodies = feature_bodies(world, 256)

        def bodies(target: Target, n: int) -> list[str]:
            if not target.raw:
                return predictor_bodies
            return [raw_body(world.next_txn()).decode() for _ in range(n)]

        for target in targets:  # warm-up: 2 s each, not reported
            open_loop(target.port, bodies(target, int(args.rate * 2)), args.rate, 2)
        for round_ in range(args.rounds):
            order = targets if round_ % 2 == 0 else list(reversed(targets))
            for target in order:
                load = bodies(target, count)
                before = scrape(target)
                cpu_before = cpu_seconds(target.pid)
                result = open_loop(target.port, load, args.rate, args.seconds)
                # Below 100%: the target fell so far behind that the generator's
                # connections were still waiting when the run's time was up.
                result["sent_share"] = result["requests"] / count
                result["cpu_ms"] = (
                    (cpu_seconds(target.pid) - cpu_before) * 1000 / result["requests"]
                )
                time.sleep(0.2)  # the last pushes land in the histograms
                result["stages"] = stage_deltas(before, scrape(target))
                target.runs.append(result)
                print(
                    f"round {round_ + 1}: {target.name:20s} p50 {result['p50']:.3f} ms"
                    f"  p99 {result['p99']:.3f} ms  errors {result['errors']}"
                    f"  sent {result['sent_share']:.0%} of the schedule"
                    f"  generator lag p99 {result['lag_p99']:.3f} ms"
                    f"  over {GOAL_P99_MS:g} ms: {result['slow']} in "
                    f"{result['stalls']} run(s)",
                    flush=True,
                )
        report(targets, args)
    finally:
        for process in reversed(list(processes.values())):
            process.stop()
        for folder in (state_dir, relayed_state_dir, world.work):
            shutil.rmtree(folder, ignore_errors=True)
    return 0


def report(targets: list[Target], args: argparse.Namespace) -> None:
    def median(target: Target, key: str) -> tuple[float, float, float]:
        values = [run[key] for run in target.runs]
        return statistics.median(values), min(values), max(values)

    print(
        f"\nopen loop at {args.rate:.0f} req/s, {args.seconds:.0f} s x {args.rounds} "
        "rounds, 8 connections, single row (median over rounds [min-max]):"
    )
    print(
        f"  {'target':20s} {'p50 ms':>22s} {'p99 ms':>22s} {'errors':>7s} "
        f"{'CPU ms/req':>10s} {'sent':>5s}"
    )
    medians: dict[str, tuple[float, float]] = {}
    for target in targets:
        p50, p99 = median(target, "p50"), median(target, "p99")
        medians[target.name] = (p50[0], p99[0])
        errors = sum(run["errors"] for run in target.runs)
        cpu = median(target, "cpu_ms")[0]
        sent = min(run["sent_share"] for run in target.runs)
        print(
            f"  {target.name:20s} {p50[0]:7.3f} [{p50[1]:.3f}-{p50[2]:.3f}] "
            f"{p99[0]:7.3f} [{p99[1]:.3f}-{p99[2]:.3f}] {errors:7d} {cpu:10.3f} "
            f"{sent:5.0%}"
        )
        keys = sorted({k for run in target.runs for k in run["stages"]})
        for key in keys:
            means = [
                run["stages"][key][0] for run in target.runs if key in run["stages"]
            ]
            p50s = [
                run["stages"][key][1] for run in target.runs if key in run["stages"]
            ]
            print(
                f"      {stage_label(key):28s} p50 {statistics.median(p50s):.3f} ms"
                f"  mean {statistics.median(means):.3f} ms"
            )
    print()
    if "gateway e2e" in medians:
        p99 = medians["gateway e2e"][1]
        print(
            f"end to end p99 at {args.rate:.0f} req/s: {p99:.3f} ms "
            f"(goal <= {GOAL_P99_MS} ms): {'PASS' if p99 <= GOAL_P99_MS else 'MISSED'}"
        )
    for name in medians:
        if not name.startswith("transformer") or "predictor alone" not in medians:
            continue
        added = medians[name][0] - medians["predictor alone"][0]
        verdict = "PASS" if added <= GOAL_ADDED_P50_MS else "MISSED"
        print(
            f"{name} adds p50 {added:.3f} ms over the predictor alone "
            f"(goal <= {GOAL_ADDED_P50_MS} ms): {verdict}"
        )
    if {"kserve+feast", "transformer direct"} <= medians.keys():
        ours, stock = medians["transformer direct"], medians["kserve+feast"]
        print(
            f"kserve+feast / riskserve transformer: p50 {stock[0] / ours[0]:.1f}x, "
            f"p99 {stock[1] / ours[1]:.1f}x"
        )


if __name__ == "__main__":
    sys.exit(main())
