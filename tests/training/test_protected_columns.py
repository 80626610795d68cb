"""Nothing protected becomes a model input: a training job whose data would make a
column named protected (--protected, or RISKSERVE_TRAINING_PROTECTED_COLUMNS) one of
its features refuses, in one line, with exit 2, before anything is trained."""

from __future__ import annotations

import pytest
from riskserve.training.__main__ import main
from riskserve.training.protected import protected_inputs

from bench.real_credit import DATA

pytestmark = pytest.mark.inprocess

ARGS = ["credit", "--target", "creditability", "--positive", "bad"]


@pytest.fixture(scope="module")
def german(tmp_path_factory):
    path = tmp_path_factory.mktemp("german") / "german.csv"
    DATA["german"].frame().to_csv(path, index=False)
    return path


def test_a_protected_input_is_refused(german, capsys, monkeypatch) -> None:
    # An unreachable registry: had the job gone past the check, it would fail there
    # (exit 1), not with the refusal's exit 2.
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:9")
    code = main([*ARGS, "--data", str(german), "--protected", "age_in_years"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.splitlines() == [
        "riskserve train credit: error: column 'age_in_years' is protected and may "
        "not be a model input (drop it with --drop age_in_years)"
    ]


def test_the_settings_list_protects_too_case_insensitively(
    german, capsys, monkeypatch
) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:9")
    monkeypatch.setenv(
        "RISKSERVE_TRAINING_PROTECTED_COLUMNS", '["Personal_Status_And_Sex"]'
    )
    code = main([*ARGS, "--data", str(german)])
    err = capsys.readouterr().err
    assert code == 2 and "'personal_status_and_sex' is protected" in err
    # Dropped, it is no input: the job goes on (and stops at the dead registry).
    code = main([*ARGS, "--data", str(german), "--drop", "personal_status_and_sex"])
    err = capsys.readouterr().err
    assert code == 1 and "is protected" not in err and "unreachable" in err


def test_protected_inputs_in_input_order() -> None:
    names = ["income", "Age", "sex_code", "sex"]
    assert protected_inputs(["sex", " age ", ""], names) == ["Age", "sex"]
    assert protected_inputs([], names) == []
