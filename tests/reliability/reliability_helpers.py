"""What the reliability tests share: the pass sizes, the ledger of figures printed at
the end, a bounded steady-load generator, process memory from /proc, and the platform
helpers of tests/localplatform."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from tests.localplatform.platform_helpers import fraud_request
from tests.reliability.load_generator import Sample

REPO_ROOT = Path(__file__).resolve().parents[2]
LOAD_GENERATOR = Path(__file__).with_name("load_generator.py")
SPEC_DIR = REPO_ROOT / "third_party" / "kserve" / "open-inference-protocol"


# -- the two passes --------------------------------------------------------------------
@dataclass(frozen=True)
class Budget:
    full: bool
    fuzz_examples: int
    """Hypothesis examples per fuzzed target (REST, gRPC, gateway)."""
    soak_seconds: float
    soak_window_seconds: float
    """p99 of the first and of the last window are compared (a minute in the full pass,
    a quarter of the run in the fast one)."""
    soak_rate: float
    """Requests per second the soak offers (open loop, bounded)."""
    slow_client_seconds: float

    @classmethod
    def fast_pass(cls) -> Budget:
        return cls(False, 150, 20.0, 5.0, 150.0, 3.0)

    @classmethod
    def full_pass(cls) -> Budget:
        return cls(True, 1500, 300.0, 60.0, 150.0, 10.0)


# -- the ledger --------------------------------------------------------------------------
@dataclass
class LoadFigures:
    name: str
    requests: int
    seconds: float
    errors: int
    p99_first_ms: float
    p99_last_ms: float


@dataclass
class Ledger:
    fuzzed: Counter = field(default_factory=Counter)
    loads: list[LoadFigures] = field(default_factory=list)
    faults: dict[str, bool] = field(default_factory=dict)
    fault_notes: dict[str, str] = field(default_factory=dict)
    records: list[tuple[str, int, int, int]] = field(default_factory=list)
    """(what, answered requests, logged records, counted as dropped)"""
    attacks: dict[str, str] = field(default_factory=dict)
    """Attacks on the control plane, each with what the attacker got."""

    def fuzz(self, target: str, cases: int = 1) -> None:
        self.fuzzed[target] += cases

    def load(self, figures: LoadFigures) -> None:
        self.loads.append(figures)

    def fault_outcome(self, test_name: str, survived: bool) -> None:
        self.faults[test_name] = survived

    def fault_note(self, test_name: str, what_the_user_saw: str) -> None:
        self.fault_notes[test_name] = what_the_user_saw

    def record_count(self, what: str, answered: int, logged: int, dropped: int) -> None:
        self.records.append((what, answered, logged, dropped))

    def attack(self, what: str, outcome: str) -> None:
        self.attacks[what] = outcome

    def empty(self) -> bool:
        return not (
            self.fuzzed or self.loads or self.faults or self.records or self.attacks
        )


def print_ledger(ledger: Ledger, write: Callable[[str], None], full: bool) -> None:
    if ledger.empty():
        return
    rows: list[tuple[str, str]] = []
    total = sum(ledger.fuzzed.values())
    detail = ", ".join(f"{k} {v}" for k, v in sorted(ledger.fuzzed.items()))
    rows.append(("cases fuzzed", f"{total} ({detail})" if total else "0"))
    for load in ledger.loads:
        rows.append(
            (
                f"load held: {load.name}",
                f"{load.requests} requests in {load.seconds:.0f} s, "
                f"{load.errors} errors, p99 {load.p99_first_ms:.1f} ms first window, "
                f"{load.p99_last_ms:.1f} ms last",
            )
        )
    survived = sum(ledger.faults.values())
    rows.append(("faults survived", f"{survived} of {len(ledger.faults)}"))
    for name, ok in ledger.faults.items():
        note = ledger.fault_notes.get(name, "")
        rows.append((f"  {'ok' if ok else 'FAILED'}", f"{name}: {note}".strip(": ")))
    if ledger.attacks:
        rows.append(("attacks refused", str(len(ledger.attacks))))
        for what, outcome in ledger.attacks.items():
            rows.append((f"  {what}", outcome))
    lost_total = 0
    for what, answered, logged, dropped in ledger.records:
        lost = answered - logged - dropped
        lost_total += max(lost, 0)
        rows.append(
            (
                f"records: {what}",
                f"{answered} answered, {logged} logged, {dropped} counted as "
                f"dropped or failed, {lost} lost",
            )
        )
    rows.append(("records lost", str(lost_total)))
    width = max(len(label) for label, _ in rows)
    title = "full" if full else "fast"
    write("")
    write(f"==== reliability ({title} pass) " + "=" * 40)
    for label, value in rows:
        write(f"{label.ljust(width)} | {value}")


# -- processes -------------------------------------------------------------------------
def rss_kb(pid: int) -> int:
    """Resident memory of one process, from /proc (kB)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmRSS for pid {pid}")


