"""The decision policy, applied after the model (docs/policies.md).

`load_policy(uri)` reads a policy (a local file or folder, `file://` or `s3://`) and
checks its document (`riskserve.transformer.policy_schema`); `Policy.check_fields`
checks every field it names against what the transformer has for the model: the
request's raw inputs, the model's features and the model's outputs (`PolicyFields`).
`Policy.decide(columns, rows)` evaluates the rules over the rows of one request, a
numpy column per field in, an action, rule and reason per row out: the first rule whose
conditions all hold decides, the default when none does.

Missing values (NaN, None, an empty string) satisfy no comparison, `ne` and `not_in`
included; `missing: true` tests for them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from riskserve.transformer.document_reader import read_document
from riskserve.transformer.policy_schema import (
    MAX_DOCUMENT_BYTES,
    Condition,
    PolicyDocument,
    PolicyError,
    document_hash,
    parse_document,
)

POLICY_FILE = "policy.yaml"
DEFAULT_RULE = "default"
_UNREAD = object()
_NUMERIC = {"FP16", "FP32", "FP64", "INT8", "INT16", "INT32", "INT64"} | {
    "UINT8",
    "UINT16",
    "UINT32",
    "UINT64",
}


@dataclass(frozen=True)
class FieldInfo:
    datatype: str  # v2: FP32, BOOL, BYTES, ...
    source: str  # "input", "feature" or "output"
    per_row: int = 1  # values per row: reason_codes has K


@dataclass(frozen=True)
class PolicyFields:
    """What a policy may name for one model: raw inputs, features, outputs. A name that
    is both a raw input and a feature is the feature (the value the model saw)."""

    model: str
    fields: Mapping[str, FieldInfo]

    @classmethod
    def build(
        cls,
        model: str,
        inputs: Iterable[tuple[str, str]],
        features: Iterable[tuple[str, str]],
        outputs: Iterable[tuple[str, str, int]],
    ) -> PolicyFields:
        fields: dict[str, FieldInfo] = {}
        for name, datatype in inputs:
            fields[name] = FieldInfo(datatype, "input")
        for name, datatype in features:
            fields[name] = FieldInfo(datatype, "feature")
        for name, datatype, per_row in outputs:
            fields[name] = FieldInfo(datatype, "output", per_row)
        return cls(model, fields)


def _frozen(array: np.ndarray) -> np.ndarray:
    array = array.copy()
    array.flags.writeable = False
    return array


@dataclass(frozen=True)
class PolicyDecisions:
    """One request's decisions, a value per row."""

    action: np.ndarray  # object: "approve", "block", ...
    rule: np.ndarray  # object: the rule's name, or "default"
    reason: np.ndarray  # object: the rule's reason code
    policy_version: str  # the document's sha256, first 12 hex digits


# A compiled test: (field, the mask over a column, the same on one value).
_Mask = Callable[[np.ndarray], np.ndarray]
_Test = Callable[[Any], bool]
_Inline = tuple[str, Any] | None  # a plain comparison: its operator and value


def _isnan(value: Any) -> bool:
    if value is None or isinstance(value, str | bytes):
        return not value
    return bool(value != value)  # NaN, as a Python or a numpy float


def _missing_mask(column: np.ndarray) -> np.ndarray:
    if column.dtype.kind == "f":
        return np.isnan(column)
    if column.dtype.kind == "O":
        return np.fromiter(
            (_isnan(v) for v in column), dtype=np.bool_, count=len(column)
        )
    return np.zeros(len(column), np.bool_)


