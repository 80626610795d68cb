"""The local platform's state: InferenceServices, their revisions, and KServe's traffic
rules, kept as JSON under the state folder so a restart resumes the same revisions.

Traffic follows KServe (Serverless mode): the last revision rolled out at 100% is
remembered; with `canaryTrafficPercent: N` the latest ready revision gets N% and the
rolled-out one the rest; without it, the latest becomes the rolled-out revision as soon
as it is ready; `canaryTrafficPercent: 0` sends everything back to the rolled-out one.
A revision that is not ready gets no traffic.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class Revision:
    name: str
    storage_uri: str
    predictor: dict[str, Any]  # the predictor spec that made this revision
    spec_hash: str
    created_at: float = field(default_factory=time.time)
    ready: bool = False
    failed: bool = False  # its predictor could not start or load the model
    reason: str = ""
    pid: int | None = None
    http_port: int | None = None
    grpc_port: int | None = None


@dataclass
class TrafficTarget:
    revision_name: str
    percent: int
    tag: str | None
    latest_revision: bool


@dataclass
class InferenceServiceState:
    name: str
    spec: dict[str, Any]
    generation: int = 1
    revisions: list[Revision] = field(default_factory=list)
    latest_rolledout: str | None = None
    previous_rolledout: str | None = None
    invalid_reason: str = ""  # the last applied document was rejected
    component: str = "predictor"
    """Which component of the spec this state's revisions run: `predictor`, or
    `transformer` for the nested state of `spec.transformer`."""
    transformer: InferenceServiceState | None = None
    """The transformer component (`spec.transformer`), with its own revisions,
    rolled-out history and split, by the same rules; None without one."""

    # -- revisions ------------------------------------------------------------

    @property
    def predictor(self) -> dict[str, Any]:
        """This component's spec (`spec.predictor`, or `spec.transformer` in the
        nested transformer state)."""
        return self.spec.get(self.component, {})

    def components(self) -> list[InferenceServiceState]:
        """The predictor component (self), then the transformer's, if any."""
        return [self] if self.transformer is None else [self, self.transformer]

    @property
    def front(self) -> InferenceServiceState:
        """The component the gateway's main port routes to: the transformer when
        there is one (as KServe's ingress does), else the predictor."""
        return self.transformer if self.transformer is not None else self

    @property
    def canary_percent(self) -> int | None:
        value = self.predictor.get("canaryTrafficPercent")
        return None if value is None else int(value)

    @property
    def shadow(self) -> bool:
        if self.component != "predictor":
            # A transformer pushes each card's new state after it answers: a mirrored
            # request would push it twice. Shadow applies to the predictor component.
            return False
        annotations = self.spec.get("_annotations", {})
        return str(annotations.get("riskserve.io/shadow", "")).lower() == "true"

    def revision(self, name: str | None) -> Revision | None:
        return next((r for r in self.revisions if r.name == name), None)

    @property
    def latest_created(self) -> Revision | None:
        return self.revisions[-1] if self.revisions else None

    @property
    def latest_ready(self) -> Revision | None:
        return next((r for r in reversed(self.revisions) if r.ready), None)

    def next_revision_name(self) -> str:
        """One past the highest revision number: old revisions may have been forgotten,
        and a name is never reused."""
        numbers = [
            int(r.name.rsplit("-", 1)[-1])
            for r in self.revisions
            if r.name.rsplit("-", 1)[-1].isdigit()
        ]
        return f"{self.name}-{self.component}-{max(numbers, default=0) + 1:05d}"

    # -- KServe's traffic rules ------------------------------------------------

    def settle(self) -> bool:
        """Advance the rolled-out revision as KServe would; True when it moved."""
        latest = self.latest_created
        if latest is None or not latest.ready or latest.name == self.latest_rolledout:
            return False
        if self.latest_rolledout is None or self.canary_percent is None:
            # First rollout, or no canary asked for: the latest takes over once ready.
            self.previous_rolledout = self.latest_rolledout
            self.latest_rolledout = latest.name
            return True
        return False

    def traffic(self) -> list[TrafficTarget]:
        """The configured split, as `status.components.predictor.traffic` shows it."""
        latest = self.latest_created
        stable = self.revision(self.latest_rolledout)
        if stable is None:
            return []
        if latest is None or latest.name == stable.name:
            return [TrafficTarget(stable.name, 100, None, True)]
        canary = self.canary_percent or 0
        if not latest.ready:
            canary = 0
        targets = []
        if self.canary_percent is not None or self.shadow:
            targets.append(TrafficTarget(latest.name, canary, "latest", True))
        targets.append(TrafficTarget(stable.name, 100 - canary, "prev", False))
        return targets

    def routes(self) -> list[tuple[Revision, int]]:
        """Where requests go now: the configured split over revisions that are ready.
        A share whose revision is not ready goes to the ones that are."""
        targets = [(self.revision(t.revision_name), t.percent) for t in self.traffic()]
        live = [(r, p) for r, p in targets if r is not None and r.ready and p > 0]
        if live:
            return live
        fallback = self.revision(self.latest_rolledout)
        return [(fallback, 100)] if fallback is not None and fallback.ready else []

    def shadow_revision(self) -> Revision | None:
        latest = self.latest_created
        if not self.shadow or latest is None or latest.name == self.latest_rolledout:
            return None
        return latest if latest.ready else None

    def needed_revisions(self) -> list[Revision]:
        """Revisions that must have a running predictor."""
        names = {t.revision_name for t in self.traffic()}
        if self.latest_created is not None:
            names.add(self.latest_created.name)
        if self.latest_rolledout:
            names.add(self.latest_rolledout)
        return [r for r in self.revisions if r.name in names and not r.failed]

    # -- KServe's status shape ---------------------------------------------------

    def component_status(self, url: str) -> dict[str, Any]:
        """`status.components.<component>`, in KServe's shape."""
        latest = self.latest_created
        ready_rev = self.latest_ready
        return {
            "latestCreatedRevision": latest.name if latest else None,
            "latestReadyRevision": ready_rev.name if ready_rev else None,
            "latestRolledoutRevision": self.latest_rolledout,
            "previousRolledoutRevision": self.previous_rolledout,
            "traffic": [
                {
                    "revisionName": t.revision_name,
                    "percent": t.percent,
                    **({"tag": t.tag} if t.tag else {}),
                    "latestRevision": t.latest_revision,
                    "url": url,
                }
                for t in self.traffic()
            ],
        }

    def status(self, base_url: str) -> dict[str, Any]:
        url = f"{base_url}/v2/models/{self.name}"
        components = {c.component: c.component_status(url) for c in self.components()}
        conditions: list[dict[str, Any]] = []
        if self.invalid_reason:
            conditions.append(
                {
                    "type": "Ready",
                    "status": "False",
                    "reason": "InvalidSpec",
                    "message": self.invalid_reason,
                }
            )
        else:
            # Ready when every component has a ready revision to route to; KServe
            # also reports each component's readiness (PredictorReady, ...).
            waiting = [c for c in self.components() if not c.routes()]
            if not waiting:
                conditions.append({"type": "Ready", "status": "True"})
            else:
                latest = waiting[0].latest_created
                conditions.append(
                    {
                        "type": "Ready",
                        "status": "False",
                        "reason": "NoReadyRevision",
                        "message": latest.reason
                        if latest and latest.reason
                        else "loading",
                    }
                )
        for component in self.components():
            conditions.extend(component._component_conditions())
        return {"url": url, "conditions": conditions, "components": components}

    def _component_conditions(self) -> list[dict[str, Any]]:
        latest = self.latest_created
        conditions: list[dict[str, Any]] = []
        if self.component != "predictor" and not self.invalid_reason:
            ready = bool(self.routes())
            conditions.append(
                {
                    "type": f"{self.component.capitalize()}Ready",
                    "status": "True" if ready else "False",
                }
            )
        if latest is not None and latest.failed:
            conditions.append(
                {
                    "type": "LatestDeploymentReady"
                    if self.component == "predictor"
                    else f"{self.component.capitalize()}LatestDeploymentReady",
                    "status": "False",
                    "reason": "RevisionFailed",
                    "message": f"{latest.name}: {latest.reason}",
                }
            )
        return conditions


