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