def p99(latencies: list[float]) -> float:
    if not latencies:
        return math.nan
    ordered = sorted(latencies)
    return ordered[min(len(ordered) - 1, math.ceil(0.99 * len(ordered)) - 1)]


# -- a steady, bounded load -------------------------------------------------------------
class SteadyLoad:
    """Open-loop load at `rate` req/s over `connections` keep-alive connections to one
    loopback HTTP server, sent by its own process (load_generator.py) so that nothing
    the test runner does is charged to the servers. Bounded twice: `rate * seconds`
    requests at most, and nothing is sent after `seconds`."""

    def __init__(
        self,
        port: int,
        path: str,
        bodies: list[bytes],
        rate: float,
        seconds: float,
        connections: int = 8,
        headers: dict[str, str] | None = None,
        timeout: float = 10.0,
    ) -> None:
        self.config = {
            "port": port,
            "path": path,
            "bodies": [b.decode() for b in bodies],
            "rate": rate,
            "seconds": seconds,
            "connections": connections,
            "headers": headers or {},
            "timeout": timeout,
        }
        self.seconds, self.timeout = seconds, timeout
        self.samples: list[Sample] = []
        self._process: subprocess.Popen | None = None

    def start(self) -> SteadyLoad:
        self._process = subprocess.Popen(
            [sys.executable, str(LOAD_GENERATOR)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        stdin, self._process.stdin = self._process.stdin, None  # written once, here
        stdin.write(json.dumps(self.config).encode())
        stdin.close()
        return self

    def join(self) -> list[Sample]:
        process = self._process
        assert process is not None, "start() first"
        try:
            out, err = process.communicate(timeout=self.seconds + self.timeout + 30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()
            raise AssertionError("the load generator did not stop") from None
        assert process.returncode == 0, f"the load generator failed: {err.decode()}"
        self.samples = [Sample(*row) for row in json.loads(out)]
        return self.samples


def fraud_bodies(count: int = 64) -> list[bytes]:
    return [json.dumps(fraud_request(1)).encode() for _ in range(count)]


def window_p99(
    samples: list[Sample], start: float, end: float, parts: int = 5
) -> float:
    """p99 of the answered requests sent in [start, end), as the median of the p99s of
    `parts` equal slices: a sustained drift moves it, one burst of scheduler noise on a
    shared machine (a second of another job's build) does not."""
    step = (end - start) / parts
    slices = []
    for k in range(parts):
        low, high = start + k * step, start + (k + 1) * step
        latencies = [
            s.latency for s in samples if s.status == 200 and low <= s.offset < high
        ]
        if latencies:
            slices.append(p99(latencies))
    slices.sort()
    return slices[len(slices) // 2] if slices else math.nan


def window_lag(samples: list[Sample], start: float, end: float) -> float:
    """p99 of how late the generator sent in [start, end): the host's own noise."""
    return p99([s.lag for s in samples if start <= s.offset < end])


def answered_in(samples: list[Sample], start: float, end: float) -> int:
    return sum(1 for s in samples if s.status == 200 and start <= s.offset < end)
