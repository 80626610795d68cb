"""The gateway's hop to a revision: the shared keep-alive client
(`serving/keepalive_client.py`) with the gateway's defaults.

`UpstreamError.connect_failed` is True when no connection could be made, so the
request was provably not processed; `timed_out` when it was sent but not answered in
time. The gateway retries inference on another revision either way (it is a pure
function of its input), except behind a transformer, which pushes state.
"""

from __future__ import annotations

from riskserve.serving.keepalive_client import Headers, KeepAliveError, KeepAlivePool

UpstreamError = KeepAliveError


class UpstreamPool(KeepAlivePool):
    """Idle keep-alive connections to one revision (a predictor or a transformer)."""

    def __init__(self, host: str, port: int, max_idle: int = 64) -> None:
        super().__init__(host, port, max_idle=max_idle, connect_timeout=2.0)

    async def request(
        self,
        method: str,
        target: str,
        headers: Headers,
        body: bytes,
        timeout: float = 30.0,
    ) -> tuple[int, Headers, bytes]:
        return await super().request(method, target, headers, body, timeout)
