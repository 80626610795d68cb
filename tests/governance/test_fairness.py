"""Fair-lending figures per group: approval rates, the adverse impact ratio against
the most favoured group, the four-fifths flag, default rates among the approved."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from riskserve.model.fairness import (
    FairnessError,
    fairness_table,
    groups_of,
)

pytestmark = pytest.mark.inprocess


def test_air_against_the_most_favoured_group_and_the_four_fifths_flag() -> None:
    # a: 80 of 100 approved; b: 60 of 100 (AIR 0.75, flagged); c: 70 of 100 (0.875).
    groups = pd.Series(["a"] * 100 + ["b"] * 100 + ["c"] * 100)
    approved = np.r_[np.arange(100) < 80, np.arange(100) < 60, np.arange(100) < 70]
    labels = np.zeros(300)
    labels[[0, 1, 100]] = 1  # two defaults among a's approved, one among b's
    probability = np.full(300, 0.1)
    result = fairness_table("sex", groups, approved, probability, labels)
    table = result.table.set_index("group")
    assert result.reference_group == "a"
    assert table.loc["b", "air"] == pytest.approx(0.75)
    assert table.loc["c", "air"] == pytest.approx(0.875)
    assert result.flagged == ["b"]
    assert table.loc["a", "approved_default_rate"] == pytest.approx(2 / 80)
    assert table.loc["b", "approved_default_rate"] == pytest.approx(1 / 60)
    assert list(table.index) == ["a", "c", "b"]  # most favoured first


def test_a_small_group_is_shown_not_judged_nor_the_reference() -> None:
    # "tiny" approves everyone but has 5 rows: it must not become the reference.
    groups = pd.Series(["big"] * 100 + ["tiny"] * 5 + ["other"] * 100)
    approved = np.r_[np.arange(100) < 50, np.ones(5, bool), np.arange(100) < 45]
    result = fairness_table("age", groups, approved, np.zeros(205), None)
    table = result.table.set_index("group")
    assert result.reference_group == "big"
    assert not table.loc["tiny", "flagged"]
    assert result.flagged == []
    assert "approved_default_rate" not in table  # no labels, no default rates


def test_no_group_large_enough_is_an_error() -> None:
    with pytest.raises(FairnessError, match="no group has 30 rows"):
        fairness_table("x", pd.Series(["a", "b"] * 5), np.ones(10), np.zeros(10), None)


def test_numeric_attribute_in_bands_and_missing_values_a_group() -> None:
    ages = pd.Series([19, 24, 25, 40, 61, 62, 80, None])
    groups = groups_of(ages, [25, 62]).tolist()
    assert groups == [
        "< 25",
        "< 25",
        "25 to < 62",
        "25 to < 62",
        "25 to < 62",
        ">= 62",
        ">= 62",
        "(missing)",
    ]
    text = groups_of(pd.Series(["female", " male", None, ""])).tolist()
    assert text == ["female", "male", "(missing)", "(missing)"]
