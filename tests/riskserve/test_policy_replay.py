"""`riskserve policy diff OLD NEW --log`: the decisions a credit transformer recorded
(made by its own record builder, written by the predictor's log writer) replayed
under the starter policy and under a cut-off of 650; the shares and the changed
decisions come out as a count of the same rows by hand says."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from riskserve.serving.inference_log import InferenceLog
from riskserve.serving.settings import StorageSettings
from riskserve.serving.tensors import OutputTensor
from riskserve.transformer.inference_log import Assignment, transformer_record

from riskserve.cli import main
from tests.fixtures.contract_models import credit_model, write_onnx

pytestmark = pytest.mark.inprocess

REPO = Path(__file__).resolve().parents[2]
NEW = (
    (REPO / "policies" / "credit.yaml")
    .read_text()
    .replace("- {field: approved, eq: true}", "- {field: credit_score, ge: 650}")
    .replace("name: credit-starter", "name: credit-650")
)


def record(rid: str, score: float, debt: float, shadow: bool = False, debt_logged=True):
    approved = score >= 600  # the graph's decision the starter policy follows
    action = "decline" if debt > 0 or not approved else "approve"
    inputs = {"recovery_debt": np.array([[debt]], np.float32)} if debt_logged else {}
    return transformer_record(
        request_id=rid,
        model_name="credit",
        model_version="7",
        raw_inputs={"customer_id": [f"c-{rid}"], "basket_amount": [90.0]},
        model_inputs=inputs,
        outputs=[
            OutputTensor("credit_score", "FP32", np.array([score], np.float32)),
            OutputTensor("approved", "BOOL", np.array([approved])),
            OutputTensor("action", "BYTES", np.array([action], dtype=object)),
        ],
        features=[],
        latency_seconds=0.001,
        assignment=Assignment("cutoff", ["champion"], shadow=True) if shadow else None,
    )


def test_the_recorded_decisions_replayed_under_both_policies(tmp_path, capsys):
    rng = np.random.default_rng(5)
    scores = rng.uniform(450, 800, 600).round(1)
    debts = np.where(rng.random(600) < 0.05, 120.0, 0.0)
    records = [
        record(f"r{i}", s, d)
        for i, (s, d) in enumerate(zip(scores, debts, strict=True))
    ]
    records += [record(f"r{i}", 300.0, 0.0, shadow=True) for i in range(50)]
    records += [record(f"old{i}", 700.0, 0.0, debt_logged=False) for i in range(7)]
    writer = InferenceLog(str(tmp_path / "log"), StorageSettings(), batch_size=1000)
    writer.write_batch(records)
    writer.close()
    onnx_file = write_onnx(credit_model(), tmp_path / "model")
    (tmp_path / "new.yaml").write_text(NEW)

    argv = ["policy", "diff", str(REPO / "policies" / "credit.yaml")]
    argv += [str(tmp_path / "new.yaml"), "--log", str(tmp_path / "log")]
    assert main([*argv, "--onnx", str(onnx_file)]) == 0, capsys.readouterr().err
    out = capsys.readouterr().out

    # by hand: the starter approves a score of 600 or more without debt; the new
    # policy 650 or more without debt
    old_approve = (scores >= 600) & (debts == 0)
    new_approve = (scores >= 650) & (debts == 0)
    shift = (new_approve.sum() - old_approve.sum()) / 600
    assert (
        "~ rule score_at_cutoff: when approved eq True -> when credit_score ge 650"
        in out
    )
    assert re.search(r"replayed 600 decisions of credit \(600 records, ", out), out
    assert (
        f"{'approve':<10} {old_approve.mean():6.1%} -> {new_approve.mean():6.1%}  "
        f"({shift * 100:+.1f} points)"
    ) in out, out
    changed = int((old_approve != new_approve).sum())
    assert f"{changed:,} decisions ({changed / 600:.1%}) change action" in out
    bound = float(re.search(r"--max-action-shift (\d\.\d\d)", out).group(1))
    assert abs(shift) + 0.02 <= bound < abs(shift) + 0.03, (shift, bound)
    # the shadow copies are not decisions; a record without a field is counted
    assert "not replayed: 7 records without recovery_debt" in out
    # the recorded actions were the starter's: nothing logged differently
    assert "another policy version" not in out


def test_replay_needs_a_log_and_says_so_in_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("RISKSERVE_MONITOR_LOG_URI", raising=False)
    (tmp_path / "new.yaml").write_text(NEW)
    onnx_file = write_onnx(credit_model(), tmp_path / "model")
    argv = ["policy", "diff", str(REPO / "policies" / "credit.yaml")]
    argv += [str(tmp_path / "new.yaml"), "--since", "1d", "--onnx", str(onnx_file)]
    assert main(argv) == 2
    assert (
        capsys.readouterr()
        .err.strip()
        .endswith(
            "--since replays the inference log: give --log URI (or set "
            "RISKSERVE_MONITOR_LOG_URI)"
        )
    )
    assert main([*argv, "--log", str(tmp_path / "nothing")]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.endswith("no such log folder"), line
