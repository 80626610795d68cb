"""The fraud model: a Keras DNN with scaling inside the graph, exported with tf2onnx.

TensorFlow is imported here and only here (the training image is the only one that
ships it); importing this module costs several seconds.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeAlias

from riskserve.training.settings import quiet_tensorflow_logs

quiet_tensorflow_logs()  # before TensorFlow is imported, or it is too late

import numpy as np  # noqa: E402
import onnx  # noqa: E402
import pandas as pd  # noqa: E402
import tensorflow as tf  # noqa: E402
import tf2onnx  # noqa: E402
from riskserve.model.specs import ModelSpec  # noqa: E402
from riskserve.training.candidates.base import ONNX_OPSET  # noqa: E402
from riskserve.training.candidates.class_weights import positive_weight  # noqa: E402
from tensorflow import keras  # noqa: E402

if TYPE_CHECKING:
    from tensorflow._aliases import TensorCompatible

    # A network of this module: one [N, 1] column per feature in, one [N, 1] tensor out.
    Network: TypeAlias = keras.Model[TensorCompatible, tf.Tensor]


# Continuous, non-negative, heavy-tailed features are scaled on a log scale; the
# log1p sits in the graph, before Normalization, so raw values go in.
@dataclass
class FraudNetwork:
    spec: ModelSpec
    model: Network

    def predict_proba(self, features: pd.DataFrame) -> np.ndarray:
        inputs = [
            features[name].to_numpy(np.float32).reshape(-1, 1)
            for name in self.spec.feature_names
        ]
        return self.model(inputs, training=False).numpy().reshape(-1)

    def margin(self, features: pd.DataFrame) -> np.ndarray:
        """The logit before the final sigmoid, in float64."""
        logit: Network = keras.Model(
            self.model.inputs, self.model.get_layer("logit").output
        )
        inputs = [
            features[name].to_numpy(np.float32).reshape(-1, 1)
            for name in self.spec.feature_names
        ]
        return logit(inputs, training=False).numpy().reshape(-1).astype(np.float64)

    def to_onnx(self) -> tuple[onnx.ModelProto, str]:
        """The ONNX graph and the name of its [N, 1] probability output."""
        signature = [
            tf.TensorSpec([None, 1], tf.float32, name=name)
            for name in self.spec.feature_names
        ]
        model = self.model

        @tf.function(input_signature=signature)
        def serve(*columns: tf.Tensor) -> tf.Tensor:
            return model(list(columns), training=False)

        proto, _ = tf2onnx.convert.from_function(
            serve, input_signature=signature, opset=ONNX_OPSET
        )
        # Keras 3 keeps the Normalization statistics as captured tensors, not variables,
        # and tf2onnx turns those into extra graph inputs. Bake them in as initializers:
        # the contract's inputs are the features only.
        captured = {
            placeholder.name: value.numpy()
            for value, placeholder in serve.get_concrete_function().graph.captures
            if value.dtype != tf.resource
        }
        features = set(self.spec.feature_names)
        used = {name for node in proto.graph.node for name in node.input}
        kept = []
        for graph_input in proto.graph.input:
            if graph_input.name in features:
                kept.append(graph_input)
            elif graph_input.name in captured and graph_input.name in used:
                proto.graph.initializer.append(
                    onnx.numpy_helper.from_array(
                        captured[graph_input.name], graph_input.name
                    )
                )
            elif graph_input.name in used and graph_input.name not in {
                i.name for i in proto.graph.initializer
            }:
                raise RuntimeError(
                    f"tf2onnx left an unknown graph input {graph_input.name!r}"
                )
        del proto.graph.input[:]
        proto.graph.input.extend(kept)
        return proto, proto.graph.output[0].name


def _log_scale(x: tf.Tensor) -> tf.Tensor:
    # log(1 + x) spelled out: tf2onnx has no mapping for TensorFlow's Log1p op.
    return keras.ops.log(1.0 + keras.ops.maximum(x, 0.0))


def build_network(spec: ModelSpec, train: pd.DataFrame, seed: int) -> Network:
    keras.utils.set_random_seed(seed)
    inputs = [
        keras.Input(shape=(1,), name=name, dtype="float32")
        for name in spec.feature_names
    ]
    log_scaled = {
        f.name for f in spec.features if f.kind == "numeric" and (f.minimum or 0) >= 0
    }
    columns = [
        keras.layers.Lambda(_log_scale, name=f"log_{name}")(tensor)
        if name in log_scaled
        else tensor
        for name, tensor in zip(spec.feature_names, inputs, strict=True)
    ]
    joined = keras.layers.Concatenate(name="features")(columns)
    normalize = keras.layers.Normalization(name="scaling")
    adapt_data = np.column_stack(
        [
            np.log1p(np.maximum(train[n].to_numpy(np.float32), 0))
            if n in log_scaled
            else train[n].to_numpy(np.float32)
            for n in spec.feature_names
        ]
    )
    normalize.adapt(adapt_data)
    x = normalize(joined)
    x = keras.layers.Dense(64, activation="relu")(x)
    x = keras.layers.Dense(32, activation="relu")(x)
    # The logit is its own layer so that calibration can work on the margin.
    logit = keras.layers.Dense(1, name="logit")(x)
    output = keras.layers.Activation("sigmoid", name="probability")(logit)
    model: Network = keras.Model(inputs=inputs, outputs=output, name=f"{spec.name}_dnn")
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=2e-3),
        loss="binary_crossentropy",
        metrics=[keras.metrics.AUC(curve="PR", name="pr_auc")],
    )
    return model


class _EpochPrinter(keras.callbacks.Callback):
    def __init__(self, epochs: int, say: Callable[[str], None]) -> None:
        super().__init__()
        self.epochs, self.say = epochs, say

    def on_epoch_end(self, epoch: int, logs: Mapping[str, Any] | None = None) -> None:
        logs = logs or {}
        self.say(
            f"  epoch {epoch + 1}/{self.epochs}: loss {logs.get('loss', float('nan')):.4f}"
            f"  val_loss {logs.get('val_loss', float('nan')):.4f}"
            f"  val_pr_auc {logs.get('val_pr_auc', float('nan')):.4f}"
        )


def train_network(
    spec: ModelSpec,
    train_x: pd.DataFrame,
    train_y: pd.Series,
    valid_x: pd.DataFrame,
    valid_y: pd.Series,
    epochs: int,
    seed: int,
    say: Callable[[str], None],
    class_weighting: str = "sqrt",
) -> FraudNetwork:
    tf.config.threading.set_inter_op_parallelism_threads(2)
    model = build_network(spec, train_x, seed)
    weight = positive_weight(class_weighting, train_y.to_numpy())
    class_weight = None if weight == 1.0 else {0: 1.0, 1: weight}

    def as_inputs(frame: pd.DataFrame) -> dict[str, TensorCompatible]:
        return {
            n: frame[n].to_numpy(np.float32).reshape(-1, 1) for n in spec.feature_names
        }

    model.fit(
        as_inputs(train_x),
        train_y.to_numpy(np.float32),
        # Keras takes an (x, y) tuple, x a dict by input name; the stubs' type does not.
        validation_data=(as_inputs(valid_x), valid_y.to_numpy(np.float32)),  # type: ignore[arg-type]
        epochs=epochs,
        batch_size=512,
        class_weight=class_weight,
        verbose=0,
        callbacks=[
            keras.callbacks.EarlyStopping(
                monitor="val_loss", patience=3, restore_best_weights=True
            ),
            _EpochPrinter(epochs, say),
        ],
    )
    return FraudNetwork(spec=spec, model=model)
