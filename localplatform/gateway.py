"""The local platform's gateway: `/v2/models/<isvc>/...` routed by the traffic split.

It plays the part of KServe's ingress and Knative's traffic split on one machine: each
request goes to one ready revision, chosen at random with the configured weights. A
revision that cannot be reached is taken out of the split at once and the request is
retried on another ready revision (inference is a pure function of its input, so a
retry cannot do harm); only a request already being answered by a process that dies is
lost. With a shadow revision, a copy of each inference request also goes there; its
answer is compared with the one returned and never itself returned.

An InferenceService with a transformer is answered by its transformer component's
split on the main port (as KServe's ingress sends to the transformer); the transformers
reach the predictor component's split through a second listener on loopback
(`PredictorListener`, KServe's `<isvc>-predictor` service), with the same rules.
"""

from __future__ import annotations

import asyncio
import bisect
import json
import logging
import random
import re
import time
from collections import defaultdict
from collections.abc import Iterator, Sequence
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector
from riskserve.localplatform.apply_check import ApplyError, ApplyWorker
from riskserve.localplatform.control_guard import (
    ControlGuard,
    key_matches,
    presented_key,
)
from riskserve.localplatform.controller import LocalPlatform
from riskserve.localplatform.spec_rules import excerpt, valid_name
from riskserve.localplatform.state import InferenceServiceState
from riskserve.localplatform.upstream import UpstreamError
from riskserve.serving.buckets import LATENCY_BOUNDS_MS

log = logging.getLogger("riskserve.gateway")

FORWARDED_HEADERS = {
    b"content-type",
    b"authorization",
    b"x-api-key",
    b"accept",
    # the binary tensor extension: the body is forwarded unparsed, with its header
    b"inference-header-content-length",
}
JSON = [(b"content-type", b"application/json")]
DEADLINE_HEADER = b"x-riskserve-timeout-ms"
REVISION_NAME = re.compile(r"-(?:predictor|transformer)-\d+$")

FRONT = "front"
"""Where the main port sends an InferenceService's requests: its transformer
component when it has one, else its predictor component."""
PREDICTOR = "predictor"
"""The predictor component, whatever is in front of it (the predictor listener)."""


class RevisionStats:
    """Cumulative counters of what the gateway saw one revision do."""

    __slots__ = ("requests", "errors", "latency_counts", "codes", "shadow")

    def __init__(self) -> None:
        self.requests = 0
        self.errors = 0
        self.latency_counts = [0] * (len(LATENCY_BOUNDS_MS) + 1)
        self.codes: dict[int, int] = defaultdict(int)
        self.shadow = {
            "compared": 0,
            "disagreements": 0,
            "sum_abs_diff": 0.0,
            "errors": 0,
        }

    def record(self, status: int, seconds: float) -> None:
        self.requests += 1
        self.codes[status] += 1
        if status >= 500:
            self.errors += 1
        self.latency_counts[bisect.bisect_left(LATENCY_BOUNDS_MS, seconds * 1000)] += 1

    def snapshot(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "errors": self.errors,
            "codes": {str(k): v for k, v in sorted(self.codes.items())},
            "latency_bounds_ms": list(LATENCY_BOUNDS_MS),
            "latency_counts": list(self.latency_counts),
            "shadow_comparison": dict(self.shadow),
        }


