"""The transformer's v2 REST app: a raw ASGI app with orjson, as the predictor's
(`serving/rest.py`), so the hop in front of the predictor costs little.

Checked in the predictor's order: the method (405), the key (401), the model (404),
readiness (503), and only then the body (400).
"""

from __future__ import annotations

import asyncio
import hmac
import itertools
import logging
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest
from riskserve.serving.binary_tensors import (
    HEADER_LENGTH,
    OCTET_STREAM,
    encode_outputs,
    response_body,
)
from riskserve.serving.errors import (
    InvalidInput,
    ModelNotFound,
    NotReady,
    ServingError,
    Unauthorized,
)
from riskserve.serving.inference_log import InferenceLog
from riskserve.serving.tensors import OutputTensor
from riskserve.transformer import metrics
from riskserve.transformer.decisions import (
    CARD,
    FEATURES_UNAVAILABLE,
    UNKNOWN_ENTITY,
    Decision,
    feature_column,
)
from riskserve.transformer.experiment import EXPERIMENT_OUTPUTS, Experiment
from riskserve.transformer.experiment_shadow import ShadowCopy, ShadowSender
from riskserve.transformer.features_source import (
    FeatureSource,
    PushWorker,
    StoreUnavailable,
)
from riskserve.transformer.inference_log import (
    Assignment,
    raw_columns,
    transformer_record,
)
from riskserve.transformer.policy import Policy, PolicyError, policy_fields
from riskserve.transformer.predictor_client import PredictorError, PredictorPool
from riskserve.transformer.raw_request import parse_raw_request

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

log = logging.getLogger("transformer")
JSON = b"application/json"


class ServiceUnavailable(ServingError):
    status = 503
    grpc_code = "UNAVAILABLE"


class UpstreamFailed(ServingError):
    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


class ClientDisconnected(Exception):
    """The client left before its body came: nothing is scored or pushed."""


# The outputs a decision policy adds to every answer (docs/transformer.md).
POLICY_OUTPUTS = ("action", "policy_version", "policy_rule", "reason_code")
# The policy kind (its actions) each decision takes.
_POLICY_KIND = {"card": "fraud", "customer": "credit"}


class AppliedPolicy:
    """A decision policy in front of one model: loaded at start, checked against the
    model's fields once the predictor's metadata is known (`check`), then applied to
    every answer (`outputs`)."""

    def __init__(self, policy: Policy, uri: str) -> None:
        self.policy = policy
        self.uri = uri
        self.checked = False
        # each field the policy names: where its values come from
        self._from_outputs: list[str] = []
        self._from_features: list[str] = []
        self._raw: tuple[tuple[str, str, str], ...] = ()
        self._one_row_version = np.array([policy.version], dtype=object)
        self._one_row_version.flags.writeable = False

    def check(
        self, model_name: str, decision: Decision, outputs: list[dict[str, Any]]
    ) -> None:
        """Accept the policy for this model (PolicyError, one line per problem, if
        not): its kind is the transformer's, and every field it names is a raw input,
        a feature or a predictor output, with a type its tests can take."""
        problems = []
        expected = _POLICY_KIND[decision.kind]
        if self.policy.kind != expected:
            problems.append(
                f"kind: {self.policy.kind!r}: this transformer decides "
                f"{decision.kind} requests, which take a {expected!r} policy"
            )
        clash = [o.get("name") for o in outputs if o.get("name") in POLICY_OUTPUTS]
        if clash:
            problems.append(
                f"model {model_name} already answers {', '.join(map(repr, clash))}, "
                "which a policy would add"
            )
        fields = policy_fields(
            model_name,
            decision.raw_inputs,
            decision.extra_outputs,
            (
                (str(o.get("name")), str(o.get("datatype")), o.get("shape") or [])
                for o in outputs
            ),
        )
        try:
            self.policy.check_fields(fields)
        except PolicyError as exc:
            problems.append(str(exc))
        if problems:
            raise PolicyError("\n".join(problems))
        sources = {name: fields.fields[name].source for name in self.policy.fields}
        self._from_outputs = [n for n, s in sources.items() if s == "output"]
        self._from_features = [n for n, s in sources.items() if s == "feature"]
        self._raw = tuple(
            e for e in decision.raw_inputs if sources.get(e[0]) == "input"
        )
        self.checked = True

    def outputs(
        self,
        answered: list[OutputTensor],
        used: list[OutputTensor],
        events: list[Any],
    ) -> list[OutputTensor]:
        """The policy's decision of each row, as the four outputs it adds."""
        rows = len(events)
        columns: dict[str, Any] = {}
        if self._from_outputs:
            by_name = {o.name: o.array for o in answered}
            for name in self._from_outputs:
                if name not in by_name:
                    raise UpstreamFailed(
                        f"the predictor's answer lacks {name!r}, which the policy "
                        "needs",
                        502,
                    )
                columns[name] = by_name[name]
        if self._from_features:
            features = {u.name: u.array for u in used}
            for name in self._from_features:
                columns[name] = features[name]
        if self._raw:
            columns.update(raw_columns(self._raw, events))
        decided = self.policy.decide(columns, rows)
        version = (
            self._one_row_version
            if rows == 1
            else np.full(rows, decided.policy_version, dtype=object)
        )
        return [
            OutputTensor("action", "BYTES", decided.action),
            OutputTensor("policy_version", "BYTES", version),
            OutputTensor("policy_rule", "BYTES", decided.rule),
            OutputTensor("reason_code", "BYTES", decided.reason),
        ]


