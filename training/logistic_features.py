"""The feature pipeline of the logistic candidates, with its ONNX converters.

Imputation, a signed log for heavy-tailed amounts, scaling and one-hot encoding all sit
in the pipeline, so the exported graph takes raw features (missing values as NaN for
numbers, "" for strings) like the native model does.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Self

import numpy as np
import numpy.typing as npt
from onnx import TensorProto
from riskserve.model.specs import ModelSpec
from skl2onnx import update_registered_converter
from skl2onnx.algebra.onnx_ops import (
    OnnxAbs,
    OnnxAdd,
    OnnxCast,
    OnnxIsNaN,
    OnnxLog,
    OnnxMul,
    OnnxSign,
)
from skl2onnx.common.data_types import FloatTensorType
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

if TYPE_CHECKING:
    from skl2onnx.common._container import ModelComponentContainer
    from skl2onnx.common._topology import Operator, Scope


class SignedLog(BaseEstimator, TransformerMixin):
    """sign(x) * log(1 + |x|): tames heavy tails (amounts, counts) and keeps NaN."""

    def fit(self, X: npt.ArrayLike, y: npt.ArrayLike | None = None) -> Self:
        return self

    def transform(self, X: npt.ArrayLike) -> np.ndarray:
        X = np.asarray(X, dtype=np.float64)
        return np.sign(X) * np.log1p(np.abs(X))


def _same_shape(operator: Operator) -> None:
    operator.outputs[0].type = FloatTensorType(operator.inputs[0].type.shape)


def _signed_log_converter(
    scope: Scope, operator: Operator, container: ModelComponentContainer
) -> None:
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

    def fit(self, X: npt.ArrayLike, y: npt.ArrayLike | None = None) -> Self:
        return self

    def transform(self, X: npt.ArrayLike) -> np.ndarray:
        return np.isnan(np.asarray(X, dtype=np.float64)).astype(np.float64)


def _missing_flags_converter(
    scope: Scope, operator: Operator, container: ModelComponentContainer
) -> None:
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


def feature_pipeline(spec: ModelSpec) -> ColumnTransformer:
    """The logistic candidates' features: signed log, median imputation and scaling of
    numbers, a missing-value flag per number, one-hot categories."""
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
    return ColumnTransformer(transformers, sparse_threshold=0.0)