class Gateway:
    def __init__(self, platform: LocalPlatform) -> None:
        self.platform = platform
        self.stats: dict[str, RevisionStats] = defaultdict(RevisionStats)
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(GatewayMetrics(self.stats))
        self._routes: dict[tuple[str, str], tuple[list[float], list[str]]] = {}
        self._routes_version = -1
        self.max_body = platform.settings.gateway_max_body_bytes
        self.try_timeout_s = platform.settings.gateway_try_timeout_s
        self._shadow_tasks: set[asyncio.Task] = set()
        # The key the predictors require (they inherit it from the platform): the
        # gateway asks for it too, before it says whether a model exists.
        key = platform.env.get("RISKSERVE_SERVING_API_KEY")
        self._api_key = key.encode() if key else None
        self.guard = ControlGuard(platform.settings, key)
        self.apply_worker = ApplyWorker()

    # -- routing ---------------------------------------------------------------------

    def _route_table(
        self, isvc: str, component: str = FRONT
    ) -> tuple[list[float], list[str]] | None:
        if self._routes_version != self.platform.version:
            table = {}
            for name, service in self.platform.state.services.items():
                for key, state in ((FRONT, service.front), (PREDICTOR, service)):
                    routes = state.routes()
                    total = float(sum(p for _, p in routes))
                    cumulative, names, acc = [], [], 0.0
                    for revision, percent in routes:
                        acc += percent / total
                        cumulative.append(acc)
                        names.append(revision.name)
                    table[(name, key)] = (cumulative, names)
            self._routes, self._routes_version = table, self.platform.version
        return self._routes.get((isvc, component))

    def component(self, isvc: str, component: str = FRONT) -> InferenceServiceState:
        service = self.platform.state.services[isvc]
        return service.front if component == FRONT else service

    def pick(self, isvc: str, exclude: set[str], component: str = FRONT) -> str | None:
        table = self._route_table(isvc, component)
        if not table or not table[1]:
            return None
        cumulative, names = table
        if exclude:
            remaining = [n for n in names if n not in exclude]
            return random.choice(remaining) if remaining else None
        index = bisect.bisect_left(cumulative, random.random())
        return names[min(index, len(names) - 1)]

    def deadline_s(
        self, isvc: str, headers: list[tuple[bytes, bytes]], component: str = FRONT
    ) -> float:
        """The request's deadline: the `x-riskserve-timeout-ms` header, else the
        component's `timeout` (`spec.predictor.timeout`, or `spec.transformer.timeout`
        in front of it; seconds, as KServe), else the platform's default."""
        for name, value in headers:
            if name == DEADLINE_HEADER:
                text = value.decode("latin-1").strip()
                if not text.isdigit() or int(text) == 0:
                    raise ValueError(
                        f"x-riskserve-timeout-ms must be a positive integer, got {text!r}"
                    )
                return int(text) / 1000
        timeout = self.component(isvc, component).predictor.get("timeout")
        if isinstance(timeout, int) and timeout > 0:
            return float(timeout)
        return self.platform.settings.gateway_deadline_s

    def _authorized(self, headers: list[tuple[bytes, bytes]]) -> bool:
        if self._api_key is None:
            return True
        return key_matches(presented_key(headers), self._api_key)

    # -- ASGI --------------------------------------------------------------------------

    async def __call__(self, scope, receive, send) -> None:
        path = scope["path"]
        method = scope["method"]
        if path.startswith("/v2/models/"):
            return await self.proxy(scope, receive, send, path)
        if path in ("/v2/health/live", "/v2/health/ready"):
            ready = path.endswith("live") or all(
                s.routes() and s.front.routes()
                for s in self.platform.state.services.values()
            )
            return await _send(
                send,
                200 if ready else 503,
                {"live": True} if path.endswith("live") else {"ready": ready},
            )
        if path == "/v2":
            if not self._authorized(scope["headers"]):
                return await _send(send, 401, {"error": "missing or invalid API key"})
            return await _send(
                send,
                200,
                {"name": "riskserve-gateway", "version": "0.1.0", "extensions": []},
            )
        if path == "/metrics":
            refusal = self.guard.check(scope, changes=False)
            if refusal is not None:
                return await _send(send, refusal.status, {"error": refusal.message})
            return await _send_metrics(send, generate_latest(self.registry))
        if path.startswith("/platform/"):
            changes = method not in ("GET", "HEAD")
            refusal = self.guard.check(scope, changes=changes)
            if refusal is not None:
                return await _send(send, refusal.status, {"error": refusal.message})
            return await self.control(scope, receive, send, method, path)
        return await _send(send, 404, {"error": f"no route for {excerpt(path)}"})

    async def proxy(
        self, scope, receive, send, path: str, component: str = FRONT
    ) -> None:
        isvc = path.split("/", 4)[3]
        if self._api_key is not None and not self._authorized(scope["headers"]):
            # Before the lookup: without the key, a 404 would say which models exist.
            return await _send(send, 401, {"error": "missing or invalid API key"})
        if isvc not in self.platform.state.services:
            return await _send(
                send, 404, {"error": f"unknown InferenceService {excerpt(isvc)!r}"}
            )
        body = await _read_body(receive, self.max_body)
        if body is None:
            return await _send(
                send, 400, {"error": f"request body larger than {self.max_body} bytes"}
            )
        headers = [(k, v) for k, v in scope["headers"] if k in FORWARDED_HEADERS]
        target = path + (
            ("?" + scope["query_string"].decode()) if scope["query_string"] else ""
        )
        method = scope["method"]
        try:
            deadline_s = self.deadline_s(isvc, scope["headers"], component)
        except ValueError as exc:
            return await _send(send, 400, {"error": str(exc)})
        # A transformer pushes each card's new state once it has answered: a request
        # it may have received is never sent to another revision (only one that could
        # not connect is), and no try is cut short for a retry.
        retry_unanswered = not (
            component == FRONT
            and self.platform.state.services[isvc].transformer is not None
        )
        deadline = time.monotonic() + deadline_s
        tried: set[str] = set()
        timed_out = False
        while True:
            revision = self.pick(isvc, tried, component)
            remaining = deadline - time.monotonic()
            if revision is None or remaining <= 0:
                if remaining <= 0 or timed_out:
                    return await _send(
                        send,
                        504,
                        {
                            "error": f"{isvc}: no revision answered within "
                            f"{deadline_s * 1000:.0f} ms"
                        },
                    )
                reason = (
                    "no ready revision" if not tried else "no revision could be reached"
                )
                return await _send(send, 503, {"error": f"{isvc}: {reason}"})
            pool = self.platform.pool(revision)
            if pool is None:
                tried.add(revision)
                continue
            # A try is cut short only when another ready revision can take the request.
            another = (
                retry_unanswered
                and self.pick(isvc, tried | {revision}, component) is not None
            )
            try_timeout = min(self.try_timeout_s, remaining) if another else remaining
            started = time.perf_counter()
            try:
                status, response_headers, payload = await pool.request(
                    method, target, headers, body, timeout=try_timeout
                )
            except UpstreamError as exc:
                timed_out = timed_out or exc.timed_out
                self.stats[revision].record(599, time.perf_counter() - started)
                if not retry_unanswered and not exc.connect_failed:
                    log.warning("%s: %s; not retried (a transformer)", revision, exc)
                    if exc.timed_out:
                        return await _send(
                            send,
                            504,
                            {
                                "error": f"{isvc}: {revision} did not answer within "
                                f"{deadline_s * 1000:.0f} ms"
                            },
                        )
                    self.platform.mark_suspect(revision, str(exc))
                    return await _send(
                        send,
                        502,
                        {"error": f"{isvc}: {revision} closed the connection"},
                    )
                log.warning("%s: %s; retrying on another revision", revision, exc)
                self.platform.mark_suspect(revision, str(exc))
                tried.add(revision)
                continue
            self.stats[revision].record(status, time.perf_counter() - started)
            break
        shadow = self.component(isvc, component).shadow_revision()
        if (
            shadow is not None
            and method == "POST"
            and path.endswith("/infer")
            and status == 200
        ):
            task = asyncio.get_running_loop().create_task(
                self.mirror(shadow.name, target, headers, body, payload)
            )
            self._shadow_tasks.add(task)
            task.add_done_callback(self._shadow_tasks.discard)
        response_headers.append((b"content-length", b"%d" % len(payload)))
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": response_headers,
            }
        )
        await send({"type": "http.response.body", "body": payload})

    async def mirror(
        self, revision: str, target: str, headers, body: bytes, primary: bytes
    ) -> None:
        pool = self.platform.pool(revision)
        stats = self.stats[revision].shadow
        if pool is None:
            return
        started = time.perf_counter()
        try:
            status, _, payload = await pool.request("POST", target, headers, body)
        except UpstreamError:
            stats["errors"] += 1
            return
        self.stats[revision].record(status, time.perf_counter() - started)
        if status != 200:
            stats["errors"] += 1
            return
        try:
            diff, disagree = compare_outputs(json.loads(primary), json.loads(payload))
        except (ValueError, KeyError, TypeError):
            stats["errors"] += 1
            return
        stats["compared"] += 1
        stats["sum_abs_diff"] += diff
        stats["disagreements"] += disagree

    # -- control API --------------------------------------------------------------------

    async def control(self, scope, receive, send, method: str, path: str) -> None:
        allowed = []
        for route_method, pattern, handler in CONTROL_ROUTES:
            match = pattern.fullmatch(path)
            if match is None:
                continue
            if route_method == method:
                return await getattr(self, handler)(receive, send, **match.groupdict())
            allowed.append(route_method)
        if allowed:
            return await _send(
                send,
                405,
                {
                    "error": f"{method} is not allowed on {excerpt(path)}; use "
                    f"{', '.join(allowed)}"
                },
                [(b"allow", ", ".join(allowed).encode())],
            )
        return await _send(
            send,
            404,
            {"error": f"no control route {excerpt(method, 10)} {excerpt(path)}"},
        )

    async def _status(self, receive, send) -> None:
        await _send(send, 200, self.platform.status())

    async def _traffic(self, receive, send) -> None:
        await _send(send, 200, await self.traffic())

    async def _apply(self, receive, send) -> None:
        limit = self.platform.settings.max_apply_bytes
        body = await _read_body(receive, limit)
        if body is None:
            return await _send(
                send,
                400,
                {
                    "error": f"the YAML is larger than {limit} bytes "
                    "(RISKSERVE_MAX_APPLY_BYTES)"
                },
            )
        try:
            text = body.decode()
        except UnicodeDecodeError:
            return await _send(send, 400, {"error": "the YAML is not UTF-8 text"})
        try:
            # Parsing and validating a large document takes a while: in a worker
            # process, so inference never waits for it.
            documents, results = await self.apply_worker.parse_and_check(
                text,
                self.platform.settings.max_documents_per_apply,
                self.platform.model_roots,
            )
            messages = self.platform.apply_checked(documents, results)
        except ApplyError as exc:
            return await _send(send, 400, {"error": str(exc)})
        await _send(send, 200, {"applied": messages})

    async def _patch(self, receive, send, name: str) -> None:
        if not valid_name(name) or name not in self.platform.state.services:
            return await _send(send, 404, {"error": self.platform.unknown(name)})
        body = await _read_body(receive, 64 * 1024)
        if body is None:
            return await _send(send, 400, {"error": "a patch is at most 64 KiB"})
        try:
            changes = json.loads(body or b"{}")
            if not isinstance(changes, dict):
                raise ApplyError("a patch is a JSON object of changes")
            message = self.platform.patch(name, changes)
        except KeyError as exc:
            return await _send(send, 404, {"error": exc.args[0]})
        except (ApplyError, ValueError) as exc:
            return await _send(send, 400, {"error": excerpt(str(exc), 2000)})
        await _send(send, 200, {"applied": [message]})

    async def _delete(self, receive, send, name: str) -> None:
        try:
            message = self.platform.delete(name)
        except KeyError as exc:
            return await _send(send, 404, {"error": exc.args[0]})
        await _send(send, 200, {"deleted": [message]})

    async def traffic(self) -> dict[str, Any]:
        """Per InferenceService, each revision's share, counters and score histogram."""
        result: dict[str, Any] = {}
        for name, service in self.platform.state.services.items():
            result[name] = {"revisions": await self._component_traffic(service)}
            if service.transformer is not None:
                # Beside the predictor's, so that rollouts of the predictor read
                # the same list as before.
                result[name]["transformer"] = {
                    "revisions": await self._component_traffic(service.transformer)
                }
        return {"inferenceservices": result}

    async def _component_traffic(
        self, component: InferenceServiceState
    ) -> list[dict[str, Any]]:
        configured = {t.revision_name: t.percent for t in component.traffic()}
        shadow = component.shadow_revision()
        revisions = []
        for revision in component.revisions:
            if revision.name not in configured and revision.name not in self.stats:
                continue
            text = await self.scrape(revision.name)
            edges, counts = parse_score_histogram(text)
            revisions.append(
                {
                    "name": revision.name,
                    "percent": configured.get(revision.name, 0),
                    "ready": revision.ready,
                    "shadow": shadow is not None and shadow.name == revision.name,
                    "storageUri": revision.storage_uri,
                    **self.stats[revision.name].snapshot(),
                    "score_edges": edges,
                    "score_counts": counts,
                    # a transformer's, by the action its policy took
                    "action_counts": parse_action_counts(text),
                }
            )
        return revisions

    async def scrape(self, revision: str) -> str:
        """The revision's Prometheus text ("" when it does not answer): a predictor's
        score histogram, a transformer's action counts."""
        pool = self.platform.pool(revision)
        if pool is None:
            return ""
        try:
            status, _, text = await pool.request("GET", "/metrics", [], b"", timeout=5)
        except UpstreamError:
            return ""
        return text.decode(errors="replace") if status == 200 else ""


