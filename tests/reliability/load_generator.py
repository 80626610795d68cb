"""A steady, bounded, open-loop HTTP load, run as its own process.

The soak measures latency from each request's scheduled send time, so any pause of the
process that sends (a garbage collection over the test runner's heap after ten minutes
of tests, its other threads holding the GIL) would be charged to the servers. Run
alone, with the standard library only, the generator's own pauses stay small and equal
from the first window to the last.

    python load_generator.py < config.json > samples.json

config: {"port", "path", "bodies" (strings), "rate", "seconds", "connections",
"headers" (object), "timeout"}; out: [[offset, latency, status, revision, lag], ...].
"""

from __future__ import annotations

import asyncio
import gc
import json
import sys
import time
from dataclasses import dataclass


@dataclass
class Sample:
    offset: float
    """Scheduled send time, seconds from the start."""
    latency: float
    """Seconds from the scheduled send (or the actual send, when the event loop woke
    late) to the whole answer."""
    status: int
    """HTTP status, or 0 when the connection failed or timed out."""
    revision: str | None
    lag: float = 0.0
    """Seconds the request went out after its scheduled time for want of CPU (0 when it
    waited for the answer before it on its connection): the host's noise, not the
    servers'."""


class OpenLoop:
    """`rate` req/s over `connections` keep-alive connections to one loopback server.
    Bounded twice: `rate * seconds` requests at most, and nothing sent after `seconds`."""

    def __init__(self, config: dict) -> None:
        self.port, self.path = int(config["port"]), config["path"]
        self.rate, self.seconds = float(config["rate"]), float(config["seconds"])
        self.connections = int(config.get("connections", 8))
        self.timeout = float(config.get("timeout", 10.0))
        extra = "".join(f"{k}: {v}\r\n" for k, v in config.get("headers", {}).items())
        self.requests = [
            (
                f"POST {self.path} HTTP/1.1\r\nhost: 127.0.0.1:{self.port}\r\n"
                f"content-type: application/json\r\n{extra}"
                f"content-length: {len(body.encode())}\r\n\r\n{body}"
            ).encode()
            for body in config["bodies"]
        ]
        self.samples: list[Sample] = []
        self.started = 0.0

    async def run(self) -> None:
        total = int(self.rate * self.seconds)
        self.started = time.perf_counter() + 0.05
        times = [self.started + i / self.rate for i in range(total)]
        await asyncio.gather(
            *(
                self._connection(times[k :: self.connections], k)
                for k in range(self.connections)
            )
        )

    async def _connection(self, schedule: list[float], index: int) -> None:
        perf = time.perf_counter
        stop_at = self.started + self.seconds
        stream = None
        previous_done = 0.0
        for n, scheduled in enumerate(schedule):
            if perf() > stop_at:
                break
            delay = scheduled - perf()
            if delay > 0:
                await asyncio.sleep(delay)
            request = self.requests[(index + n * self.connections) % len(self.requests)]
            sent = perf()
            status, revision = 0, None
            try:
                if stream is None:
                    stream = await asyncio.wait_for(
                        asyncio.open_connection("127.0.0.1", self.port), 2.0
                    )
                reader, writer = stream
                writer.write(request)
                status, revision, keep = await asyncio.wait_for(
                    read_answer(reader), self.timeout
                )
                if not keep:
                    writer.close()
                    stream = None
            except (OSError, TimeoutError, asyncio.IncompleteReadError, ValueError):
                if stream is not None:
                    stream[1].close()
                stream = None
            done = perf()
            start = scheduled if previous_done > scheduled else sent
            lag = max(sent - scheduled, 0.0) if previous_done <= scheduled else 0.0
            previous_done = done
            self.samples.append(
                Sample(scheduled - self.started, done - start, status, revision, lag)
            )
        if stream is not None:
            stream[1].close()


async def read_answer(reader: asyncio.StreamReader) -> tuple[int, str | None, bool]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split(b" ", 2)[1])
    length, revision, keep, chunked = 0, None, True, False
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"transfer-encoding":
            chunked = b"chunked" in value.lower()
        elif name == b"x-riskserve-revision":
            revision = value.strip().decode()
        elif name == b"connection":
            keep = value.strip().lower() != b"close"
    if chunked:
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            await reader.readexactly(size + 2)
            if size == 0:
                break
    elif length:
        await reader.readexactly(length)
    return status, revision, keep


def main() -> None:
    load = OpenLoop(json.load(sys.stdin))
    gc.freeze()  # what exists now is never collected again: no pause over it
    asyncio.run(load.run())
    json.dump(
        [[s.offset, s.latency, s.status, s.revision, s.lag] for s in load.samples],
        sys.stdout,
    )


if __name__ == "__main__":
    main()
