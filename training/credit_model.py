"""The credit model: a scikit-learn pipeline with calibrated probabilities, to ONNX.

Imputation, a signed log for heavy-tailed amounts, scaling and one-hot encoding all sit
in the pipeline, so the exported graph takes raw features (missing values as NaN for
numbers, "" for strings) like the native model does.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx
import pandas as pd
from onnx import TensorProto
from skl2onnx import convert_sklearn, update_registered_converter
from skl2onnx.algebra.onnx_ops import (
    OnnxAbs,
    OnnxAdd,
    OnnxCast,
    OnnxIsNaN,
    OnnxLog,
    OnnxMul,
    OnnxSign,
)
from skl2onnx.common.data_types import FloatTensorType, StringTensorType
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.calibration import CalibratedClassifierCV
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from model.specs import ModelSpec

ONNX_OPSET = 17


class SignedLog(BaseEstimator, TransformerMixin):
    """sign(x) * log(1 + |x|): tames heavy tails (amounts, counts) and keeps NaN."""

    def fit(self, X, y=None):
        return self

    def transform(self, X):
        X = np.asarray(X, dtype=np.float64)
        return np.sign(X) * np.log1p(np.abs(X))


def _same_shape(operator):
    operator.outputs[0].type = FloatTensorType(operator.inputs[0].type.shape)


def _signed_log_converter(scope, operator, container):
    opv = container.target_opset
    x = operator.inputs[0]
    one = np.array([1.0], dtype=np.float32)
    logged = OnnxLog(
        OnnxAdd(OnnxAbs(x, op_version=opv), one, op_version=opv), op_version=opv
    )
    result = OnnxMul(
        OnnxSign(x, op_version=opv),
        logged,
        op_version=opv,
        output_names=operator.outputs[:1],
    )
    result.add_to(scope, container)


class MissingFlags(BaseEstimator, TransformerMixin):
    """1.0 where a value is missing (NaN), else 0.0, for every column."""

    def fit(self, X, y=None):
        return self

    def transform(self, X):
        return np.isnan(np.asarray(X, dtype=np.float64)).astype(np.float64)


def _missing_flags_converter(scope, operator, container):
    opv = container.target_opset
    flags = OnnxCast(
        OnnxIsNaN(operator.inputs[0], op_version=opv),
        to=TensorProto.FLOAT,
        op_version=opv,
        output_names=operator.outputs[:1],
    )
    flags.add_to(scope, container)


update_registered_converter(
    SignedLog, "RiskserveSignedLog", _same_shape, _signed_log_converter
)
update_registered_converter(
    MissingFlags, "RiskserveMissingFlags", _same_shape, _missing_flags_converter
)


@dataclass
class CreditPipeline:
    spec: ModelSpec
    pipeline: Pipeline

    def native_input(self, features: pd.DataFrame) -> pd.DataFrame:
        """Features exactly as the ONNX graph sees them: FP32 numbers, strings."""
        frame = features[self.spec.feature_names].copy()
        for name in self.spec.numeric_features:
            frame[name] = frame[name].astype(np.float32).astype(np.float64)
        return frame

    def predict_proba(self, features: pd.DataFrame) -> np.ndarray:
        return self.pipeline.predict_proba(self.native_input(features))[:, 1]

    def onnx_feeds(self, features: pd.DataFrame) -> dict[str, np.ndarray]:
        feeds = {}
        for name in self.spec.numeric_features:
            feeds[name] = features[name].to_numpy(np.float32).reshape(-1, 1)
        for name in self.spec.categorical_features:
            feeds[name] = features[name].astype(str).to_numpy(object).reshape(-1, 1)
        return feeds

    def to_onnx(self) -> tuple[onnx.ModelProto, str]:
        initial_types = [
            (
                f.name,
                StringTensorType([None, 1])
                if f.kind == "categorical"
                else FloatTensorType([None, 1]),
            )
            for f in self.spec.features
        ]
        proto = convert_sklearn(
            self.pipeline,
            initial_types=initial_types,
            target_opset={"": ONNX_OPSET, "ai.onnx.ml": 3},
            options={id(self.pipeline): {"zipmap": False}},
        )
        return proto, "probabilities"


def build_pipeline(spec: ModelSpec, seed: int) -> Pipeline:
    numeric = spec.numeric_features
    categorical = spec.categorical_features
    transformers = [
        (
            "numeric",
            Pipeline(
                [
                    ("signed_log", SignedLog()),
                    ("impute", SimpleImputer(strategy="median")),
                    ("scale", StandardScaler()),
                ]
            ),
            numeric,
        ),
        # Missing values are normal input and often informative (a customer with no
        # account history): the model sees which ones were missing.
        ("missing", MissingFlags(), numeric),
    ]
    if categorical:
        transformers.append(
            (
                "categorical",
                OneHotEncoder(handle_unknown="ignore", sparse_output=False),
                categorical,
            )
        )
    classifier = CalibratedClassifierCV(
        LogisticRegression(C=0.5, max_iter=2000, random_state=seed),
        method="sigmoid",
        cv=3,
    )
    return Pipeline(
        [
            ("features", ColumnTransformer(transformers, sparse_threshold=0.0)),
            ("classifier", classifier),
        ]
    )


def train_pipeline(
    spec: ModelSpec, train_x: pd.DataFrame, train_y: pd.Series, seed: int
) -> CreditPipeline:
    model = CreditPipeline(spec=spec, pipeline=build_pipeline(spec, seed))
    model.pipeline.fit(model.native_input(train_x), train_y.to_numpy())
    return model
