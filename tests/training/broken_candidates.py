"""Candidates that fail to fit, for the competition's failure tests (registered by the
test into riskserve.training.candidates.REGISTRY, as a new candidate would be)."""

from __future__ import annotations

from riskserve.training.candidates.logreg import LogisticCandidate


class SingularCandidate(LogisticCandidate):
    name = "singular"

    def fit(self, train_x, train_y, valid_x, valid_y, params) -> None:
        raise ValueError("the design matrix is singular")
