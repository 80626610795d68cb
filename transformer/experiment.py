"""Sticky champion/challenger experiments in the transformer (docs/experiments.md).

`load_experiment(uri)` reads an experiment file (a local `.yaml`, a folder holding
`experiment.yaml`, `file://` or `s3://`), checks its document
(`riskserve.transformer.experiment_schema`) and loads each arm's policy.

Assignment is sticky: an entity's point is

    u = (int.from_bytes(blake2b(f"{salt}:{entity_id}", digest_size=8), "big") >> 11)
        / 2**53

in [0, 1), and the live arms' shares, in file order, then the holdout's, cut [0, 1)
into slots: the same id lands in the same arm in every process, after every restart,
until the salt or the shares change. `Experiment.assign` does it for a request's rows;
`infer` sends each arm's rows to its arm's predictor and merges the answers back in
row order; `policy_outputs` applies each arm's policy to its rows.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from prometheus_client import Counter
from riskserve.serving.tensors import OutputTensor
from riskserve.transformer.document_reader import read_document
from riskserve.transformer.experiment_schema import (
    HOLDOUT,
    MAX_DOCUMENT_BYTES,
    ExperimentDocument,
    ExperimentError,
    parse_experiment_document,
)
from riskserve.transformer.policy import (
    DEFAULT_RULE,
    Policy,
    PolicyError,
    load_policy,
)
from riskserve.transformer.policy_schema import ACTIONS
from riskserve.transformer.predictor_client import (
    PredictorAnswer,
    PredictorError,
    PredictorPool,
)

if TYPE_CHECKING:
    from riskserve.transformer.app import AppliedPolicy
    from riskserve.transformer.decisions import Decision

log = logging.getLogger("transformer")

EXPERIMENT_FILE = "experiment.yaml"
# The outputs an experiment adds to every answer (docs/experiments.md).
EXPERIMENT_OUTPUTS = ("experiment", "arm")
# The entity an experiment assigns by default: the decision's (its `entity()`).
_DEFAULT_ENTITY = {"card": "card_id", "customer": "customer_id"}

# The policy_rule of a row that exploration approved: the policy declined it by one of
# the exploration's rules (its reason_code is kept, docs/experiments.md).
EXPLORATION_RULE = "exploration"

EXPLORED_ROWS = Counter(
    "riskserve_transformer_explored_rows",
    "Rows a policy declined (blocked) that the experiment's exploration approved "
    "(allowed).",
    ["experiment"],
)
ARM_ROWS = Counter(
    "riskserve_transformer_experiment_rows",
    "Rows decided per experiment arm (the holdout as arm `holdout`; shadow arms not "
    "counted here).",
    ["experiment", "arm"],
)


def entity_point(salt: str, entity_id: str) -> float:
    """The entity's point in [0, 1): the first 53 bits of blake2b(salt:id)."""
    digest = hashlib.blake2b(f"{salt}:{entity_id}".encode(), digest_size=8).digest()
    return (int.from_bytes(digest, "big") >> 11) / float(1 << 53)


@dataclass
class Arm:
    """One arm, resolved: the InferenceService whose predictor answers it, the pool
    that reaches it (`Experiment.bind`) and its policy (None: the graph decides)."""

    name: str
    predictor: str
    policy: Policy | None
    policy_uri: str | None
    shadow: bool = False
    share: float | None = None
    pool: PredictorPool | None = None
    applied: AppliedPolicy | None = None
    outputs: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class Routed:
    """A request's rows by slot: `slots[i]` is row i's slot (`Experiment.slots`),
    `groups` the rows of each slot's arm that has any, in arm order."""

    slots: np.ndarray
    groups: list[tuple[Arm, np.ndarray]]
    arm_names: np.ndarray  # object: the arm recorded for each row ("holdout" too)
    # bool: the rows whose entity is in the exploration share (None: no exploration)
    explorable: np.ndarray | None = None


