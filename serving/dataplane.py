"""The data plane: the one object REST and gRPC both call.

It owns the model, auth, metrics, error logging and the inference log, so that the
transports only translate their wire format into `InputTensor`s and back.
"""

from __future__ import annotations

import asyncio
import hmac
import itertools
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypedDict, TypeVar

from riskserve.serving.errors import (
    ModelNotFound,
    NotReady,
    ServingError,
    Unauthorized,
    bounded,
)
from riskserve.serving.inference_log import InferenceLog, InferenceRecord
from riskserve.serving.metrics import LATENCY, REQUESTS, ROWS, SCORES
from riskserve.serving.model import ModelMetadata, OnnxRiskModel
from riskserve.serving.tensors import InputTensor, OutputTensor

log = logging.getLogger("riskserve.serving.dataplane")
T = TypeVar("T")

_ID_PREFIX = os.urandom(6).hex()
_ID_COUNTER = itertools.count(1)


def new_request_id() -> str:
    """A request id unique across restarts and replicas: a random per-process prefix
    and a counter (a uuid4 per request costs more than the rest of the bookkeeping)."""
    return f"{_ID_PREFIX}-{next(_ID_COUNTER)}"


SERVER_NAME = "riskserve"
SERVER_VERSION = "0.1.0"


class ServerMetadata(TypedDict):
    """The v2 server metadata response (REST body; the gRPC message's fields)."""

    name: str
    version: str
    extensions: list[str]


@dataclass(slots=True)
class InferRequest:
    """One inference request, whatever transport it came by."""

    model_name: str
    model_version: str | None
    inputs: list[InputTensor]
    requested_outputs: list[str] | None = None
    id: str | None = None
    parameters: dict[str, object] = field(default_factory=dict)
    # For metrics and the inference log: "rest" or "grpc", and when it arrived.
    protocol: str = "rest"
    received: float = field(default_factory=time.perf_counter)

    @property
    def rows(self) -> int:
        shape = self.inputs[0].shape if self.inputs else ()
        return shape[0] if shape else 1


@dataclass(slots=True)
class InferResult:
    model_name: str
    model_version: str
    request_id: str
    outputs: list[OutputTensor]


class DataPlane:
    def __init__(
        self,
        model: OnnxRiskModel,
        api_key: str | None = None,
        inference_log: InferenceLog | None = None,
        inline_max_rows: int = 256,
    ) -> None:
        self.model = model
        self.inline_max_rows = inline_max_rows
        self._api_key = api_key.encode() if api_key else None
        self.inference_log = inference_log
        self._bound: dict[str, tuple] = {}
        self.load_error: str | None = None

    # -- health and metadata -------------------------------------------------------
    @property
    def auth_enabled(self) -> bool:
        return self._api_key is not None

    def live(self) -> bool:
        return True

    def ready(self) -> bool:
        return self.model.ready

    def authorize(self, authorization: str | None, api_key: str | None) -> None:
        """Raise `Unauthorized` unless a configured key came as Bearer or x-api-key."""
        if self._api_key is None:
            return
        presented = api_key
        if presented is None and authorization:
            scheme, _, credentials = authorization.partition(" ")
            if scheme.lower() == "bearer":
                presented = credentials.strip()
        if presented is None or not hmac.compare_digest(
            presented.encode(), self._api_key
        ):
            raise Unauthorized(
                "missing or invalid API key: send 'Authorization: Bearer <key>' "
                "or 'x-api-key: <key>'"
            )

    def server_metadata(self) -> ServerMetadata:
        return {"name": SERVER_NAME, "version": SERVER_VERSION, "extensions": []}

    def get_model(self, name: str, version: str | None = None) -> OnnxRiskModel:
        model = self.model
        if name != model.name:
            raise ModelNotFound(
                f"model {name!r} not found; this server serves {model.name!r}"
            )
        if not model.ready:
            raise NotReady(f"model {name!r} is not ready")
        if version is not None and version != model.version:
            raise ModelNotFound(
                f"model {name!r} has no version {version!r}; it serves version "
                f"{model.version!r}"
            )
        return model

    def model_ready(self, name: str, version: str | None = None) -> bool:
        try:
            self.get_model(name, version)
        except NotReady:
            return False
        return True

    def model_metadata(self, name: str, version: str | None = None) -> ModelMetadata:
        return self.get_model(name, version).metadata()

    # -- inference -------------------------------------------------------------------
    async def run(self, rows: int, function: Callable[..., T], *args: object) -> T:
        """Where a request's work runs, for every transport: on the event loop when
        it is a few rows (a thread hop costs more than they take), on a worker thread
        otherwise, so that health probes and small requests are answered while a big
        batch is decoded, scored (onnxruntime releases the GIL) and encoded."""
        if self.runs_inline(rows):
            return function(*args)
        return await asyncio.get_running_loop().run_in_executor(None, function, *args)

    def runs_inline(self, rows: int) -> bool:
        """`run`'s rule, for a transport that calls a small request's work itself
        (REST's hot path: no coroutine to create and await)."""
        return rows <= self.inline_max_rows

    async def infer(self, request: InferRequest) -> InferResult:
        return await self.run(request.rows, self.infer_now, request)

    def infer_now(self, request: InferRequest) -> InferResult:
        protocol = request.protocol
        model = self.get_model(request.model_name, request.model_version)
        outputs, rows = model.predict(request.inputs, request.requested_outputs)
        request_id = request.id or new_request_id()
        bound = self._bound.get(protocol)
        if bound is None or bound[0] != model.version:
            bound = self._bind(model, protocol)
        _, ok, latency, rows_counter = bound
        ok.inc()
        rows_counter.inc(rows)
        elapsed = time.perf_counter() - request.received
        latency.observe(elapsed)
        score = model.score_output
        if score is not None:
            for tensor in outputs:
                if tensor.name == score:
                    SCORES.observe(model.name, model.version, score, tensor.array)
                    break
        if self.inference_log is not None:
            self.inference_log.submit(
                InferenceRecord(
                    time.time(),
                    request_id,
                    model.name,
                    model.version,
                    request.inputs,
                    outputs,
                    elapsed,
                    protocol,
                )
            )
        return InferResult(model.name, model.version, request_id, outputs)

    def _bind(self, model: OnnxRiskModel, protocol: str) -> tuple:
        bound = (
            model.version,
            REQUESTS.labels(model.name, model.version, protocol, "200"),
            LATENCY.labels(model.name, model.version, protocol),
            ROWS.labels(model.name, model.version),
        )
        self._bound[protocol] = bound
        return bound

    def record_error(
        self,
        error: BaseException,
        protocol: str,
        model_name: str | None,
        request_id: str | None = None,
        path: str | None = None,
    ) -> int:
        """Count and log one failed request; return its HTTP status."""
        status = error.status if isinstance(error, ServingError) else 500
        known = model_name == self.model.name
        REQUESTS.labels(
            self.model.name if known else "unknown",
            self.model.version if known else "",
            protocol,
            str(status),
        ).inc()
        # What the client sent is cut as messages are (errors.bounded): one failed
        # request is one log line of bounded size.
        fields = {
            "status": status,
            "protocol": protocol,
            "model_name": bounded(model_name, 200) if model_name else model_name,
            "request_id": bounded(request_id, 200) if request_id else request_id,
            "path": bounded(path, 200) if path else path,
        }
        if status >= 500 and not isinstance(error, ServingError):
            log.error("request failed", exc_info=error, extra=fields)
        else:
            log.warning(str(error), extra=fields | {"event": "request_error"})
        return status
