"""A light HTTP/1.1 load generator: raw asyncio sockets, keep-alive, pre-encoded requests.

Run as its own process so it does not share the server's interpreter:

    python -m bench.loadgen --port 8080 --path /v2/models/fraud/infer --body-file req.json \
        --connections 8 --duration 5 [--rate 1000] [--requests N]

Closed loop (no --rate): each connection sends its next request when the previous
answer arrives: the server's throughput. Open loop (--rate R): requests are scheduled
at R per second over the connections; a request delayed by a slow previous answer counts
from its scheduled time, so a stalled server shows up in the tail (no coordinated
omission). Prints one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time

import numpy as np


def encode_request(
    host: str, port: int, path: str, body: bytes, headers: list[str] = ()
) -> bytes:
    """`headers`: extra "Name: value" lines (e.g. the binary extension's header)."""
    extra = "".join(f"{line}\r\n" for line in headers)
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\n"
        "Content-Type: application/json\r\n"
        f"{extra}Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


async def _read_response(reader: asyncio.StreamReader) -> int:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    lower = head.lower()
    at = lower.find(b"content-length:")
    if at >= 0:
        end = lower.find(b"\r\n", at)
        length = int(lower[at + 15 : end])
    if length:
        await reader.readexactly(length)
    return status


async def _connection(
    host: str,
    port: int,
    request: bytes,
    stop_at: float,
    latencies: list[int],
    statuses: dict[int, int],
    schedule: list[float] | None,
    budget: list[int] | None,
) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    perf = time.perf_counter
    try:
        if schedule is None:
            while perf() < stop_at:
                if budget is not None:
                    if budget[0] <= 0:
                        break
                    budget[0] -= 1
                started = perf()
                writer.write(request)
                status = await _read_response(reader)
                latencies.append(int((perf() - started) * 1e9))
                statuses[status] = statuses.get(status, 0) + 1
        else:
            previous_done = 0.0
            for scheduled in schedule:
                delay = scheduled - perf()
                if delay > 0:
                    await asyncio.sleep(delay)
                sent = perf()
                writer.write(request)
                status = await _read_response(reader)
                done = perf()
                # A request held back by the previous answer counts from its scheduled
                # time (no coordinated omission); one only woken late by the event
                # loop's millisecond timers counts from its actual send.
                start = scheduled if previous_done > scheduled else sent
                latencies.append(int((done - start) * 1e9))
                previous_done = done
                statuses[status] = statuses.get(status, 0) + 1
    finally:
        writer.close()


async def run(
    host: str,
    port: int,
    path: str,
    body: bytes,
    connections: int,
    duration: float,
    warmup: float,
    rate: float | None,
    requests: int | None,
    headers: list[str] = (),
) -> dict[str, object]:
    request = encode_request(host, port, path, body, headers)
    if warmup > 0:
        await asyncio.gather(
            *(
                _connection(
                    host,
                    port,
                    request,
                    time.perf_counter() + warmup,
                    [],
                    {},
                    None,
                    None,
                )
                for _ in range(connections)
            )
        )
    latencies: list[int] = []
    statuses: dict[int, int] = {}
    started = time.perf_counter()
    budget = [requests] if requests is not None else None
    stop_at = started + (duration if requests is None else 3600)
    schedules: list[list[float] | None] = [None] * connections
    if rate is not None:
        total = int(rate * duration)
        times = [started + 0.01 + i / rate for i in range(total)]
        schedules = [times[k::connections] for k in range(connections)]
    await asyncio.gather(
        *(
            _connection(
                host, port, request, stop_at, latencies, statuses, schedules[k], budget
            )
            for k in range(connections)
        )
    )
    elapsed = time.perf_counter() - started
    array = np.asarray(latencies, dtype=np.float64) / 1e6
    return {
        "requests": len(latencies),
        "seconds": round(elapsed, 3),
        "rps": round(len(latencies) / elapsed, 1) if elapsed else 0.0,
        "p50_ms": round(float(np.percentile(array, 50)), 3) if len(array) else None,
        "p99_ms": round(float(np.percentile(array, 99)), 3) if len(array) else None,
        "max_ms": round(float(array.max()), 3) if len(array) else None,
        "statuses": {str(k): v for k, v in statuses.items()},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--path", required=True)
    parser.add_argument("--body-file", required=True)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--rate", type=float, default=None)
    parser.add_argument("--requests", type=int, default=None)
    parser.add_argument(
        "--header", action="append", default=[], help='extra "Name: value" header'
    )
    args = parser.parse_args(argv)
    with open(args.body_file, "rb") as handle:
        body = handle.read()
    try:
        import uvloop

        runner = uvloop.run
    except ImportError:
        runner = asyncio.run
    result = runner(
        run(
            args.host,
            args.port,
            args.path,
            body,
            args.connections,
            args.duration,
            args.warmup,
            args.rate,
            args.requests,
            args.header,
        )
    )
    json.dump(result, sys.stdout)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
