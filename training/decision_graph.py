"""Appending the decision outputs of the ONNX contract to a converted classifier graph.

The converters (tf2onnx, skl2onnx) give a probability tensor. The contract wants named
1-D outputs and the decision itself in the graph: `is_fraud` at the threshold, or the
credit score (points to double the odds) and `approved` at the cut-off. Putting the
decision in the graph means every v2 server running the file gives the same answer.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import onnx
from onnx import TensorProto, helper, numpy_helper
from riskserve.model.specs import (
    APPROVED,
    CREDIT_SCORE,
    DEFAULT_PROBABILITY,
    FRAUD_PROBABILITY,
    IS_FRAUD,
)

# Keeps ln((1-p)/p) finite at p = 0 or 1 without moving any realistic score.
PROBABILITY_EPS = 1e-7


@dataclass(frozen=True)
class ScoreScaling:
    """score = offset + factor * ln(odds_good), odds_good = (1 - p) / p."""

    base_score: float = 600.0
    base_odds: float = 50.0
    pdo: float = 20.0

    @property
    def factor(self) -> float:
        return self.pdo / math.log(2.0)

    @property
    def offset(self) -> float:
        return self.base_score - self.factor * math.log(self.base_odds)

    def score(self, p: np.ndarray) -> np.ndarray:
        p = np.clip(
            np.asarray(p, dtype=np.float64), PROBABILITY_EPS, 1 - PROBABILITY_EPS
        )
        return self.offset + self.factor * np.log((1 - p) / p)


def _const(
    graph: onnx.GraphProto,
    name: str,
    value: npt.ArrayLike,
    dtype: npt.DTypeLike = np.float32,
) -> str:
    graph.initializer.append(
        numpy_helper.from_array(np.asarray(value, dtype=dtype), name)
    )
    return name


def _positive_probability(
    graph: onnx.GraphProto, source: str, column: int | None, out: str
) -> None:
    """`out` = the 1-D positive-class probability taken from `source` ([N,1] or [N,2])."""
    flat_shape = _const(graph, f"{out}__shape", [-1], np.int64)
    if column is None:
        graph.node.append(helper.make_node("Reshape", [source, flat_shape], [out]))
        return
    starts = _const(graph, f"{out}__start", [column], np.int64)
    ends = _const(graph, f"{out}__end", [column + 1], np.int64)
    axes = _const(graph, f"{out}__axes", [1], np.int64)
    graph.node.append(
        helper.make_node("Slice", [source, starts, ends, axes], [f"{out}__column"])
    )
    graph.node.append(
        helper.make_node("Reshape", [f"{out}__column", flat_shape], [out])
    )


def _set_outputs(model: onnx.ModelProto, outputs: list[tuple[str, int]]) -> None:
    del model.graph.output[:]
    for name, elem_type in outputs:
        model.graph.output.append(
            helper.make_tensor_value_info(name, elem_type, [None])
        )


def add_fraud_decision(
    model: onnx.ModelProto, probability: str, column: int | None, threshold: float
) -> onnx.ModelProto:
    graph = model.graph
    _positive_probability(graph, probability, column, FRAUD_PROBABILITY)
    threshold_name = _const(graph, "fraud_threshold", threshold)
    graph.node.append(
        helper.make_node(
            "GreaterOrEqual", [FRAUD_PROBABILITY, threshold_name], [IS_FRAUD]
        )
    )
    _set_outputs(
        model,
        [(FRAUD_PROBABILITY, TensorProto.FLOAT), (IS_FRAUD, TensorProto.BOOL)],
    )
    return model


def add_credit_decision(
    model: onnx.ModelProto,
    probability: str,
    column: int | None,
    scaling: ScoreScaling,
    cutoff: float,
) -> onnx.ModelProto:
    graph = model.graph
    _positive_probability(graph, probability, column, DEFAULT_PROBABILITY)
    low = _const(graph, "score_p_min", PROBABILITY_EPS)
    high = _const(graph, "score_p_max", 1 - PROBABILITY_EPS)
    one = _const(graph, "score_one", 1.0)
    factor = _const(graph, "score_factor", scaling.factor)
    offset = _const(graph, "score_offset", scaling.offset)
    cutoff_name = _const(graph, "approval_cutoff", cutoff)
    graph.node.extend(
        [
            helper.make_node("Clip", [DEFAULT_PROBABILITY, low, high], ["score_p"]),
            helper.make_node("Sub", [one, "score_p"], ["score_good"]),
            helper.make_node("Div", ["score_good", "score_p"], ["score_odds"]),
            helper.make_node("Log", ["score_odds"], ["score_log_odds"]),
            helper.make_node("Mul", ["score_log_odds", factor], ["score_points"]),
            helper.make_node("Add", ["score_points", offset], [CREDIT_SCORE]),
            helper.make_node("GreaterOrEqual", [CREDIT_SCORE, cutoff_name], [APPROVED]),
        ]
    )
    _set_outputs(
        model,
        [
            (DEFAULT_PROBABILITY, TensorProto.FLOAT),
            (CREDIT_SCORE, TensorProto.FLOAT),
            (APPROVED, TensorProto.BOOL),
        ],
    )
    return model


def set_metadata(model: onnx.ModelProto, props: dict[str, str]) -> onnx.ModelProto:
    existing = {p.key: p for p in model.metadata_props}
    for key, value in props.items():
        if key in existing:
            existing[key].value = str(value)
        else:
            entry = model.metadata_props.add()
            entry.key, entry.value = key, str(value)
    return model


def finalize(model: onnx.ModelProto) -> onnx.ModelProto:
    """Validate the edited graph; a broken graph must fail here, not in a predictor."""
    onnx.checker.check_model(model, full_check=True)
    return model
