"""Protected attributes never become model inputs (fair lending: ECOA / Regulation B
forbid deciding on age, sex, race, ...; the validation report tests the decisions
against them instead)."""

from __future__ import annotations


def protected_inputs(protected: list[str], feature_names: list[str]) -> list[str]:
    """The model inputs that are named protected (case-insensitively), in input order."""
    named = {p.strip().lower() for p in protected if p.strip()}
    return [name for name in feature_names if name.lower() in named]