class GatewayMetrics(Collector):
    """`riskserve_gateway_requests_total{isvc,revision,code}`, read from the per-revision
    counters the gateway keeps anyway (the rollout gates read the same counters)."""

    def __init__(self, stats: dict[str, RevisionStats]) -> None:
        self.stats = stats

    def collect(self) -> Iterator[Metric]:
        family = CounterMetricFamily(
            "riskserve_gateway_requests",
            "Requests the gateway routed, by revision and status.",
            labels=["isvc", "revision", "code"],
        )
        for revision, stats in sorted(self.stats.items()):
            isvc = REVISION_NAME.sub("", revision)
            for code, count in sorted(stats.codes.items()):
                family.add_metric([isvc, revision, str(code)], count)
        yield family


class PredictorListener:
    """The gateway's second, internal HTTP side (loopback only): `/v2/models/<isvc>/...`
    goes straight to the predictor component's split, whatever is in front of it, as
    KServe's `<isvc>-predictor` service does for a transformer. Same deadline,
    retries, shadow and key as the main port; no control API."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway

    async def __call__(self, scope, receive, send) -> None:
        path = scope["path"]
        if path.startswith("/v2/models/"):
            return await self.gateway.proxy(scope, receive, send, path, PREDICTOR)
        if path in ("/v2/health/live", "/v2/health/ready"):
            return await _send(send, 200, {"live": True})
        return await _send(send, 404, {"error": f"no route for {excerpt(path)}"})


# The control API: (method, path pattern, handler method of Gateway).
CONTROL_ROUTES: list[tuple[str, re.Pattern[str], str]] = [
    ("GET", re.compile(r"/platform/status"), "_status"),
    ("GET", re.compile(r"/platform/traffic"), "_traffic"),
    ("POST", re.compile(r"/platform/apply"), "_apply"),
    (
        "POST",
        re.compile(r"/platform/inferenceservices/(?P<name>[^/]+)/patch"),
        "_patch",
    ),
    ("DELETE", re.compile(r"/platform/inferenceservices/(?P<name>[^/]+)"), "_delete"),
]


def parse_action_counts(text: str) -> dict[str, int]:
    """Rows per action of `riskserve_transformer_actions_total` (summed over models)."""
    from prometheus_client.parser import text_string_to_metric_families

    counts: dict[str, int] = defaultdict(int)
    if "riskserve_transformer_actions" not in text:
        return {}
    for family in text_string_to_metric_families(text):
        if family.name != "riskserve_transformer_actions":
            continue
        for sample in family.samples:
            if sample.name.endswith("_total"):
                counts[sample.labels.get("action", "")] += int(sample.value)
    return dict(counts)


def parse_score_histogram(text: str) -> tuple[list[float], list[int]]:
    """Per-bucket counts of `riskserve_output_score` (summed over its label sets)."""
    from prometheus_client.parser import text_string_to_metric_families

    if not text:
        return [], []
    cumulative: dict[float, float] = defaultdict(float)
    for family in text_string_to_metric_families(text):
        if family.name != "riskserve_output_score":
            continue
        for sample in family.samples:
            if sample.name.endswith("_bucket"):
                bound = float(sample.labels["le"])
                cumulative[bound] += sample.value
    if not cumulative:
        return [], []
    bounds = sorted(cumulative)
    counts, previous = [], 0.0
    for bound in bounds:
        counts.append(int(cumulative[bound] - previous))
        previous = cumulative[bound]
    edges = [0.0] + [b for b in bounds if b != float("inf")]
    if bounds[-1] == float("inf"):
        counts[-2] += counts[
            -1
        ]  # probabilities never exceed 1: fold +Inf into the last
        counts.pop()
    return edges, counts


def compare_outputs(primary: dict, shadow: dict) -> tuple[float, int]:
    """Sum of |score difference| and number of decision disagreements over the rows."""

    def by_name(response: dict) -> dict[str, list]:
        return {o["name"]: o["data"] for o in response["outputs"]}

    a, b = by_name(primary), by_name(shadow)
    diff, disagree = 0.0, 0
    for name, values in a.items():
        other = b.get(name)
        if other is None:
            continue
        if values and isinstance(values[0], bool):
            disagree += sum(x != y for x, y in zip(values, other, strict=False))
        elif name.endswith("probability"):
            diff += sum(
                abs(float(x) - float(y)) for x, y in zip(values, other, strict=False)
            )
    return diff, disagree


async def _read_body(receive, limit: int) -> bytes | None:
    chunks, size = [], 0
    while True:
        message = await receive()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body"):
            return b"".join(chunks)


async def _send(
    send, status: int, payload: dict, headers: Sequence[tuple[bytes, bytes]] = ()
) -> None:
    body = json.dumps(payload).encode()
    await send(
        {"type": "http.response.start", "status": status, "headers": [*JSON, *headers]}
    )
    await send({"type": "http.response.body", "body": body})


async def _send_metrics(send, body: bytes) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", CONTENT_TYPE_LATEST.encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})
