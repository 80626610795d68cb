"""Start each target, measure it, stop it, print one table.

Per target: process start to ready; closed-loop throughput with p50/p99 (8 connections,
single-row requests); p99 at a fixed 1,000 req/s (open loop); the server's CPU time per
single-row request (over 5,000 of them: on a machine shared with other work, req/s
moves with the other load, CPU per request much less); the median latency of a
10,000-row request; peak RSS of the server's process group.

`--rounds N` measures every target N times, interleaved (the order reversed every
other round), and reports each figure's median with the spread of req/s and p99 over
the rounds; the ratios to the floor are taken within each round, then their median.
`--source NAME=DIR` adds this predictor as another checkout has it (e.g. a
`git worktree add /tmp/before HEAD` of the commit before a change), measured beside
this one in the same sitting:

    python -m bench --rounds 3 --source before=/tmp/before --only riskserve before bare-asgi
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np
from riskserve.localplatform.processes import ManagedProcess, free_port, http_ok

from bench import checkout
from bench.targets import TARGETS, Target, predictor_from

REPO_ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = REPO_ROOT / "bench" / "results"
GOALS = {
    "speedup_vs_stock": 5.0,
    # riskserve's req/s over the floor's (bare-asgi), in the same round: at least this.
    "floor_ratio": 0.8,
    "p99_at_1000_ms": 1.5,
    "batch_10k_ms": 50.0,
    "ready_s": 3.0,
    "rss_mb": 250.0,
    "gateway_added_p50_ms": 0.5,
    "gateway_rps_share": 0.5,
}


def fraud_model_dir(workdir: Path, model_dir: str | None) -> Path:
    if model_dir:
        return Path(model_dir)
    sys.path.insert(0, str(REPO_ROOT))
    from tests.fixtures.contract_models import fraud_model, write_onnx

    folder = workdir / "fraud-model"
    write_onnx(fraud_model(), folder)
    return folder


def request_body(rows: int, seed: int = 7) -> bytes:
    from riskserve.model.specs import FRAUD

    rng = np.random.default_rng(seed)
    inputs = []
    for feature in FRAUD.features:
        if feature.kind == "binary":
            values = rng.integers(0, 2, rows).astype(float)
        else:
            values = np.round(rng.gamma(2.0, 5.0, rows), 3)
        inputs.append(
            {
                "name": feature.name,
                "shape": [rows, 1],
                "datatype": "FP32",
                "data": values.tolist(),
            }
        )
    return json.dumps({"inputs": inputs}).encode()


def process_group_rss_mb(pgid: int) -> tuple[float, float]:
    """(current, peak) resident memory of every process in the group, in MB."""
    current = peak = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
            if int(stat.rsplit(")", 1)[1].split()[2]) != pgid:
                continue
            for line in Path(f"/proc/{entry}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    current += int(line.split()[1])
                elif line.startswith("VmHWM:"):
                    peak += int(line.split()[1])
        except (OSError, ValueError, IndexError):
            continue
    return current / 1024, peak / 1024


def process_group_cpu_seconds(pgid: int) -> float:
    """User + system CPU time of every live process in the group, in seconds."""
    ticks = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
            if int(fields[2]) == pgid:
                ticks += int(fields[11]) + int(fields[12])  # utime, stime
        except (OSError, ValueError, IndexError):
            continue
    return ticks / os.sysconf("SC_CLK_TCK")


def loadgen(port: int, path: str, body_file: Path, **options: object) -> dict:
    argv = [
        sys.executable,
        "-m",
        "bench.loadgen",
        "--port",
        str(port),
        "--path",
        path,
        "--body-file",
        str(body_file),
    ]
    for key, value in options.items():
        argv += [f"--{key.replace('_', '-')}", str(value)]
    done = subprocess.run(
        argv, capture_output=True, text=True, check=True, cwd=REPO_ROOT, timeout=300
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def measure(
    target: Target, model_dir: Path, workdir: Path, duration: float, bodies: dict
) -> dict:
    port, other_port = free_port(), free_port()
    process = ManagedProcess(
        name=target.name,
        argv=target.argv(model_dir, port, other_port),
        log_path=workdir / f"{target.name}.log",
        env={**os.environ, **target.env},
        cwd=target.cwd or REPO_ROOT,
    )
    started = time.monotonic()
    process.start()
    ready_url = f"http://127.0.0.1:{port}{target.ready_path}"
    try:
        while not http_ok(ready_url, timeout=0.5):
            if not process.alive() or time.monotonic() - started > 120:
                raise RuntimeError(
                    f"{target.name} did not become ready:\n{process.log_tail()}"
                )
            time.sleep(0.01)
        ready_s = time.monotonic() - started
        check = urllib.request.Request(
            f"http://127.0.0.1:{port}{target.infer_path}",
            data=bodies["single"].read_bytes(),
            headers={"content-type": "application/json"},
        )
        with urllib.request.urlopen(check, timeout=10) as response:  # noqa: S310
            answer = json.loads(response.read())
        score = answer["outputs"][0]["data"][0]
        closed = loadgen(port, target.infer_path, bodies["single"], duration=duration)
        fixed = loadgen(
            port, target.infer_path, bodies["single"], duration=duration, rate=1000
        )
        # The server's CPU time per single-row request over a fixed number of them:
        # what the request costs the server, which the machine's other load inflates
        # far less than it does req/s (on a shared box, compare this column).
        cpu_before = process_group_cpu_seconds(process.pid)
        counted = loadgen(
            port, target.infer_path, bodies["single"], warmup=0, requests=CPU_REQUESTS
        )
        cpu_us = (process_group_cpu_seconds(process.pid) - cpu_before) * 1e6
        batch = loadgen(
            port,
            target.infer_path,
            bodies["batch"],
            connections=1,
            warmup=0,
            requests=20,
        )
        rss_mb, peak_mb = process_group_rss_mb(process.pid)
    finally:
        process.stop()
    return {
        "target": target.name,
        "description": target.description,
        "baseline": target.baseline,
        "ready_s": round(ready_s, 2),
        "rps": closed["rps"],
        "p50_ms": closed["p50_ms"],
        "p99_ms": closed["p99_ms"],
        "non_200": sum(v for k, v in closed["statuses"].items() if k != "200"),
        "rate_1000_rps": fixed["rps"],
        "p99_at_1000_ms": fixed["p99_ms"],
        "batch_10k_ms": batch["p50_ms"],
        "cpu_us_per_request": round(cpu_us / counted["requests"], 1),
        "rss_mb": round(rss_mb, 1),
        "peak_rss_mb": round(peak_mb, 1),
        "first_score": score,
    }


SPREAD_KEYS = ("rps", "p99_ms", "p99_at_1000_ms", "cpu_us_per_request")
CPU_REQUESTS = 5000  # single-row requests (8 connections) for the CPU per request


def combine(rounds: list[dict]) -> dict:
    """One target's rounds: each figure's median, and the min/max of the ones whose
    spread is reported."""
    if len(rounds) == 1:
        return {**rounds[0], "rounds": 1}
    combined = {**rounds[0], "rounds": len(rounds)}
    for key, value in rounds[0].items():
        if isinstance(value, int | float) and not isinstance(value, bool):
            if key == "non_200":
                combined[key] = sum(r[key] for r in rounds)
                continue
            values = [r[key] for r in rounds if r.get(key) is not None]
            if values:
                combined[key] = round(float(np.median(values)), 3)
                if key in SPREAD_KEYS:
                    combined[f"{key}_range"] = (min(values), max(values))
    return combined


def floor_ratios(rounds: list[list[dict]]) -> dict[str, list[float]]:
    """Per round, each predictor's req/s over the floor's measured in the same round
    (the pair closest in time, so the machine's other load falls on both alike)."""
    ratios: dict[str, list[float]] = {}
    for results in rounds:
        floor = next((r for r in results if r["baseline"] == "floor"), None)
        if floor is None or not floor["rps"]:
            continue
        for result in results:
            if result["baseline"] in (None, "predictor"):
                ratios.setdefault(result["target"], []).append(
                    result["rps"] / floor["rps"]
                )
    return ratios


def print_table(results: list[dict]) -> None:
    columns = [
        ("target", "target", "{}"),
        ("rps", "req/s", "{:,.0f}"),
        ("rps_range", "req/s min-max", "{0[0]:,.0f}-{0[1]:,.0f}"),
        ("p50_ms", "p50 ms", "{:.3f}"),
        ("p99_ms", "p99 ms", "{:.3f}"),
        ("p99_ms_range", "p99 min-max", "{0[0]:.2f}-{0[1]:.2f}"),
        ("p99_at_1000_ms", "p99@1k/s ms", "{:.3f}"),
        ("p99_at_1000_ms_range", "p99@1k min-max", "{0[0]:.2f}-{0[1]:.2f}"),
        ("cpu_us_per_request", "CPU us/req", "{:.1f}"),
        ("cpu_us_per_request_range", "CPU min-max", "{0[0]:.0f}-{0[1]:.0f}"),
        ("batch_10k_ms", "10k rows ms", "{:.1f}"),
        ("ready_s", "ready s", "{:.2f}"),
        ("peak_rss_mb", "RSS MB", "{:.0f}"),
        ("non_200", "non-200", "{}"),
    ]
    if all(r.get("rounds", 1) == 1 for r in results):
        columns = [c for c in columns if not c[0].endswith("_range")]
    rows = [[title for _, title, _ in columns]]
    for result in results:
        rows.append(
            [
                "-" if result.get(key) is None else fmt.format(result[key])
                for key, _, fmt in columns
            ]
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(columns))]
    for n, row in enumerate(rows):
        print(
            "  ".join(
                cell.rjust(w) if i else cell.ljust(w)
                for i, (cell, w) in enumerate(zip(row, widths, strict=True))
            )
        )
        if n == 0:
            print("  ".join("-" * w for w in widths))


