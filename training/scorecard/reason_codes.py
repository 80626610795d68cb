"""Adverse-action reason codes inside the credit graph.

`reason_codes` (BYTES [-1, K]): per row, the features that cost the applicant the most
points against the best attainable bin of that feature, worst first, each as
`feature: reason text` (the text is the feature spec's, with the applicant's bin in
words). A feature whose bin is the best attainable costs nothing and is not listed;
the row is padded with "" when fewer than K features cost points. A declined applicant
always gets at least one code: when no feature costs points (the cut-off sits above
the best attainable score, or a non-scorecard winner declines a row the scorecard rates
best everywhere), the first code is the feature ranked first (ties keep the graph's
feature order). An approved applicant may have codes too: they say what held the score
down, not why it was declined.

The best attainable bin is the best of a feature's value bins; a missing value or an
unseen category is compared with it like any other bin (and costs nothing when it is
better).

Exact or approximate: for a scorecard winner the points are the winner's own (its
calibration folded in), so the codes explain its score exactly, and `feature_points`
(FP32 [-1, F]) carries every feature's points (`credit_score = offset + their sum`).
For any other winner (gradient boosting, logistic) the codes are the scorecard's,
fitted on the same training split and scored beside the winner's PD: an approximation,
measured against the GBM's exact TreeSHAP attributions by `bench.credit_reasons`.

The graph is lean: one Gather of a cost table over the [N, F] bin index, one TopK, one
GatherElements, one Gather into a constant string table (no node per feature).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypedDict

import numpy as np
import onnx
import pandas as pd
from onnx import TensorProto, helper, numpy_helper
from riskserve.model.specs import APPROVED, REASON_CODES
from riskserve.training.scorecard.graph import (
    FlatBins,
    add_bin_index,
    add_lookup,
    ensure_ml_opset,
    produces,
)

if TYPE_CHECKING:
    from riskserve.training.competition.calibration import PlattCalibration
    from riskserve.training.scorecard.candidate import ScorecardCandidate

REASONS_OUTPUT = REASON_CODES
POINTS_OUTPUT = "feature_points"
DEFAULT_REASONS = 4
EXACT = "scorecard"
APPROXIMATE = "scorecard_approximation"
TAG_LIMIT = 5000  # MLflow's limit on a tag value


class ReasonRow(TypedDict):
    """One (feature, bin) of the reason table, as the ONNX metadata and tags carry it."""

    feature: str
    bin: str
    code: str
    points: float
    cost: float


@dataclass
class ReasonTable:
    """Points and reason codes of every (feature, bin), flat, in graph order."""

    flat: FlatBins
    points: list[np.ndarray]
    method: str

    @property
    def points_table(self) -> np.ndarray:
        return self.flat.table(self.points).astype(np.float32)

    @property
    def cost_table(self) -> np.ndarray:
        costs = []
        for b, pts in zip(self.flat.bins, self.points, strict=True):
            best = float(np.max(pts[: b.value_bins]))
            costs.append(np.maximum(best - np.asarray(pts, np.float64), 0.0))
        return self.flat.table(costs).astype(np.float32)

    @property
    def codes(self) -> list[str]:
        return [code for b in self.flat.bins for code in b.reasons()]

    def rows(self) -> list[ReasonRow]:
        costs = self.cost_table
        points = self.points_table
        out: list[ReasonRow] = []
        i = 0
        for b in self.flat.bins:
            for label, code in zip(b.labels(), b.reasons(), strict=True):
                out.append(
                    {
                        "feature": b.name,
                        "bin": label,
                        "code": code,
                        "points": round(float(points[i]), 4),
                        "cost": round(float(costs[i]), 4),
                    }
                )
                i += 1
        return out

    def metadata(self, k: int) -> dict[str, str]:
        """What goes in the ONNX metadata_props (and so the v2 metadata)."""
        return {
            "reason_codes_k": str(k),
            "reason_method": self.method,
            "reason_features": ",".join(self.flat.order),
            "reason_table": json.dumps(self.rows(), separators=(",", ":")),
        }

    def tags(self, k: int) -> dict[str, str]:
        """Model version tags: one `reason_table.<feature>` per feature (a tag value
        has a size limit), `bin => points (cost): code` per bin."""
        tags = {"reason_codes_k": str(k), "reason_method": self.method}
        by_feature: dict[str, list[str]] = {}
        for row in self.rows():
            by_feature.setdefault(row["feature"], []).append(
                f"{row['bin']} => {row['points']:g} ({row['cost']:g}): {row['code']}"
            )
        for feature, lines in by_feature.items():
            text = "\n".join(lines)
            if len(text) > TAG_LIMIT:
                text = text[: TAG_LIMIT - 30] + "\n... (full table in the ONNX)"
            tags[f"reason_table.{feature}"] = text
        return tags

    def native(self, x: pd.DataFrame, approved: np.ndarray, k: int) -> np.ndarray:
        """[N, K] reason codes computed with numpy: what the graph must return."""
        k = min(k, len(self.flat.bins))
        flat = self.flat.flat_index(x)
        cost = self.cost_table[flat]
        order = np.argsort(-cost, axis=1, kind="stable")[:, :k]
        chosen = np.take_along_axis(flat, order, axis=1)
        keep = np.take_along_axis(cost, order, axis=1) > 0
        keep[:, 0] |= ~np.asarray(approved, bool)
        codes = np.asarray(self.codes + [""], dtype=object)
        return np.where(keep, codes[chosen], "")

    def native_points(self, x: pd.DataFrame) -> np.ndarray:
        return self.points_table[self.flat.flat_index(x)]


def add_reason_codes(
    model: onnx.ModelProto,
    table: ReasonTable,
    k: int,
    with_points: bool,
    bins_tensor: str | None = None,
) -> onnx.ModelProto:
    """Append `reason_codes` (and `feature_points` when `with_points`) to a credit
    graph that already has its decision outputs (`approved`). `bins_tensor`: the
    winner's own [N, F] bin index when it is this scorecard; else the bins are
    computed here from the feature inputs."""
    graph = model.graph
    ensure_ml_opset(model)
    if bins_tensor is None or not produces(graph, bins_tensor):
        bins_tensor = add_bin_index(graph, table.flat, "reasons")
    k = min(k, len(table.flat.bins))
    total = table.flat.total
    first = np.zeros(k, bool)
    first[0] = True
    graph.initializer.extend(
        [
            numpy_helper.from_array(np.array([k], np.int64), "reasons_k"),
            numpy_helper.from_array(np.array(0.0, np.float32), "reasons_zero"),
            numpy_helper.from_array(first, "reasons_first_column"),
            numpy_helper.from_array(np.array([1], np.int64), "reasons_axis1"),
            numpy_helper.from_array(np.array(total, np.int64), "reasons_none"),
        ]
    )
    add_lookup(graph, table.cost_table, bins_tensor, "reasons_cost")
    graph.node.extend(
        [
            helper.make_node(
                "TopK",
                ["reasons_cost", "reasons_k"],
                ["reasons_top_cost", "reasons_top_column"],
                axis=1,
                largest=1,
                sorted=1,
            ),
            helper.make_node(
                "GatherElements",
                [bins_tensor, "reasons_top_column"],
                ["reasons_top_bin"],
                axis=1,
            ),
            helper.make_node(
                "Greater", ["reasons_top_cost", "reasons_zero"], ["reasons_costly"]
            ),
            helper.make_node("Not", [APPROVED], ["reasons_declined"]),
            helper.make_node(
                "Unsqueeze",
                ["reasons_declined", "reasons_axis1"],
                ["reasons_declined_2d"],
            ),
            helper.make_node(
                "And",
                ["reasons_declined_2d", "reasons_first_column"],
                ["reasons_must_explain"],
            ),
            helper.make_node(
                "Or", ["reasons_costly", "reasons_must_explain"], ["reasons_keep"]
            ),
            helper.make_node(
                "Where",
                ["reasons_keep", "reasons_top_bin", "reasons_none"],
                ["reasons_code_index"],
            ),
        ]
    )
    add_lookup(
        graph,
        np.asarray(table.codes + [""], dtype=object),
        "reasons_code_index",
        REASONS_OUTPUT,
        dtype=object,
    )
    graph.output.append(
        helper.make_tensor_value_info(REASONS_OUTPUT, TensorProto.STRING, [None, k])
    )
    if with_points:
        add_lookup(graph, table.points_table, bins_tensor, POINTS_OUTPUT)
        graph.output.append(
            helper.make_tensor_value_info(
                POINTS_OUTPUT, TensorProto.FLOAT, [None, len(table.flat.bins)]
            )
        )
    return model


@dataclass
class CreditReasons:
    """The reason codes a credit job adds, and the scorecard they come from."""

    table: ReasonTable
    scorecard: ScorecardCandidate
    k: int
    with_points: bool

    def check(self, x: pd.DataFrame, outputs: dict[str, np.ndarray]) -> int:
        """Rows whose graph reason codes (or points) differ from numpy's; 0 is parity."""
        expected = self.table.native(x, outputs[APPROVED], self.k)
        bad = (outputs[REASONS_OUTPUT].astype(str) != expected.astype(str)).any(axis=1)
        if self.with_points:
            points = self.table.native_points(x)
            bad |= np.abs(outputs[POINTS_OUTPUT] - points).max(axis=1) > 1e-4
        return int(bad.sum())


def credit_reasons(
    scorecard: ScorecardCandidate,
    winner_is_scorecard: bool,
    factor: float,
    calibration: PlattCalibration | None,
    k: int,
) -> CreditReasons:
    """Exact (the winner's own points, its calibration folded in) for a scorecard
    winner; the scorecard's points beside any other winner (an approximation)."""
    if winner_is_scorecard:
        slope = calibration.slope if calibration is not None else 1.0
        intercept = calibration.intercept if calibration is not None else 0.0
        points = scorecard.points(factor, slope, intercept)
        table = ReasonTable(scorecard.flat, points, EXACT)
    else:
        table = ReasonTable(scorecard.flat, scorecard.points(factor), APPROXIMATE)
    return CreditReasons(table, scorecard, k, with_points=winner_is_scorecard)
