"""What the user sees while a job runs: each stage with the time it started."""

from __future__ import annotations

import sys
import time


class Progress:
    def __init__(self, job: str) -> None:
        self.job = job
        self.started = time.monotonic()

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def stage(self, message: str) -> None:
        print(f"[{self.job} {self.elapsed():6.1f}s] {message}", flush=True)

    def detail(self, message: str) -> None:
        print(f"[{self.job} {self.elapsed():6.1f}s] {message}", flush=True)


def fail(job: str, message: str, code: int) -> int:
    """One line on stderr saying why, and the exit code to return."""
    print(f"riskserve train {job}: error: {message}", file=sys.stderr, flush=True)
    return code
