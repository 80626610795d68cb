"""The fraud job on data shaped like real card fraud (0.17% positives, 30 heavy-tailed
anonymised features, a time counter and an amount, probabilities pressed against 0
and 1), with the default options a new user runs: it registers a model, and the
registered graph answers as the native model did."""

from __future__ import annotations

import re

import numpy as np
import onnxruntime as ort
import pytest
from riskserve.model.synthetic import card_fraud_pca

from tests.training.conftest import run_job
from tests.training.test_jobs import download_onnx

pytestmark = pytest.mark.e2e

ROWS = 40_000


@pytest.fixture(scope="module")
def realistic_job(mlflow_server, client, tmp_path_factory):
    folder = tmp_path_factory.mktemp("realistic-fraud")
    csv = folder / "card_fraud.csv"
    frame = card_fraud_pca(ROWS, seed=7)
    frame.to_csv(csv, index=False)
    job = run_job(
        ["fraud", "--data", str(csv), "--target", "Class", "--model-name", "cardpca"],
        mlflow_server,
        timeout=900,
    )
    return job, frame, client


def test_the_fraud_job_registers_a_model_with_default_options(realistic_job):
    job, frame, client = realistic_job
    assert job.code == 0, f"{job.stdout[-4000:]}\n{job.stderr[-3000:]}"
    assert frame["Class"].mean() <= 0.002
    assert re.search(r"registered cardpca v1 \(aliases: challenger\)", job.stdout)
    # the winner was ranked by CV on the same folds for every candidate
    assert re.search(r"ranked on the \d CV folds? every candidate finished", job.stdout)
    version = client.get_model_version_by_alias("cardpca", "challenger")
    metrics = client.get_run(version.run_id).data.metrics
    assert metrics["parity_max_abs_diff"] <= 1e-5
    assert metrics["pr_auc"] > 0.5  # holdout, about 68 frauds in 6,000 rows


def test_the_registered_graph_reaches_the_tails_and_keeps_parity(
    realistic_job, tmp_path
):
    job, frame, client = realistic_job
    assert job.code == 0
    proto = download_onnx(client, "cardpca", "challenger", tmp_path)
    session = ort.InferenceSession(proto.SerializeToString())
    rows = frame.drop(columns="Class")
    feeds = {c: rows[c].to_numpy(np.float32).reshape(-1, 1) for c in rows.columns}
    (p,) = session.run(["fraud_probability"], feeds)
    # what made calibration lose parity before: probabilities at the float32 edge
    assert p.min() < 1e-4 and p.max() > 0.99
    parity = re.search(r"parity: max \|onnx - native\| = ([0-9.e+-]+)", job.stdout)
    assert parity and float(parity.group(1)) <= 1e-5