class Experiment:
    """A checked experiment in front of one model (module docstring)."""

    def __init__(self, document: ExperimentDocument, arms: list[Arm], uri: str) -> None:
        self.document = document
        self.uri = uri
        self.arms = arms
        self.live = [a for a in arms if not a.shadow]
        self.shadows = [a for a in arms if a.shadow]
        by_name = {a.name: a for a in self.live}
        # The slots, in cut order: each live arm as itself, then the holdout,
        # answered as its arm and recorded as "holdout".
        self.slots: list[tuple[str, Arm]] = [(a.name, a) for a in self.live]
        shares = [a.share or 0.0 for a in self.live]
        holdout = document.holdout
        if holdout is not None:
            served_by = holdout.arm or document.champion
            served = by_name[served_by] if served_by else self.live[0]
            self.slots.append((HOLDOUT, served))
            shares.append(holdout.share)
        # The upper edge of every slot but the last: a point at or above the last
        # edge is in the last slot, whatever rounding the sum of the shares had.
        self._edges = np.cumsum(shares)[:-1]
        self._names = np.array([name for name, _ in self.slots], dtype=object)
        self._arm_of_slot = np.array([self.arms.index(arm) for _, arm in self.slots])
        self._one_row = [
            np.array([name], dtype=object) for name in self._names
        ]  # shared, read-only
        for array in self._one_row:
            array.flags.writeable = False
        self._name_array = np.array([document.name], dtype=object)
        self._name_array.flags.writeable = False
        self._rows = [ARM_ROWS.labels(document.name, name) for name in self._names]
        # blake2b of salt:id is blake2b's state after `salt:`, copied, fed the id
        self._salted = hashlib.blake2b(f"{document.salt}:".encode(), digest_size=8)
        self.entity_field: str | None = document.entity
        # Exploration's own point per entity, apart from the arm's (another prefix
        # of the same salt): explored entities are spread evenly over the arms.
        self.exploration = document.exploration
        self._explore_salted = hashlib.blake2b(
            f"{document.salt}:explore:".encode(), digest_size=8
        )
        self._explored_rules = (
            frozenset(document.exploration.rules) if document.exploration else None
        )
        self._explored = EXPLORED_ROWS.labels(document.name)
        self._entity: Callable[[Any], str] = lambda event: ""
        self.checked = False

    @property
    def name(self) -> str:
        return self.document.name

    # -- set-up --------------------------------------------------------------------
    def bind(
        self,
        decision: Decision,
        own_model: str,
        own_pool: PredictorPool,
        pool_for: Callable[[str], PredictorPool],
        default_policy: Policy | None,
        default_policy_uri: str | None,
    ) -> None:
        """Resolve what the file leaves to the transformer: the entity field (checked
        against the decision's raw inputs), each arm's predictor pool (its own
        predictor's, or `pool_for(host)` of `arm_predictor_host`) and its policy (the
        transformer's own when the arm names none). Every arm has a policy or none
        does: the answer's outputs are the same for every row."""
        for arm in self.arms:
            if not arm.predictor:
                arm.predictor = own_model
        raw = [name for name, _, _ in decision.raw_inputs]
        field_name = self.document.entity
        if field_name is None:
            self._entity = lambda event: decision.entity(event)[1]
            self.entity_field = _DEFAULT_ENTITY[decision.kind]
        elif field_name not in raw:
            raise ExperimentError(
                f"entity: {field_name!r} is not a raw input of a {decision.kind} "
                f"request ({', '.join(raw)})"
            )
        else:
            from riskserve.transformer.inference_log import event_attribute

            attribute = event_attribute(field_name)
            self._entity = lambda event: str(getattr(event, attribute))
        pools: dict[str, PredictorPool] = {}
        for arm in self.arms:
            if arm.policy is None and default_policy is not None:
                arm.policy, arm.policy_uri = default_policy, default_policy_uri
            if arm.predictor == own_model:
                arm.pool = own_pool
                continue
            host = arm_predictor_host(
                f"{own_pool.host}:{own_pool.port}", own_model, arm.predictor
            )
            if host == f"{own_pool.host}:{own_pool.port}":
                arm.pool = own_pool
            else:
                arm.pool = pools.get(host) or pools.setdefault(host, pool_for(host))
        with_policy = [a.name for a in self.arms if a.policy is not None]
        self._check_exploration(with_policy)
        if with_policy and len(with_policy) != len(self.arms):
            without = [i for i, a in enumerate(self.arms) if a.policy is None]
            raise ExperimentError(
                f"arms[{without[0]}].policy: arms {', '.join(map(repr, with_policy))} "
                "have a policy and this one has none (nor has the transformer): every "
                "arm answers the same outputs, so give every arm a policy or none"
            )

    def _check_exploration(self, with_policy: list[str]) -> None:
        """Exploration overrides a policy's decline: every arm needs a policy, and
        each rule it names must be a rule of an arm's policy (or its default)."""
        if self.exploration is None:
            return
        if len(with_policy) != len(self.arms):
            raise ExperimentError(
                "exploration: needs a decision policy on every arm (it approves what "
                "a policy declines)"
            )
        names: set[str] = set()
        for i, arm in enumerate(self.arms):
            assert arm.policy is not None
            own = {rule.name for rule in arm.policy.document.rules}
            if EXPLORATION_RULE in own:
                raise ExperimentError(
                    f"arms[{i}].policy: a rule named {EXPLORATION_RULE!r} would read "
                    "as an explored decision: rename it"
                )
            names |= own
        for j, rule in enumerate(self.exploration.rules):
            if rule != DEFAULT_RULE and rule not in names:
                raise ExperimentError(
                    f"exploration.rules[{j}]: {rule!r} is no rule of the arms' "
                    f"policies ({', '.join(sorted(names | {DEFAULT_RULE}))})"
                )

    def pools(self) -> list[PredictorPool]:
        return list({id(a.pool): a.pool for a in self.arms if a.pool}.values())

    async def check(
        self,
        decision: Decision,
        own_outputs: list[dict[str, Any]],
        applied: Callable[[Policy, str], AppliedPolicy],
    ) -> None:
        """Each arm's predictor's outputs (waited for, every second, as the
        transformer's own are) must be the transformer's predictor's, and each arm's
        policy must fit its model; ExperimentError (one line per problem) if not."""
        expected = [(o.get("name"), o.get("datatype")) for o in own_outputs]
        problems = []
        for i, arm in enumerate(self.arms):
            arm.outputs = await _predictor_outputs(arm)
            got = [(o.get("name"), o.get("datatype")) for o in arm.outputs]
            if got != expected:
                problems.append(
                    f"arms[{i}].predictor: {arm.predictor} answers "
                    f"{_names(got)}, the transformer's predictor {_names(expected)}: "
                    "the arms' answers are merged row by row"
                )
                continue
            if arm.policy is not None:
                arm.applied = applied(arm.policy, arm.policy_uri or "")
                try:
                    arm.applied.check(arm.predictor, decision, arm.outputs)
                except PolicyError as exc:
                    problems += [
                        f"arms[{i}].policy: {line}" for line in str(exc).splitlines()
                    ]
        if problems:
            raise ExperimentError("\n".join(problems))
        self.checked = True

    # -- per request ---------------------------------------------------------------
    def assign(self, events: Sequence[Any]) -> Routed:
        """Each row's slot and the rows of each arm (module docstring)."""
        rows = len(events)
        if rows == 1:
            entity_id = self._entity(events[0])
            state = self._salted.copy()
            state.update(entity_id.encode())
            point = (int.from_bytes(state.digest(), "big") >> 11) / float(1 << 53)
            slot = int(np.searchsorted(self._edges, point, side="right"))
            self._rows[slot].inc()
            arm = self.slots[slot][1]
            return Routed(
                np.array([slot]),
                [(arm, np.array([0]))],
                self._one_row[slot],
                self.explorable([entity_id]) if self.exploration else None,
            )
        entity_ids = [self._entity(e) for e in events]
        points = self.points(entity_ids)
        slots = np.searchsorted(self._edges, points, side="right")
        by_arm = self._arm_of_slot[slots]
        groups = []
        for index in np.flatnonzero(np.bincount(by_arm, minlength=len(self.arms))):
            groups.append((self.arms[index], np.flatnonzero(by_arm == index)))
        for slot, count in enumerate(np.bincount(slots).tolist()):
            if count:
                self._rows[slot].inc(count)
        return Routed(
            slots,
            groups,
            self._names[slots],
            self.explorable(entity_ids) if self.exploration else None,
        )

    def explorable(self, entity_ids: list[str]) -> np.ndarray:
        """Whether each entity is in the exploration share: its point of
        blake2b(f"{salt}:explore:{id}") below the share. Sticky, like the arm: an
        entity is explored on every request or on none, so a declined customer
        cannot retry into an approval, and the explored are a random sample of
        entities, not of attempts."""
        assert self.exploration is not None
        points = self.points(entity_ids, self._explore_salted)
        explorable: np.ndarray = points < self.exploration.share
        return explorable

    def points(self, entity_ids: list[str], salted: Any | None = None) -> np.ndarray:
        """`entity_point(salt, id)` of each id, at once (`salted`: another prefix's
        state)."""
        prefix = self._salted if salted is None else salted
        digests = []
        for entity_id in entity_ids:
            state = prefix.copy()
            state.update(entity_id.encode())
            digests.append(state.digest())
        shifted = np.frombuffer(b"".join(digests), ">u8") >> np.uint64(11)
        return shifted.astype(np.float64) / float(1 << 53)

    async def infer(
        self,
        decision: Decision,
        routed: Routed,
        inputs: dict[str, np.ndarray],
        request_id: str,
        rows: int,
    ) -> PredictorAnswer:
        """Each arm's rows from its arm's predictor (at once), merged in row order;
        PredictorError as the transformer's own call raises it."""
        if len(routed.groups) == 1:
            arm = routed.groups[0][0]
            assert arm.pool is not None
            return await decision.infer(arm.pool, arm.predictor, inputs, request_id)
        answers = await asyncio.gather(
            *(
                decision.infer(
                    arm.pool,  # type: ignore[arg-type]  # bound: Experiment.bind
                    arm.predictor,
                    {name: column[index] for name, column in inputs.items()},
                    request_id,
                )
                for arm, index in routed.groups
            )
        )
        versions = list(dict.fromkeys(a.model_version or "" for a in answers))
        merged = merge_rows(
            [
                (index, a.outputs)
                for (_, index), a in zip(routed.groups, answers, strict=True)
            ],
            rows,
        )
        return PredictorAnswer(",".join(versions), merged)

    def policy_outputs(
        self,
        routed: Routed,
        answered: list[OutputTensor],
        used: list[OutputTensor],
        events: list[Any],
        rows: int,
    ) -> list[OutputTensor]:
        """Each arm's policy on its rows, merged in row order ([] without policies)."""
        first = routed.groups[0][0]
        if first.applied is None:
            return []
        if len(routed.groups) == 1:
            return self._explore(routed, first.applied.outputs(answered, used, events))
        parts = []
        for arm, index in routed.groups:
            assert arm.applied is not None  # every arm has one (bind)
            parts.append(
                (
                    index,
                    arm.applied.outputs(
                        _take(answered, index),
                        _take(used, index),
                        [events[i] for i in index],
                    ),
                )
            )
        return self._explore(routed, merge_rows(parts, rows))

    def _explore(
        self, routed: Routed, decided: list[OutputTensor]
    ) -> list[OutputTensor]:
        """The explorable rows a policy declined (blocked) by one of the
        exploration's rules, approved (allowed) instead: `policy_rule` says
        "exploration", `reason_code` keeps the policy's (why it would have
        declined)."""
        if routed.explorable is None or not routed.explorable.any():
            return decided
        assert self._explored_rules is not None and self.arms[0].policy is not None
        allowed = ACTIONS[self.arms[0].policy.document.kind]
        by_name = {t.name: t for t in decided}
        action, rule = by_name["action"].array, by_name["policy_rule"].array
        explored = routed.explorable & np.array(
            [
                a == allowed[-1] and r in self._explored_rules
                for a, r in zip(action.tolist(), rule.tolist(), strict=True)
            ],
            dtype=bool,
        )
        if not explored.any():
            return decided
        self._explored.inc(int(np.count_nonzero(explored)))
        action, rule = action.copy(), rule.copy()
        action[explored], rule[explored] = allowed[0], EXPLORATION_RULE
        replaced = {"action": action, "policy_rule": rule}
        return [
            OutputTensor(t.name, t.datatype, replaced.get(t.name, t.array))
            for t in decided
        ]

    def outputs(self, routed: Routed, rows: int) -> list[OutputTensor]:
        """The two outputs the experiment adds: its name and each row's arm."""
        name = (
            self._name_array
            if rows == 1
            else np.full(rows, self.document.name, dtype=object)
        )
        return [
            OutputTensor("experiment", "BYTES", name),
            OutputTensor("arm", "BYTES", routed.arm_names),
        ]

    def describe(self) -> dict[str, Any]:
        """The metadata's `parameters.experiment`."""
        return {
            "name": self.document.name,
            "uri": self.uri,
            "entity": self.entity_field,
            "arms": [
                {
                    "name": a.name,
                    "share": a.share,
                    "predictor": a.predictor,
                    "shadow": a.shadow,
                    "policy_version": a.policy.version if a.policy else None,
                }
                for a in self.arms
            ],
            "champion": self.document.champion or self.live[0].name,
            "holdout": (
                {"share": self.document.holdout.share, "arm": self.slots[-1][1].name}
                if self.document.holdout
                else None
            ),
            "exploration": (
                self.exploration.model_dump() if self.exploration else None
            ),
        }


