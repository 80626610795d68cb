"""`riskserve monitor outcomes` end to end on a log folder of transformer records (the
experiment's record format: `experiment`, `arms`, `"shadow": true` on a shadow arm's
copy) and a labels CSV: the terminal table, the JSON, the HTML report, the gauges,
the exit codes, and one-line refusals."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from riskserve.monitoring.cli import main

from tests.monitoring.outcomes_helpers import (
    EXPERIMENT,
    EXPERIMENT_YAML,
    outcomes_arguments,
    write_experiment_log,
)

pytestmark = pytest.mark.inprocess


@pytest.fixture(autouse=True)
def no_environment(monkeypatch):
    for name in ("MLFLOW_TRACKING_URI", "RISKSERVE_MONITOR_LOG_URI"):
        monkeypatch.delenv(name, raising=False)


def run(capsys, *args: str) -> tuple[int, str, str]:
    code = main(["outcomes", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_outcomes_end_to_end_terminal_json_html_gauges(tmp_path, capsys):
    log = tmp_path / "log"
    labels = write_experiment_log(log, {"champion": 0.12, "challenger": 0.06})
    experiment = tmp_path / "experiment.yaml"
    experiment.write_text(EXPERIMENT_YAML)
    gauges = tmp_path / "gauges.prom"
    common = ["credit", "--log", str(log), "--experiment", str(experiment)]
    code, out, _ = run(
        capsys, *common, "--labels", str(labels), "--textfile", str(gauges)
    )
    assert code == 0, out
    assert "champion" in out and "challenger" in out and "shadow-gbm (shadow)" in out
    assert "BETTER on profit" in out
    report = Path(out.strip().splitlines()[-1].removeprefix("report: "))
    page = report.read_text()
    assert report.parent == log / "credit" / "reports"
    assert "<h1>Experiment credit-cutoff (credit)</h1>" in page
    assert page.count("data:image/png;base64,") == 2
    text = gauges.read_text()
    assert (
        'riskserve_experiment_verdict{arm="challenger",experiment="credit-cutoff",'
        'model="credit"} 1.0' in text
    )
    assert 'riskserve_experiment_approval_rate{arm="champion"' in text

    code, out, _ = run(
        capsys, *common, "--labels", str(labels), "--json", "--no-report"
    )
    assert code == 0
    result = json.loads(out)
    assert result["report"] is None
    arms = {a["arm"]: a for a in result["arms"]}
    assert set(arms) == {"champion", "challenger"}
    assert arms["champion"]["decisions"] == 3002  # 3000 + the two-row request
    assert arms["champion"]["share"] == pytest.approx(0.5)
    assert arms["champion"]["approval_rate"] == pytest.approx(2702 / 3002)
    assert arms["champion"]["bad_rate"] > arms["challenger"]["bad_rate"]
    (shadow,) = result["shadow_arms"]
    assert shadow["arm"] == "shadow-gbm" and shadow["decisions"] == 3000
    assert shadow["approval_rate"] == pytest.approx(0.8)
    assert result["labels"]["unknown_keys"] == 1
    assert result["labels"]["matched"] == 6002
    (comparison,) = result["comparisons"]
    assert comparison["bad_rate"]["difference"] < 0
    assert comparison["bad_rate"]["p_value"] < 0.05
    assert comparison["verdict"] == "better"


def test_a_worse_challenger_exits_3(tmp_path, capsys):
    log = tmp_path / "log"
    labels = write_experiment_log(log, {"champion": 0.05, "challenger": 0.15})
    code = main(outcomes_arguments(log, labels, "--judge", "bad_rate"))
    out, err = capsys.readouterr()
    assert code == 3
    assert "WORSE on bad_rate" in out
    assert "significantly worse than champion: challenger" in err


@pytest.mark.parametrize(
    "extra, message",
    [
        ([], "no gain_rate and no loss_given_default"),
        (["--gain-rate", "0.05", "--loss-given-default", "-1"], "loss_given_default"),
        (
            ["--gain-rate", "0.05", "--loss-given-default", "1", "--champion", "x"],
            "champion arm 'x' made no decision in the window",
        ),
        (
            ["--gain-rate", "0.05", "--loss-given-default", "1", "--key", "nope"],
            "no column 'nope'",
        ),
    ],
)
def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys, extra, message):
    log = tmp_path / "log"
    labels = write_experiment_log(log, {"champion": 0.1, "challenger": 0.1}, rows=50)
    args = ["credit", "--log", str(log), "--experiment", EXPERIMENT, "--labels"]
    args += [str(labels), "--no-report"]
    if "--champion" not in extra:
        extra = [*extra, "--champion", "champion"]
    code, _, err = run(capsys, *args, *extra)
    assert code == 2
    (error,) = [x for x in err.splitlines() if not x.startswith("[monitor]")]
    assert error.startswith("riskserve monitor: error: ") and message in error, err


def test_an_experiment_not_in_the_log_is_named(tmp_path, capsys):
    log = tmp_path / "log"
    labels = write_experiment_log(log, {"champion": 0.1, "challenger": 0.1}, rows=20)
    code, _, err = run(
        capsys,
        "credit",
        "--log",
        str(log),
        "--experiment",
        "other",
        "--champion",
        "champion",
        "--gain-rate",
        "0.05",
        "--loss-given-default",
        "1",
        "--labels",
        str(labels),
    )
    assert code == 2
    assert "no record of experiment 'other'" in err and "credit-cutoff" in err


def test_an_experiment_file_without_economics_is_refused_by_field(tmp_path, capsys):
    log = tmp_path / "log"
    labels = write_experiment_log(log, {"champion": 0.1, "challenger": 0.1}, rows=20)
    experiment = tmp_path / "experiment.yaml"
    experiment.write_text(
        EXPERIMENT_YAML.replace("loss_given_default: 0.8", "loss_given_default: x")
    )
    code, _, err = run(
        capsys,
        "credit",
        "--log",
        str(log),
        "--experiment",
        str(experiment),
        "--labels",
        str(labels),
    )
    assert code == 2
    assert "economics.loss_given_default" in err


def test_labels_join_on_a_raw_input(tmp_path, capsys):
    log = tmp_path / "log"
    by_request = pd.read_csv(
        write_experiment_log(log, {"champion": 0.1, "challenger": 0.1}, rows=200)
    )
    # The business key the transformer recorded: customer_id of row i of request R
    # is cust-R-i.
    parts = by_request["request_id"].str.partition(":")
    request, row = parts[0], parts[2]
    by_customer = by_request.assign(
        customer_id="cust-" + request + "-" + row.replace("", "0")
    ).drop(columns="request_id")
    labels = tmp_path / "by-customer.csv"
    by_customer.to_csv(labels, index=False)
    args = ["credit", "--log", str(log), "--experiment", EXPERIMENT, "--champion"]
    args += ["champion", "--gain-rate", "0.05", "--loss-given-default", "0.8"]
    args += ["--no-report", "--json", "--labels"]
    code, out, err = run(capsys, *args, str(labels), "--key", "customer_id")
    assert code in (0, 3), err
    result = json.loads(out)
    assert result["labels"]["matched"] == 402 and result["labels"]["unknown_keys"] == 1
    arms = {a["arm"]: a for a in result["arms"]}
    assert arms["champion"]["labelled"] == 201  # 200 and row 1 of the pair


def test_the_experiment_file_is_one_the_transformer_takes():
    """The monitor reads its keys of the transformer's own experiment file: the file
    these tests use passes the transformer's schema, economics included."""
    from riskserve.transformer.experiment_schema import parse_experiment_document

    document = parse_experiment_document(EXPERIMENT_YAML)
    assert document.economics is not None
    assert document.economics.loss_given_default == 0.8
