"""CSV loading: validation against a spec, errors that name file, column and line,
and inferring a spec from any CSV."""

import pandas as pd
import pytest
from riskserve.model.data import (
    DataError,
    binary_target,
    infer_spec,
    load_training_data,
    read_csv,
)
from riskserve.model.specs import FRAUD
from riskserve.model.synthetic import fraud_transactions

pytestmark = pytest.mark.inprocess


def write(tmp_path, frame: pd.DataFrame, name="data.csv"):
    path = tmp_path / name
    frame.to_csv(path, index=False)
    return path


def test_a_valid_fraud_csv_loads(tmp_path):
    path = write(tmp_path, fraud_transactions(100, seed=1))
    features, target = load_training_data(path, FRAUD)
    assert list(features.columns) == FRAUD.feature_names
    assert set(target.unique()) <= {0, 1}
    assert len(features) == 100


def test_missing_spec_column_names_file_and_column(tmp_path):
    path = write(tmp_path, fraud_transactions(50).drop(columns=["used_chip"]))
    with pytest.raises(
        DataError, match=r"data\.csv: column 'used_chip' of the fraud spec is missing"
    ):
        load_training_data(path, FRAUD)


def test_non_numeric_value_names_the_line(tmp_path):
    frame = fraud_transactions(50).astype({"distance_from_home": object})
    frame.loc[6, "distance_from_home"] = "far away"
    path = write(tmp_path, frame)
    with pytest.raises(DataError) as error:
        load_training_data(path, FRAUD)
    message = str(error.value)
    assert (
        "'distance_from_home'" in message
        and "line 8" in message
        and "far away" in message
    )


def test_empty_file(tmp_path):
    path = tmp_path / "empty.csv"
    path.write_text("")
    with pytest.raises(DataError, match="empty.csv: the file is empty"):
        read_csv(path)


def test_three_target_classes(tmp_path):
    frame = fraud_transactions(60)
    frame.loc[0, "fraud"] = 2
    with pytest.raises(DataError, match=r"exactly two classes, found 3"):
        load_training_data(write(tmp_path, frame), FRAUD)


def test_missing_target_value_names_the_line(tmp_path):
    frame = fraud_transactions(60).astype({"fraud": "float"})
    frame.loc[10, "fraud"] = None
    with pytest.raises(
        DataError, match=r"column 'fraud' \(the target\) is empty at line 12"
    ):
        load_training_data(write(tmp_path, frame), FRAUD)


def test_infer_spec_from_another_schema():
    frame = pd.DataFrame(
        {
            "applicant": [f"id-{i}" for i in range(30)],
            "income": [1000.0 + i for i in range(30)],
            "owns_home": [i % 2 for i in range(30)],
            "employment": ["salaried", "self-employed", None] * 10,
            "region_code": [1, 2, 3] * 10,
            "defaulted": ["yes", "no"] * 15,
        }
    )
    spec = infer_spec(frame, "custom", "defaulted", categorical=["region_code"])
    kinds = {f.name: f.kind for f in spec.features}
    assert kinds == {
        "income": "numeric",
        "owns_home": "binary",
        "employment": "categorical",
        "region_code": "categorical",
    }  # the unique-per-row id column is left out
    assert spec.feature("employment").categories == ("salaried", "self-employed")


def test_infer_spec_rejects_unknown_override():
    frame = pd.DataFrame({"x": [1, 2], "y": [0, 1]})
    with pytest.raises(DataError, match="'nope'"):
        infer_spec(frame, "m", "y", categorical=["nope"])


def test_the_event_class_is_named_or_follows_the_rule():
    frame = pd.DataFrame({"status": ["good", "bad", "good", "bad", "good"]})
    # Without --positive: the larger of the two values ("good"), which is why a
    # good/bad target needs --positive bad.
    assert binary_target(frame, "status", "f.csv").tolist() == [1, 0, 1, 0, 1]
    named = binary_target(frame, "status", "f.csv", positive="bad")
    assert named.tolist() == [0, 1, 0, 1, 0]
    flags = pd.DataFrame({"fraud": [True, False, False]})
    assert binary_target(flags, "fraud", "f.csv").tolist() == [1, 0, 0]


def test_a_positive_class_that_is_not_in_the_target_is_one_clear_error():
    frame = pd.DataFrame({"status": ["good", "bad", "good"]})
    with pytest.raises(DataError) as error:
        binary_target(frame, "status", "f.csv", positive="default")
    assert str(error.value) == (
        "f.csv: the positive class 'default' is not a value of column 'status' "
        "(the target); its values are 'bad', 'good'"
    )
