"""The local platform's controller: InferenceServices in, predictor processes out.

Each revision runs as its own `python -m serving` process on free loopback ports. The
controller creates a revision when a predictor spec changes (as Knative does), watches
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
from pathlib import Path
from typing import Any

import yaml

from localplatform.isvc_schema import isvc_errors
from localplatform.processes import ManagedProcess, free_port, pid_alive, stop_pid
from localplatform.settings import PlatformSettings
from localplatform.state import (
    InferenceServiceState,
    PlatformState,
    Revision,
    predictor_hash,
    storage_uri,
)
from localplatform.upstream import UpstreamError, UpstreamPool

log = logging.getLogger("riskserve.platform")

TICK_S = 0.2


class ApplyError(ValueError):
    """A document or a change the platform refuses; nothing was changed."""


@dataclass
class RunningRevision:
    process: ManagedProcess
    pool: UpstreamPool
    started_at: float = field(default_factory=time.monotonic)
    was_ready: bool = False


def parse_documents(text: str) -> list[dict[str, Any]]:
    """The InferenceServices in a YAML stream (other kinds, e.g. from `helm template`,
    are skipped: the local platform runs InferenceServices)."""
    try:
        documents = [d for d in yaml.safe_load_all(text) if d]
    except yaml.YAMLError as exc:
        raise ApplyError(f"not valid YAML: {exc}") from None
    services = [
        d
        for d in documents
        if isinstance(d, dict) and d.get("kind") == "InferenceService"
    ]
    if not services:
        raise ApplyError("no InferenceService in the given YAML")
    return services


class LocalPlatform:
    def __init__(self, settings: PlatformSettings, env: dict[str, str]) -> None:
        self.settings = settings
        self.env = env
        self.root = settings.state_dir / "platform"
        self.state_path = self.root / "state.json"
        self.state = PlatformState.load(self.state_path)
        self.running: dict[str, RunningRevision] = {}
        self.version = 0  # bumped on every routing change; the gateway caches on it

    # -- applying specs ------------------------------------------------------------

    def apply_documents(self, documents: list[dict[str, Any]]) -> list[str]:
        """Validate every document first; apply only when all are valid."""
        problems = []
        for document in documents:
            errors = isvc_errors(document)
            metadata = document.get("metadata")
            name = str(metadata.get("name", "?")) if isinstance(metadata, dict) else "?"
            if not errors and not storage_uri(document["spec"]["predictor"]):
                errors = ["spec.predictor.model.storageUri is missing"]
            if errors:
                problems.append(f"InferenceService {name}: " + "; ".join(errors[:3]))
                if name in self.state.services:
                    self.state.services[name].invalid_reason = "; ".join(errors[:3])
        if problems:
            self.save()
            raise ApplyError(" | ".join(problems))
        return [self._apply_one(document) for document in documents]

    def _apply_one(self, document: dict[str, Any]) -> str:
        name = document["metadata"]["name"]
        spec = copy.deepcopy(document["spec"])
        annotations = (document.get("metadata") or {}).get("annotations") or {}
        spec["_annotations"] = {
            k: v for k, v in annotations.items() if k.startswith("riskserve.io/")
        }
        service = self.state.services.get(name)
        if service is None:
            service = self.state.services[name] = InferenceServiceState(
                name=name, spec=spec
            )
        else:
            service.spec = spec
            service.generation += 1
        service.invalid_reason = ""
        predictor = spec["predictor"]
        digest = predictor_hash(predictor)
        latest = service.latest_created
        if latest is None or latest.spec_hash != digest:
            revision = Revision(
                name=service.next_revision_name(),
                storage_uri=storage_uri(predictor),
                predictor=copy.deepcopy(predictor),
                spec_hash=digest,
            )
            service.revisions.append(revision)
            message = (
                f"{name}: created revision {revision.name} ({revision.storage_uri})"
            )
        else:
            message = f"{name}: unchanged revision {latest.name}"
        if service.canary_percent is not None:
            message += f", canaryTrafficPercent {service.canary_percent}"
        service.settle()
        self.changed()
        return message

    def patch(self, name: str, changes: dict[str, Any]) -> str:
        """A change of storageUri, canaryTrafficPercent (None removes it) or shadow."""
        service = self.state.services.get(name)
        if service is None:
            known = ", ".join(sorted(self.state.services)) or "none"
            raise KeyError(f"unknown InferenceService {name!r} (known: {known})")
        spec = copy.deepcopy(service.spec)
        annotations = spec.pop("_annotations", {})
        predictor = spec["predictor"]
        if "canaryTrafficPercent" in changes:
            percent = changes["canaryTrafficPercent"]
            if percent is None:
                predictor.pop("canaryTrafficPercent", None)
            else:
                if (
                    isinstance(percent, bool)
                    or not isinstance(percent, int)
                    or not 0 <= percent <= 100
                ):
                    raise ApplyError(
                        f"canaryTrafficPercent must be an integer from 0 to 100, got {percent!r}"
                    )
                predictor["canaryTrafficPercent"] = percent
        if changes.get("storageUri"):
            predictor.setdefault("model", {})["storageUri"] = changes["storageUri"]
        new_annotations = changes.get("annotations") or {}
        if not isinstance(new_annotations, dict):
            raise ApplyError("annotations must be an object of name: value")
        for key, value in new_annotations.items():
            if value is None:
                annotations.pop(key, None)
            else:
                annotations[key] = str(value)
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
        http_port, grpc_port = free_port(), free_port()
        env = dict(self.env)
        env["RISKSERVE_SERVING_REVISION"] = revision.name
        env["RISKSERVE_SERVING_HOST"] = self.settings.host
        for item in (revision.predictor.get("model") or {}).get("env", []) or []:
            if "value" in item:
                env[item["name"]] = str(item["value"])
        process = ManagedProcess(
            name=f"predictor {revision.name}",
            argv=[
                sys.executable,
                "-m",
                "serving",
                "--model_name",
                service.name,
                "--model_dir",
                revision.storage_uri,
                "--http_port",
                str(http_port),
                "--grpc_port",
                str(grpc_port),
            ],
            log_path=self.root / "logs" / f"{revision.name}.log",
            env=env,
        ).start()
        revision.pid, revision.http_port, revision.grpc_port = (
            process.pid,
            http_port,
            grpc_port,
        )
        revision.ready = False
        self.running[revision.name] = RunningRevision(
            process, UpstreamPool(self.settings.host, http_port)
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
            for revision in service.revisions:
                if (
                    revision.pid
                    and pid_alive(revision.pid)
                    and _is_our_predictor(revision)
                ):
                    stop_pid(revision.pid, grace=5)
                revision.pid, revision.ready = None, False
        self.changed()

    def pool(self, revision_name: str) -> UpstreamPool | None:
        running = self.running.get(revision_name)
        return running.pool if running else None

    async def tick(self) -> None:
        """One pass over every revision: start, probe, notice deaths, stop leftovers."""
        dirty = False
        for service in self.state.services.values():
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
                    code = running.process.popen.returncode
                    reason = (
                        _last_error_line(running.process) or f"exited with code {code}"
                    )
                    self.running.pop(revision.name)
                    running.pool.close()
                    revision.ready = False
                    if running.was_ready:
                        # It served before: restart it, as a kubelet restarts a pod.
                        revision.reason = (
                            f"predictor process died ({reason}); restarting"
                        )
                        log.warning("%s: %s", revision.name, revision.reason)
                        await asyncio.sleep(0)  # let in-flight retries see it gone
                        self._start(service, revision)
                    else:
                        revision.failed = True
                        revision.pid = None
                        revision.reason = f"predictor failed to start: {reason}"
                        log.error("%s: %s", revision.name, revision.reason)
                    continue
                if not revision.ready:
                    if await _model_ready(
                        running.pool,
                        service.name,
                        self.settings.readiness_probe_timeout_s,
                    ):
                        revision.ready, revision.reason = True, ""
                        running.was_ready = True
                        dirty = True
                        log.info("%s is ready", revision.name)
                    elif (
                        time.monotonic() - running.started_at
                        > self.settings.predictor_ready_timeout_s
                    ):
                        self._stop(revision)
                        revision.failed = True
                        revision.reason = f"not ready within {self.settings.predictor_ready_timeout_s:.0f} s"
                        dirty = True
            if service.settle():
                dirty = True
        if dirty:
            self.changed()

    def mark_suspect(
        self, revision_name: str, reason: str = "unreachable from the gateway"
    ) -> None:
        """The gateway could not reach this revision, or it did not answer in time:
        stop routing to it now; the next ticks decide whether its process died, or
        take it back when its readiness probe answers again."""
        for service in self.state.services.values():
            revision = service.revision(revision_name)
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
            for revision in service.revisions:
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
                "storageUri": revision.storage_uri,
                "ready": revision.ready,
                "failed": revision.failed,
                "reason": revision.reason,
                "pid": revision.pid,
                "httpPort": revision.http_port,
                "grpcPort": revision.grpc_port,
            }
            for service in self.state.services.values()
            for revision in service.revisions
        }
        return {"inferenceservices": items, "revisions": revisions}


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


def _is_our_predictor(revision: Revision) -> bool:
    try:
        cmdline = Path(f"/proc/{revision.pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return b"serving" in cmdline and str(revision.http_port).encode() in cmdline
