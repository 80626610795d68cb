"""The decision policy in process: the document's one-line errors, the fields checked
against the model, the first matching rule deciding (vectorised and one-row alike),
missing values, the loader, and the starter policies giving the graph's own decisions
on real models' outputs where no knock-out fires."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
from riskserve.model.specs import CREDIT, FRAUD, MERCHANT_GROUPS
from riskserve.model.synthetic import generate
from riskserve.transformer.checkout import CHECKOUT
from riskserve.transformer.decisions import CARD
from riskserve.transformer.policy import (
    Policy,
    PolicyFields,
    load_policy,
    parse_policy,
    policy_fields,
)
from riskserve.transformer.policy_schema import PolicyError

from tests.fixtures.contract_models import (
    fraud_model,
    scorecard_credit_model,
    write_onnx,
)

pytestmark = pytest.mark.inprocess

REPO = Path(__file__).resolve().parents[2]
FRAUD_OUTPUTS = [("fraud_probability", "FP32", [-1]), ("is_fraud", "BOOL", [-1])]
CREDIT_OUTPUTS = [
    ("default_probability", "FP32", [-1]),
    ("credit_score", "FP32", [-1]),
    ("approved", "BOOL", [-1]),
    ("reason_codes", "BYTES", [-1, 4]),
]


def fraud_fields() -> PolicyFields:
    return policy_fields("fraud", CARD.raw_inputs, CARD.extra_outputs, FRAUD_OUTPUTS)


def credit_fields() -> PolicyFields:
    return policy_fields(
        "credit", CHECKOUT.raw_inputs, CHECKOUT.extra_outputs, CREDIT_OUTPUTS
    )


def credit_policy(rules: str, default: str = "decline") -> Policy:
    policy = parse_policy(
        f"name: t\nkind: credit\nmodel: credit\nrules:\n{rules}\n"
        f"default: {{action: {default}, reason: DEFAULT}}\n"
    )
    policy.check_fields(credit_fields())
    return policy


def refusal(text: str, fields: PolicyFields | None = None) -> list[str]:
    with pytest.raises(PolicyError) as caught:
        policy = parse_policy(text)
        policy.check_fields(fields or fraud_fields())
    return str(caught.value).splitlines()


FRAUD_HEAD = "name: t\nkind: fraud\nmodel: fraud\n"
DEFAULT_ALLOW = "default: {action: allow, reason: OK}\n"


def test_a_field_the_model_lacks_is_refused_in_one_line_naming_its_place():
    lines = refusal(
        FRAUD_HEAD
        + "rules:\n"
        + "  - {name: a, when: [{field: amount, gt: 1}], action: block, reason: A}\n"
        + "  - {name: b, when: [{field: amount, gt: 2}], action: block, reason: B}\n"
        + "  - {name: c, when: [{field: amount_eur, gt: 3}], action: block,"
        + " reason: C}\n"
        + DEFAULT_ALLOW
    )
    assert lines == [
        "rules[2].when[0].field: 'amount_eur' is not an input, feature or output "
        "of model fraud"
    ]


def test_document_errors_are_one_line_each_naming_the_place():
    lines = refusal(
        FRAUD_HEAD
        + "rules:\n"
        + "  - {name: a, when: [{field: amount}], action: block, reason: A}\n"
        + "  - {name: b, when: [{field: amount, gt: high}], action: block,"
        + " reason: B, colour: red}\n"
        + "default: {action: allow}\n"
    )
    assert lines == [
        "rules[0].when[0]: needs an operator: one of eq, ne, lt, le, gt, ge, in, "
        "not_in, missing, contains",
        "rules[1].when[0].gt: expected a number",
        "rules[1].colour: is not a field of a policy here",
        "default.reason: is required",
    ]


def test_actions_belong_to_the_kind_and_rule_names_are_unique():
    lines = refusal(
        FRAUD_HEAD
        + "rules:\n"
        + "  - {name: a, when: [{field: amount, gt: 1}], action: approve, reason: A}\n"
        + "  - {name: a, when: [{field: amount, gt: 2}], action: block, reason: B}\n"
        + "default: {action: decline, reason: X}\n"
    )
    assert lines == [
        "rules[0].action: 'approve' is not an action of a fraud policy "
        "(allow / challenge / block)",
        "rules[1].name: 'a' is used twice",
        "default.action: 'decline' is not an action of a fraud policy "
        "(allow / challenge / block)",
    ]


def test_a_default_is_required_and_text_is_not_yaml_or_not_a_mapping():
    assert refusal(FRAUD_HEAD + "rules: []\n") == ["default: is required"]
    assert refusal("name: [unclosed\n")[0].startswith("policy: line 2: not YAML")
    assert refusal("- a list\n") == [
        "policy: a policy is a YAML mapping (name, kind, ...)"
    ]


def test_a_test_the_field_type_cannot_take_is_refused():
    lines = refusal(
        FRAUD_HEAD
        + "rules:\n"
        + "  - {name: a, when: [{field: merchant_id, gt: 3}], action: block,"
        + " reason: A}\n"
        + "  - {name: b, when: [{field: amount, eq: big}], action: block, reason: B}\n"
        + "  - {name: c, when: [{field: is_fraud, eq: 2}], action: block, reason: C}\n"
        + DEFAULT_ALLOW
    )
    assert lines == [
        "rules[0].when[0].gt: 'merchant_id' is text, not a number",
        "rules[1].when[0].eq: 'amount' is a number; 'big' is text",
        "rules[2].when[0].eq: 'is_fraud' is true/false; 2 is not",
    ]
    lines = refusal(
        "name: t\nkind: credit\nmodel: credit\nrules:\n"
        "  - {name: a, when: [{field: reason_codes, eq: x}], action: refer,"
        " reason: A}\n"
        "  - {name: b, when: [{field: credit_score, contains: x}], action: refer,"
        " reason: B}\n"
        "default: {action: decline, reason: D}\n",
        credit_fields(),
    )
    assert lines == [
        "rules[0].when[0].eq: 'reason_codes' has 4 values a row; only `contains` "
        "tests it",
        "rules[1].when[0].contains: only a field of several values a row "
        "(reason_codes) takes `contains`; 'credit_score' has one",
    ]


def test_errors_repeat_only_a_bounded_excerpt_of_the_document():
    long = "x" * 200
    lines = refusal(
        FRAUD_HEAD
        + "rules:\n"
        + f"  - {{name: a, when: [{{field: amount, eq: {long}}}], action: block,"
        + " reason: A}\n"
        + f"  - {{name: b, when: [{{field: amount, eq: {'y' * 300}}}],"
        + f" action: {'z' * 100}, reason: B}}\n"
        + DEFAULT_ALLOW
    )
    assert lines == [
        "rules[1].when[0].eq: expected true/false or a number or text of at most 256 "
        "characters",
        "rules[1].action: String should have at most 32 characters",
    ]
    lines = refusal(
        FRAUD_HEAD
        + "rules:\n"
        + f"  - {{name: a, when: [{{field: amount, eq: {long}}}], action: block,"
        + " reason: A}\n"
        + DEFAULT_ALLOW
    )
    (line,) = lines
    assert line.startswith("rules[0].when[0].eq: 'amount' is a number; 'xxx")
    assert line.endswith("x... is text") and len(line) < 100


def test_a_policy_decides_only_once_its_fields_are_checked():
    policy = parse_policy(FRAUD_HEAD + DEFAULT_ALLOW)
    with pytest.raises(RuntimeError, match="check_fields"):
        policy.decide({}, 1)


SEGMENTED = """\
  - {name: collections, when: [{field: recovery_debt, gt: 0}], action: decline,
     reason: KO}
  - name: electronics_cutoff
    when: [{field: merchant_group, in: [Electronics]}, {field: credit_score, ge: 640}]
    action: approve
    reason: E_OK
  - {name: electronics_rest, when: [{field: merchant_group, eq: Electronics}],
     action: decline, reason: E_LOW}
  - {name: refer_band, when: [{field: credit_score, ge: 600, lt: 620}],
     action: refer, reason: BAND}
  - {name: cutoff, when: [{field: credit_score, ge: 620}], action: approve,
     reason: OK}"""


def decide_rows(policy: Policy, columns: dict[str, np.ndarray]) -> list[tuple]:
    rows = len(next(iter(columns.values())))
    many = policy.decide(columns, rows)
    one_by_one = [
        policy.decide({k: v[i : i + 1] for k, v in columns.items()}, 1)
        for i in range(rows)
    ]
    single = [(d.action[0], d.rule[0], d.reason[0]) for d in one_by_one]
    assert list(zip(many.action, many.rule, many.reason, strict=True)) == single
    return single


def test_the_first_matching_rule_decides_segments_bands_and_the_default():
    policy = credit_policy(SEGMENTED)
    columns = {
        "recovery_debt": np.array([5.0, 0, 0, 0, 0, 0, 0], np.float32),
        "merchant_group": np.array(
            [
                "Electronics",
                "Electronics",
                "Electronics",
                "Books",
                "Books",
                "Books",
                "",
            ],
            object,
        ),
        "credit_score": np.array([700, 650, 630, 630, 610, 590, 700], np.float32),
    }
    assert decide_rows(policy, columns) == [
        ("decline", "collections", "KO"),
        ("approve", "electronics_cutoff", "E_OK"),
        ("decline", "electronics_rest", "E_LOW"),
        ("approve", "cutoff", "OK"),
        ("refer", "refer_band", "BAND"),
        ("decline", "default", "DEFAULT"),
        ("approve", "cutoff", "OK"),
    ]
    assert policy.decide(columns, 7).policy_version == policy.version
    assert len(policy.version) == 12


def test_missing_values_satisfy_no_comparison_and_missing_tests_for_them():
    policy = credit_policy(
        "  - {name: unknown_status, when: [{field: account_status, missing: true}],"
        " action: refer, reason: NO_STATUS}\n"
        "  - {name: not_worst, when: [{field: account_worst_status_0_3m, ne: 4}],"
        " action: approve, reason: OK}\n"
        "  - {name: not_group, when: [{field: merchant_group, not_in: [Books]}],"
        " action: refer, reason: GROUP}",
    )
    nan = np.nan
    columns = {
        "account_status": np.array([nan, 1, 1, 1, 1], np.float32),
        "account_worst_status_0_3m": np.array([1, 1, nan, nan, 4], np.float32),
        "merchant_group": np.array(["Books", "Books", "Books", None, "Food"], object),
    }
    assert [a for a, _, _ in decide_rows(policy, columns)] == [
        "refer",  # no account status
        "approve",  # worst status 1 is not 4
        "decline",  # a missing worst status is not "not 4"; Books is in the list
        "decline",  # a missing group is not "not Books"
        "refer",  # Food is not Books
    ]


def test_reason_codes_are_tested_with_contains_by_feature_or_whole_code():
    policy = credit_policy(
        "  - {name: debt_reason, when: [{field: reason_codes, contains: recovery_debt}],"
        " action: refer, reason: DEBT}"
    )
    columns = {
        "reason_codes": np.array(
            [
                ["recovery_debt: high debt", "time_hours: late", "", ""],
                ["time_hours: late", "", "", ""],
                [b"recovery_debt: high debt", b"", b"", b""],
            ],
            object,
        )
    }
    assert [a for a, _, _ in decide_rows(policy, columns)] == [
        "refer",
        "decline",
        "refer",
    ]


def test_vectorised_and_one_row_decisions_agree_on_random_rows():
    policy = credit_policy(SEGMENTED)
    rng = np.random.default_rng(3)
    rows = 500
    score = rng.normal(620, 30, rows).astype(np.float32)
    score[rng.random(rows) < 0.05] = np.nan
    columns = {
        "recovery_debt": np.where(rng.random(rows) < 0.1, 10.0, 0.0).astype(np.float32),
        "merchant_group": rng.choice(list(MERCHANT_GROUPS), rows).astype(object),
        "credit_score": score.reshape(rows, 1),  # [N, 1], as a model input
    }
    decided = decide_rows(policy, columns)
    assert {a for a, _, _ in decided} == {"approve", "refer", "decline"}


def test_a_column_the_policy_needs_but_the_request_lacks_names_it():
    policy = credit_policy(SEGMENTED)
    with pytest.raises(KeyError, match="'recovery_debt'"):
        policy.decide({"credit_score": np.zeros(3, np.float32)}, 3)
    with pytest.raises(KeyError, match="'recovery_debt'"):
        policy.decide({"credit_score": np.zeros(1, np.float32)}, 1)


def test_load_policy_reads_a_file_a_folder_and_file_uris(tmp_path):
    text = (REPO / "policies" / "fraud.yaml").read_bytes()
    (tmp_path / "policy.yaml").write_bytes(text)
    by_file = load_policy(str(REPO / "policies" / "fraud.yaml"))
    by_folder = load_policy(str(tmp_path))
    by_uri = load_policy(f"file://{tmp_path}")
    assert by_file.version == by_folder.version == by_uri.version
    assert by_file.name == "fraud-starter"
    with pytest.raises(PolicyError, match="cannot read the policy"):
        load_policy(str(tmp_path / "absent.yaml"))
    with pytest.raises(PolicyError, match="resolved to s3:// or a path"):
        load_policy("models:/fraud-policy@champion")
    (tmp_path / "big.yaml").write_bytes(b"#" * 300_000)
    with pytest.raises(PolicyError, match="300000 bytes"):
        load_policy(str(tmp_path / "big.yaml"))


def run(model_path: Path, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    session = ort.InferenceSession(str(model_path), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(names, inputs), strict=True))


def test_the_starter_credit_policy_gives_the_graphs_decision_but_for_its_knockout(
    tmp_path,
):
    proto, _ = scorecard_credit_model()
    path = write_onnx(proto, tmp_path)
    frame = generate("credit", 3000, 11)
    inputs = {}
    for feature in CREDIT.features:
        values = frame[feature.name].to_numpy()
        if feature.tensor_datatype == "BYTES":
            inputs[feature.name] = values.astype(object).reshape(-1, 1)
        else:
            inputs[feature.name] = values.astype(np.float32).reshape(-1, 1)
    outputs = run(path, inputs)
    policy = load_policy(str(REPO / "policies" / "credit.yaml"))
    policy.check_fields(credit_fields())
    decisions = policy.decide({**inputs, **outputs}, len(frame))
    knocked_out = inputs["recovery_debt"].reshape(-1) > 0
    graph = np.where(outputs["approved"], "approve", "decline")
    assert 0 < knocked_out.sum() < len(frame)
    approved = outputs["approved"][~knocked_out]
    assert approved.sum() > 100 and (~approved).sum() > 20  # the graph does both
    assert (decisions.action[~knocked_out] == graph[~knocked_out]).all()
    assert (decisions.action[knocked_out] == "decline").all()
    assert set(decisions.rule[knocked_out]) == {"in_collections"}


def test_the_starter_fraud_policy_gives_the_graphs_decision_but_for_its_knockout(
    tmp_path,
):
    path = write_onnx(fraud_model(), tmp_path)
    frame = generate("fraud", 3000, 12)
    inputs = {
        name: frame[name].to_numpy().astype(np.float32).reshape(-1, 1)
        for name in FRAUD.feature_names
    }
    outputs = run(path, inputs)
    rng = np.random.default_rng(12)
    amount = rng.lognormal(4, 1.5, len(frame))  # a raw input
    amount[::20] = 8000.0  # above the starter's limit
    policy = load_policy(str(REPO / "policies" / "fraud.yaml"))
    policy.check_fields(fraud_fields())
    decisions = policy.decide({**inputs, **outputs, "amount": amount}, len(frame))
    graph = np.where(outputs["is_fraud"], "block", "allow")
    knocked_out = (amount > 5000) & ~outputs["is_fraud"]
    assert knocked_out.sum() > 50 and 50 < outputs["is_fraud"].sum() < len(frame)
    assert (decisions.action[~knocked_out] == graph[~knocked_out]).all()
    assert (decisions.action[knocked_out] == "challenge").all()
