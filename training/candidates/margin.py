"""The log-odds (margin) of a converted classifier, exposed as a tensor of its graph.

Calibration works on the margin, never on the probability: on real fraud data the
probabilities sit within 1e-7 of 0 and 1, where a float32 probability has no room left
(one float32 step below 1.0 is 6e-8), so `logit(p)` of the graph's p and of the native
p differ by whole units and a calibration that maps them back into (0, 1) turns that
into differences of 1e-3. The margin itself is a sum of leaf values or a dot product,
the same in float32 and float64 to about 1e-6.

scikit-learn's converters end binary classifiers in one ai.onnx.ml node with a
LOGISTIC post-transform (TreeEnsembleClassifier for LightGBM, LinearClassifier for
logistic regression). `add_ml_margin` adds the regressor twin of that node on the same
input: the same trees or coefficients of the positive class, no post-transform, so its
output is the margin whose sigmoid is the classifier's probability.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx
from onnx import helper

MARGIN = "margin"
_ML = "ai.onnx.ml"
_TREE_ATTRIBUTES = {
    "nodes_falsenodeids",
    "nodes_featureids",
    "nodes_hitrates",
    "nodes_missing_value_tracks_true",
    "nodes_modes",
    "nodes_nodeids",
    "nodes_treeids",
    "nodes_truenodeids",
    "nodes_values",
}


class MarginError(RuntimeError):
    """The graph has no classifier node whose margin can be exposed."""


def _attributes(node: onnx.NodeProto) -> dict[str, Any]:
    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def _classifier(graph: onnx.GraphProto) -> onnx.NodeProto:
    found = [
        n
        for n in graph.node
        if n.domain == _ML
        and n.op_type in ("TreeEnsembleClassifier", "LinearClassifier")
    ]
    if len(found) != 1:
        raise MarginError(
            f"expected one tree-ensemble or linear classifier node, found {len(found)}"
        )
    node = found[0]
    transform = _attributes(node).get("post_transform", b"NONE")
    if transform != b"LOGISTIC":
        raise MarginError(
            f"{node.op_type} has post_transform {transform!r}, not LOGISTIC: its "
            "scores are not log-odds"
        )
    return node


def _tree_margin(node: onnx.NodeProto, out: str) -> onnx.NodeProto:
    attrs = _attributes(node)
    labels = attrs.get("classlabels_int64s") or attrs.get("classlabels_strings")
    ids = list(attrs["class_ids"])
    if labels is None or len(labels) != 2 or set(ids) != {0}:
        raise MarginError(
            "the tree ensemble is not a binary classifier with one score per leaf"
        )
    base = attrs.get("base_values")
    # base_values only when the classifier has them; the tree attributes as they are.
    extra: dict[str, Any] = {"base_values": list(base)} if base else {}
    extra |= {k: v for k, v in attrs.items() if k in _TREE_ATTRIBUTES}
    return helper.make_node(
        "TreeEnsembleRegressor",
        [node.input[0]],
        [out],
        domain=_ML,
        n_targets=1,
        aggregate_function="SUM",
        post_transform="NONE",
        target_ids=ids,
        target_nodeids=list(attrs["class_nodeids"]),
        target_treeids=list(attrs["class_treeids"]),
        target_weights=list(attrs["class_weights"]),
        **extra,
    )


def _linear_margin(node: onnx.NodeProto, out: str) -> onnx.NodeProto:
    attrs = _attributes(node)
    intercepts = list(attrs["intercepts"])
    coefficients = np.asarray(attrs["coefficients"], np.float32)
    if len(intercepts) != 2:
        raise MarginError("the linear classifier is not binary")
    per_class = coefficients.reshape(2, -1)
    return helper.make_node(
        "LinearRegressor",
        [node.input[0]],
        [out],
        domain=_ML,
        coefficients=per_class[1].tolist(),  # the positive class's row
        intercepts=[intercepts[1]],
        targets=1,
        post_transform="NONE",
    )


def add_ml_margin(proto: onnx.ModelProto, out: str = MARGIN) -> str:
    """Adds the margin ([N, 1], float) of the graph's classifier node as `out`."""
    node = _classifier(proto.graph)
    make = _tree_margin if node.op_type == "TreeEnsembleClassifier" else _linear_margin
    proto.graph.node.append(make(node, out))
    return out


def sigmoid(margin: np.ndarray) -> np.ndarray:
    """1 / (1 + exp(-margin)) in float64, without overflow warnings."""
    margin = np.asarray(margin, np.float64)
    return np.exp(-np.logaddexp(0.0, -margin))