@dataclass
class Transformer:
    """What the app serves: one model name, its decision (card transactions or BNPL
    checkouts), its feature source and its predictor."""

    model_name: str
    predictor: PredictorPool
    source: FeatureSource | None  # None until the store is open (not ready)
    pushes: PushWorker | None
    api_key: str | None = None
    fail_open: bool = False
    max_batch_size: int = 64
    max_body_bytes: int = 1024 * 1024
    check_predictor_health: bool = False
    predictor_outputs: list[dict[str, Any]] = field(default_factory=list)
    # The model's own parameters from the predictor's metadata (cut-off, score
    # scaling, reason features), passed on so a client such as the app draws the
    # model's scale and cut-off behind a transformer too.
    predictor_parameters: dict[str, Any] = field(default_factory=dict)
    decision: Decision = CARD
    inference_log: InferenceLog | None = None  # riskserve.transformer.inference_log
    policy: AppliedPolicy | None = None  # None: the graph's decision stands
    # False: policy only, no feature store (riskserve.transformer.policy_only); the
    # model's inputs from the predictor's metadata are then the raw inputs.
    features: bool = True
    predictor_inputs: list[dict[str, Any]] = field(default_factory=list)
    # None: no experiment, every row to the own predictor (docs/experiments.md)
    experiment: Experiment | None = None
    shadow: ShadowSender | None = None  # the experiment's shadow arms, if any

    @property
    def ready(self) -> bool:
        return (
            (not self.features or (self.source is not None and self.pushes is not None))
            and (self.policy is None or self.policy.checked)
            and (self.experiment is None or self.experiment.checked)
        )


def require_ready(t: Transformer) -> None:
    """NotReady (503) until the store is open and the policy checked."""
    if not t.ready:
        raise NotReady(
            "the transformer is not ready: its feature store is not open"
            if t.features and (t.source is None or t.pushes is None)
            else "the transformer is not ready: its policy is not checked yet"
            if t.policy is not None and not t.policy.checked
            else "the transformer is not ready: its experiment is not checked yet"
        )


_STAGE_LOOKUP = metrics.STAGE.labels("lookup")


_STAGE_PREDICTOR = metrics.STAGE.labels("predictor")


