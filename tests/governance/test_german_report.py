"""`riskserve report` end to end on real public credit data: German credit (UCI
Statlog, 1,000 applicants) trained with its protected attributes (sex, age) named and
dropped, the version's validation report with fair-lending figures per group, logged
with the version and hashed into its tags; then approved, and a changed report takes
the approval back. The evaluation rows carry hostile text: the page stays inert."""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from riskserve.governance.status import (
    REPORT_ARTIFACT_TAG,
    REPORT_SHA_TAG,
    status_of,
    trail_of,
)

from bench.real_credit import DATA

pytestmark = pytest.mark.training

REPO = Path(__file__).resolve().parents[2]
SEX, AGE = "personal_status_and_sex", "age_in_years"
HOSTILE = '<script>alert("x")</script><img src=x onerror=alert(1)>'
SECTIONS = [
    "1. Purpose and owner",
    "2. Data",
    "3. Candidates",
    "4. Discrimination",
    "5. Calibration",
    "6. Strategy table and cut-off",
    "7. Stability",
    "8. Reason codes",
    "9. Fairness",
    "10. Limitations and approval status",
]


def riskserve(args: list[str], env: dict[str, str], cwd: Path) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "riskserve", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    folder = tmp_path_factory.mktemp("german-report")
    frame = DATA["german"].frame()
    frame.to_csv(folder / "german.csv", index=False)
    # The evaluation rows: the same applicants, 40 of them with a hostile group name.
    hostile = frame.copy()
    hostile.loc[hostile.index[:40], SEX] = HOSTILE
    hostile.to_csv(folder / "evaluation.csv", index=False)
    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": f"sqlite:///{folder}/mlflow.db",
        "RISKSERVE_TRAINING_PROTECTED_COLUMNS": f'["{AGE}"]',
    }
    out = subprocess.run(
        [sys.executable, "-m", "riskserve.training", "credit", "--data"]
        + ["german.csv", "--target", "creditability", "--positive", "bad"]
        + ["--protected", SEX, "--drop", SEX, AGE],
        env=env,
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert "registered credit v1" in out.stdout
    from mlflow import MlflowClient

    return folder, env, MlflowClient(env["MLFLOW_TRACKING_URI"])


def test_report_approval_and_a_changed_report(trained) -> None:
    folder, env, client = trained
    version = client.get_model_version("credit", "1")
    assert status_of(version.tags) == "draft"
    assert version.tags["protected_columns"] == f"{AGE},{SEX}"
    assert SEX not in version.tags["features"] and AGE not in version.tags["features"]

    out = riskserve(
        ["report", "credit/1", "--data", "evaluation.csv", "--protected", SEX]
        + ["--out", "report.html", "--owner", "Credit risk <team>", "--by", "val"],
        env,
        folder,
    )
    assert "credit v1: report report.html" in out and "status validated" in out
    body = (folder / "report.html").read_bytes()
    page = body.decode()
    # Every section, with figures recomputed from the logged holdout.
    assert [s for s in SECTIONS if f"<h2>{s}</h2>" in page] == SECTIONS
    assert re.search(r"gini</th><td>0\.\d{4} \[0\.\d{4}, 0\.\d{4}\]", page)
    assert "female : divorced/separated/married" in page
    assert "Credit risk &lt;team&gt;" in page
    # Inert: no script, no handler, no external resource; the hostile group escaped.
    assert "<script" not in page and "<img src=x" not in page
    assert html_escaped(HOSTILE) in page
    assert not re.search(r"""(src|href)=["']?(https?:|//)""", page)
    assert page.count('src="data:image/png;base64,') >= 4

    # Logged with the version, its sha256 in the tags and the trail.
    tags = client.get_model_version("credit", "1").tags
    sha = hashlib.sha256(body).hexdigest()
    assert tags[REPORT_SHA_TAG] == sha and status_of(tags) == "validated"
    logged = client.download_artifacts(
        version.run_id, tags[REPORT_ARTIFACT_TAG], str(folder / "logged")
    )
    assert Path(logged).read_bytes() == body
    assert [(e.status, e.report_sha256) for e in trail_of(tags)] == [("validated", sha)]

    riskserve(
        ["approve", "credit", "1", "--by", "head of model risk", "--note", "ok"],
        env,
        folder,
    )
    tags = client.get_model_version("credit", "1").tags
    assert status_of(tags) == "approved"
    assert trail_of(tags)[-1].report_sha256 == sha

    # Age in bands: a new report, so the approval (of the old one) is taken back.
    out = riskserve(
        ["report", "credit/1", "--data", "german.csv", "--protected", AGE]
        + ["--bands", "25,40,62", "--out", "age.html"],
        env,
        folder,
    )
    assert "status validated" in out
    age_page = (folder / "age.html").read_text()
    for group in ("&lt; 25", "25 to &lt; 40", "40 to &lt; 62", "&gt;= 62"):
        assert f"<td>{group}</td>" in age_page
    tags = client.get_model_version("credit", "1").tags
    assert status_of(tags) == "validated"
    assert [e.status for e in trail_of(tags)] == ["validated", "approved", "validated"]


def html_escaped(text: str) -> str:
    import html

    return html.escape(text, quote=True)


def write_live_log(root: Path, frame, outputs: dict, version: str) -> None:
    """The predictor's records of `frame` (ten applicants a request) as its own
    writer lays them out (serving/inference_log.py)."""
    import time

    import numpy as np
    from riskserve.serving.inference_log import InferenceLog, InferenceRecord
    from riskserve.serving.settings import StorageSettings
    from riskserve.serving.tensors import InputTensor, OutputTensor

    writer = InferenceLog(str(root), StorageSettings(), batch_size=1000)
    records = []
    for start in range(0, len(frame), 10):
        part = frame.iloc[start : start + 10]
        inputs = [
            InputTensor(
                name,
                "BYTES" if part[name].dtype == object else "FP32",
                (len(part), 1),
                part[name]
                .to_numpy(object if part[name].dtype == object else np.float32)
                .reshape(-1, 1),
            )
            for name in part.columns
        ]
        outs = [
            OutputTensor(
                name, "FP32", np.asarray(values[start : start + 10], np.float32)
            )
            for name, values in outputs.items()
            if name in ("default_probability", "credit_score")
        ]
        records.append(
            InferenceRecord(
                time.time(), f"r{start}", "credit", version, inputs, outs, 0.001, "rest"
            )
        )
    writer._write(records)  # the writer's own file format, without its thread


def test_live_stability_from_the_inference_log(trained) -> None:
    """`riskserve report --log`: PSI of the features (training against live) and of
    the score (holdout against live) from the version's logged traffic, other
    versions' rows and unreadable lines left out and said so."""
    import mlflow
    from riskserve.governance.scoring import graph_spec, score

    folder, env, client = trained
    mlflow.set_tracking_uri(env["MLFLOW_TRACKING_URI"])
    local = Path(
        mlflow.artifacts.download_artifacts(
            "models:/credit/1", dst_path=str(folder / "onnx")
        )
    )
    (graph,) = local.rglob("*.onnx")
    spec = graph_spec(graph, "credit")
    live = DATA["german"].frame()[spec.feature_names].copy()
    live["credit_amount"] = live["credit_amount"] * 4  # every loan four times larger
    outputs = score(graph, spec, live, "live")
    write_live_log(folder / "log", live, outputs, "1")
    write_live_log(folder / "log", live.head(30), outputs, "7")
    (day,) = (folder / "log" / "credit").iterdir()
    with (day / "torn.jsonl").open("w") as torn:
        torn.write('{"timestamp": "2026-01-01T00:00:00+00:00", "model_na\n')

    out = riskserve(
        ["report", "credit/1", "--log", "log", "--out", "live.html"], env, folder
    )
    assert "status validated" in out
    page = (folder / "live.html").read_text()
    section = page.split("<h2>7. Stability</h2>")[1].split("<h2>8.")[0]
    assert "<th>psi live</th>" in section and "<th>live reading</th>" in section
    rows = {
        m.group(1): m.group(2)
        for m in re.finditer(r"<tr><td>(\w+)</td>(.*?)</tr>", section)
    }
    assert rows["credit_amount"].endswith("<td>shifted</td>")
    assert rows["duration_in_month"].endswith("<td>stable</td>")
    assert f"{len(live) // 10} predictor records of v1" in section
    assert "1 unreadable lines skipped" in section
    assert "other versions' rows left out (v7: 30)" in section
    assert "Live traffic" in section and f": {len(live)} rows from " in section
    assert re.search(r"Score PSI, holdout against live traffic: \d\.\d{4}", section)
    assert "stability against live traffic not assessed" not in page

    # Without --log the report says what it could not assess.
    riskserve(["report", "credit/1", "--out", "nolog.html"], env, folder)
    assert "No inference log was given (--log)" in (folder / "nolog.html").read_text()
