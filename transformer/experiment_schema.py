"""The experiment's document: YAML read into pydantic models, every error one line
naming its place (`arms[1].share: ...`), as the policy's (docs/experiments.md):

    name: credit-cutoff-2026q3
    salt: 7f3a9c                 # a new salt reshuffles every entity
    entity: customer_id          # default: the decision's (card_id / customer_id)
    arms:
      - name: champion
        share: 0.45
        predictor: credit        # the InferenceService whose predictor answers
        policy: champion.yaml    # default: the transformer's own policy
      - name: challenger
        share: 0.45
        predictor: credit-challenger
        policy: challenger.yaml
      - name: shadow-gbm
        predictor: credit-gbm
        shadow: true             # sent a copy after the answer, never returned
    champion: champion           # default: the first arm
    holdout: {share: 0.10, arm: champion}
    exploration: {share: 0.02, rules: [default]}   # optional, at most 0.05
    economics: {gain_rate: 0.04, loss_given_default: 0.9}   # for the outcomes pass

This module knows the document only; the arms' predictors and policies are resolved
in `riskserve.transformer.experiment`.
"""

from __future__ import annotations

import math
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from riskserve.transformer.document_reader import yaml_mapping
from riskserve.transformer.policy_schema import _place  # a document's place, a.b[1]