def _excerpt(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _compile(
    operator: str, value: Any, info: FieldInfo, field: str, place: str
) -> tuple[_Mask, _Test, _Inline]:
    """One operator of a condition, checked against the field's type, as a column
    mask and a one-value test with the same meaning."""
    text = info.datatype == "BYTES"
    if info.per_row != 1:
        if operator != "contains":
            raise PolicyError(
                f"{place}.{operator}: {field!r} has {info.per_row} values a row; "
                "only `contains` tests it"
            )
        code = _text(value)

        def row_has(row: Any) -> bool:
            return any((t := _text(c)) == code or t.startswith(code + ":") for c in row)

        return (
            lambda col: np.fromiter(
                (row_has(r) for r in col), dtype=np.bool_, count=len(col)
            ),
            lambda row: row_has(row),
            None,
        )
    if operator == "contains":
        raise PolicyError(
            f"{place}.contains: only a field of several values a row "
            f"(reason_codes) takes `contains`; {field!r} has one"
        )
    if operator == "missing":
        want = bool(value)
        if want:
            return _missing_mask, _isnan, None
        return (lambda col: ~_missing_mask(col)), (lambda v: not _isnan(v)), None
    if text and operator in {"lt", "le", "gt", "ge"}:
        raise PolicyError(f"{place}.{operator}: {field!r} is text, not a number")
    values = value if operator in {"in", "not_in"} else [value]
    converted: list[Any] = []
    for v in values:
        if text:
            if not isinstance(v, str):
                raise PolicyError(
                    f"{place}.{operator}: {field!r} is text; {_excerpt(v)} is not a string"
                )
            converted.append(v)
        elif info.datatype == "BOOL" and operator in {"eq", "ne"}:
            if not isinstance(v, bool | int) or v not in (0, 1):
                raise PolicyError(
                    f"{place}.{operator}: {field!r} is true/false; {_excerpt(v)} is not"
                )
            converted.append(bool(v))
        elif info.datatype in _NUMERIC or info.datatype == "BOOL":
            if isinstance(v, str):
                raise PolicyError(
                    f"{place}.{operator}: {field!r} is a number; {_excerpt(v)} is text"
                )
            # an FP32 field is compared in FP32, as the graph compares its
            # cut-off (and numpy compares an FP32 column with a Python float)
            single = info.datatype in {"FP32", "FP16"}
            converted.append(np.float32(v) if single else float(v))
        else:
            raise PolicyError(
                f"{place}: {field!r} is {info.datatype}, which a policy cannot test"
            )
    return _operator(operator, converted)


def _operator(operator: str, values: list[Any]) -> tuple[_Mask, _Test, _Inline]:
    v = values[0]
    if operator == "lt":
        return (lambda col: col < v), (lambda x: x < v), ("<", v)
    if operator == "le":
        return (lambda col: col <= v), (lambda x: x <= v), ("<=", v)
    if operator == "gt":
        return (lambda col: col > v), (lambda x: x > v), (">", v)
    if operator == "ge":
        return (lambda col: col >= v), (lambda x: x >= v), (">=", v)
    if operator == "eq":
        return (lambda col: col == v), (lambda x: bool(x == v)), ("==", v)
    if operator == "ne":
        return (
            lambda col: (col != v) & ~_missing_mask(col),
            lambda x: not _isnan(x) and x != v,
            None,
        )
    members = frozenset(values)
    if operator == "in":
        return (
            lambda col: np.fromiter(
                (x in members for x in col.tolist()), np.bool_, len(col)
            ),
            lambda x: x in members,
            None,
        )
    # not_in
    return (
        lambda col: np.fromiter(
            (not _isnan(x) and x not in members for x in col.tolist()),
            np.bool_,
            len(col),
        ),
        lambda x: not _isnan(x) and x not in members,
        None,
    )


@dataclass(frozen=True)
class _CompiledRule:
    # field, its number in Policy.fields, the column mask, the one-value test, and
    # the comparison the one-row program writes out instead of calling the test
    tests: tuple[tuple[str, int, _Mask, _Test, _Inline], ...]


class Policy:
    """A checked policy, ready to decide (see the module docstring)."""

    def __init__(self, document: PolicyDocument, text: bytes) -> None:
        self.document = document
        self.text = text
        self.sha256 = document_hash(text)
        self.version = self.sha256[:12]
        self.fields = sorted({c.field for rule in document.rules for c in rule.when})
        names = [rule.name for rule in document.rules] + [DEFAULT_RULE]
        self._rule_names = np.array(names, dtype=object)
        self._actions = np.array(
            [r.action for r in document.rules] + [document.default.action], object
        )
        self._reasons = np.array(
            [r.reason for r in document.rules] + [document.default.reason], object
        )
        self._compiled: tuple[_CompiledRule, ...] | None = None
        self._one_row_program: Callable[[Mapping[str, np.ndarray]], int]
        # One-row answers, made once: a single-row request indexes nothing. Shared
        # between requests, so read-only.
        self._one_row = [
            PolicyDecisions(
                _frozen(self._actions[i : i + 1]),
                _frozen(self._rule_names[i : i + 1]),
                _frozen(self._reasons[i : i + 1]),
                self.version,
            )
            for i in range(len(names))
        ]

    @property
    def name(self) -> str:
        return self.document.name

    @property
    def kind(self) -> str:
        return self.document.kind

    def check_fields(self, fields: PolicyFields) -> None:
        """Refuse (PolicyError, one line per problem) a field the model does not have
        or a test its type cannot take; on success the policy can decide."""
        problems = []
        compiled = []
        for i, rule in enumerate(self.document.rules):
            tests = []
            for j, condition in enumerate(rule.when):
                place = f"rules[{i}].when[{j}]"
                info = fields.fields.get(condition.field)
                if info is None:
                    problems.append(
                        f"{place}.field: {condition.field!r} is not an input, feature "
                        f"or output of model {fields.model}"
                    )
                    continue
                number = self.fields.index(condition.field)
                try:
                    tests += [
                        (condition.field, number, mask, test, inline)
                        for _, mask, test, inline in _condition_tests(
                            condition, info, place
                        )
                    ]
                except PolicyError as exc:
                    problems.append(str(exc))
            compiled.append(_CompiledRule(tuple(tests)))
        if problems:
            raise PolicyError("\n".join(problems))
        self._compiled = tuple(compiled)
        several = {f for f in self.fields if fields.fields[f].per_row != 1}
        self._one_row_program = _one_row_program(
            self._compiled, len(self.fields), len(self._rule_names) - 1, several
        )

    def decide(self, columns: Mapping[str, np.ndarray], rows: int) -> PolicyDecisions:
        """The decisions for `rows` rows; `columns` holds every field the policy names
        (`self.fields`), one value per row ([rows] or [rows, 1]; [rows, K] for a field
        of K values a row)."""
        if self._compiled is None:
            raise RuntimeError("check_fields must accept the policy before it decides")
        if rows == 1:
            try:
                return self._one_row[self._one_row_program(columns)]
            except KeyError as exc:
                raise KeyError(
                    f"the policy needs {exc.args[0]!r}, which the request lacks"
                ) from None
        index = self._decide_many(columns, rows)
        return PolicyDecisions(
            self._actions[index],
            self._rule_names[index],
            self._reasons[index],
            self.version,
        )

    def _decide_many(self, columns: Mapping[str, np.ndarray], rows: int) -> np.ndarray:
        chosen = np.full(rows, len(self._rule_names) - 1, np.intp)
        undecided = np.ones(rows, np.bool_)
        prepared: dict[str, np.ndarray] = {}
        for i, rule in enumerate(self._compiled or ()):
            match = undecided.copy()
            for field, _, mask, _, _ in rule.tests:
                if field not in prepared:
                    prepared[field] = _column(columns, field, rows)
                match &= mask(prepared[field])
                if not match.any():
                    break
            chosen[match] = i
            undecided &= ~match
            if not undecided.any():
                break
        return chosen


def _read_row(columns: Mapping[str, np.ndarray], field: str) -> Any:
    return columns[field][0]  # the row of a field of several values a row


def _read_one(columns: Mapping[str, np.ndarray], field: str) -> Any:
    value = columns[field][0]
    if value.__class__ is np.ndarray:  # a [1, 1] column
        return value[0]
    return value


def _one_row_program(
    rules: tuple[_CompiledRule, ...],
    fields: int,
    default: int,
    several: set[str],
) -> Callable[[Mapping[str, np.ndarray]], int]:
    """The rules as one Python function of a single row's columns: each field read
    once, when a rule first needs it, and the tests in order, with no loop or call per
    test. A single-row request is the common case, and a loop over test objects costs
    several times what the comparisons do. The source holds only indices: names and
    values reach it as its globals, never as text."""
    lines = ["def decide(columns):"]
    if fields:
        lines.append("    " + " = ".join(f"v{j}" for j in range(fields)) + " = U")
    names: list[str] = [""] * fields
    tests: list[_Test] = []
    constants: list[Any] = []
    for i, rule in enumerate(rules):
        terms = []
        for field, number, _, test, inline in rule.tests:
            names[number] = field
            read = (
                f"(v{number} if v{number} is not U"
                f" else (v{number} := {'S' if field in several else 'R'}"
                f"(columns, F[{number}])))"
            )
            if inline is None:
                tests.append(test)
                terms.append(f"T[{len(tests) - 1}]({read})")
            else:
                symbol, value = inline
                constants.append(value)
                terms.append(f"{read} {symbol} C[{len(constants) - 1}]")
        lines.append(f"    if {' and '.join(terms)}:")
        lines.append(f"        return {i}")
    lines.append(f"    return {default}")
    scope: dict[str, Any] = {
        "U": _UNREAD,
        "R": _read_one,
        "S": _read_row,
        "F": tuple(names),
        "T": tests,
        "C": constants,
    }
    exec(compile("\n".join(lines), "<policy>", "exec"), scope)  # noqa: S102
    return scope["decide"]


def _condition_tests(
    condition: Condition, info: FieldInfo, place: str
) -> list[tuple[str, _Mask, _Test, _Inline]]:
    return [
        (condition.field, *_compile(op, value, info, condition.field, place))
        for op, value in condition.operators().items()
    ]


def _column(columns: Mapping[str, np.ndarray], field: str, rows: int) -> np.ndarray:
    try:
        column = np.asarray(columns[field])
    except KeyError:
        raise KeyError(f"the policy needs {field!r}, which the request lacks") from None
    if column.ndim == 2 and column.shape[1] == 1:
        return column.reshape(rows)
    return column


# -- loading -------------------------------------------------------------------------


def parse_policy(text: bytes | str, source: str = "policy") -> Policy:
    """A policy from its YAML text (its fields not yet checked: `check_fields`)."""
    raw = text.encode() if isinstance(text, str) else text
    return Policy(parse_document(raw, source), raw)


def load_policy(uri: str, s3_client: Any = None) -> Policy:
    """The policy at `uri`: a local `.yaml` file, a folder holding `policy.yaml`, the
    same as `file://`, or `s3://bucket/key` (a key, or a prefix holding `policy.yaml`,
    read with `s3_client`: `riskserve.model.s3_client.s3_client(S3Settings())` when
    None). `models:/` URIs are resolved to one of these by the rollout layer first
    (`riskserve policy status` prints them): the transformer carries no MLflow."""
    if uri.startswith("models:/"):
        raise PolicyError(
            f"{uri}: a models:/ URI is resolved to s3:// or a path before the "
            "transformer loads it (riskserve policy status shows each version's)"
        )
    text, path = read_document(
        uri,
        file_name=POLICY_FILE,
        what="policy",
        max_bytes=MAX_DOCUMENT_BYTES,
        error=PolicyError,
        s3_client=s3_client,
    )
    return parse_policy(text, uri if path is None else str(path))


def policy_fields(
    model: str,
    raw_inputs: Iterable[tuple[str, ...]],
    features: Iterable[tuple[str, str]],
    outputs: Iterable[tuple[str, str, Iterable[int]]],
) -> PolicyFields:
    """The fields of a transformer in front of `model`: its kind's `raw_inputs` and
    `extra_outputs` (`riskserve.transformer.decisions.Decision`) and the model's
    outputs as its v2 metadata lists them, (name, datatype, shape)."""
    answered = []
    for name, datatype, shape in outputs:
        dims = list(shape)
        per_row = dims[1] if len(dims) == 2 and dims[1] > 0 else 1
        answered.append((name, datatype, per_row))
    return PolicyFields.build(
        model,
        ((entry[0], entry[1]) for entry in raw_inputs),
        features,
        answered,
    )