@dataclass(slots=True)
class Decided:
    """A request's answer before its transport encodes it: the outputs (those asked
    for), and what `answered` pushes once the answer has left."""

    request_id: str
    model_version: str | None
    outputs: list[OutputTensor]
    events: list[Any]
    found: list[Any]
    unknown: int
    shadow_copy: ShadowCopy | None = None  # for the experiment's shadow arms
    actions: Any = None  # the policy's action per row (None: no policy)

    def answered(self, t: Transformer, rows: Any) -> None:
        """After the answer is sent: the entities' new states are pushed once this
        step of the loop is over, so the server has finished the answer first; before
        the loop reads anything new (a next request of the card sees the new state)."""
        if self.found:
            assert t.pushes is not None  # found: the store was open
            asyncio.get_running_loop().call_soon(
                _push_states, t.pushes, self.events, self.found
            )
        if self.shadow_copy is not None and t.shadow is not None:
            t.shadow.submit(self.shadow_copy)
        rows.inc(len(self.events))  # the caller's child of metrics.ROWS
        if self.actions is not None:
            metrics.count_actions(t.model_name, self.actions)
        if self.unknown:
            metrics.UNKNOWN_ENTITIES.inc(self.unknown)


async def decide(
    t: Transformer,
    events: list[Any],
    request_id: str,
    names: list[str] | None,
    started: float,
    protocol: str = "rest",
) -> Decided:
    """The one decision both servers (REST here, gRPC in `grpc_server`) make of
    parsed raw events: lookup -> model inputs -> predictor -> outputs -> policy ->
    inference log record (written before the answer leaves, naming the `protocol`);
    `names`: the outputs asked for (None: all)."""
    decision = t.decision
    rows = len(events)
    lookup_started = time.perf_counter()
    try:
        if not t.features:  # policy only: the request holds the model's inputs
            found, unavailable = [], False
            features = [decision.request_only(event) for event in events]
        else:
            assert t.source is not None and t.pushes is not None
            found = (await t.source.lookup(events)).found
            features = [f.features for f in found]
            unavailable = False
    except StoreUnavailable as exc:
        metrics.STORE_ERRORS.inc()
        if not t.fail_open:
            raise ServiceUnavailable(str(exc)) from None
        log.warning(
            "fail-open: scoring from request-only features",
            extra={"error": str(exc)},
        )
        metrics.FAIL_OPEN.inc(rows)
        found = []
        features = [decision.request_only(event) for event in events]
        unavailable = True
    _STAGE_LOOKUP.observe(time.perf_counter() - lookup_started)
    model_inputs = decision.model_inputs(features, rows)
    predictor_started = time.perf_counter()
    experiment = t.experiment
    routed = experiment.assign(events) if experiment is not None else None
    try:
        if routed is None:
            answer = await decision.infer(
                t.predictor, t.model_name, model_inputs, request_id
            )
        else:
            assert experiment is not None
            answer = await experiment.infer(
                decision, routed, model_inputs, request_id, rows
            )
    except PredictorError as exc:
        raise UpstreamFailed(exc.message, exc.status) from None
    _STAGE_PREDICTOR.observe(time.perf_counter() - predictor_started)
    unknown = np.fromiter(
        (not unavailable and decision.unknown(row) for row in features),
        np.bool_,
        rows,
    )
    # The columns answered beside the predictor's outputs: the model inputs, then
    # the other features used (context, flags), which the log keeps apart.
    used: list[OutputTensor] = []
    for name, datatype in decision.extra_outputs:
        array: np.ndarray
        if name == UNKNOWN_ENTITY:
            array = unknown
        elif name == FEATURES_UNAVAILABLE:
            array = np.full(rows, unavailable)
        elif name in model_inputs:
            array = model_inputs[name]
        else:
            array = feature_column(features, name, datatype, rows)
        used.append(OutputTensor(name, datatype, array))
    answered = answer.outputs
    assigned: list[OutputTensor] = []
    if routed is not None:
        assert experiment is not None
        answered = [
            *answered,
            *experiment.policy_outputs(routed, answered, used, events, rows),
        ]
        assigned = experiment.outputs(routed, rows)
    elif t.policy is not None:
        answered = [*answered, *t.policy.outputs(answered, used, events)]
    outputs = [*answered, *assigned, *used]
    actions = next((o.array for o in answered if o.name == "action"), None)
    if names is not None:
        by_name = {o.name: o for o in outputs}
        unknown_names = [n for n in names if n not in by_name]
        if unknown_names:
            raise InvalidInput(
                "unknown requested output(s): "
                + ", ".join(repr(n[:64]) for n in unknown_names[:5])
                + (
                    f" and {len(unknown_names) - 5} more"
                    if len(unknown_names) > 5
                    else ""
                )
            )
        outputs = [by_name[n] for n in names]
    raw = None
    if t.inference_log is not None:
        raw = raw_columns(decision.raw_inputs, events)
        # Recorded before the answer leaves: a SIGKILL loses no answered request.
        t.inference_log.submit(
            transformer_record(
                request_id=request_id,
                model_name=t.model_name,
                model_version=answer.model_version or "",
                raw_inputs=raw,
                model_inputs=model_inputs,
                outputs=answered,
                features=[u for u in used if u.name not in model_inputs],
                latency_seconds=time.perf_counter() - started,
                protocol=protocol,
                assignment=Assignment(experiment.name, routed.arm_names.tolist())
                if experiment is not None and routed is not None
                else None,
            )
        )
    return Decided(
        request_id,
        answer.model_version,
        outputs,
        events,
        found,
        int(np.count_nonzero(unknown)),
        ShadowCopy(request_id, model_inputs, used, events, raw or {})
        if t.shadow is not None
        else None,
        actions,
    )