MAX_DOCUMENT_BYTES = 64 * 1024
MAX_ARMS = 16
# Share sums are checked to this: YAML decimals (0.45 + 0.45 + 0.1) are not exact.
SHARE_TOLERANCE = 1e-9
HOLDOUT = "holdout"
# Exploration approves what the policy declines: it stays small (docs/experiments.md).
MAX_EXPLORATION_SHARE = 0.05
Name = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")]
# An InferenceService name: a DNS-1123 label, as KServe asks.
ServiceName = Annotated[str, Field(pattern=r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")]
Share = Annotated[float, Field(gt=0, le=1)]


class ExperimentError(ValueError):
    """An experiment was refused: each line of the message is one error, naming its
    place in the document (or the file) and what is wrong."""


class ArmSpec(BaseModel):
    """One arm: who answers its rows (a predictor and a policy) and its share."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Name
    share: Share | None = None
    """The fraction of entities in this arm; a shadow arm has none."""
    predictor: ServiceName | None = None
    """The InferenceService whose predictor answers this arm (default: the
    transformer's own)."""
    policy: Annotated[str, Field(min_length=1, max_length=1024)] | None = None
    """A policy URI (file, folder, file://, s3://), a relative path read from the
    experiment file's folder; default: the transformer's own policy, if any."""
    shadow: bool = False


class HoldoutSpec(BaseModel):
    """A random holdout: answered as the arm it names, recorded as arm `holdout`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    share: Share
    arm: Name | None = None
    """The live arm whose predictor and policy answer the holdout (default: the
    champion)."""


class ExplorationSpec(BaseModel):
    """Approve (allow) a small random share of the entities whose row a policy
    declines (blocks) by one of `rules`, so that the declined population's outcomes
    can be measured; off unless set."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    share: Annotated[float, Field(gt=0)]
    """The fraction of entities explored, at most MAX_EXPLORATION_SHARE; sticky per
    entity (a hash of the salt and the id, apart from the arm's)."""
    rules: list[Name] = Field(default_factory=lambda: ["default"], min_length=1)
    """The policy rules whose declines may be explored (default: the policy's
    default, the cut-off); a knock-out is never explored unless named."""


class Economics(BaseModel):
    """Money per decision, read by the monitor's outcomes pass (the transformer only
    checks it): shares of the decision's amount."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    gain_rate: Annotated[float, Field(ge=0, le=10)]
    """Earned on an approved (allowed) good decision."""
    loss_given_default: Annotated[float, Field(ge=0, le=10)]
    """Lost on an approved bad one, unless its label says the loss."""


class ExperimentDocument(BaseModel):
    """The whole experiment file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Name
    salt: Annotated[str, Field(min_length=1, max_length=128)]
    entity: Name | None = None
    """The raw input whose value assigns an arm (default: card_id / customer_id)."""
    description: str = Field("", max_length=4000)
    arms: list[ArmSpec] = Field(min_length=2, max_length=MAX_ARMS)
    champion: Name | None = None
    """The live arm the others are judged against (default: the first)."""
    holdout: HoldoutSpec | None = None
    exploration: ExplorationSpec | None = None
    """Off by default (docs/experiments.md)."""
    economics: Economics | None = None
    """For the outcomes pass (`riskserve monitor outcomes`); unused when serving."""

    @model_validator(mode="after")
    def _shares_and_names(self) -> ExperimentDocument:
        problems = []
        seen: set[str] = set()
        for i, arm in enumerate(self.arms):
            if arm.name in seen:
                problems.append(f"arms[{i}].name: {arm.name!r} is used twice")
            if arm.name == HOLDOUT:
                problems.append(
                    f"arms[{i}].name: {HOLDOUT!r} is the holdout's; name the arm "
                    "otherwise"
                )
            seen.add(arm.name)
            if arm.shadow and arm.share is not None:
                problems.append(
                    f"arms[{i}].share: a shadow arm gets no share (it answers no one)"
                )
            if not arm.shadow and arm.share is None:
                problems.append(f"arms[{i}].share: is required (or shadow: true)")
        live = [a for a in self.arms if not a.shadow]
        if not live:
            problems.append("arms: at least one arm must not be a shadow")
        if self.champion is not None and self.champion not in {a.name for a in live}:
            problems.append(
                f"champion: {self.champion!r} is not a live arm of this experiment"
            )
        holdout_arm = self.holdout.arm if self.holdout is not None else None
        if holdout_arm is not None and holdout_arm not in {a.name for a in live}:
            problems.append(
                f"holdout.arm: {holdout_arm!r} is not a live arm of this experiment"
            )
        if (
            self.exploration is not None
            and self.exploration.share > MAX_EXPLORATION_SHARE
        ):
            problems.append(
                f"exploration.share: {self.exploration.share:g} is above the cap of "
                f"{MAX_EXPLORATION_SHARE:g}: exploration approves what the policy "
                "declines"
            )
        if not problems:
            total = math.fsum(
                [a.share or 0.0 for a in live]
                + [self.holdout.share if self.holdout else 0.0]
            )
            if abs(total - 1.0) > SHARE_TOLERANCE:
                problems.append(
                    f"arms: the live arms' shares"
                    f"{' and the holdout' if self.holdout else ''} sum to "
                    f"{total:.6g}, not 1"
                )
        if problems:
            raise ExperimentError("\n".join(problems))
        return self


def _lines(exc: ValidationError) -> list[str]:
    lines: dict[str, None] = {}
    for error in exc.errors(include_url=False):
        context = error.get("ctx", {}).get("error")
        if isinstance(context, ExperimentError):
            for line in str(context).splitlines():
                lines.setdefault(line)
            continue
        message = str(error["msg"]).removeprefix("Value error, ")
        if error["type"] == "missing":
            message = "is required"
        elif error["type"] == "extra_forbidden":
            message = "is not a field of an experiment"
        lines.setdefault(f"{_place(tuple(error['loc']))}: {message}")
    return list(lines)


def parse_experiment_document(
    text: bytes | str, source: str = "experiment"
) -> ExperimentDocument:
    """The experiment in `text` (YAML), or ExperimentError with one line per error."""
    data = yaml_mapping(
        text,
        source=source,
        what="experiment",
        keys="name, salt, arms, ...",
        max_bytes=MAX_DOCUMENT_BYTES,
        error=ExperimentError,
    )
    try:
        return ExperimentDocument.model_validate(data)
    except ValidationError as exc:
        raise ExperimentError("\n".join(_lines(exc))) from None