def summarize(results: list[dict], ratios: dict[str, list[float]]) -> list[str]:
    by_name = {r["target"]: r for r in results}
    ours = by_name.get("riskserve")
    stock = next((r for r in results if r["baseline"] == "stock"), None)
    lines = []

    def verdict(ok: bool) -> str:
        return "ok" if ok else "MISSED"

    # The floor ratio of every predictor measured (this one and any --source).
    goal = GOALS["floor_ratio"]
    for name, values in ratios.items():
        median = float(np.median(values))
        spread = (
            f", {len(values)} rounds: {min(values):.2f}-{max(values):.2f}"
            if len(values) > 1
            else ""
        )
        lines.append(
            f"{name} / bare-asgi req/s: {median:.2f}{spread} "
            f"(goal >= {goal}: {verdict(median >= goal)})"
        )
    floor = next((r for r in results if r["baseline"] == "floor"), None)
    if floor and floor.get("cpu_us_per_request"):
        for result in results:
            if result["baseline"] in (None, "predictor") and result.get(
                "cpu_us_per_request"
            ):
                lines.append(
                    f"{result['target']} server CPU per request: "
                    f"{result['cpu_us_per_request']} us, the floor's "
                    f"{floor['cpu_us_per_request']} us: "
                    f"{floor['cpu_us_per_request'] / result['cpu_us_per_request']:.2f}"
                    " of the floor's requests per CPU second"
                )
    if ours is None:
        return lines
    if stock:
        speedup = ours["rps"] / stock["rps"]
        lines.append(
            f"riskserve / kserve-stock req/s: {speedup:.1f}x "
            f"(goal >= {GOALS['speedup_vs_stock']:.0f}x: "
            f"{verdict(speedup >= GOALS['speedup_vs_stock'])})"
        )
    gateway = next((r for r in results if r["baseline"] == "direct"), None)
    if gateway:
        added = gateway["p50_ms"] - ours["p50_ms"]
        kept = gateway["rps"] / ours["rps"]
        lines.append(
            f"gateway p50 added over the direct predictor: {added:.3f} ms "
            f"(goal <= {GOALS['gateway_added_p50_ms']} ms: "
            f"{verdict(added <= GOALS['gateway_added_p50_ms'])})"
        )
        lines.append(
            f"gateway / direct predictor req/s: {kept:.2f} "
            f"(goal >= {GOALS['gateway_rps_share']}: "
            f"{verdict(kept >= GOALS['gateway_rps_share'])})"
        )
    checks = [
        ("p99_at_1000_ms", "p99 at 1,000 req/s", "ms", "<="),
        ("batch_10k_ms", "10,000-row request", "ms", "<="),
        ("ready_s", "start to ready", "s", "<="),
        ("peak_rss_mb", "peak RSS", "MB", "<="),
    ]
    for key, label, unit, _ in checks:
        goal = GOALS["rss_mb" if key == "peak_rss_mb" else key]
        value = ours[key]
        lines.append(
            f"riskserve {label}: {value} {unit} (goal <= {goal:g} {unit}: "
            f"{verdict(value is not None and value <= goal)})"
        )
    return lines


