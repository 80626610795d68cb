"""Small ONNX models that follow the artifact contract (DESIGN.md), built with onnx.helper.

fraud: the 7 fraud features, FP32 [-1, 1] each -> fraud_probability FP32 [-1],
is_fraud BOOL [-1]. credit: 23 FP32 features (NaN imputed to 0) and merchant_group
BYTES -> default_probability, credit_score FP32 [-1], approved BOOL [-1]. A logistic
model with fixed weights, so tests can compute the expected answer with numpy.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from model.specs import CREDIT, FRAUD, MERCHANT_GROUPS

FRAUD_THRESHOLD = 0.5
FRAUD_WEIGHTS = np.array([0.02, 0.03, 0.9, -0.6, -0.8, -1.5, 1.2], dtype=np.float32)
FRAUD_BIAS = -2.0

CREDIT_CUTOFF = 0.3
CREDIT_NUMERIC = [f.name for f in CREDIT.features if f.tensor_datatype == "FP32"]
CREDIT_WEIGHTS = np.linspace(-0.05, 0.05, len(CREDIT_NUMERIC) + 1).astype(np.float32)
CREDIT_BIAS = -1.0
PDO, BASE_SCORE, BASE_ODDS = 20.0, 600.0, 50.0
FACTOR = PDO / math.log(2)
OFFSET = BASE_SCORE - FACTOR * math.log(BASE_ODDS)


def _model(nodes, inputs, outputs, initializers, name, metadata) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, name, inputs, outputs, initializers)
    model = helper.make_model(
        graph,
        opset_imports=[
            helper.make_opsetid("", 17),
            helper.make_opsetid("ai.onnx.ml", 3),
        ],
        producer_name="riskserve-tests",
    )
    model.ir_version = 8
    for key, value in metadata.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, str(value)
    onnx.checker.check_model(model)
    return model


def _column(name: str, elem_type: int = TensorProto.FLOAT):
    return helper.make_tensor_value_info(name, elem_type, [None, 1])


def _vector(name: str, elem_type: int):
    return helper.make_tensor_value_info(name, elem_type, [None])


def fraud_model(version: str | None = "3") -> onnx.ModelProto:
    names = FRAUD.feature_names
    init = [
        numpy_helper.from_array(FRAUD_WEIGHTS.reshape(-1, 1), "w"),
        numpy_helper.from_array(np.array([FRAUD_BIAS], np.float32), "b"),
        numpy_helper.from_array(np.array([FRAUD_THRESHOLD], np.float32), "threshold"),
        numpy_helper.from_array(np.array([1], np.int64), "axis1"),
    ]
    nodes = [
        helper.make_node("Concat", names, ["x"], axis=1),
        helper.make_node("MatMul", ["x", "w"], ["xw"]),
        helper.make_node("Add", ["xw", "b"], ["logit"]),
        helper.make_node("Sigmoid", ["logit"], ["p2d"]),
        helper.make_node("Squeeze", ["p2d", "axis1"], ["fraud_probability"]),
        helper.make_node(
            "GreaterOrEqual", ["fraud_probability", "threshold"], ["is_fraud"]
        ),
    ]
    metadata = {"threshold": FRAUD_THRESHOLD, "model_kind": "fraud"}
    if version is not None:
        metadata["model_version"] = version
    return _model(
        nodes,
        [_column(n) for n in names],
        [
            _vector("fraud_probability", TensorProto.FLOAT),
            _vector("is_fraud", TensorProto.BOOL),
        ],
        init,
        "fraud",
        metadata,
    )


def credit_model(version: str | None = "7") -> onnx.ModelProto:
    init = [
        numpy_helper.from_array(CREDIT_WEIGHTS.reshape(-1, 1), "w"),
        numpy_helper.from_array(np.array([CREDIT_BIAS], np.float32), "b"),
        numpy_helper.from_array(np.array([CREDIT_CUTOFF], np.float32), "cutoff"),
        numpy_helper.from_array(np.array([0.0], np.float32), "zero"),
        numpy_helper.from_array(np.array([1.0], np.float32), "one"),
        numpy_helper.from_array(np.array([FACTOR], np.float32), "factor"),
        numpy_helper.from_array(np.array([OFFSET], np.float32), "offset"),
        numpy_helper.from_array(np.array([1], np.int64), "axis1"),
    ]
    nodes = [
        helper.make_node("Concat", CREDIT_NUMERIC, ["raw"], axis=1),
        helper.make_node("IsNaN", ["raw"], ["missing"]),
        helper.make_node("Where", ["missing", "zero", "raw"], ["numeric"]),
        helper.make_node(
            "CategoryMapper",
            ["merchant_group"],
            ["group_index"],
            domain="ai.onnx.ml",
            cats_strings=list(MERCHANT_GROUPS),
            cats_int64s=list(range(len(MERCHANT_GROUPS))),
            default_int64=-1,
        ),
        helper.make_node("Cast", ["group_index"], ["group"], to=TensorProto.FLOAT),
        helper.make_node("Concat", ["numeric", "group"], ["x"], axis=1),
        helper.make_node("MatMul", ["x", "w"], ["xw"]),
        helper.make_node("Add", ["xw", "b"], ["logit"]),
        helper.make_node("Sigmoid", ["logit"], ["p2d"]),
        helper.make_node("Squeeze", ["p2d", "axis1"], ["default_probability"]),
        helper.make_node("Sub", ["one", "default_probability"], ["good"]),
        helper.make_node("Div", ["good", "default_probability"], ["odds"]),
        helper.make_node("Log", ["odds"], ["log_odds"]),
        helper.make_node("Mul", ["log_odds", "factor"], ["scaled"]),
        helper.make_node("Add", ["scaled", "offset"], ["credit_score"]),
        helper.make_node("Less", ["default_probability", "cutoff"], ["approved"]),
    ]
    inputs = [_column(n) for n in CREDIT_NUMERIC]
    inputs.append(_column("merchant_group", TensorProto.STRING))
    metadata = {"cutoff": CREDIT_CUTOFF, "pdo": PDO, "base_score": BASE_SCORE}
    if version is not None:
        metadata["model_version"] = version
    return _model(
        nodes,
        inputs,
        [
            _vector("default_probability", TensorProto.FLOAT),
            _vector("credit_score", TensorProto.FLOAT),
            _vector("approved", TensorProto.BOOL),
        ],
        init,
        "credit",
        metadata,
    )


def scorecard_credit_model(rows: int = 20_000, seed: int = 5):
    """A real scorecard fitted on synthetic credit data (a few seconds), exported as a
    credit job exports a scorecard winner: decision, reason codes (K = 4) and points
    per feature, with the reason table in its metadata. Returns (model, scaling)."""
    from model.specs import CREDIT
    from model.synthetic import generate
    from training.candidates.scorecard import BINS_TENSOR, ScorecardCandidate
    from training.decision_graph import (
        ScoreScaling,
        add_credit_decision,
        finalize,
        set_metadata,
    )
    from training.reason_codes import add_reason_codes, credit_reasons

    frame = generate("credit", rows, seed)
    scorecard = ScorecardCandidate(CREDIT, seed)
    scorecard.fit(
        frame[CREDIT.feature_names],
        frame[CREDIT.target].astype(int),
        None,
        None,
        scorecard.default_params(rows),
    )
    scaling = ScoreScaling()
    proto, probability, column = scorecard.to_onnx()
    proto = add_credit_decision(proto, probability, column, scaling, 560.0)
    reasons = credit_reasons(scorecard, True, scaling.factor, None, 4)
    proto = add_reason_codes(proto, reasons.table, 4, True, BINS_TENSOR)
    metadata = {
        "model_version": "9",
        "model_kind": "credit",
        "cutoff": "560.0",
        "base_score": "600.0",
        "base_odds": "50.0",
        "pdo": "20.0",
        **reasons.table.metadata(4),
    }
    return finalize(set_metadata(proto, metadata)), scaling


def write_onnx(
    model: onnx.ModelProto, folder: Path, filename: str = "model.onnx"
) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / filename
    onnx.save(model, path)
    return path


def write_mlflow_folder(model: onnx.ModelProto, folder: Path) -> Path:
    """The layout KServe's storage initializer leaves for an MLflow ONNX model."""
    write_onnx(model, folder, "model.onnx")
    (folder / "MLmodel").write_text(
        "artifact_path: model\n"
        "flavors:\n"
        "  onnx:\n"
        "    data: model.onnx\n"
        "    onnx_version: 1.16.0\n"
        "    providers: [CPUExecutionProvider]\n"
        "  python_function:\n"
        "    data: model.onnx\n"
        "    loader_module: mlflow.onnx\n"
    )
    (folder / "requirements.txt").write_text("onnxruntime\n")
    return folder


# -- the expected answers, computed with numpy ---------------------------------------
def expected_fraud(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """features: [N, 7] in FRAUD order."""
    logit = features.astype(np.float32) @ FRAUD_WEIGHTS + np.float32(FRAUD_BIAS)
    probability = 1.0 / (1.0 + np.exp(-logit))
    return probability, probability >= FRAUD_THRESHOLD


def expected_credit(numeric: np.ndarray, groups: list[str]) -> tuple[np.ndarray, ...]:
    numeric = np.nan_to_num(numeric.astype(np.float32), nan=0.0)
    index = np.array(
        [MERCHANT_GROUPS.index(g) if g in MERCHANT_GROUPS else -1 for g in groups],
        np.float32,
    )
    x = np.concatenate([numeric, index[:, None]], axis=1)
    probability = 1.0 / (1.0 + np.exp(-(x @ CREDIT_WEIGHTS + np.float32(CREDIT_BIAS))))
    score = OFFSET + FACTOR * np.log((1 - probability) / probability)
    return probability, score, probability < CREDIT_CUTOFF
