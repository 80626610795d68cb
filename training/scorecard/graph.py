"""The scorecard's bins and lookups as ONNX nodes, kept lean for single-row latency.

Every feature's bin becomes one flat index into the tables of all bins (feature after
feature), computed for all numeric features at once:

    X = Concat(numeric inputs)                 [N, Fn] float32
    bin = ReduceSum(Cast(X[:, :, None] >= T))  T: [Fn, S] float32 split points, NaN-padded
    flat = Where(IsNaN(X), missing_flat, bin + offset)
    categorical: CategoryMapper(string -> flat index), unknown -> the unknown bin
    bins = Concat(numeric flat, categorical flat)   [N, F] int64

Then any per-bin table (WoE logit parts, points, cost, reason strings) is one Gather.
NaN padding (not +inf) keeps an input of +inf inside its feature's bins: `x >= NaN`
is false for every x. The graph's feature order is numeric features first, then
categorical ones, both in spec order (`FlatBins.order`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import onnx
import pandas as pd
from onnx import TensorProto, helper, numpy_helper
from riskserve.training.scorecard.bins import FeatureBins

ML_DOMAIN = "ai.onnx.ml"


@dataclass(frozen=True)
class FlatBins:
    """All features' bins in one flat index, in the graph's feature order."""

    bins: tuple[FeatureBins, ...]

    @classmethod
    def of(cls, bins: list[FeatureBins]) -> FlatBins:
        numeric = [b for b in bins if not b.categorical]
        categorical = [b for b in bins if b.categorical]
        return cls(tuple(numeric + categorical))

    @property
    def order(self) -> list[str]:
        return [b.name for b in self.bins]

    @property
    def offsets(self) -> list[int]:
        return [int(v) for v in np.cumsum([0] + [b.n_bins for b in self.bins])[:-1]]

    @property
    def total(self) -> int:
        return sum(b.n_bins for b in self.bins)

    def table(
        self, per_feature: list[np.ndarray] | dict[str, np.ndarray]
    ) -> np.ndarray:
        """One flat table from a per-bin array per feature (by order or by name)."""
        if isinstance(per_feature, dict):
            per_feature = [per_feature[b.name] for b in self.bins]
        return np.concatenate([np.asarray(v) for v in per_feature])

    def flat_index(self, x: pd.DataFrame) -> np.ndarray:
        """[N, F] flat indices, as the graph computes them (numpy)."""
        return np.column_stack(
            [
                b.bin_index(x[b.name]) + offset
                for b, offset in zip(self.bins, self.offsets, strict=True)
            ]
        )


def _const(
    graph: onnx.GraphProto, name: str, value: npt.ArrayLike, dtype: npt.DTypeLike
) -> str:
    graph.initializer.append(numpy_helper.from_array(np.asarray(value, dtype), name))
    return name


def ensure_ml_opset(model: onnx.ModelProto) -> None:
    if not any(o.domain == ML_DOMAIN for o in model.opset_import):
        model.opset_import.append(helper.make_opsetid(ML_DOMAIN, 3))


def add_bin_index(graph: onnx.GraphProto, flat: FlatBins, prefix: str) -> str:
    """Nodes computing `<prefix>_bins` [N, F] int64 from the feature inputs."""
    numeric = [b for b in flat.bins if not b.categorical]
    offsets = flat.offsets
    pieces = []
    if numeric:
        width = max(len(b.splits) for b in numeric) or 1
        thresholds = np.full((len(numeric), width), np.nan, np.float32)
        for i, b in enumerate(numeric):
            thresholds[i, : len(b.splits)] = b.splits
        n = len(numeric)
        graph.node.extend(
            [
                helper.make_node(
                    "Concat", [b.name for b in numeric], [f"{prefix}_x"], axis=1
                ),
                helper.make_node(
                    "Unsqueeze",
                    [f"{prefix}_x", _const(graph, f"{prefix}_axis2", [2], np.int64)],
                    [f"{prefix}_x3"],
                ),
                helper.make_node(
                    "GreaterOrEqual",
                    [
                        f"{prefix}_x3",
                        _const(graph, f"{prefix}_splits", thresholds, np.float32),
                    ],
                    [f"{prefix}_above"],
                ),
                helper.make_node(
                    "Cast", [f"{prefix}_above"], [f"{prefix}_above_n"], to=7
                ),
                helper.make_node(
                    "ReduceSum",
                    [f"{prefix}_above_n", f"{prefix}_axis2"],
                    [f"{prefix}_value_bin"],
                    keepdims=0,
                ),
                helper.make_node(
                    "Add",
                    [
                        f"{prefix}_value_bin",
                        _const(graph, f"{prefix}_offsets", offsets[:n], np.int64),
                    ],
                    [f"{prefix}_value_flat"],
                ),
                helper.make_node("IsNaN", [f"{prefix}_x"], [f"{prefix}_nan"]),
                helper.make_node(
                    "Where",
                    [
                        f"{prefix}_nan",
                        _const(
                            graph,
                            f"{prefix}_missing_flat",
                            [
                                o + b.missing_bin
                                for o, b in zip(offsets[:n], numeric, strict=True)
                            ],
                            np.int64,
                        ),
                        f"{prefix}_value_flat",
                    ],
                    [f"{prefix}_numeric_bins"],
                ),
            ]
        )
        pieces.append(f"{prefix}_numeric_bins")
    for j, b in enumerate(flat.bins):
        if not b.categorical:
            continue
        offset = offsets[j]
        unknown = b.unknown_bin
        assert unknown is not None  # every categorical feature has an unknown bin
        strings = [c for group in b.groups for c in group] + [""]
        indices = [offset + i for i, group in enumerate(b.groups) for _ in group]
        indices.append(offset + b.missing_bin)
        graph.node.append(
            helper.make_node(
                "CategoryMapper",
                [b.name],
                [f"{prefix}_{b.name}_bin"],
                domain=ML_DOMAIN,
                cats_strings=strings,
                cats_int64s=indices,
                default_int64=offset + unknown,
            )
        )
        pieces.append(f"{prefix}_{b.name}_bin")
    out = f"{prefix}_bins"
    if len(pieces) == 1:
        graph.node.append(helper.make_node("Identity", pieces, [out]))
    else:
        graph.node.append(helper.make_node("Concat", pieces, [out], axis=1))
    return out


def add_lookup(
    graph: onnx.GraphProto,
    table: np.ndarray,
    index: str,
    out: str,
    dtype: npt.DTypeLike = np.float32,
) -> str:
    """`out` = table[index], elementwise (one Gather into a constant)."""
    if dtype is object:
        graph.initializer.append(
            helper.make_tensor(
                f"{out}_table",
                TensorProto.STRING,
                [len(table)],
                # onnx types vals as numbers, but a STRING tensor's are bytes.
                [str(v).encode() for v in table],  # type: ignore[misc]
            )
        )
    else:
        _const(graph, f"{out}_table", table, dtype)
    graph.node.append(
        helper.make_node("Gather", [f"{out}_table", index], [out], axis=0)
    )
    return out


def produces(graph: onnx.GraphProto, tensor: str) -> bool:
    return any(tensor in node.output for node in graph.node)
