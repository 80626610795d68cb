"""`riskserve monitor` on logs written by the predictor's own writer: what a user sees
(exit codes, the summary, the JSON, the report) for drift, no drift and bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from riskserve.monitoring.cli import main

from tests.monitoring.log_helpers import (
    fraud_features,
    fraud_profile,
    fraud_score,
    write_log,
)

pytestmark = pytest.mark.inprocess

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def no_mlflow(monkeypatch):
    for name in ("MLFLOW_TRACKING_URI", "RISKSERVE_MONITOR_LOG_URI"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="module")
def profile_file(tmp_path_factory) -> Path:
    return fraud_profile().save(
        tmp_path_factory.mktemp("profile") / "reference_profile.json"
    )


def files_under(root: Path) -> set[Path]:
    return {p for p in root.rglob("*") if p.is_file()}


def monitor(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def judge(
    capsys, log: Path, reference: Path, model: str = "fraud"
) -> tuple[int, str, str]:
    """One drift pass of `model` over `log` against `reference`: JSON, no report."""
    return monitor(
        capsys,
        model,
        "--log",
        str(log),
        "--reference-data",
        str(reference),
        "--json",
        "--no-report",
    )


def test_a_shifted_feature_is_flagged_and_the_others_are_not(
    tmp_path, capsys, profile_file
):
    live = fraud_features(20_000, seed=3)
    live["ratio_to_median_purchase_price"] *= 2.5
    write_log(tmp_path / "log", live)
    before = files_under(tmp_path / "log")
    code, out, _ = monitor(
        capsys,
        "fraud",
        "--log",
        str(tmp_path / "log"),
        "--reference-data",
        str(profile_file),
        "--json",
    )
    assert code == 3
    result = json.loads(out)
    by_name = {f["name"]: f for f in result["features"]}
    assert set(by_name) == set(fraud_profile().features)
    assert by_name["ratio_to_median_purchase_price"]["drifted"]
    assert by_name["ratio_to_median_purchase_price"]["psi"] > 0.2
    assert [n for n, f in by_name.items() if f["drifted"]] == [
        "ratio_to_median_purchase_price"
    ]
    assert "ratio_to_median_purchase_price" in result["drifted"]
    assert set(result["window"]) == {"since", "until"}
    assert result["rows"] == 20_000 and result["corrupt_lines"] == 0
    # The report is the only thing written into the log folder.
    added = files_under(tmp_path / "log") - before
    assert [p.parent.name for p in added] == ["reports"]
    report = Path(result["report"])
    assert report in added and report.suffix == ".html"
    html = report.read_text()
    assert "ratio_to_median_purchase_price" in html
    assert html.count("data:image/png;base64,") >= 3  # timeline, PSI bars, histogram


def test_unshifted_traffic_exits_0_with_a_one_screen_summary(
    tmp_path, capsys, profile_file
):
    write_log(tmp_path / "log", fraud_features(20_000, seed=11))
    code, out, _ = monitor(
        capsys,
        "fraud",
        "--log",
        str(tmp_path / "log"),
        "--reference-data",
        str(profile_file),
        "--no-report",
    )
    assert code == 0, out
    assert "no drift" in out
    assert len(out.splitlines()) <= 24
    assert not (tmp_path / "log" / "fraud" / "reports").exists()


def test_an_empty_window_says_no_traffic_and_exits_0(tmp_path, capsys, profile_file):
    write_log(tmp_path / "log", fraud_features(1_000, seed=1))
    code, out, err = monitor(
        capsys,
        "fraud",
        "--log",
        str(tmp_path / "log"),
        "--reference-data",
        str(profile_file),
        "--since",
        "2020-01-01",
        "--until",
        "2020-01-02",
    )
    assert code == 0
    assert "no traffic" in out
    assert not (tmp_path / "log" / "fraud" / "reports").exists()


def test_a_log_of_another_model_exits_2_naming_the_models_found(
    tmp_path, capsys, profile_file
):
    write_log(tmp_path / "log", fraud_features(500, seed=1))
    code, _, err = monitor(
        capsys,
        "credit",
        "--log",
        str(tmp_path / "log"),
        "--reference-data",
        str(profile_file),
    )
    assert code == 2
    assert "no log of model 'credit'" in err and "fraud" in err


def test_no_reference_profile_points_to_reference_data(tmp_path, capsys):
    write_log(tmp_path / "log", fraud_features(500, seed=1))
    code, _, err = monitor(capsys, "fraud", "--log", str(tmp_path / "log"))
    assert code == 2
    assert "--reference-data" in err
    assert "Traceback" not in err


def test_corrupt_lines_are_counted_skipped_and_named(tmp_path, capsys, profile_file):
    write_log(tmp_path / "log", fraud_features(4_000, seed=2))
    victim = sorted((tmp_path / "log" / "fraud").rglob("*.jsonl"))[0]
    with victim.open("ab") as handle:
        handle.write(b'{"timestamp": "2026-01-01T00:00:00+00:00", "trunc\n')
        handle.write(b"not json at all\n")
        handle.write(b'{"model_name": "fraud"}\n')
    code, out, _ = monitor(
        capsys,
        "fraud",
        "--log",
        str(tmp_path / "log"),
        "--reference-data",
        str(profile_file),
        "--json",
    )
    result = json.loads(out)
    assert code == 0
    assert result["corrupt_lines"] == 3
    assert result["rows"] == 4_000
    assert all(victim.name in line for line in result["corrupt_examples"])
    assert victim.name in Path(result["report"]).read_text()


def test_a_missing_rate_jump_is_drift(tmp_path, capsys, profile_file):
    live = fraud_features(5_000, seed=4)
    live.loc[live.index[:2_000], "distance_from_last_transaction"] = np.nan
    write_log(tmp_path / "log", live)
    code, out, _ = judge(capsys, tmp_path / "log", profile_file)
    result = json.loads(out)
    entry = next(
        f for f in result["features"] if f["name"] == "distance_from_last_transaction"
    )
    assert code == 3
    assert entry["drifted"] and entry["missing_rate"] == pytest.approx(0.4)
    assert any("missing rate" in r for r in entry["reasons"])


def test_out_of_range_and_unseen_values_are_counted(tmp_path, capsys, profile_file):
    live = fraud_features(5_000, seed=5)
    live.loc[live.index[:7], "distance_from_home"] = -5.0
    live.loc[live.index[:3], "used_chip"] = 7.0
    write_log(tmp_path / "log", live)
    code, out, _ = judge(capsys, tmp_path / "log", profile_file)
    by_name = {f["name"]: f for f in json.loads(out)["features"]}
    assert by_name["distance_from_home"]["out_of_range"] == 7
    assert by_name["used_chip"]["unseen_categories"] == {"7.0": 3}


def test_reference_data_csv_builds_the_profile(tmp_path, capsys):
    reference = fraud_features(30_000, seed=0)
    reference["fraud"] = 0
    reference.to_csv(tmp_path / "train.csv", index=False)
    live = fraud_features(10_000, seed=8)
    live["distance_from_home"] *= 3
    write_log(tmp_path / "log", live)
    code, out, err = judge(capsys, tmp_path / "log", tmp_path / "train.csv")
    assert code == 3, err
    result = json.loads(out)
    assert "distance_from_home" in result["drifted"]
    assert "building v1's reference profile" in err


def test_two_versions_are_each_judged_against_their_own_reference(
    tmp_path, capsys, profile_file
):
    write_log(tmp_path / "log", fraud_features(6_000, seed=21), version="1")
    shifted = fraud_features(3_000, seed=22)
    shifted["distance_from_home"] *= 4
    write_log(tmp_path / "log", shifted, version="2")
    code, out, _ = judge(capsys, tmp_path / "log", profile_file)
    result = json.loads(out)
    versions = {v["version"]: v for v in result["versions"]}
    assert code == 3
    assert result["primary_version"] == "1"
    assert versions["1"]["drifted"] == [] and versions["1"]["rows"] == 6_000
    assert "distance_from_home" in versions["2"]["drifted"]


def test_a_two_d_input_is_read_in_the_declared_feature_order(
    tmp_path, capsys, profile_file
):
    """A client sending one [N, 7] tensor (`dense_input`), as the original demo did."""
    from riskserve.serving.inference_log import InferenceLog, InferenceRecord
    from riskserve.serving.settings import StorageSettings
    from riskserve.serving.tensors import InputTensor, OutputTensor

    frame = fraud_features(3_000, seed=9)
    frame["online_order"] = 1.0  # every order online: drift in one known column
    matrix = frame.to_numpy(np.float32)
    score = fraud_score(frame)
    writer = InferenceLog(str(tmp_path / "log"), StorageSettings())
    import time

    now = time.time() - 600
    records = [
        InferenceRecord(
            now + i,
            f"r{i}",
            "fraud",
            "1",
            [InputTensor("dense_input", "FP32", (10, 7), matrix[i * 10 : i * 10 + 10])],
            [OutputTensor("fraud_probability", "FP32", score[i * 10 : i * 10 + 10])],
            0.001,
            "rest",
        )
        for i in range(300)
    ]
    writer._write(records)
    code, out, _ = judge(capsys, tmp_path / "log", profile_file)
    result = json.loads(out)
    assert result["rows"] == 3_000
    assert len(result["features"]) == 7
    assert [f["name"] for f in result["features"] if f["drifted"]] == ["online_order"]


def test_gauges_go_to_a_textfile(tmp_path, capsys, profile_file):
    live = fraud_features(5_000, seed=6)
    live["distance_from_home"] *= 4
    write_log(tmp_path / "log", live)
    monitor(
        capsys,
        "fraud",
        "--log",
        str(tmp_path / "log"),
        "--reference-data",
        str(profile_file),
        "--no-report",
        "--textfile",
        str(tmp_path / "metrics" / "riskserve_monitor.prom"),
    )
    text = (tmp_path / "metrics" / "riskserve_monitor.prom").read_text()
    line = next(
        x
        for x in text.splitlines()
        if x.startswith("riskserve_feature_psi{")
        and 'feature="distance_from_home"' in x
    )
    assert 'model="fraud"' in line and 'version="1"' in line
    assert float(line.split()[-1]) > 0.2
    assert (
        'riskserve_feature_drifted{feature="distance_from_home"'
        in text.replace('model="fraud",version="1",', "")
        or "riskserve_feature_drifted{" in text
    )
    assert "riskserve_monitor_drifted_columns" in text


def test_a_bad_threshold_setting_exits_2_naming_it(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("RISKSERVE_MONITOR_P_VALUE_THRESHOLD", "5")
    code, _, err = monitor(capsys, "fraud", "--log", str(tmp_path))
    assert code == 2 and "RISKSERVE_MONITOR_P_VALUE_THRESHOLD" in err


def test_bad_times_and_a_missing_log_exit_2(tmp_path, capsys, profile_file):
    code, _, err = monitor(capsys, "fraud", "--log", str(tmp_path / "nowhere"))
    assert code == 2 and "no such log folder" in err
    (tmp_path / "log").mkdir()
    code, _, err = monitor(
        capsys, "fraud", "--log", str(tmp_path / "log"), "--since", "yesterday-ish"
    )
    assert code == 2 and "is not a time" in err


def test_late_labels_give_realised_metrics_and_count_unknown_ids(
    tmp_path, capsys, profile_file
):
    frame = fraud_features(6_000, seed=12)
    score = fraud_score(frame)
    ids = write_log(tmp_path / "log", frame, scores=score)
    rng = np.random.default_rng(0)
    labels = pd.DataFrame(
        {
            "request_id": ids + ["never-served-1", "never-served-2"],
            "label": list((rng.random(len(ids)) < score).astype(int)) + [0, 1],
            "time": "2026-01-01T00:00:00Z",
        }
    )
    labels.to_parquet(tmp_path / "labels.parquet")
    code, out, _ = monitor(
        capsys,
        "labels",
        "fraud",
        "--log",
        str(tmp_path / "log"),
        "--reference-data",
        str(profile_file),
        "--labels",
        str(tmp_path / "labels.parquet"),
        "--json",
    )
    result = json.loads(out)
    assert result["unknown_keys"] == 2 and result["matched"] == 6_000
    (version,) = result["versions"]
    assert {"pr_auc", "roc_auc", "precision", "recall"} <= set(version)
    # The log spans the last three hours: on a Monday before 03:00 UTC two ISO weeks.
    weeks = version["weeks"]
    assert 1 <= len(weeks) <= 2 and sum(w["rows"] for w in weeks) == 6_000, weeks
    # Labels drawn from the score itself: ROC-AUC well above chance. The stand-in
    # profile's holdout PR-AUC (0.9) is far above what this score reaches: degraded.
    assert version["roc_auc"] > 0.7
    assert code == 3 and version["degraded"]


def test_labels_drawn_at_random_are_a_degradation(tmp_path, capsys, profile_file):
    frame = fraud_features(4_000, seed=13)
    ids = write_log(tmp_path / "log", frame)
    rng = np.random.default_rng(1)
    pd.DataFrame(
        {"request_id": ids, "label": (rng.random(len(ids)) < 0.3).astype(int)}
    ).to_csv(tmp_path / "labels.csv", index=False)
    code, out, _ = monitor(
        capsys,
        "labels",
        "fraud",
        "--log",
        str(tmp_path / "log"),
        "--reference-data",
        str(profile_file),
        "--labels",
        str(tmp_path / "labels.csv"),
    )
    assert code == 3
    assert "DEGRADED" in out and "roc_auc" in out


def test_monitoring_imports_no_training_tensorflow_or_server():
    code = (
        "import sys, riskserve.monitoring.cli, riskserve.monitoring.labels, riskserve.monitoring.report, "
        "riskserve.monitoring.gauges, riskserve.monitoring.retrain; "
        "bad = [m for m in sys.modules if m.split('.')[0] == 'tensorflow' or "
        "(m.startswith('riskserve.') and m.split('.')[1] not in ('monitoring', 'model'))]; "
        "print(bad); sys.exit(bool(bad))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO,
        capture_output=True,
        text=True,
        env={**os.environ},
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_credit_categories_and_missing_values_are_judged_by_type(tmp_path, capsys):
    from riskserve.model.reference_profile import build_profile

    from tests.monitoring.log_helpers import credit_features, credit_score_stand_in

    reference = credit_features(30_000, seed=0)
    build_profile(
        "credit",
        "1",
        reference,
        outputs={"default_probability": credit_score_stand_in(reference)},
        categorical={"merchant_group"},
    ).save(tmp_path / "profile.json")
    live = credit_features(8_000, seed=1)
    live.loc[live.index[:4_000], "merchant_group"] = "Intangible products"
    live.loc[live.index[:5], "merchant_group"] = "Spaceships"
    write_log(
        tmp_path / "log", live, model="credit", scores=credit_score_stand_in(live)
    )
    code, out, err = judge(
        capsys, tmp_path / "log", tmp_path / "profile.json", model="credit"
    )
    result = json.loads(out)
    by_name = {f["name"]: f for f in result["features"]}
    assert code == 3, err
    merchant = by_name["merchant_group"]
    assert merchant["test"] == "chi2" and merchant["drifted"]
    assert merchant["unseen_categories"] == {"Spaceships": 5}
    status = by_name["account_status"]
    assert status["kind"] == "categorical"  # status codes 1-4: frequencies
    assert 0.3 < status["missing_rate"] < 0.8 and not status["drifted"]
    assert by_name["max_paid_inv_0_24m"]["test"] == "ks"
    assert result["drifted"] == ["merchant_group"]