def _names(pairs: list[tuple[Any, Any]]) -> str:
    return ", ".join(f"{n}:{d}" for n, d in pairs[:8]) or "nothing"


async def _predictor_outputs(arm: Arm) -> list[dict[str, Any]]:
    """The arm predictor's outputs, asked every second until it answers (logged
    once, so a missing arm InferenceService says why the transformer is not ready)."""
    assert arm.pool is not None
    waiting = False
    while True:
        try:
            status, metadata = await arm.pool.get_json(f"/v2/models/{arm.predictor}")
        except PredictorError as exc:
            status, metadata = exc.status, None
        if status == 200 and isinstance(metadata, dict):
            return list(metadata.get("outputs") or [])
        if not waiting:
            waiting = True
            log.warning(
                "an experiment arm's predictor does not answer its metadata yet; "
                "not ready until it does",
                extra={"arm": arm.name, "predictor": arm.predictor, "status": status},
            )
        await asyncio.sleep(1.0)


def _take(tensors: list[OutputTensor], index: np.ndarray) -> list[OutputTensor]:
    return [OutputTensor(t.name, t.datatype, t.array[index]) for t in tensors]


def merge_rows(
    parts: list[tuple[np.ndarray, list[OutputTensor]]], rows: int
) -> list[OutputTensor]:
    """The outputs of several parts of one request (`(row indices, outputs)` each)
    as one answer in row order; a part that lacks an output is a PredictorError."""
    first = parts[0][1]
    by_name = [({o.name: o.array for o in outputs}, index) for index, outputs in parts]
    merged = []
    for tensor in first:
        array = np.empty((rows, *tensor.array.shape[1:]), dtype=tensor.array.dtype)
        for arrays, index in by_name:
            found = arrays.get(tensor.name)
            if found is None:
                raise PredictorError(
                    f"an arm's predictor did not answer {tensor.name!r}", 502
                )
            array[index] = found
        merged.append(OutputTensor(tensor.name, tensor.datatype, array))
    return merged


