"""The local platform's controller: InferenceServices in, predictor processes out.

Each revision runs as its own `python -m riskserve.serving` process on free loopback ports
(a transformer revision as `python -m riskserve.transformer`, in front of the gateway's
predictor listener). The controller creates a revision when a component's spec changes
(as Knative does), watches
each process (a dead one loses its traffic at the next tick, within 0.2 s), restarts a
revision that died after it had been ready, and keeps the state file current.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import logging
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Literal

from riskserve.localplatform.apply_check import ApplyError, check_documents
from riskserve.localplatform.direct_routes import direct_predictors, write_routes
from riskserve.localplatform.orphans import is_our_predictor
from riskserve.localplatform.processes import (
    ManagedProcess,
    free_port,
    pid_alive,
    stop_pid,
)
from riskserve.localplatform.settings import PlatformSettings
from riskserve.localplatform.spec_rules import (
    POLICY_URI_ENV,
    allowed_env,
    default_model_roots,
    excerpt,
    name_problem,
    transformer_argv,
    transformer_container,
    transformer_env,
)
from riskserve.localplatform.state import (
    InferenceServiceState,
    PlatformState,
    Revision,
    predictor_hash,
    storage_uri,
)

__all__ = ["ApplyError", "LocalPlatform"]
from riskserve.localplatform.upstream import UpstreamError, UpstreamPool

log = logging.getLogger("riskserve.platform")

TICK_S = 0.2


@dataclass
class RunningRevision:
    process: ManagedProcess
    pool: UpstreamPool
    grpc_port: int
    started_at: float = field(default_factory=time.monotonic)
    was_ready: bool = False


class LocalPlatform:
    def __init__(self, settings: PlatformSettings, env: dict[str, str]) -> None:
        self.settings = settings
        self.env = env
        self.root = settings.state_dir / "platform"
        self.state_path = self.root / "state.json"
        # Predictor revisions transformers may call directly (direct_routes.py).
        self.direct_routes_path = self.root / "predictor-routes.json"
        self._direct_routes: dict[str, str] | None = None
        self.state = PlatformState.load(self.state_path)
        self.running: dict[str, RunningRevision] = {}
        self.model_roots = default_model_roots(settings.state_dir, settings.model_roots)
        self.version = 0  # bumped on every routing change; the gateway caches on it
        self.predictor_port: int | None = None
        """The gateway's internal predictor listener on loopback (KServe's
        `<isvc>-predictor` service): where transformers send their requests. Set by
        the daemon once it listens; without it no transformer starts."""

    # -- applying specs ------------------------------------------------------------

    def check_documents(
        self, documents: list[dict[str, Any]]
    ) -> list[tuple[str, list[str]]]:
        return check_documents(
            documents, self.settings.max_documents_per_apply, self.model_roots
        )

    def apply_documents(self, documents: list[dict[str, Any]]) -> list[str]:
        """Validate every document first; apply only when all are valid."""
        return self.apply_checked(documents, self.check_documents(documents))

    def apply_checked(
        self, documents: list[dict[str, Any]], results: list[tuple[str, list[str]]]
    ) -> list[str]:
        """Apply documents `check_documents` passed, all or none: they are applied to
        a copy of the state, which replaces the state only within every limit."""
        problems = []
        for name, errors in results:
            if errors:
                problems.append(f"InferenceService {name}: " + "; ".join(errors[:3]))
                if name in self.state.services:
                    self.state.services[name].invalid_reason = "; ".join(errors[:3])
        if problems:
            self.save()
            raise ApplyError(excerpt(" | ".join(problems[:5]), 2000))
        candidate = copy.deepcopy(self.state)
        messages = [self._apply_one(candidate, document) for document in documents]
        self._check_limits(candidate)
        self.state = candidate
        self.changed()
        return messages

    def _check_limits(self, state: PlatformState) -> None:
        settings = self.settings
        if len(state.services) > settings.max_inferenceservices:
            raise ApplyError(
                f"{len(state.services)} InferenceServices; the limit is "
                f"{settings.max_inferenceservices} (RISKSERVE_MAX_INFERENCESERVICES): "
                "delete one with `riskserve delete NAME`"
            )
        processes = sum(
            len(c.needed_revisions())
            for s in state.services.values()
            for c in s.components()
        )
        if processes > settings.max_predictor_processes:
            raise ApplyError(
                f"this apply needs {processes} predictor and transformer processes; "
                "the limit is "
                f"{settings.max_predictor_processes} (RISKSERVE_MAX_PREDICTOR_PROCESSES)"
            )

    def _apply_one(self, state: PlatformState, document: dict[str, Any]) -> str:
        name = document["metadata"]["name"]
        spec = copy.deepcopy(document["spec"])
        annotations = (document.get("metadata") or {}).get("annotations") or {}
        spec["_annotations"] = {
            k: str(v) for k, v in annotations.items() if k.startswith("riskserve.io/")
        }
        service = state.services.get(name)
        if service is None:
            service = state.services[name] = InferenceServiceState(name=name, spec=spec)
        else:
            service.spec = spec
            service.generation += 1
        service.invalid_reason = ""
        predictor = spec["predictor"]
        message = f"{name}: " + self._revise(service, storage_uri(predictor))
        transformer = spec.get("transformer")
        if transformer is None:
            # No transformer in the spec: the component goes, and its processes
            # stop at the next tick (their revisions are forgotten).
            service.transformer = None
        else:
            component = service.transformer
            if component is None:
                component = InferenceServiceState(
                    name=name, spec=spec, component="transformer"
                )
                service.transformer = component
            component.spec = spec
            component.generation = service.generation
            message += "; transformer: " + self._revise(
                component, _feature_repo(transformer)
            )
        return message

    def _revise(self, component: InferenceServiceState, uri: str) -> str:
        """A new revision of `component` when its spec changed (anything but the
        traffic split), as Knative does; then KServe's rollout rules."""
        spec = component.predictor
        digest = predictor_hash(spec)
        latest = component.latest_created
        if latest is None or latest.spec_hash != digest:
            revision = Revision(
                name=component.next_revision_name(),
                storage_uri=uri,
                predictor=copy.deepcopy(spec),
                spec_hash=digest,
            )
            component.revisions.append(revision)
            self._forget_old_revisions(component)
            message = f"created revision {revision.name} ({revision.storage_uri})"
        else:
            message = f"unchanged revision {latest.name}"
        if component.canary_percent is not None:
            message += f", canaryTrafficPercent {component.canary_percent}"
        component.settle()
        return message

    def _forget_old_revisions(self, service: InferenceServiceState) -> None:
        """Keep at most `max_revisions_per_service` revisions, forgetting the oldest
        that serve no traffic (as Knative's revision garbage collector does)."""
        limit = self.settings.max_revisions_per_service
        keep = {r.name for r in service.needed_revisions()}
        keep |= {
            name
            for name in (service.latest_rolledout, service.previous_rolledout)
            if name is not None
        }
        for old in list(service.revisions[:-1]):
            if len(service.revisions) <= limit:
                return
            if old.name not in keep:
                service.revisions.remove(old)
        if len(service.revisions) > limit:
            raise ApplyError(
                f"{service.name} would have {len(service.revisions)} revisions that "
                f"all serve traffic; the limit is {limit} "
                "(RISKSERVE_MAX_REVISIONS_PER_SERVICE)"
            )

    def delete(self, name: str) -> str:
        """Forget an InferenceService; the next tick stops its predictors."""
        if name not in self.state.services:
            raise KeyError(self.unknown(name))
        del self.state.services[name]
        self.changed()
        return f"{name}: deleted"

    def unknown(self, name: str) -> str:
        known = ", ".join(sorted(self.state.services)) or "none"
        return f"unknown InferenceService {excerpt(name, 70)!r} (known: {known})"

    def patch(self, name: str, changes: dict[str, Any]) -> str:
        """A change of storageUri, canaryTrafficPercent (None removes it) or shadow;
        `transformer`: its canaryTrafficPercent and settings of its container's env
        (`{"env": {NAME: value or None}}`, a policy rollout's)."""
        service = self.state.services.get(name)
        if service is None:
            raise KeyError(self.unknown(name))
        spec = copy.deepcopy(service.spec)
        annotations = spec.pop("_annotations", {})
        predictor = spec["predictor"]
        if "canaryTrafficPercent" in changes:
            _set_percent(predictor, changes["canaryTrafficPercent"])
        if "transformer" in changes:
            _patch_transformer(spec, changes["transformer"])
        if changes.get("storageUri"):
            predictor.setdefault("model", {})["storageUri"] = changes["storageUri"]
        new_annotations = changes.get("annotations") or {}
        if not isinstance(new_annotations, dict):
            raise ApplyError("annotations must be an object of name: value")
        for key, value in new_annotations.items():
            if value is None:
                annotations.pop(key, None)
            else:
                annotations[str(key)] = str(value)
        if "shadow" in changes:
            if changes["shadow"]:
                annotations["riskserve.io/shadow"] = "true"
            else:
                annotations.pop("riskserve.io/shadow", None)
        document = {
            "apiVersion": "serving.kserve.io/v1beta1",
            "kind": "InferenceService",
            "metadata": {"name": name, "annotations": annotations},
            "spec": spec,
        }
        return self.apply_documents([document])[0]

    def changed(self) -> None:
        self.version += 1
        self.save()

    def save(self) -> None:
        self.state.save(self.state_path)

    # -- processes -----------------------------------------------------------------

    def _start(self, service: InferenceServiceState, revision: Revision) -> None:
        if service.component == "transformer":
            return self._start_transformer(service, revision)
        http_port, grpc_port = free_port(), free_port()
        # The spec's settings are on an allow-list of tuning knobs (spec_rules), so they
        # may win over the platform's; the key, the host and the rest are never among them.
        env = {**self.env, **allowed_env(revision.predictor)}
        env["RISKSERVE_SERVING_REVISION"] = revision.name
        env["RISKSERVE_SERVING_HOST"] = self.settings.host
        argv = ["--model_dir", revision.storage_uri, "--grpc_port", str(grpc_port)]
        self._launch(service, revision, "serving", argv, env, http_port, grpc_port)

    def _start_transformer(
        self, component: InferenceServiceState, revision: Revision
    ) -> None:
        """`python -m riskserve.transformer` with KServe's injected arguments, its
        predictor being the gateway's predictor listener (the predictor component's
        own split), plus the container's allow-listed arguments and env. The
        container's image is not run: the platform runs riskserve's transformer."""
        if self.predictor_port is None:
            revision.reason = "waiting for the gateway's predictor listener"
            return
        container = transformer_container({"transformer": revision.predictor}) or {}
        http_port, grpc_port = free_port(), free_port()
        env = {
            **self.env,
            **transformer_log_env(self.env),
            **transformer_env(container),
        }
        env["RISKSERVE_TRANSFORMER_REVISION"] = revision.name
        env["RISKSERVE_TRANSFORMER_HOST"] = self.settings.host
        if self.settings.direct_predictor_routes:
            env["RISKSERVE_TRANSFORMER_PREDICTOR_ROUTES_FILE"] = str(
                self.direct_routes_path
            )
        key = self.env.get("RISKSERVE_SERVING_API_KEY")
        if key:
            # The predictors' key: the transformer asks its callers for it (as the
            # predictor does) and sends it to the predictor component.
            env["RISKSERVE_TRANSFORMER_API_KEY"] = key
            env["RISKSERVE_TRANSFORMER_PREDICTOR_API_KEY"] = key
        argv = [
            "--predictor_host",
            f"127.0.0.1:{self.predictor_port}",
            "--protocol",
            "v2",
            # Its v2 gRPC server, which the gateway's gRPC port routes to.
            "--grpc_port",
            str(grpc_port),
            *transformer_argv(container),
        ]
        self._launch(
            component, revision, "transformer", argv, env, http_port, grpc_port
        )

    def _launch(
        self,
        service: InferenceServiceState,
        revision: Revision,
        room: Literal["serving", "transformer"],
        argv: list[str],
        env: dict[str, str],
        http_port: int,
        grpc_port: int | None,
    ) -> None:
        """Start `python -m riskserve.<room>` for one revision with KServe's common
        arguments (`--model_name`, `--http_port`) and `argv`, dying with the platform;
        a process that cannot start marks the revision failed with the reason."""
        kind = "predictor" if room == "serving" else "transformer"
        spawn = ManagedProcess(
            name=f"{kind} {revision.name}",
            argv=[
                sys.executable,
                "-m",
                f"riskserve.{room}",
                "--model_name",
                service.name,
                "--http_port",
                str(http_port),
                *argv,
            ],
            log_path=self.root / "logs" / f"{revision.name}.log",
            env=env,
            die_with_parent=True,
        )
        try:
            process = spawn.start()
        except OSError as exc:
            revision.failed, revision.pid = True, None
            revision.reason = f"{kind} could not start: {excerpt(str(exc), 200)}"
            log.error("%s: %s", revision.name, revision.reason)
            return
        revision.pid, revision.http_port, revision.grpc_port = (
            process.pid,
            http_port,
            grpc_port,
        )
        revision.ready = False
        self.running[revision.name] = RunningRevision(
            process, UpstreamPool(self.settings.host, http_port), grpc_port or 0
        )
        log.info("started %s (pid %s, port %s)", revision.name, process.pid, http_port)

    def _stop(self, revision: Revision) -> None:
        running = self.running.pop(revision.name, None)
        if running is not None:
            running.pool.close()
            running.process.stop(grace=5)
        revision.pid = None
        revision.ready = False

    def adopt_or_clear_stale(self) -> None:
        """After a restart: predictors of the previous run that still live are ours
        (their PIDs are in the state file); stop them, then start afresh."""
        for service in self.state.services.values():
            for revision in (r for c in service.components() for r in c.revisions):
                if (
                    revision.pid
                    and pid_alive(revision.pid)
                    and is_our_predictor(revision.pid, revision.http_port)
                ):
                    stop_pid(revision.pid, grace=5)
                revision.pid, revision.ready = None, False
        self.changed()

    def pool(self, revision_name: str) -> UpstreamPool | None:
        running = self.running.get(revision_name)
        return running.pool if running else None

    def grpc_port(self, revision_name: str) -> int | None:
        """The gRPC port of a revision's running predictor or transformer, if it
        runs."""
        running = self.running.get(revision_name)
        return (running.grpc_port or None) if running else None

    async def tick(self) -> None:
        """One pass over every revision: start, probe, notice deaths, stop leftovers.
        A service that cannot run is marked so and skipped: it never stops the tick
        for the others."""
        dirty = self._stop_forgotten()
        for service in list(self.state.services.values()):
            try:
                dirty = await self._tick_service(service) or dirty
            except Exception as exc:  # one bad service must not starve the others
                reason = f"cannot run: {excerpt(str(exc), 200)}"
                if service.invalid_reason != reason:
                    log.exception("%s: %s", service.name, reason)
                    service.invalid_reason = reason
                    dirty = True
        if dirty:
            self.changed()
        self._publish_direct_routes()

    def _publish_direct_routes(self) -> None:
        """The routes file transformers read (direct_routes.py), when it changed."""
        if not self.settings.direct_predictor_routes:
            return
        predictors = direct_predictors(self.state.services.values())
        if predictors != self._direct_routes:
            write_routes(self.direct_routes_path, predictors)
            self._direct_routes = predictors

    def _stop_forgotten(self) -> bool:
        """Stop predictors whose revision was deleted or forgotten."""
        known = {
            r.name
            for s in self.state.services.values()
            for c in s.components()
            for r in c.revisions
        }
        forgotten = [name for name in self.running if name not in known]
        for name in forgotten:
            running = self.running.pop(name)
            running.pool.close()
            running.process.stop(grace=5)
            log.info("stopped %s: its revision is gone", name)
        return bool(forgotten)

    async def _tick_service(self, service: InferenceServiceState) -> bool:
        problem = name_problem(service.name)
        if problem:  # from a state file written before names were checked
            if service.invalid_reason != problem:
                service.invalid_reason = problem
                return True
            return False
        dirty = False
        for component in service.components():
            dirty = await self._tick_component(component) or dirty
        return dirty

    async def _tick_component(self, service: InferenceServiceState) -> bool:
        """One component's revisions: start, probe, notice deaths, stop leftovers."""
        dirty = False
        needed = {r.name for r in service.needed_revisions()}
        for revision in service.revisions:
            running = self.running.get(revision.name)
            if revision.name not in needed:
                if running is not None:
                    self._stop(revision)
                    dirty = True
                continue
            if running is None:
                self._start(service, revision)
                dirty = True
                continue
            if not running.process.alive():
                dirty = True
                code = running.process.returncode
                reason = _last_error_line(running.process) or f"exited with code {code}"
                self.running.pop(revision.name)
                running.pool.close()
                revision.ready = False
                self.version += 1
                if running.was_ready:
                    # It served before: restart it, as a kubelet restarts a pod.
                    revision.reason = (
                        f"{service.component} process died ({reason}); restarting"
                    )
                    log.warning("%s: %s", revision.name, revision.reason)
                    await asyncio.sleep(0)  # let in-flight retries see it gone
                    self._start(service, revision)
                else:
                    revision.failed = True
                    revision.pid = None
                    revision.reason = f"{service.component} failed to start: {reason}"
                    log.error("%s: %s", revision.name, revision.reason)
                continue
            if not revision.ready:
                if await _model_ready(
                    running.pool, service.name, self.settings.readiness_probe_timeout_s
                ):
                    revision.ready, revision.reason = True, ""
                    # The gateway's routes change now, not when the tick ends: its
                    # other probes may wait a probe timeout each.
                    self.version += 1
                    running.was_ready = True
                    dirty = True
                    log.info("%s is ready", revision.name)
                elif (
                    time.monotonic() - running.started_at
                    > self.settings.predictor_ready_timeout_s
                ):
                    self._stop(revision)
                    revision.failed = True
                    timeout = self.settings.predictor_ready_timeout_s
                    revision.reason = f"not ready within {timeout:.0f} s"
                    dirty = True
        return service.settle() or dirty

    def mark_suspect(
        self, revision_name: str, reason: str = "unreachable from the gateway"
    ) -> None:
        """The gateway could not reach this revision, or it did not answer in time:
        stop routing to it now; the next ticks decide whether its process died, or
        take it back when its readiness probe answers again."""
        for service in self.state.services.values():
            revision = service.revision(revision_name) or (
                service.transformer.revision(revision_name)
                if service.transformer is not None
                else None
            )
            if revision is not None and revision.ready:
                revision.ready = False
                revision.reason = reason
                self.version += 1

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await self.tick()
            except Exception:  # the controller must outlive any one bad tick
                log.exception("platform tick failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), TICK_S)

    def shutdown(self) -> None:
        for service in self.state.services.values():
            for revision in (r for c in service.components() for r in c.revisions):
                if revision.name in self.running:
                    self._stop(revision)
        self.save()

    # -- status -------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        base = self.settings.gateway_url
        items = []
        for service in self.state.services.values():
            spec = {k: v for k, v in service.spec.items() if k != "_annotations"}
            items.append(
                {
                    "apiVersion": "serving.kserve.io/v1beta1",
                    "kind": "InferenceService",
                    "metadata": {
                        "name": service.name,
                        "generation": service.generation,
                        **(
                            {"annotations": service.spec["_annotations"]}
                            if service.spec.get("_annotations")
                            else {}
                        ),
                    },
                    "spec": spec,
                    "status": service.status(base),
                }
            )
        revisions = {
            revision.name: {
                "inferenceService": service.name,
                "component": component.component,
                "storageUri": revision.storage_uri,
                "ready": revision.ready,
                "failed": revision.failed,
                "reason": revision.reason,
                "pid": revision.pid,
                "httpPort": revision.http_port,
                "grpcPort": revision.grpc_port,
            }
            for service in self.state.services.values()
            for component in service.components()
            for revision in component.revisions
        }
        listener = (
            {"predictorListener": f"http://127.0.0.1:{self.predictor_port}"}
            if self.predictor_port is not None
            else {}
        )
        return {
            "inferenceservices": items,
            "revisions": revisions,
            **({"gateway": listener} if listener else {}),
        }


SERVING_LOG_PREFIX = "RISKSERVE_SERVING_INFERENCE_LOG_"
TRANSFORMER_LOG_PREFIX = "RISKSERVE_TRANSFORMER_INFERENCE_LOG_"


def transformer_log_env(env: dict[str, str]) -> dict[str, str]:
    """The predictors' inference-log settings handed to transformers under their own
    names (`RISKSERVE_SERVING_INFERENCE_LOG_URI` -> `RISKSERVE_TRANSFORMER_...`), so
    a platform with a log records every decision where it is made: both write to
    the same root, the transformer's records marked `"stage": "transformer"`
    (docs/transformer.md). A `RISKSERVE_TRANSFORMER_INFERENCE_LOG_*` the platform
    itself was given wins; a spec can set neither (spec_rules)."""
    return {
        TRANSFORMER_LOG_PREFIX + name[len(SERVING_LOG_PREFIX) :]: value
        for name, value in env.items()
        if name.startswith(SERVING_LOG_PREFIX)
        and TRANSFORMER_LOG_PREFIX + name[len(SERVING_LOG_PREFIX) :] not in env
    }


def _set_percent(component: dict[str, Any], percent: object) -> None:
    if percent is None:
        component.pop("canaryTrafficPercent", None)
        return
    if (
        isinstance(percent, bool)
        or not isinstance(percent, int)
        or not 0 <= percent <= 100
    ):
        raise ApplyError(
            f"canaryTrafficPercent must be an integer from 0 to 100, got {percent!r}"
        )
    component["canaryTrafficPercent"] = percent


def _patch_transformer(spec: dict[str, Any], changes: object) -> None:
    """A patch's `transformer` part: its canaryTrafficPercent and env settings (the
    apply that follows checks them as any spec's)."""
    container = transformer_container(spec)
    if container is None:
        raise ApplyError("the InferenceService has no spec.transformer to patch")
    if not isinstance(changes, dict) or set(changes) - {"canaryTrafficPercent", "env"}:
        raise ApplyError(
            "transformer: an object of canaryTrafficPercent and env (name: value)"
        )
    if "canaryTrafficPercent" in changes:
        _set_percent(spec["transformer"], changes["canaryTrafficPercent"])
    env = changes.get("env") or {}
    if not isinstance(env, dict):
        raise ApplyError("transformer.env must be an object of name: value")
    entries = [e for e in container.get("env") or [] if e.get("name") not in env]
    entries += [
        {"name": str(key), "value": str(value)}
        for key, value in env.items()
        if value is not None
    ]
    container["env"] = entries


def _feature_repo(transformer: dict[str, Any]) -> str:
    """The `--feature_repo` of a transformer spec (`features: none` without one), and
    its policy URI if any, shown where a predictor revision shows its storageUri."""
    container = transformer_container({"transformer": transformer}) or {}
    argv = transformer_argv(container)
    repo = next(
        (v for f, v in zip(argv, argv[1:], strict=False) if f == "--feature_repo"),
        "features: none",
    )
    policy = transformer_env(container).get(POLICY_URI_ENV)
    return f"{repo}; policy {policy}" if policy else repo


async def _model_ready(pool: UpstreamPool, model: str, timeout: float) -> bool:
    try:
        status, _, _ = await pool.request(
            "GET", f"/v2/models/{model}/ready", [], b"", timeout=timeout
        )
    except UpstreamError:
        return False
    return status == 200


def _last_error_line(process: ManagedProcess) -> str:
    """The predictor's own words for why it stopped: its last ERROR record (the
    predictor logs JSON lines), else the last line of its output."""
    lines = [line.strip() for line in process.log_tail(60).splitlines() if line.strip()]
    for line in reversed(lines):
        try:
            record = json.loads(line)
        except ValueError:
            if line.startswith(("Error", "error", "Traceback")) or ": error:" in line:
                return line[-400:]
            continue
        if isinstance(record, dict) and record.get("level") in ("ERROR", "CRITICAL"):
            detail = record.get("error") or ""
            return f"{record.get('message', '')}: {detail}".strip(": ")[-400:]
    return lines[-1][-400:] if lines else ""
