"""Forms, batch scoring and the start-up settings, against real predictor processes."""

from __future__ import annotations

import csv
import subprocess
import sys
from html import unescape

import numpy as np
import pytest
from riskserve.app.batch import BatchError, score_csv
from riskserve.app.fields import fields_from_metadata
from riskserve.app.settings import AppSettings
from riskserve.app.ui import ModelEndpoint, score_form
from riskserve.localplatform.processes import free_port
from riskserve.model.specs import FRAUD

from tests.app.app_processes import APP_API_KEY, FRAUD_REVISION, REPO_ROOT, app_env
from tests.fixtures.contract_models import expected_fraud

pytestmark = pytest.mark.e2e

HEADER = ",".join(FRAUD.feature_names)


def _endpoint(kind: str, url: str, **extra: object) -> ModelEndpoint:
    settings = AppSettings(
        fraud_url=url, credit_url=url, api_key=APP_API_KEY, connect_timeout=1, **extra
    )
    return ModelEndpoint.connect(kind, settings)


def test_bad_rows_are_reported_by_line_and_good_rows_scored(
    fraud_predictor, tmp_path
) -> None:
    source = tmp_path / "transactions.csv"
    source.write_text(
        f"{HEADER},note\n"
        "8.5,0.6,0.9,1,1,1,0,ordinary\n"
        "160,45,6.2,0,0,0,1,fraud-like\n"
        "far,1,1,1,1,1,0,not a number\n"
        "\n"
        "1,1,1,1,1,2,0,binary out of range\n"
        "1,2,3,0,1,0,1,fine again\n"
        "-4,2,3,0,1,0,1,negative distance\n"
    )
    endpoint = _endpoint("fraud", fraud_predictor.url)
    progress: list[tuple[int, int]] = []
    outcome = score_csv(
        endpoint.client,
        endpoint.fields,
        source,
        tmp_path / "out",
        batch_size=2,
        max_rows=100,
        progress=lambda done, total: progress.append((done, total)),
    )
    assert [(bad.line, bad.message) for bad in outcome.bad_rows] == [
        (4, "distance_from_home 'far' is not a number"),
        (6, "used_pin_number must be 0 or 1, got '2'"),
        (8, "distance_from_home -4 is below 0"),
    ]
    assert outcome.rows == 6 and outcome.scored == 3
    assert progress == [(0, 3), (2, 3), (3, 3)]
    good = np.array(
        [
            [8.5, 0.6, 0.9, 1, 1, 1, 0],
            [160, 45, 6.2, 0, 0, 0, 1],
            [1, 2, 3, 0, 1, 0, 1],
        ],
        dtype=np.float32,
    )
    probability, flagged = expected_fraud(good)
    np.testing.assert_allclose(outcome.scores, probability, atol=1e-5)
    assert outcome.decisions[True] == int(flagged.sum())
    assert outcome.served_by == {("3", FRAUD_REVISION): 3}

    with open(outcome.output_path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [row["note"] for row in rows] == [
        "ordinary",
        "fraud-like",
        "not a number",
        "binary out of range",
        "fine again",
        "negative distance",
    ]
    scored = [row for row in rows if not row["error"]]
    np.testing.assert_allclose(
        [float(row["fraud_probability"]) for row in scored], probability, rtol=1e-5
    )
    assert {row["revision"] for row in scored} == {FRAUD_REVISION}
    assert rows[2]["fraud_probability"] == "" and "not a number" in rows[2]["error"]


def test_a_batch_the_server_rejects_is_retried_row_by_row(
    fraud_predictor, tmp_path
) -> None:
    # 70 rows in one request is above the predictor's limit of 64: a 400 for the batch.
    source = tmp_path / "many.csv"
    source.write_text(HEADER + "\n" + "1,2,3,0,1,0,1\n" * 70)
    endpoint = _endpoint("fraud", fraud_predictor.url)
    outcome = score_csv(
        endpoint.client, endpoint.fields, source, tmp_path, 100, max_rows=1000
    )
    assert outcome.scored == 70 and not outcome.bad_rows


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("", "The CSV is empty"),
        (HEADER + "\n", "no data rows"),
        ("distance_from_home,used_chip\n1,1\n", "The CSV has no column"),
        (HEADER + "\n" + "1,2,3,0,1,0,1\n" * 3, "more than 2 rows"),
    ],
)
def test_a_file_that_cannot_be_scored_says_why(
    fraud_predictor, tmp_path, content, message
) -> None:
    source = tmp_path / "bad.csv"
    source.write_text(content)
    endpoint = _endpoint("fraud", fraud_predictor.url)
    with pytest.raises(BatchError, match=message):
        score_csv(endpoint.client, endpoint.fields, source, tmp_path, 10, max_rows=2)


