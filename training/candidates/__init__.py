"""The candidates that compete in a training job, by kind and by name.

Values are `module:attribute` paths, imported only when a job uses that candidate (the
DNN imports TensorFlow, which costs seconds). A new candidate is one line here; its class
follows `riskserve.training.candidates.base.Candidate`.
"""

from __future__ import annotations

import importlib

from riskserve.model.specs import ModelSpec
from riskserve.training.candidates.base import (
    Candidate,
    CandidateError,
    CandidateFactory,
)

REGISTRY: dict[str, dict[str, str]] = {
    "fraud": {
        "dnn": "riskserve.training.candidates.dnn:DnnCandidate",
        "gbm": "riskserve.training.candidates.gbm:GbmCandidate",
        "logreg": "riskserve.training.candidates.logreg:LogisticCandidate",
    },
    "credit": {
        "logreg": "riskserve.training.candidates.logreg:UnweightedLogisticCandidate",
        "gbm": "riskserve.training.candidates.gbm:GbmCandidate",
        "scorecard": "riskserve.training.scorecard.candidate:ScorecardCandidate",
    },
}

__all__ = ["REGISTRY", "Candidate", "CandidateError", "create", "names", "unknown"]


def names(kind: str) -> list[str]:
    """The candidates of a kind, in the order they are tried."""
    return list(REGISTRY[kind])


def unknown(kind: str, requested: list[str]) -> list[str]:
    """Requested names that are not candidates of `kind`."""
    return [name for name in requested if name not in REGISTRY[kind]]


def create(kind: str, name: str, spec: ModelSpec, seed: int) -> Candidate:
    module_name, _, attribute = REGISTRY[kind][name].partition(":")
    factory: CandidateFactory = getattr(importlib.import_module(module_name), attribute)
    return factory(spec, seed)
