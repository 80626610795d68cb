"""Shadow arms: after a request is answered, a copy of its model inputs goes to each
shadow arm's predictor, that arm's policy decides, and the decision is written to
the inference log as a record marked `"shadow": true` (same `request_id`); it never
reaches the client (docs/experiments.md).

Off the request path: `submit` only puts the copy on a bounded queue (a full queue
drops it, counted), and one task on the loop sends the copies one by one, so the
shadow predictor's latency or failures never touch an answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
from prometheus_client import Counter
from riskserve.serving.inference_log import InferenceLog
from riskserve.serving.tensors import OutputTensor
from riskserve.transformer.decisions import Decision
from riskserve.transformer.experiment import Arm
from riskserve.transformer.inference_log import Assignment, transformer_record

log = logging.getLogger("transformer")

SHADOW_DROPPED = Counter(
    "riskserve_transformer_shadow_dropped",
    "Request copies not sent to the shadow arms: the shadow queue was full.",
)
SHADOW_DECISIONS = Counter(
    "riskserve_transformer_shadow_decisions",
    "Rows a shadow arm decided (recorded in the inference log, never returned).",
    ["arm"],
)
SHADOW_FAILURES = Counter(
    "riskserve_transformer_shadow_failures",
    "Request copies a shadow arm could not decide (its predictor failed or its "
    "policy could not apply); nothing is recorded for them.",
    ["arm"],
)


@dataclass(frozen=True, slots=True)
class ShadowCopy:
    """What a shadow arm needs of an answered request."""

    request_id: str
    model_inputs: dict[str, np.ndarray]
    used: list[OutputTensor]
    events: list[Any]
    raw_inputs: dict[str, list]


class ShadowSender:
    """The bounded queue of answered requests' copies and the task that sends them to
    every shadow arm (module docstring)."""

    def __init__(
        self,
        model_name: str,
        experiment_name: str,
        arms: list[Arm],
        decision: Decision,
        inference_log: InferenceLog,
        max_pending: int,
    ) -> None:
        self.model_name = model_name  # the transformer's: its log folder
        self.experiment_name = experiment_name
        self.arms = arms
        self.decision = decision
        self.inference_log = inference_log
        self.queue: asyncio.Queue[ShadowCopy] = asyncio.Queue(max_pending)
        self._task: asyncio.Task[None] | None = None

    def submit(self, copy: ShadowCopy) -> None:
        """Queue a copy (after the answer has left); never blocks, never raises."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())
        try:
            self.queue.put_nowait(copy)
        except asyncio.QueueFull:
            SHADOW_DROPPED.inc()

    async def _run(self) -> None:
        while True:
            copy = await self.queue.get()
            try:
                for arm in self.arms:
                    await self._send(arm, copy)
            finally:
                self.queue.task_done()

    async def _send(self, arm: Arm, copy: ShadowCopy) -> None:
        started = time.perf_counter()
        rows = len(copy.events)
        assert arm.pool is not None  # bound at start (Experiment.bind)
        try:
            answer = await self.decision.infer(
                arm.pool, arm.predictor, copy.model_inputs, copy.request_id
            )
            outputs = list(answer.outputs)
            if arm.applied is not None:
                outputs += arm.applied.outputs(outputs, copy.used, copy.events)
        except Exception as exc:  # PredictorError or a policy's: never the answer's
            SHADOW_FAILURES.labels(arm.name).inc()
            log.warning(
                "shadow arm failed",
                extra={
                    "arm": arm.name,
                    "request_id": copy.request_id,
                    "error": getattr(exc, "message", None) or repr(exc)[:300],
                },
            )
            return
        self.inference_log.submit(
            transformer_record(
                request_id=copy.request_id,
                model_name=self.model_name,
                model_version=answer.model_version or "",
                raw_inputs=copy.raw_inputs,
                model_inputs=copy.model_inputs,
                outputs=outputs,
                features=[u for u in copy.used if u.name not in copy.model_inputs],
                latency_seconds=time.perf_counter() - started,
                assignment=Assignment(
                    self.experiment_name, [arm.name] * rows, shadow=True
                ),
            )
        )
        SHADOW_DECISIONS.labels(arm.name).inc(rows)

    async def drain(self, seconds: float) -> None:
        """At shutdown: the queued copies, for at most `seconds`; then the task ends."""
        if self._task is None:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.queue.join(), seconds)
        left = self.queue.qsize()
        if left:
            SHADOW_DROPPED.inc(left)
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