def arm_predictor_host(own_host: str, own_model: str, arm_service: str) -> str:
    """Where an arm's predictor is reached. On a cluster KServe gives the transformer
    `--predictor_host <isvc>-predictor.<namespace>` (or `<isvc>-predictor-default`):
    the arm's InferenceService's predictor service is the same name with the arm's
    InferenceService. Any other host (the local platform's predictor listener, which
    routes `/v2/models/<isvc>/...` to that isvc's predictor) serves every arm."""
    host, colon, port = own_host.rpartition(":")
    if not colon or not port.isdigit():
        host, colon, port = own_host, "", ""
    first, dot, rest = host.partition(".")
    prefix = f"{own_model}-predictor"
    if first == prefix or first.startswith(prefix + "-"):
        first = arm_service + first[len(own_model) :]
        return f"{first}{dot}{rest}{colon}{port}"
    return own_host


# -- loading ---------------------------------------------------------------------------


def load_experiment(uri: str, s3_client: Any = None) -> Experiment:
    """The experiment at `uri`, its arms' policies loaded (their fields are checked
    once the arms' predictors answer: `Experiment.check`); ExperimentError, one line
    per problem, naming the place."""
    text, path = read_document(
        uri,
        file_name=EXPERIMENT_FILE,
        what="experiment",
        max_bytes=MAX_DOCUMENT_BYTES,
        error=ExperimentError,
        s3_client=s3_client,
    )
    base = path.parent if path is not None else None
    document = parse_experiment_document(text, uri)
    arms, problems = [], []
    for i, spec in enumerate(document.arms):
        policy, policy_uri = None, spec.policy
        if policy_uri is not None:
            if base is not None and "://" not in policy_uri:
                candidate = Path(policy_uri)
                policy_uri = str(
                    candidate if candidate.is_absolute() else base / candidate
                )
            try:
                policy = load_policy(policy_uri, s3_client)
            except PolicyError as exc:
                problems += [
                    f"arms[{i}].policy: {line}" for line in str(exc).splitlines()
                ]
        arms.append(
            Arm(
                name=spec.name,
                predictor=spec.predictor or "",
                policy=policy,
                policy_uri=policy_uri,
                shadow=spec.shadow,
                share=spec.share,
            )
        )
    if problems:
        raise ExperimentError("\n".join(problems))
    return Experiment(document, arms, uri)
