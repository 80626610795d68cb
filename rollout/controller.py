"""Canary rollouts: one interface, two backends (the local platform and KServe).

`start` points an InferenceService at a new model with a canary percentage (or as a
shadow), `promote` removes `canaryTrafficPercent` so the new revision takes all the
traffic, `rollback` sets it to 0. `auto` steps the canary through percentages and judges
each step on the platform's own metrics: the canary's error rate, its p99 latency
against the stable revision's, and the shift of its score distribution (PSI). On
promote, MLflow's `champion` alias moves to the promoted version; on rollback it stays.
`gate_on_outcomes` judges an experiment's challenger by the money it made (the
monitor's outcomes report) and promotes or rolls back the same way.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from riskserve.governance.status import promotion_refusal
from riskserve.localplatform.client import patch, status, traffic
from riskserve.model.registry_tags import RegistryUnreachable, VersionNotFound
from riskserve.rollout.gates import (
    action_shift,
    delta,
    outcome_decision,
    psi,
    quantile_ms,
)
from riskserve.rollout.settings import RolloutSettings
from riskserve.serving.model_uri import is_models_uri, parse_models_uri, resolve_version

MODEL_VERSION_ANNOTATION = "riskserve.io/model-version"
SHADOW_ANNOTATION = "riskserve.io/shadow"


class RolloutError(RuntimeError):
    """A rollout step was refused or failed; the message says why."""


# -- resolving models:/ ---------------------------------------------------------------


@dataclass(frozen=True)
class ResolvedModel:
    storage_uri: str
    registered_name: str | None = None
    version: str | None = None

    @property
    def annotation(self) -> str | None:
        return f"{self.registered_name}/{self.version}" if self.version else None


def resolve_model(
    uri: str, settings: RolloutSettings, for_kserve: bool
) -> ResolvedModel:
    """`models:/name@alias` or `models:/name/N` to a fixed version (an alias may move
    later; a revision must not), and for KServe, which cannot read `models:/`
    (kserve#3555), to the version's `s3://` artifact location."""
    if not is_models_uri(uri):
        return ResolvedModel(uri)
    try:
        reference = parse_models_uri(uri)
    except ValueError as exc:
        raise RolloutError(str(exc)) from None
    if not settings.mlflow_tracking_uri:
        raise RolloutError(f"{uri}: set MLFLOW_TRACKING_URI to resolve models:/ URIs")
    from mlflow.exceptions import MlflowException

    client = settings.mlflow_client()
    name = reference.name
    try:
        version = resolve_version(client, reference)
        download_uri = client.get_model_version_download_uri(name, version)
    except (MlflowException, LookupError) as exc:
        raise RolloutError(f"{uri}: {getattr(exc, 'message', exc)}") from None
    if not for_kserve:
        return ResolvedModel(f"models:/{name}/{version}", name, str(version))
    return ResolvedModel(
        artifact_s3_uri(download_uri, settings.artifacts_destination),
        name,
        str(version),
    )


def artifact_s3_uri(download_uri: str, artifacts_destination: str) -> str:
    """`mlflow-artifacts:/<exp>/models/m-<id>/artifacts` (served by an MLflow server
    with `--artifacts-destination s3://...`) as the `s3://` URI of the same objects."""
    if download_uri.startswith("s3://"):
        return download_uri
    if download_uri.startswith("mlflow-artifacts:"):
        path = re.sub(r"^mlflow-artifacts:(//[^/]*)?/", "", download_uri)
        return artifacts_destination.rstrip("/") + "/" + path
    raise RolloutError(
        f"the model's artifacts are at {download_uri}, which KServe cannot read; "
        "register models on an MLflow server whose artifacts are in S3"
    )


# -- backends -----------------------------------------------------------------------------


@dataclass
class PredictorStatus:
    """`status.components.predictor` of an InferenceService, as KServe reports it."""

    latest_created: str | None
    latest_ready: str | None
    latest_rolledout: str | None
    previous_rolledout: str | None
    traffic: list[dict[str, Any]]
    annotations: dict[str, str]
    canary_percent: int | None

    @classmethod
    def from_isvc(
        cls, isvc: dict[str, Any], component: str = "predictor"
    ) -> PredictorStatus:
        """The predictor's status, or another component's (`transformer`: a policy
        rollout's), in the same shape."""
        predictor = ((isvc.get("status") or {}).get("components") or {}).get(
            component
        ) or {}
        spec = (isvc.get("spec") or {}).get(component) or {}
        return cls(
            latest_created=predictor.get("latestCreatedRevision"),
            latest_ready=predictor.get("latestReadyRevision"),
            latest_rolledout=predictor.get("latestRolledoutRevision"),
            previous_rolledout=predictor.get("previousRolledoutRevision"),
            traffic=list(predictor.get("traffic") or []),
            annotations=dict((isvc.get("metadata") or {}).get("annotations") or {}),
            canary_percent=spec.get("canaryTrafficPercent"),
        )

    @property
    def canary(self) -> str | None:
        """The revision under trial: the latest, while it is not the rolled-out one."""
        if self.latest_created and self.latest_created != self.latest_rolledout:
            return self.latest_created
        return None

    def split(self) -> str:
        return ", ".join(
            f"{t['revisionName']} {t.get('percent', 0)}%" for t in self.traffic
        )


class Backend(Protocol):
    name: str

    def patch(
        self,
        isvc: str,
        storage_uri: str | None,
        percent: int | None | object,
        annotations: dict[str, str | None],
    ) -> None: ...

    def get(self, isvc: str) -> dict[str, Any]: ...


class TransformerBackend(Backend, Protocol):
    """A backend that also patches spec.transformer (a policy rollout's)."""

    def patch_transformer(
        self,
        isvc: str,
        env: dict[str, str | None],
        percent: int | None | object,
        annotations: dict[str, str | None],
    ) -> None:
        """Set settings of the transformer's container and its canaryTrafficPercent
        (UNCHANGED: leave it): a new transformer revision when the env changes."""
        ...


UNCHANGED = object()


class LocalBackend:
    """The local platform, through its gateway's control API."""

    name = "local"

    def __init__(self, platform_settings) -> None:
        self.settings = platform_settings

    def patch(self, isvc, storage_uri, percent, annotations) -> None:
        changes: dict[str, Any] = {}
        if storage_uri:
            changes["storageUri"] = storage_uri
        if percent is not UNCHANGED:
            changes["canaryTrafficPercent"] = percent
        if SHADOW_ANNOTATION in annotations:
            changes["shadow"] = annotations[SHADOW_ANNOTATION] == "true"
        other = {k: v for k, v in annotations.items() if k != SHADOW_ANNOTATION}
        if other:
            changes["annotations"] = other
        try:
            patch(self.settings, isvc, changes)
        except RuntimeError as exc:
            raise RolloutError(str(exc)) from None

    def patch_transformer(self, isvc, env, percent, annotations) -> None:
        transformer: dict[str, Any] = {}
        if env:
            transformer["env"] = dict(env)
        if percent is not UNCHANGED:
            transformer["canaryTrafficPercent"] = percent
        changes: dict[str, Any] = {"transformer": transformer}
        if annotations:
            changes["annotations"] = dict(annotations)
        try:
            patch(self.settings, isvc, changes)
        except RuntimeError as exc:
            raise RolloutError(str(exc)) from None

    def get(self, isvc) -> dict[str, Any]:
        for item in status(self.settings)["inferenceservices"]:
            if item["metadata"]["name"] == isvc:
                return item
        raise RolloutError(f"unknown InferenceService {isvc!r} on the local platform")

    def revision_metrics(
        self, isvc: str, component: str = "predictor"
    ) -> dict[str, dict[str, Any]]:
        """Each revision's counters as the gateway saw them: the predictor's, or
        the transformer's (`component="transformer"`, a policy rollout's)."""
        service = traffic(self.settings)["inferenceservices"].get(
            isvc, {"revisions": []}
        )
        if component != "predictor":
            service = service.get(component) or {"revisions": []}
        return {r["name"]: r for r in service["revisions"]}


class KServeBackend:
    """A cluster, through the Kubernetes API (`CustomObjectsApi`). This class builds the
    merge patches and reads KServe's status; the API object is the only part that talks
    to a cluster, so tests hand it a recorder instead."""

    name = "kserve"
    group, version, plural = "serving.kserve.io", "v1beta1", "inferenceservices"

    def __init__(self, namespace: str, api=None) -> None:
        self.namespace = namespace
        self._api = api

    @property
    def api(self):
        if self._api is None:
            from kubernetes import client, config

            try:
                config.load_incluster_config()
            except config.ConfigException:
                try:
                    config.load_kube_config()
                except (config.ConfigException, OSError) as exc:
                    raise RolloutError(f"no Kubernetes configuration: {exc}") from None
            self._api = client.CustomObjectsApi()
        return self._api

    @staticmethod
    def build_patch(storage_uri, percent, annotations) -> dict[str, Any]:
        """A JSON merge patch (RFC 7386): `None` removes a field."""
        predictor: dict[str, Any] = {}
        if storage_uri:
            predictor["model"] = {"storageUri": storage_uri}
        if percent is not UNCHANGED:
            predictor["canaryTrafficPercent"] = percent
        body: dict[str, Any] = {}
        if predictor:
            body["spec"] = {"predictor": predictor}
        if annotations:
            body["metadata"] = {"annotations": dict(annotations)}
        return body

    def patch(self, isvc, storage_uri, percent, annotations) -> None:
        if annotations.get(SHADOW_ANNOTATION) == "true":
            raise RolloutError(
                "--shadow runs on the local platform only: KServe has no traffic mirroring "
                "of its own (use an Istio VirtualService mirror on a cluster)"
            )
        body = self.build_patch(storage_uri, percent, annotations)
        try:
            self.api.patch_namespaced_custom_object(
                self.group, self.version, self.namespace, self.plural, isvc, body
            )
        except Exception as exc:  # the client raises ApiException, urllib3 errors, ...
            raise RolloutError(
                f"patching {self.namespace}/{isvc} failed: {_api_reason(exc)}"
            ) from None

    @staticmethod
    def build_transformer_patch(
        isvc: dict[str, Any], env, percent, annotations
    ) -> dict[str, Any]:
        """A JSON merge patch of spec.transformer: a merge patch replaces a list
        whole, so the containers are sent whole, the first one's env changed."""
        spec = (isvc.get("spec") or {}).get("transformer")
        containers = (spec or {}).get("containers") or []
        if not containers:
            name = (isvc.get("metadata") or {}).get("name")
            raise RolloutError(f"{name} has no spec.transformer container to patch")
        transformer: dict[str, Any] = {}
        if env:
            containers = [dict(c) for c in containers]
            entries = [
                e for e in containers[0].get("env") or [] if e.get("name") not in env
            ]
            entries += [
                {"name": k, "value": v} for k, v in env.items() if v is not None
            ]
            containers[0]["env"] = entries
            transformer["containers"] = containers
        if percent is not UNCHANGED:
            transformer["canaryTrafficPercent"] = percent
        body: dict[str, Any] = {"spec": {"transformer": transformer}}
        if annotations:
            body["metadata"] = {"annotations": dict(annotations)}
        return body

    def patch_transformer(self, isvc, env, percent, annotations) -> None:
        body = self.build_transformer_patch(self.get(isvc), env, percent, annotations)
        try:
            self.api.patch_namespaced_custom_object(
                self.group, self.version, self.namespace, self.plural, isvc, body
            )
        except Exception as exc:  # as `patch`
            raise RolloutError(
                f"patching {self.namespace}/{isvc} failed: {_api_reason(exc)}"
            ) from None

    def get(self, isvc) -> dict[str, Any]:
        try:
            return self.api.get_namespaced_custom_object(
                self.group, self.version, self.namespace, self.plural, isvc
            )
        except Exception as exc:
            raise RolloutError(
                f"reading {self.namespace}/{isvc} failed: {_api_reason(exc)}"
            ) from None


def _api_reason(exc: Exception) -> str:
    status, reason = getattr(exc, "status", None), getattr(exc, "reason", None)
    return f"{status} {reason}" if status else str(exc).splitlines()[0]


# -- the rollout commands ------------------------------------------------------------------


class Clock(Protocol):
    """Where the rollout reads the time and waits: the system's, or a test's."""

    def monotonic(self) -> float: ...

    def sleep(self, seconds: float) -> None: ...


class SystemClock:
    monotonic = staticmethod(time.monotonic)
    sleep = staticmethod(time.sleep)


class Rollout:
    def __init__(
        self,
        backend,
        settings: RolloutSettings,
        say=print,
        clock: Clock | None = None,
        component: str = "predictor",
    ) -> None:
        self.clock = clock or SystemClock()
        self.backend, self.settings, self.say = backend, settings, say
        # What `judge_steps` canaries: the predictor (a model), or the transformer
        # (a policy: riskserve.policy_cli drives its start, promote and rollback).
        self.component = component

    def start(
        self,
        isvc: str,
        model_uri: str,
        percent: int,
        shadow: bool = False,
        resolved: ResolvedModel | None = None,
    ) -> ResolvedModel:
        check_percent(percent)
        self.backend.get(
            isvc
        )  # an unknown InferenceService fails here, before any change
        model = resolved or self.resolve(model_uri)
        annotations: dict[str, str | None] = {
            MODEL_VERSION_ANNOTATION: model.annotation
        }
        if shadow:
            annotations[SHADOW_ANNOTATION] = "true"
        self.backend.patch(
            isvc, model.storage_uri, 0 if shadow else percent, annotations
        )
        self.say(
            f"{isvc}: new revision for {model.storage_uri}"
            + (
                " as a shadow (copies of traffic, answers compared, never returned)"
                if shadow
                else f" with {percent}% of traffic"
            )
        )
        return model

    def resolve(self, model_uri: str) -> ResolvedModel:
        return resolve_model(
            model_uri, self.settings, for_kserve=self.backend.name == "kserve"
        )

    def check_promotable(self, annotation: str | None, what: str) -> None:
        check_promotable(self.settings, annotation, what)

    def set_percent(self, isvc: str, percent: int) -> None:
        check_percent(percent)
        self.backend.get(isvc)
        if self.component == "predictor":
            self.backend.patch(isvc, None, percent, {})
        else:
            self.backend.patch_transformer(isvc, {}, percent, {})

    def revision_metrics(self, isvc: str) -> dict[str, dict[str, Any]]:
        """The counters of the canaried component's revisions."""
        if self.component == "predictor":
            return self.backend.revision_metrics(isvc)
        return self.backend.revision_metrics(isvc, component=self.component)

    def promote(self, isvc: str) -> str:
        before = PredictorStatus.from_isvc(self.backend.get(isvc))
        if before.canary is None:
            raise RolloutError(f"{isvc}: no canary to promote ({before.split()})")
        version = before.annotations.get(MODEL_VERSION_ANNOTATION)
        self.check_promotable(version, f"{isvc}'s canary {before.canary}")
        self.backend.patch(isvc, None, None, {SHADOW_ANNOTATION: None})
        message = f"{isvc}: promoted {before.canary}; it takes 100% once ready"
        if version and self.settings.mlflow_tracking_uri:
            name, number = version.rsplit("/", 1)
            self.settings.mlflow_client().set_registered_model_alias(
                name, "champion", number
            )
            message += f"; MLflow alias champion -> {name} v{number}"
        self.say(message)
        return message

    def rollback(self, isvc: str, why: str = "") -> str:
        before = PredictorStatus.from_isvc(self.backend.get(isvc))
        self.backend.patch(isvc, None, 0, {SHADOW_ANNOTATION: None})
        message = (
            f"{isvc}: rolled back to {before.latest_rolledout}"
            + (f" ({why})" if why else "")
            + "; champion alias unchanged"
        )
        self.say(message)
        return message

    def status(self, isvc: str) -> PredictorStatus:
        return PredictorStatus.from_isvc(self.backend.get(isvc), self.component)

    def gate_on_outcomes(
        self,
        isvc: str,
        report_path: Path,
        arm: str | None = None,
        now: float | None = None,
    ) -> str:
        """The outcomes gate: the monitor's outcomes report of the experiment
        (`riskserve monitor outcomes --json`, a file) judges the challenger arm the
        canary serves; promote when it is better with the pass's confidence, roll back
        when it is worse, else leave the canary as it is. Returns promote, stop or
        wait."""
        try:
            report = json.loads(Path(report_path).read_text())
        except (OSError, ValueError) as exc:
            raise RolloutError(
                f"{report_path}: not a readable outcomes report ({exc})"
            ) from None
        try:
            decision, why = outcome_decision(
                report,
                arm,
                time.time() if now is None else now,
                self.settings.outcome_max_age_s,
            )
        except ValueError as exc:
            raise RolloutError(f"{report_path}: {exc}") from None
        if decision == "promote":
            self.say(f"{isvc}: outcomes: {why}")
            self.promote(isvc)
        elif decision == "stop":
            self.rollback(isvc, f"outcomes: {why}")
        else:
            self.say(f"{isvc}: outcomes: {why}; the canary stays as it is")
        return decision

    # -- automatic ----------------------------------------------------------------------------

    def auto(self, isvc: str, model_uri: str, steps: list[int]) -> bool:
        """Step the canary through `steps`; promote when every step holds, roll back and
        say why as soon as one breaks. True when promoted."""
        self.check_auto(steps)
        # The gate before any traffic moves: a canary that cannot be promoted is not
        # worth judging.
        model = self.resolve(model_uri)
        self.check_promotable(model.annotation, model.storage_uri)
        self.start(isvc, model_uri, steps[0], resolved=model)
        return self.judge_steps(isvc, steps, self.promote, self.rollback)

    def check_auto(self, steps: list[int]) -> None:
        """Refuse, before anything changes, an automatic rollout this backend cannot
        judge or steps that are not percentages."""
        if not hasattr(self.backend, "revision_metrics"):
            raise RolloutError(
                "--auto on a cluster reads its gates from Prometheus: pass "
                "--prometheus URL (or step with `rollout start --percent` and `promote`)"
            )
        if not steps:
            raise RolloutError("--auto needs at least one step")
        for step in steps:
            check_percent(step)

    def judge_steps(
        self,
        isvc: str,
        steps: list[int],
        promote: Callable[[str], object],
        rollback: Callable[[str, str], object],
    ) -> bool:
        """The canary of `self.component`, started at `steps[0]`: wait until it is
        ready, then watch each step; `promote(isvc)` when every step holds,
        `rollback(isvc, why)` as soon as one breaks. True when promoted."""
        canary = self._wait_canary_ready(isvc, rollback)
        if canary is None:
            return False
        stable = self.status(isvc).latest_rolledout
        baseline = self.revision_metrics(isvc)
        for index, step in enumerate(steps):
            if index:
                self.set_percent(isvc, step)
            self.say(
                f"{isvc}: step {index + 1}/{len(steps)}: {canary} at {step}%, watching "
                f"{self.settings.window_s:.0f} s"
            )
            for rechecks_left in range(self.settings.latency_rechecks, -1, -1):
                broken = self._judge_window(isvc, canary, stable, baseline)
                if set(broken) != {"latency"} or not rechecks_left:
                    break
                # p99 over a short window is a handful of requests: one scheduler
                # stall decides it. A slow model stays slow in the next window.
                self.say(
                    f"{isvc}: {canary}: {broken['latency']}; watching one more "
                    f"window before judging latency"
                )
            if broken:
                rollback(isvc, "; ".join(broken.values()))
                return False
        promote(isvc)
        return True

    def _wait_canary_ready(
        self,
        isvc: str,
        rollback: Callable[[str, str], object],
        timeout: float = 120.0,
    ) -> str | None:
        # KServe's condition of a failed revision; a transformer's is prefixed
        failed_type = (
            "LatestDeploymentReady"
            if self.component == "predictor"
            else f"{self.component.capitalize()}LatestDeploymentReady"
        )
        deadline = self.clock.monotonic() + timeout
        while self.clock.monotonic() < deadline:
            status = self.status(isvc)
            revisions = self.backend.get(isvc)
            if status.canary and status.latest_ready == status.canary:
                return status.canary
            failed = [
                c
                for c in revisions["status"]["conditions"]
                if c["status"] == "False" and c["type"] == failed_type
            ]
            if failed:
                rollback(isvc, f"the new revision failed: {failed[0].get('message')}")
                return None
            self.clock.sleep(0.3)
        rollback(isvc, f"the new revision was not ready within {timeout:.0f} s")
        return None

    def _judge_window(self, isvc, canary, stable, baseline) -> dict[str, str]:
        """The gates one window of traffic broke, each with why; empty when it passes."""
        s = self.settings
        start = self.revision_metrics(isvc)
        deadline = self.clock.monotonic() + s.window_s
        extended = False
        while True:
            self.clock.sleep(0.5)
            status = self.status(isvc)
            if status.latest_ready != canary or not any(
                t["revisionName"] == canary for t in status.traffic
            ):
                return {"ready": f"canary {canary} is no longer ready"}
            now = self.revision_metrics(isvc)
            if now.get(canary, {}).get("ready") is False:
                return {"ready": f"canary {canary} is not ready (its process stopped)"}
            if self.clock.monotonic() < deadline:
                continue
            window = delta(start.get(canary), now.get(canary))
            if window["requests"] < s.min_requests and not extended:
                deadline += s.window_s  # too little traffic to judge: watch once more
                extended = True
                continue
            break
        if window["requests"] < s.min_requests:
            return {
                "traffic": f"too little traffic to judge ({window['requests']} canary "
                "requests)"
            }
        since_start = delta(baseline.get(stable), now.get(stable))
        same_window = delta(start.get(stable), now.get(stable))
        # Latency is compared over the same seconds when the stable revision served
        # enough of them (a busy host slows both alike); at 100% it serves none, and
        # everything it served since the rollout began is the reference.
        latency_reference = (
            same_window if same_window["requests"] >= s.min_requests else since_start
        )
        # Every gate is judged and every broken one named: the operator should learn
        # that scores shifted even when latency broke a gate first.
        broken: dict[str, str] = {}
        error_rate = window["errors"] / window["requests"]
        if error_rate > s.max_error_rate:
            broken["errors"] = (
                f"canary error rate {error_rate:.1%} > {s.max_error_rate:.1%}"
            )
        canary_p99 = quantile_ms(window, 0.99)
        stable_p99 = quantile_ms(latency_reference, 0.99)
        if (
            latency_reference["requests"]
            and canary_p99 > stable_p99 * s.max_p99_ratio + s.p99_slack_ms
        ):
            broken["latency"] = (
                f"canary p99 {canary_p99:.1f} ms > {s.max_p99_ratio}x stable "
                f"{stable_p99:.1f} ms + {s.p99_slack_ms:g} ms"
            )
        shift = psi(window["score_counts"], since_start["score_counts"])
        if shift is not None and shift > s.max_psi:
            broken["scores"] = (
                f"score distribution shifted: PSI {shift:.2f} > {s.max_psi}"
            )
        # A policy canary's telling gate: the share of each action against the
        # stable revision's over the same seconds (else all it served since the start)
        mix = ""
        if self.component == "transformer":
            action_reference = (
                same_window
                if sum(same_window["action_counts"].values()) >= s.min_requests
                else since_start
            )
            shifted = action_shift(
                window["action_counts"],
                action_reference["action_counts"],
                s.max_action_shift,
                s.action_shift_z,
            )
            if shifted:
                broken["actions"] = shifted
            mix = ", actions " + (
                _mix(window["action_counts"])
                + " (stable "
                + _mix(action_reference["action_counts"])
                + ")"
                if window["action_counts"] and action_reference["action_counts"]
                else "n/a (no policy on one side)"
            )
        if broken:
            return broken
        self.say(
            f"{isvc}: {canary}: {window['requests']} requests, errors {error_rate:.1%}, "
            f"p99 {canary_p99:.1f} ms (stable {stable_p99:.1f} ms), PSI "
            + ("n/a" if shift is None else f"{shift:.3f}")
            + mix
        )
        return {}


def _mix(counts: dict[str, int]) -> str:
    """`approve 61%, decline 39%`: each action's share of the rows."""
    total = sum(counts.values())
    return ", ".join(
        f"{action} {count / total:.0%}" for action, count in sorted(counts.items())
    )


def check_percent(percent: int) -> None:
    if (
        isinstance(percent, bool)
        or not isinstance(percent, int)
        or not 0 <= percent <= 100
    ):
        raise RolloutError(f"percent must be an integer from 0 to 100, got {percent!r}")


def check_promotable(
    settings: RolloutSettings, annotation: str | None, what: str
) -> None:
    """The approval gate: RolloutError saying why unless the registry version
    (`NAME/N`: a model's, or a policy's) is approved (or the development override is
    on)."""
    if settings.allow_unapproved:
        return
    override = "RISKSERVE_ROLLOUT_ALLOW_UNAPPROVED=true allows it in development"
    if not annotation:
        raise RolloutError(
            f"{what} is not a registry version, so it cannot be approved; roll "
            f"out models:/NAME/N (approved) to promote it ({override})"
        )
    if not settings.mlflow_tracking_uri:
        raise RolloutError(
            f"cannot check that {annotation} is approved: set MLFLOW_TRACKING_URI "
            f"({override})"
        )
    name, number = annotation.rsplit("/", 1)
    try:
        # Over MLflow's REST API where it can (milliseconds, where importing MLflow's
        # client takes seconds before any traffic moves: model/registry_tags.py)
        tags = settings.registry_version_tags(
            settings.mlflow_tracking_uri, name, number, settings.mlflow_timeout_s
        )
    except VersionNotFound as exc:
        raise RolloutError(f"{annotation}: {exc}") from None
    except RegistryUnreachable as exc:
        raise RolloutError(
            f"cannot check that {annotation} is approved: {exc}"
        ) from None
    if tags is None:
        from mlflow.exceptions import MlflowException

        try:
            tags = dict(settings.mlflow_client().get_model_version(name, number).tags)
        except MlflowException as exc:
            raise RolloutError(f"{annotation}: {exc.message}") from None
    refusal = promotion_refusal(dict(tags), name, number)
    if refusal:
        raise RolloutError(f"refused to promote: {refusal} ({override})")