def test_credit_form_fields_come_from_metadata_with_spec_choices(
    credit_predictor,
) -> None:
    endpoint = _endpoint("credit", credit_predictor.url)
    metadata = endpoint.client.metadata()
    assert [f.name for f in endpoint.fields] == metadata.input_names
    group = next(f for f in endpoint.fields if f.name == "merchant_group")
    assert group.datatype == "BYTES" and "Electronics" in group.categories
    status = next(f for f in endpoint.fields if f.name == "account_status")
    assert status.nullable and status.parse("missing") is None
    with pytest.raises(ValueError, match="not one of"):
        group.parse("Groceries")
    assert fields_from_metadata(metadata, None)[0].kind == "numeric"


def test_a_credit_form_with_missing_values_gets_score_band_and_decision(
    credit_predictor,
) -> None:
    endpoint = _endpoint("credit", credit_predictor.url)
    values = [
        "Entertainment" if f.name == "merchant_group" else None for f in endpoint.fields
    ]
    values = [
        False if f.kind == "binary" else v
        for f, v in zip(endpoint.fields, values, strict=True)
    ]
    html = score_form(endpoint, values)
    assert "Credit score" in html and "band" in html
    assert "APPROVED" in html or "DECLINED" in html
    assert 'class="rs-version">7<' in html


def test_form_errors_are_sentences_and_the_app_recovers(fraud_predictor) -> None:
    down = _endpoint("fraud", f"http://127.0.0.1:{free_port()}")
    assert "cannot be reached" in down.status  # the form falls back to the spec
    assert [f.name for f in down.fields] == FRAUD.feature_names
    values = [8.5, 0.6, 0.9, True, True, True, False]
    html = score_form(down, values)
    assert "rs-error" in html and "cannot be reached" in html
    assert "Traceback" not in html

    endpoint = _endpoint("fraud", fraud_predictor.url)
    invalid = unescape(score_form(endpoint, [-1, 0.6, "lots", True, True, True, False]))
    assert "Please correct" in invalid and "is below 0" in invalid
    assert "'lots' is not a number" in invalid
    answer = score_form(endpoint, values)
    assert "Fraud probability" in answer and FRAUD_REVISION in answer


def _run_app(settings: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "riskserve.app", "--port", str(free_port())],
        env=app_env(settings),
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        (
            {"RISKSERVE_APP_FRAUD_URL": "http://fraud-predictor"},
            "set RISKSERVE_APP_GATEWAY_URL, or RISKSERVE_APP_CREDIT_URL",
        ),
        (
            {"RISKSERVE_APP_GATEWAY_URL": "localhost:8000"},
            "RISKSERVE_APP_GATEWAY_URL must start with http://",
        ),
        (
            {"RISKSERVE_APP_GATEWAY_URL": "http://x", "RISKSERVE_APP_BATCH_SIZE": "0"},
            "RISKSERVE_APP_BATCH_SIZE:",
        ),
    ],
)
def test_a_missing_or_bad_setting_fails_at_start_with_one_line(
    settings, message
) -> None:
    result = _run_app(settings)
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("riskserve app: error: ")
    assert message in lines[0]


def test_model_urls_from_the_gateway_or_per_model() -> None:
    settings = AppSettings(
        gateway_url="http://127.0.0.1:8000/", credit_url="http://credit-predictor"
    )
    assert settings.model_url("fraud") == "http://127.0.0.1:8000/v2/models/fraud"
    assert settings.model_url("credit") == "http://credit-predictor/v2/models/credit"
    assert settings.traffic_url == "http://127.0.0.1:8000/platform/traffic"
    assert AppSettings(fraud_url="http://f", credit_url="http://c").traffic_url is None