class TransformerApp:
    def __init__(self, transformer: Transformer, revision: str | None = None) -> None:
        self.t = transformer
        extra = [(b"x-riskserve-revision", revision.encode())] if revision else []
        self._json_headers = [(b"content-type", JSON), *extra]
        self._extra_headers = extra
        self._requests_ok = metrics.REQUESTS.labels(transformer.model_name, "200")
        self._latency = metrics.LATENCY.labels(transformer.model_name)
        self._rows = metrics.ROWS.labels(transformer.model_name)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        started = time.perf_counter()
        path: str = scope["path"]
        method: str = scope["method"]
        parts = path.strip("/").split("/")
        model: str | None = None
        try:
            if len(parts) >= 3 and parts[:2] == ["v2", "models"]:
                model, rest = parts[2], parts[3:]
                if rest == ["infer"]:
                    _require(method, "POST", path)
                    self._authorize(scope)
                    self._model(model)
                    await self._infer(scope, receive, send, started)
                    return
                await self._model_get(scope, send, model, rest, method)
                return
            await self._server_get(scope, send, parts, method, path)
        except ClientDisconnected:
            return
        except ServingError as error:
            await self._fail(send, error, error.status, model, path)
        except Exception as error:  # a genuine fault: 500, logged with its traceback
            log.exception("internal error", extra={"path": path})
            await self._fail(
                send,
                ServingError(f"internal error: {type(error).__name__}"),
                500,
                model,
                path,
            )

    # -- inference ---------------------------------------------------------------------
    async def _infer(
        self, scope: Scope, receive: Receive, send: Send, started: float
    ) -> None:
        t = self.t
        require_ready(t)
        body = await self._read_body(scope, receive)
        raw = parse_raw_request(
            body, _header(scope, HEADER_LENGTH), t.max_batch_size, t.decision
        )
        decided = await decide(
            t, raw.events, raw.id or _request_id(), raw.outputs.names, started
        )
        described, binary = encode_outputs(decided.outputs, raw.outputs)
        payload, json_length = response_body(
            {
                "model_name": t.model_name,
                "model_version": decided.model_version,
                "id": decided.request_id,
                "outputs": described,
            },
            binary,
        )
        headers = self._json_headers
        if json_length is not None:
            headers = [
                (b"content-type", OCTET_STREAM),
                (HEADER_LENGTH, str(json_length).encode()),
                *self._extra_headers,
            ]
        await self._send(send, 200, payload, headers)
        decided.answered(t, self._rows)
        self._requests_ok.inc()
        self._latency.observe(time.perf_counter() - started)

    # -- metadata, health ------------------------------------------------------------
    def model_metadata(self) -> dict[str, Any]:
        return {
            "name": self.t.model_name,
            "versions": [],
            "platform": "riskserve-transformer",
            "inputs": [
                {"name": name, "datatype": datatype, "shape": [-1, 1]}
                for name, datatype, _ in self.t.decision.raw_inputs
            ],
            "outputs": [
                *self.t.predictor_outputs,
                *(
                    {"name": name, "datatype": "BYTES", "shape": [-1]}
                    for name in (POLICY_OUTPUTS if self._has_policy() else ())
                ),
                *(
                    {"name": name, "datatype": "BYTES", "shape": [-1]}
                    for name in (EXPERIMENT_OUTPUTS if self.t.experiment else ())
                ),
                *(
                    {"name": name, "datatype": datatype, "shape": [-1]}
                    for name, datatype in self.t.decision.extra_outputs
                ),
            ],
            "parameters": {
                **self.t.predictor_parameters,
                "decision": self.t.decision.kind,
                "raw_inputs": {
                    name: what for name, _, what in self.t.decision.raw_inputs
                },
                "fail_open": self.t.fail_open,
                **(
                    {
                        "policy": {
                            "name": self.t.policy.policy.name,
                            "version": self.t.policy.policy.version,
                            "uri": self.t.policy.uri,
                        }
                    }
                    if self.t.policy
                    else {}
                ),
                **(
                    {"experiment": self.t.experiment.describe()}
                    if self.t.experiment
                    else {}
                ),
            },
        }

    def _has_policy(self) -> bool:
        """The answers carry the policy's outputs: the transformer's policy, or every
        arm's under an experiment (Experiment.bind)."""
        experiment = self.t.experiment
        if experiment is not None:
            return experiment.arms[0].policy is not None
        return self.t.policy is not None

    async def _model_get(
        self, scope: Scope, send: Send, name: str, rest: list[str], method: str
    ) -> None:
        path = scope["path"]
        if rest == ["ready"]:
            _require(method, "GET", path)
            self._model(name)
            if await self._is_ready():
                await self._send(send, 200, orjson.dumps({"name": name, "ready": True}))
            else:
                await self._send(send, 503, _error_body(f"model {name!r} is not ready"))
            return
        if rest:
            raise ModelNotFound(f"no route {path}")
        _require(method, "GET", path)
        self._authorize(scope)
        self._model(name)
        await self._send(send, 200, orjson.dumps(self.model_metadata()))

    async def _server_get(
        self, scope: Scope, send: Send, parts: list[str], method: str, path: str
    ) -> None:
        if path == "/metrics":
            _require(method, "GET", path)
            await self._send(
                send,
                200,
                generate_latest(REGISTRY),
                [(b"content-type", CONTENT_TYPE_LATEST.encode()), *self._extra_headers],
            )
            return
        if parts == ["v2"]:
            _require(method, "GET", path)
            self._authorize(scope)
            await self._send(
                send,
                200,
                orjson.dumps(
                    {"name": "riskserve-transformer", "version": "1", "extensions": []}
                ),
            )
            return
        if len(parts) == 3 and parts[:2] == ["v2", "health"]:
            _require(method, "GET", path)
            if parts[2] == "live":
                await self._send(send, 200, b'{"live":true}')
                return
            if parts[2] == "ready":
                if await self._is_ready():
                    await self._send(send, 200, b'{"ready":true}')
                else:
                    await self._send(
                        send, 503, _error_body("the transformer is not ready")
                    )
                return
        raise ModelNotFound(f"no route {method} {path}")

    async def _is_ready(self) -> bool:
        if not self.t.ready:
            return False
        if not self.t.check_predictor_health:
            return True
        try:
            status, _ = await self.t.predictor.get_json(
                f"/v2/models/{self.t.model_name}/ready"
            )
        except PredictorError:
            return False
        return status == 200

    # -- plumbing ----------------------------------------------------------------------
    def _model(self, name: str) -> None:
        if name != self.t.model_name:
            raise ModelNotFound(f"model {name!r} is not served here")

    def _authorize(self, scope: Scope) -> None:
        key = self.t.api_key
        if key is None:
            return
        given: str | None = None
        for name, value in scope["headers"]:
            if name == b"authorization":
                text = value.decode("latin-1")
                if text[:7].lower() == "bearer ":
                    given = text[7:].strip()
            elif name == b"x-api-key" and given is None:
                given = value.decode("latin-1")
        if given is None or not hmac.compare_digest(given.encode(), key.encode()):
            raise Unauthorized("a valid API key is required")

    async def _read_body(self, scope: Scope, receive: Receive) -> bytes:
        limit = self.t.max_body_bytes
        declared = _header(scope, b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise InvalidInput(
                f"the request body of {int(declared)} bytes is above the limit of "
                f"{limit} bytes"
            )
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise ClientDisconnected
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise InvalidInput(
                    f"the request body is above the limit of {limit} bytes"
                )
            chunks.append(chunk)
            if not message.get("more_body", False):
                return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    async def _fail(
        self,
        send: Send,
        error: ServingError,
        status: int,
        model: str | None,
        path: str,
    ) -> None:
        label = model if model == self.t.model_name else "unknown"
        metrics.REQUESTS.labels(label, str(status)).inc()
        log.info(
            "request failed",
            extra={"status": status, "path": path[:200], "error": error.message[:500]},
        )
        headers = self._json_headers
        if status == 401:
            headers = [*headers, (b"www-authenticate", b"Bearer")]
        elif isinstance(error, MethodNotAllowed):
            headers = [*headers, (b"allow", error.allowed.encode())]
        await self._send(send, status, _error_body(error.message), headers)

    async def _send(
        self,
        send: Send,
        status: int,
        body: bytes,
        headers: list[tuple[bytes, bytes]] | None = None,
    ) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    *(headers or self._json_headers),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


class MethodNotAllowed(ServingError):
    status = 405

    def __init__(self, message: str, allowed: str) -> None:
        super().__init__(message)
        self.allowed = allowed


def _push_states(pushes: PushWorker, events: list[Any], found: list[Any]) -> None:
    for event, entity in zip(events, found, strict=False):
        pushes.submit(event, entity.state)


# Request ids for requests without one: unique per process (a random prefix drawn
# again after a fork) and cheaper than uuid4 (~20 us per request on this box).
_ids: tuple[int, str, itertools.count] = (-1, "", itertools.count())


def _request_id() -> str:
    global _ids
    pid, prefix, counter = _ids
    if pid != os.getpid():
        pid, prefix, counter = os.getpid(), os.urandom(8).hex(), itertools.count(1)
        _ids = (pid, prefix, counter)
    return f"{prefix}-{next(counter)}"


def _require(method: str, allowed: str, path: str) -> None:
    if method != allowed:
        raise MethodNotAllowed(
            f"{method} is not allowed on {path}; use {allowed}", allowed
        )


def _header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope["headers"]:
        if key == name:
            return value
    return None


def _error_body(message: str) -> bytes:
    return orjson.dumps({"error": message})


async def fetch_predictor_outputs(transformer: Transformer) -> None:
    """The predictor's outputs for the metadata, once it answers (in the background,
    every second until it does; cancelled at shutdown)."""
    while True:
        try:
            status, metadata = await transformer.predictor.get_json(
                f"/v2/models/{transformer.model_name}"
            )
        except PredictorError:
            status, metadata = 0, None
        if status == 200 and isinstance(metadata, dict):
            transformer.predictor_outputs = list(metadata.get("outputs") or [])
            transformer.predictor_inputs = list(metadata.get("inputs") or [])
            parameters = metadata.get("parameters")
            if isinstance(parameters, dict):
                transformer.predictor_parameters = dict(parameters)
            return
        await asyncio.sleep(1.0)
