"""What the inference log's durability costs on the hot path.

One predictor process per variant, side by side in one run: the inference log off, on
(each record written to the spool before its answer: survives SIGKILL), and on with
`fsync=interval` (also bounds a power loss to the interval). Each gets closed-loop
single-row JSON requests over 8 keep-alive connections (bench.loadgen), then a fixed
1,000 req/s; printed as req/s, p50 and p99, and the server's CPU time per request of
the closed loop (from /proc: on a shared machine the steadier figure). The log folder is on the system's
temporary folder (set TMPDIR to measure another disk).

"logged" also counts the warm-up requests, which "answered" does not.

`--source DIR` adds the same variants run from another checkout (e.g. the commit
before the durable log, whose log queued records for a background thread), imported
as that checkout's `riskserve.serving` through bench/checkout.py:
    git worktree add --detach /tmp/before HEAD~3
    python -m bench.inference_log_durability --source /tmp/before
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from riskserve.localplatform.processes import ManagedProcess, free_port, http_ok

from bench import checkout
from bench.runner import REPO_ROOT, fraud_model_dir, loadgen, request_body

VARIANTS: dict[str, dict[str, str]] = {
    "log off": {},
    "log on": {"RISKSERVE_SERVING_INFERENCE_LOG_FSYNC": "never"},
    "log on, fsync 1 s": {
        "RISKSERVE_SERVING_INFERENCE_LOG_FSYNC": "interval",
        "RISKSERVE_SERVING_INFERENCE_LOG_FSYNC_SECONDS": "1",
    },
}


def cpu_seconds(pid: int) -> float:
    """User + system CPU of one process (and its finished threads), from /proc: what a
    request costs the server, which a shared machine's noise barely moves."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(
    source: Path,
    variant: str,
    model_dir: Path,
    workdir: Path,
    body_file: Path,
    seconds: float,
    round_: int,
) -> dict:
    port = free_port()
    log_dir = workdir / f"log-{round_}-{abs(hash((str(source), variant)))}"
    env = {
        k: v for k, v in os.environ.items() if not k.startswith("RISKSERVE_SERVING_")
    }
    # This checkout runs as installed; another through a link tree of its own rooms
    # (PYTHONPATH alone would import this checkout's riskserve.serving).
    root = source if source == REPO_ROOT else checkout.importable(source, workdir)
    if source != REPO_ROOT:
        env |= checkout.environment(root)
    env |= VARIANTS[variant]
    if variant != "log off":
        env["RISKSERVE_SERVING_INFERENCE_LOG_URI"] = str(log_dir)
    process = ManagedProcess(
        name=f"predictor {variant}",
        argv=[
            sys.executable,
            "-m",
            "riskserve.serving",
            "--model_name",
            "fraud",
            "--model_dir",
            str(model_dir),
            "--http_port",
            str(port),
            "--enable_grpc",
            "false",
        ],
        log_path=workdir / f"{log_dir.name}.log",
        env=env,
        cwd=root,
    ).start()
    try:
        deadline = time.monotonic() + 60
        while not http_ok(f"http://127.0.0.1:{port}/v2/health/ready"):
            if not process.alive() or time.monotonic() > deadline:
                raise RuntimeError(f"{variant} did not start:\n{process.log_tail()}")
            time.sleep(0.05)
        path = "/v2/models/fraud/infer"
        cpu_before = cpu_seconds(process.pid)
        closed = loadgen(port, path, body_file, duration=seconds, warmup=0)
        cpu = cpu_seconds(process.pid) - cpu_before
        fixed = loadgen(port, path, body_file, duration=seconds, rate=1000)
    finally:
        process.stop()
    logged = sum(len(p.read_bytes().splitlines()) for p in log_dir.rglob("*.jsonl"))
    answered = closed["statuses"].get("200", 0) + fixed["statuses"].get("200", 0)
    return {
        "source": str(source),
        "variant": variant,
        "rps": closed["rps"],
        "p50_ms": closed["p50_ms"],
        "p99_ms": closed["p99_ms"],
        "cpu_us_per_request": round(1e6 * cpu / max(1, closed["requests"]), 1),
        "p50_at_1000_ms": fixed["p50_ms"],
        "p99_at_1000_ms": fixed["p99_ms"],
        "answered": answered,
        "logged": logged,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--source", action="append", type=Path, default=[])
    parser.add_argument("--model-dir", default=None)
    parser.add_argument("--rounds", type=int, default=1, help="repeat, interleaved")
    args = parser.parse_args(argv)
    sources = [REPO_ROOT, *(s.resolve() for s in args.source)]
    with tempfile.TemporaryDirectory(prefix="bench-inference-log-") as tmp:
        workdir = Path(tmp)
        model_dir = fraud_model_dir(workdir, args.model_dir)
        body_file = workdir / "single.json"
        body_file.write_bytes(request_body(1))
        results = []
        for round_ in range(args.rounds):
            for source in sources:
                for variant in VARIANTS:
                    if source != REPO_ROOT and "fsync" in variant:
                        continue  # no such setting before
                    results.append(
                        measure(
                            source,
                            variant,
                            model_dir,
                            workdir,
                            body_file,
                            args.seconds,
                            round_,
                        )
                    )
    print(
        f"{'source':<24} {'variant':<18} {'req/s':>8} {'p50 ms':>7} {'p99 ms':>7} "
        f"{'cpu us':>7} {'p50@1k':>7} {'p99@1k':>7} {'answered':>9} {'logged':>8}"
    )
    for r in results:
        source = "this checkout" if r["source"] == str(REPO_ROOT) else r["source"]
        print(
            f"{source[-24:]:<24} {r['variant']:<18} {r['rps']:>8.0f} "
            f"{r['p50_ms']:>7.3f} {r['p99_ms']:>7.3f} {r['cpu_us_per_request']:>7.1f} "
            f"{r['p50_at_1000_ms']:>7.3f} "
            f"{r['p99_at_1000_ms']:>7.3f} {r['answered']:>9} {r['logged']:>8}"
        )
    if args.rounds > 1:
        print("median over the rounds:")
        for source in dict.fromkeys(r["source"] for r in results):
            for variant in VARIANTS:
                rows = [
                    r
                    for r in results
                    if r["source"] == source and r["variant"] == variant
                ]
                if not rows:
                    continue
                name = "this checkout" if source == str(REPO_ROOT) else source
                figures = "  ".join(
                    f"{key} {statistics.median(r[key] for r in rows):.3f}"
                    for key in (
                        "rps",
                        "p50_ms",
                        "p99_ms",
                        "cpu_us_per_request",
                        "p99_at_1000_ms",
                    )
                )
                print(f"  {name[-24:]:<24} {variant:<18} {figures}")
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
