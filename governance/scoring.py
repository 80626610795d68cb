"""Scoring rows with a version's own ONNX graph (the decisions a fairness test judges
are the graph's, exactly as served)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from riskserve.model.data import validate
from riskserve.model.specs import Feature, ModelSpec


def graph_spec(model_path: Path, name: str) -> ModelSpec:
    """The model's inputs as a spec: string tensors categorical, the rest numeric."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(model_path), providers=["CPUExecutionProvider"])
    features = tuple(
        Feature(i.name, "categorical" if i.type == "tensor(string)" else "numeric")
        for i in session.get_inputs()
    )
    return ModelSpec(name=name, target="", features=features)


def score(
    model_path: Path, spec: ModelSpec, frame: pd.DataFrame, source: str
) -> dict[str, np.ndarray]:
    """Every output of the graph on the frame's rows (DataError names a missing or
    unreadable column)."""
    import onnxruntime as ort

    typed = validate(frame, spec, source)
    feeds: dict[str, np.ndarray] = {}
    for feature in spec.features:
        column = typed[feature.name]
        feeds[feature.name] = (
            column.astype(str).to_numpy(object).reshape(-1, 1)
            if feature.kind == "categorical"
            else column.to_numpy(np.float32).reshape(-1, 1)
        )
    session = ort.InferenceSession(str(model_path), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(names, feeds), strict=True))
