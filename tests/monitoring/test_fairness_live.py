"""Fair lending on live decisions: the labels pass, given a protected attribute (in the
labels file, or a proxy file joined by id), gives per version and group the approval
rate, the adverse impact ratio, the default rate among the approved and calibration;
flags an AIR under 0.8 (exit 3), exports the gauges the alert reads, and refuses a
protected column the model takes as an input."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from riskserve.model.reference_profile import build_profile
from riskserve.monitoring.cli import main
from riskserve.serving.inference_log import InferenceLog, InferenceRecord
from riskserve.serving.settings import StorageSettings
from riskserve.serving.tensors import InputTensor, OutputTensor

from tests.monitoring.log_helpers import credit_features, credit_score_stand_in

pytestmark = pytest.mark.inprocess

ROWS = 4_000


@pytest.fixture(autouse=True)
def no_mlflow(monkeypatch):
    for name in ("MLFLOW_TRACKING_URI", "RISKSERVE_MONITOR_LOG_URI"):
        monkeypatch.delenv(name, raising=False)


def write_credit_log(root: Path, frame: pd.DataFrame, pd_: np.ndarray, cut: float):
    """The credit predictor's records (probability, score, approved), one request per
    applicant; the request ids."""
    writer = InferenceLog(str(root), StorageSettings(), batch_size=ROWS)
    start = time.time() - 3600
    records, ids = [], []
    for i, row in enumerate(frame.itertuples(index=False)):
        inputs = [
            InputTensor(
                name,
                "BYTES" if isinstance(value, str) else "FP32",
                (1, 1),
                np.array(
                    [[value]], dtype=object if isinstance(value, str) else np.float32
                ),
            )
            for name, value in zip(frame.columns, row, strict=True)
        ]
        p = np.array([pd_[i]], np.float32)
        outputs = [
            OutputTensor("default_probability", "FP32", p),
            OutputTensor(
                "credit_score", "FP32", 600 - 28.85 * np.log(50 * p / (1 - p))
            ),
            OutputTensor("approved", "BOOL", p < cut),
        ]
        ids.append(f"req-{i}")
        records.append(
            InferenceRecord(
                start + i * 0.5, ids[-1], "credit", "1", inputs, outputs, 0.001, "rest"
            )
        )
    writer._write(records)  # the writer's own file format, without its thread
    return ids


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """4,000 credit decisions logged, their stand-in PDs, and a profile of v1."""
    folder = tmp_path_factory.mktemp("fair")
    frame = credit_features(ROWS, seed=21)
    # The stand-in's PDs take a handful of values: spread them, so that the median
    # cut-off approves half the applicants.
    spread = np.exp(np.random.default_rng(5).normal(0.0, 0.7, ROWS))
    probability = np.clip(credit_score_stand_in(frame) * spread, 1e-4, 0.99).astype(
        np.float32
    )
    cut = float(np.median(probability))  # half the applicants approved
    ids = write_credit_log(folder / "log", frame, probability, cut)
    build_profile(
        "credit",
        "1",
        credit_features(5_000, seed=0),
        outputs={"default_probability": probability},
        metrics={"roc_auc": 0.6},
        categorical={"merchant_group"},
    ).save(folder / "profile.json")
    return folder, ids, probability, cut


def labels_with(served, group: np.ndarray) -> Path:
    folder, ids, probability, _ = served
    rng = np.random.default_rng(3)
    path = folder / f"labels-{rng.integers(1 << 30)}.csv"
    pd.DataFrame(
        {
            "request_id": ids,
            "label": (rng.random(len(ids)) < probability).astype(int),
            "applicant_sex": group,
        }
    ).to_csv(path, index=False)
    return path


def labels_pass(capsys, served, labels: Path, *extra: str):
    folder = served[0]
    code = main(
        [
            "labels",
            "credit",
            "--log",
            str(folder / "log"),
            "--reference-data",
            str(folder / "profile.json"),
            "--labels",
            str(labels),
            "--textfile",
            str(folder / "gauges.prom"),
            *extra,
        ]
    )
    out, err = capsys.readouterr()
    return code, out, err


def groups_by_risk(probability: np.ndarray, disadvantaged: bool) -> np.ndarray:
    """Groups `f` and `m`: at random, or `f` mostly among the riskier half (the
    decisions then truly favour `m`)."""
    rng = np.random.default_rng(9)
    risky = probability >= np.median(probability)
    share_f = np.where(risky, 0.75, 0.25) if disadvantaged else np.full(ROWS, 0.5)
    return np.where(rng.random(ROWS) < share_f, "f", "m")


def test_a_truly_disadvantaged_group_is_flagged_with_its_gauges(served, capsys):
    probability, cut = served[2], served[3]
    group = groups_by_risk(probability, disadvantaged=True)
    labels = labels_with(served, group)
    code, out, err = labels_pass(
        capsys, served, labels, "--protected", "applicant_sex", "--json"
    )
    assert code == 3, err
    result = json.loads(out)
    (version,) = result["fairness"]
    assert version["judged"] and version["reference_group"] == "m"
    rows = {r["group"]: r for r in version["groups"]}
    approved = probability < cut
    expected = {g: approved[group == g].mean() for g in ("f", "m")}
    assert rows["f"]["approval_rate"] == pytest.approx(expected["f"])
    assert rows["f"]["air"] == pytest.approx(expected["f"] / expected["m"])
    assert rows["f"]["air"] < 0.8 and rows["f"]["flagged"]
    assert rows["m"]["air"] == 1.0 and not rows["m"]["flagged"]
    assert version["flagged"] == ["f"]
    assert rows["f"]["rows"] + rows["m"]["rows"] == ROWS
    # Calibration per group: the mean predicted PD is the logged one.
    assert rows["f"]["mean_predicted_pd"] == pytest.approx(
        probability[group == "f"].mean(), rel=1e-5
    )
    assert rows["f"]["approved_default_rate"] is not None
    (line,) = result["adverse_impact"]
    assert line.startswith("v1: applicant_sex = f: AIR 0.") and "< 0.8" in line

    gauges = (served[0] / "gauges.prom").read_text()
    air_f = (
        'riskserve_fairness_adverse_impact_ratio{group="f",model="credit",'
        'protected="applicant_sex",version="1"}'
    )
    line = next(x for x in gauges.splitlines() if x.startswith(air_f))
    assert float(line.split()[-1]) == pytest.approx(rows["f"]["air"])
    assert (
        'riskserve_fairness_decisions{group="m",model="credit",'
        f'protected="applicant_sex",version="1"}} {float(rows["m"]["rows"])}'
    ) in gauges
    for name in (
        "riskserve_fairness_approval_rate",
        "riskserve_fairness_approved_default_rate",
        "riskserve_fairness_mean_predicted_default_probability",
        "riskserve_fairness_observed_default_rate",
    ):
        assert f'{name}{{group="f"' in gauges


def test_groups_treated_alike_are_not_flagged(served, capsys):
    group = groups_by_risk(served[2], disadvantaged=False)
    code, out, err = labels_pass(
        capsys, served, labels_with(served, group), "--protected", "applicant_sex"
    )
    assert "fairness of v1 by applicant_sex" in out, out + err
    assert "FLAGGED" not in out
    assert "no adverse impact ratio below 0.8" in out
    # Realised metrics may still call it degraded (the stand-in profile's figures):
    # the exit code is not about fairness here, the lines above are.
    air = [
        float(x.split("AIR ")[1].split(",")[0]) for x in out.splitlines() if "AIR " in x
    ]
    assert len(air) == 2 and min(air) > 0.9


def test_a_proxy_file_joined_by_id_gives_the_same_groups(served, tmp_path, capsys):
    ids, probability = served[1], served[2]
    group = groups_by_risk(probability, disadvantaged=True)
    labels = labels_with(served, group)
    pd.read_csv(labels).drop(columns=["applicant_sex"]).to_csv(
        tmp_path / "outcomes.csv", index=False
    )
    pd.DataFrame({"request_id": ids[::-1], "applicant_sex": group[::-1]}).to_parquet(
        tmp_path / "proxy.parquet"
    )
    code, out, _ = labels_pass(
        capsys,
        served,
        tmp_path / "outcomes.csv",
        "--protected",
        "applicant_sex",
        "--protected-file",
        str(tmp_path / "proxy.parquet"),
        "--protected-id",
        "request_id",
        "--json",
    )
    assert code == 3
    (version,) = json.loads(out)["fairness"]
    assert version["flagged"] == ["f"]
    rows = {r["group"]: r["rows"] for r in version["groups"]}
    assert rows == {"f": int((group == "f").sum()), "m": int((group == "m").sum())}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--protected", "has_paid"],
            "--protected has_paid is an input of the model",
        ),
        (["--protected", "nationality"], "the labels file has no column 'nationality'"),
        (["--protected-file", "x.csv"], "--protected-file needs --protected COL"),
        (
            ["--protected", "applicant_sex", "--protected-file", "x.csv"],
            "--protected-file and --protected-id go together",
        ),
        (
            ["--protected", "applicant_sex", "--bands", "25,old"],
            "--bands: comma-separated numbers",
        ),
    ],
)
def test_bad_fairness_requests_exit_2_naming_the_option(served, capsys, args, message):
    group = groups_by_risk(served[2], disadvantaged=False)
    code, _, err = labels_pass(capsys, served, labels_with(served, group), *args)
    assert code == 2
    last = err.strip().splitlines()[-1]  # after the pass's progress lines
    assert last.startswith("riskserve monitor: error: ") and message in last
