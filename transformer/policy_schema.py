"""The decision policy's document: YAML read into pydantic models, every error one line
naming its place in the document (`rules[2].when[0].field: ...`).

A policy decides an action after the model has answered, from the request's raw
inputs, the model's features and the model's outputs (docs/policies.md):

    name: credit-starter
    kind: credit                # credit: approve / refer / decline
    model: credit               # fraud: allow / challenge / block
    rules:                      # the first rule whose conditions all hold decides
      - name: in_collections
        when: [{field: recovery_debt, gt: 0}]
        action: decline
        reason: KO_COLLECTIONS
    default: {action: decline, reason: BELOW_CUTOFF}

This module knows the document only; which fields exist is checked against the model
and the transformer's kind in `riskserve.transformer.policy`.
"""

from __future__ import annotations

import hashlib
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from riskserve.transformer.document_reader import yaml_mapping

ACTIONS: dict[str, tuple[str, ...]] = {
    "credit": ("approve", "refer", "decline"),
    "fraud": ("allow", "challenge", "block"),
}
MAX_DOCUMENT_BYTES = 256 * 1024
MAX_RULES = 200
Name = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")]
ReasonCode = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")]
# Text in a policy is short: a value no longer than this, so that no error repeats
# more than a bounded excerpt of the document.
Text = Annotated[str, Field(max_length=256)]
Scalar = bool | int | float | Text
Number = int | float
OPERATORS = ("eq", "ne", "lt", "le", "gt", "ge", "in", "not_in", "missing", "contains")


class PolicyError(ValueError):
    """A policy was refused: each line of the message is one error, naming its place
    in the document (or the file) and what is wrong."""


class Condition(BaseModel):
    """One test on one field; several operators in one condition must all hold
    (`{field: credit_score, ge: 600, lt: 640}` is a band)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)

    field: Name
    eq: Scalar | None = None
    ne: Scalar | None = None
    lt: Number | None = None
    le: Number | None = None
    gt: Number | None = None
    ge: Number | None = None
    in_: list[Scalar] | None = Field(None, alias="in", min_length=1, max_length=1000)
    not_in: list[Scalar] | None = Field(None, min_length=1, max_length=1000)
    missing: bool | None = None
    contains: str | None = Field(None, min_length=1, max_length=256)

    @model_validator(mode="after")
    def _one_operator_at_least(self) -> Condition:
        if not self.operators():
            raise ValueError(f"needs an operator: one of {', '.join(OPERATORS)}")
        return self

    def operators(self) -> dict[str, object]:
        """The operators this condition sets, by their document name."""
        found = {}
        for name in OPERATORS:
            value = getattr(self, "in_" if name == "in" else name)
            if value is not None:
                found[name] = value
        return found


class Rule(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Name
    description: str = Field("", max_length=1000)
    when: list[Condition] = Field(min_length=1, max_length=50)
    action: Annotated[str, Field(max_length=32)]
    reason: ReasonCode


class DefaultAction(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    action: Annotated[str, Field(max_length=32)]
    reason: ReasonCode


class PolicyDocument(BaseModel):
    """The whole policy file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Name
    kind: Literal["credit", "fraud"]
    model: Name
    """The registered model the policy decides for (its fields are checked against
    this model's inputs and outputs)."""
    description: str = Field("", max_length=4000)
    rules: list[Rule] = Field(default_factory=list, max_length=MAX_RULES)
    default: DefaultAction

    @model_validator(mode="after")
    def _actions_and_names(self) -> PolicyDocument:
        allowed = ACTIONS[self.kind]
        problems = []
        seen: set[str] = set()
        for i, rule in enumerate(self.rules):
            if rule.action not in allowed:
                problems.append(
                    f"rules[{i}].action: {rule.action!r} is not an action of a "
                    f"{self.kind} policy ({' / '.join(allowed)})"
                )
            if rule.name in seen:
                problems.append(f"rules[{i}].name: {rule.name!r} is used twice")
            seen.add(rule.name)
        if self.default.action not in allowed:
            problems.append(
                f"default.action: {self.default.action!r} is not an action of a "
                f"{self.kind} policy ({' / '.join(allowed)})"
            )
        if problems:
            raise PolicyError("\n".join(problems))
        return self


def _place(location: tuple[int | str, ...]) -> str:
    place = ""
    for part in location:
        if isinstance(part, int):
            place += f"[{part}]"
        else:
            place += f".{part}" if place else str(part)
    return place or "(document)"


_MEMBERS = {
    "bool": "true/false",
    "int": "a number",
    "float": "a number",
    "str": "text",
    "constrained-str": "text",  # Text, a str with a length limit
}


def _lines(exc: ValidationError) -> list[str]:
    """One line per place in the document; a value no member of a union accepts is
    one line naming what the place takes."""
    by_place: dict[str, None] = {}  # an ordered set of lines (or places)
    members: dict[str, list[str]] = {}
    for error in exc.errors(include_url=False):
        context = error.get("ctx", {}).get("error")
        if isinstance(context, PolicyError):
            for line in str(context).splitlines():
                by_place.setdefault(line)
            continue
        # pydantic names the union member it tried; the document does not
        tried = [p for p in error["loc"] if isinstance(p, str) and p in _MEMBERS]
        place = _place(tuple(p for p in error["loc"] if p not in tried))
        message = str(error["msg"]).removeprefix("Value error, ")
        if error["type"] == "missing":
            message = "is required"
        elif error["type"] == "extra_forbidden":
            message = "is not a field of a policy here"
        line = f"{place}: {message}"
        by_place.setdefault(line if not tried else place)
        members.setdefault(place, []).extend(
            "text of at most 256 characters"
            if error["type"] == "string_too_long"
            else _MEMBERS[t]
            for t in tried
        )
    lines = []
    for key in by_place:
        if key in members and members[key] and ": " not in key:
            wanted = " or ".join(dict.fromkeys(members[key]))
            lines.append(f"{key}: expected {wanted}")
        else:
            lines.append(key)
    return lines


def parse_document(text: bytes | str, source: str = "policy") -> PolicyDocument:
    """The policy in `text` (YAML), or PolicyError with one line per error."""
    data = yaml_mapping(
        text,
        source=source,
        what="policy",
        keys="name, kind, ...",
        max_bytes=MAX_DOCUMENT_BYTES,
        error=PolicyError,
    )
    try:
        return PolicyDocument.model_validate(data)
    except ValidationError as exc:
        raise PolicyError("\n".join(_lines(exc))) from None


def document_hash(text: bytes | str) -> str:
    """The policy's version identity: sha256 of the file's bytes, hex."""
    raw = text.encode() if isinstance(text, str) else text
    return hashlib.sha256(raw).hexdigest()
