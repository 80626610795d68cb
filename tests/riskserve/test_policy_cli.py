"""`riskserve policy validate | apply | diff | status` against a real MLflow registry
(a SQLite tracking store in a temporary folder): fields checked against the registered
model's signature, versions and aliases of `<model>-policy`, the stored YAML read back
by the transformer's loader, and the exit codes."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from riskserve.rollout.settings import RolloutSettings
from riskserve.transformer.policy import load_policy

from riskserve.cli import main
from riskserve.policy_cli import resolve_policy_uri
from tests.fixtures.contract_models import fraud_model

pytestmark = pytest.mark.inprocess

REPO = Path(__file__).resolve().parents[2]
FRAUD_POLICY = REPO / "policies" / "fraud.yaml"


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    """A SQLite MLflow registry holding one version of `fraud` (the contract model,
    logged and registered as a training job does: ONNX with its signature)."""
    import mlflow
    from riskserve.model.specs import FRAUD
    from riskserve.training.registry import log_and_register_onnx

    folder = tmp_path_factory.mktemp("mlflow")
    saved = {k: os.environ.get(k) for k in ("MLFLOW_TRACKING_URI",)}
    cwd = Path.cwd()
    os.chdir(folder)  # MLflow's default artifact root (./mlruns) lands here
    uri = f"sqlite:///{folder}/mlflow.db"
    os.environ["MLFLOW_TRACKING_URI"] = uri
    mlflow.set_tracking_uri(uri)
    example = {n: np.ones((2, 1), np.float32) for n in FRAUD.feature_names}
    outputs = {
        "fraud_probability": np.array([0.1, 0.9], np.float32),
        "is_fraud": np.array([False, True]),
    }
    mlflow.set_experiment("fraud")
    with mlflow.start_run():
        version = log_and_register_onnx(fraud_model(), "fraud", example, outputs, {})
    try:
        yield {"uri": uri, "version": version, "folder": folder}
    finally:
        os.chdir(cwd)
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def policy(command: list[str], capsys) -> tuple[int, str, str]:
    code = main(["policy", *command])
    out, err = capsys.readouterr()
    return code, out, err


def edited(tmp_path: Path, old: str, new: str, name: str = "edited.yaml") -> Path:
    text = FRAUD_POLICY.read_text()
    assert old in text
    path = tmp_path / name
    path.write_text(text.replace(old, new))
    return path


def test_validate_checks_the_policy_against_the_registered_model(
    registry, tmp_path, capsys
):
    code, out, err = policy(["validate", str(FRAUD_POLICY), "--model", "fraud"], capsys)
    assert (code, err) == (0, "")
    assert (
        f"is valid for fraud/{registry['version']}: 2 rules over amount, is_fraud"
        in out
    )

    bad = edited(tmp_path, "field: amount,", "field: amount_eur,")
    code, out, err = policy(["validate", str(bad), "--model", "fraud/1"], capsys)
    assert code == 1 and out == ""
    assert err.splitlines() == [
        f"riskserve policy validate: {bad}: rules[1].when[0].field: 'amount_eur' is "
        "not an input, feature or output of model fraud"
    ]


def test_validate_refuses_another_kind_or_model_and_reports_an_unknown_model(
    registry, tmp_path, capsys
):
    credit = REPO / "policies" / "credit.yaml"
    code, _, err = policy(["validate", str(credit), "--model", "fraud"], capsys)
    assert code == 1
    lines = err.splitlines()
    assert lines[0].endswith("kind: 'credit', but model fraud makes fraud decisions")
    assert lines[1].endswith("model: the policy is for 'credit', not 'fraud'")

    code, _, err = policy(["validate", str(FRAUD_POLICY), "--model", "fraud/9"], capsys)
    assert code == 2 and "model fraud/9:" in err and len(err.splitlines()) == 1


def test_apply_versions_aliases_and_the_transformer_loads_what_was_stored(
    registry, tmp_path, capsys
):
    code, out, err = policy(["apply", str(FRAUD_POLICY), "--model", "fraud"], capsys)
    assert (code, err) == (0, "")
    assert "fraud-policy: registered version 1" in out
    assert "alias challenger -> 1" in out

    # the same document again moves an alias, never makes a version
    code, out, _ = policy(
        ["apply", str(FRAUD_POLICY), "--model", "fraud", "--alias", "champion"], capsys
    )
    assert code == 0 and "unchanged, already version 1" in out

    stricter = edited(tmp_path, "gt: 5000", "gt: 2000")
    code, out, _ = policy(["apply", str(stricter), "--model", "fraud"], capsys)
    assert code == 0 and "registered version 2" in out

    refused = edited(tmp_path, "field: amount,", "field: amount_eur,", "bad.yaml")
    code, _, err = policy(["apply", str(refused), "--model", "fraud"], capsys)
    assert code == 1 and "'amount_eur' is not an input" in err

    code, out, _ = policy(["status", "--model", "fraud"], capsys)
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == "fraud-policy: 2 version(s)"
    # `policy apply` validated both; neither is approved yet
    assert lines[1].startswith("  version 2 [challenger] validated sha256 ")
    assert lines[2].startswith("  version 1 [champion] validated sha256 ")
    champion = load_policy(FRAUD_POLICY.as_posix())
    assert f"sha256 {champion.version} fraud-starter for fraud/1 by " in lines[2]
    # the URI status shows is where the transformer reads that version
    stored = load_policy(lines[2].split()[-1])
    assert stored.text == FRAUD_POLICY.read_bytes()
    assert load_policy(lines[1].split()[-1]).text == stricter.read_bytes()

    # what a rollout of the policy hands the transformer: a pinned version's location
    version, uri = resolve_policy_uri(
        "models:/fraud-policy@champion", RolloutSettings()
    )
    assert version == "1" and load_policy(uri).version == champion.version

    code, out, _ = policy(
        ["diff", "models:/fraud-policy@champion", "models:/fraud-policy@challenger"],
        capsys,
    )
    assert code == 0
    assert out.splitlines() == [
        "~ rule amount_above_limit: when amount gt 5000 -> when amount gt 2000"
    ]


def test_diff_says_what_was_added_removed_reordered_and_changed(tmp_path, capsys):
    old = FRAUD_POLICY
    text = old.read_text()
    new = tmp_path / "new.yaml"
    new.write_text(
        text.replace("action: challenge", "action: block")
        .replace("name: probability_at_threshold", "name: at_threshold")
        .replace("action: allow", "action: challenge")
    )
    code, out, _ = policy(["diff", str(old), str(new)], capsys)
    assert code == 0
    assert out.splitlines() == [
        "- rule probability_at_threshold (was #1): when is_fraud eq True -> block "
        "(FRAUD_PROBABILITY_AT_THRESHOLD)",
        "+ rule at_threshold (#1): when is_fraud eq True -> block "
        "(FRAUD_PROBABILITY_AT_THRESHOLD)",
        "~ rule amount_above_limit: challenge (KO_AMOUNT_ABOVE_LIMIT) -> block "
        "(KO_AMOUNT_ABOVE_LIMIT)",
        "~ default: allow (FRAUD_PROBABILITY_BELOW_THRESHOLD) -> challenge "
        "(FRAUD_PROBABILITY_BELOW_THRESHOLD)",
    ]
    code, out, _ = policy(["diff", str(old), str(old)], capsys)
    assert (code, out) == (0, "no change in rules or defaults\n")


def test_usage_errors_exit_2(capsys, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    code, _, err = policy(["status", "--model", "fraud"], capsys)
    assert code == 2 and "set MLFLOW_TRACKING_URI" in err
    with pytest.raises(SystemExit) as exited:
        main(["policy", "bogus"])
    assert exited.value.code == 2
    code, _, err = policy(["diff", "/no/such.yaml", str(FRAUD_POLICY)], capsys)
    assert code == 2 and "/no/such.yaml" in err


def test_diff_replays_recorded_fraud_decisions_against_the_registered_model(
    registry, tmp_path, capsys
):
    """`diff --log` checks both policies against the registry's fraud model (its
    champion or latest) and replays what a fraud transformer recorded: a limit cut
    from 5,000 to 2,000 challenges the transactions between the two."""
    from riskserve.serving.inference_log import InferenceLog
    from riskserve.serving.settings import StorageSettings
    from riskserve.serving.tensors import OutputTensor
    from riskserve.transformer.inference_log import transformer_record

    amounts = [100.0, 2500.0, 4000.0, 6000.0, 300.0, 3000.0, 50.0, 7000.0]
    records = [
        transformer_record(
            request_id=f"tx-{i}",
            model_name="fraud",
            model_version=str(registry["version"]),
            raw_inputs={"card_id": [f"card-{i}"], "amount": [amount]},
            model_inputs={},
            outputs=[
                OutputTensor("fraud_probability", "FP32", np.array([0.01], np.float32)),
                OutputTensor("is_fraud", "BOOL", np.array([False])),
            ],
            features=[],
            latency_seconds=0.001,
        )
        for i, amount in enumerate(amounts)
    ]
    writer = InferenceLog(str(tmp_path / "log"), StorageSettings(), batch_size=100)
    writer.write_batch(records)
    writer.close()
    new = edited(tmp_path, "{field: amount, gt: 5000}", "{field: amount, gt: 2000}")
    command = ["diff", str(FRAUD_POLICY), str(new), "--log", str(tmp_path / "log")]
    code, out, err = policy([*command, "--model", "fraud"], capsys)
    assert (code, err) == (0, ""), err
    # 2 of 8 above 5,000 before; 5 of 8 above 2,000 after
    assert "  allow       75.0% ->  37.5%  (-37.5 points)" in out, out
    assert "  challenge   25.0% ->  62.5%  (+37.5 points)" in out, out
    assert "3 decisions (37.5%) change action" in out
    assert "--max-action-shift 0.40" in out