def source_targets(sources: list[str], workdir: Path) -> list[Target]:
    """`NAME=DIR` (or `DIR`, named after its folder): this predictor from checkout DIR,
    checked to import its own `riskserve.serving` (bench/checkout.py says why)."""
    targets = []
    for spec in sources:
        name, _, folder = spec.rpartition("=")
        source = Path(folder).resolve()
        name = name or f"riskserve@{source.name}"
        root = checkout.importable(source, workdir)
        imported = checkout.check(root)
        if not imported.is_relative_to(source):
            raise SystemExit(
                f"--source {spec}: riskserve.serving imports from {imported}, "
                f"not from {source}"
            )
        print(f"{name}: riskserve.serving from {imported.parent}")
        targets.append(predictor_from(name, root, checkout.environment(root)))
    return targets


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per run")
    parser.add_argument(
        "--model-dir",
        help="a fraud ONNX model (default: a contract model built for the run)",
    )
    parser.add_argument("--only", nargs="*", help="target names to run")
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="measure every target N times, interleaved",
    )
    parser.add_argument(
        "--source",
        action="append",
        default=[],
        metavar="NAME=DIR",
        help="also measure the predictor of checkout DIR, as target NAME "
        "(default riskserve@<folder>)",
    )
    args = parser.parse_args(argv)

    workdir = Path(tempfile.mkdtemp(prefix="riskserve-bench-"))
    model_dir = fraud_model_dir(workdir, args.model_dir)
    bodies = {"single": workdir / "single.json", "batch": workdir / "batch.json"}
    bodies["single"].write_bytes(request_body(1))
    bodies["batch"].write_bytes(request_body(10_000))
    print(
        f"cores: {os.cpu_count()}; model: {model_dir}; "
        f"{args.duration:g} s per run; {args.rounds} round(s); logs in {workdir}"
    )
    # Other checkouts' predictors run right after this one, so that the pairs compared
    # are measured close in time.
    targets = list(TARGETS)
    at = next((i + 1 for i, t in enumerate(targets) if t.name == "riskserve"), 0)
    targets[at:at] = source_targets(args.source, workdir)
    if args.only:
        targets = [t for t in targets if t.name in args.only]
    rounds: list[list[dict]] = []
    for round_ in range(args.rounds):
        order = targets if round_ % 2 == 0 else targets[::-1]
        results = []
        for target in order:
            label = f" (round {round_ + 1})" if args.rounds > 1 else ""
            print(f".. {target.name}{label}: {target.description}", flush=True)
            result = measure(target, model_dir, workdir, args.duration, bodies)
            if target.cwd is not None:
                result["baseline"] = "predictor"
            results.append(result)
        rounds.append(results)
    combined = [
        combine([r for results in rounds for r in results if r["target"] == t.name])
        for t in targets
    ]
    print()
    print_table(combined)
    print()
    for line in summarize(combined, floor_ratios(rounds)):
        print(line)
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    out = RESULTS_DIR / f"bench-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.write_text(json.dumps({"combined": combined, "rounds": rounds}, indent=2))
    print(f"\nresults: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