def predictor_hash(predictor: dict[str, Any]) -> str:
    """What makes a new revision: any change of the predictor but its traffic split."""
    template = {k: v for k, v in predictor.items() if k != "canaryTrafficPercent"}
    return hashlib.sha256(json.dumps(template, sort_keys=True).encode()).hexdigest()[
        :16
    ]


def storage_uri(predictor: dict[str, Any]) -> str:
    model = predictor.get("model") or {}
    return model.get("storageUri") or predictor.get("storageUri") or ""


@dataclass
class PlatformState:
    services: dict[str, InferenceServiceState] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"services": {name: asdict(s) for name, s in self.services.items()}}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> PlatformState:
        services = {
            name: _service_from_json(raw)
            for name, raw in data.get("services", {}).items()
        }
        return cls(services)

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.to_json(), indent=2, sort_keys=True))
        os.replace(tmp, path)  # atomic: a crash never leaves half a state file

    @classmethod
    def load(cls, path: Path) -> PlatformState:
        if not path.exists():
            return cls()
        return cls.from_json(json.loads(path.read_text()))


def _service_from_json(raw: dict[str, Any]) -> InferenceServiceState:
    """One service (and its nested transformer component); state files written
    before transformers existed have neither `component` nor `transformer`."""
    raw = copy.deepcopy(raw)
    revisions = [Revision(**r) for r in raw.pop("revisions", [])]
    nested = raw.pop("transformer", None)
    transformer = _service_from_json(nested) if nested else None
    return InferenceServiceState(**raw, revisions=revisions, transformer=transformer)
