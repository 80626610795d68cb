"""The reference profile a training job stores with every version it registers: the
training rows' feature distributions and the holdout's score distribution and metrics
(the schema is model/reference_profile.py; monitoring reads it)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import onnx
import onnxruntime as ort
from riskserve.model.reference_profile import ARTIFACT_NAME, VERSION_TAG, build_profile
from riskserve.model.specs import SCORE_OUTPUTS

# The score outputs monitoring watches (decisions follow from them).

if TYPE_CHECKING:
    from riskserve.training.competition.compete import Splits
    from riskserve.training.dataset import JobConfig
    from riskserve.training.evaluation import Evaluation


def log_reference_profile(
    config: JobConfig,
    proto: onnx.ModelProto,
    splits: Splits,
    evaluation: Evaluation,
    decision: dict[str, float],
) -> dict[str, str]:
    """Build the profile, log it as an artifact of the active run, and return the
    version tag that names it."""
    import mlflow

    session = ort.InferenceSession(
        proto.SerializeToString(), providers=["CPUExecutionProvider"]
    )
    names = [o.name for o in session.get_outputs() if o.name in SCORE_OUTPUTS]
    scores = dict(zip(names, session.run(names, evaluation.holdout_feeds), strict=True))
    version = {p.key: p.value for p in proto.metadata_props}.get("model_version", "")
    profile = build_profile(
        config.name,
        version,
        splits.train_x,
        outputs={k: np.asarray(v, dtype=np.float32) for k, v in scores.items()},
        metrics=evaluation.metrics,
        decision=decision,
        source=f"training rows ({len(splits.train_x)}); scores on the holdout "
        f"({len(splits.test_x)})",
        categorical={
            c for c in splits.train_x.columns if splits.train_x[c].dtype == object
        },
    )
    path = evaluation.work_dir / ARTIFACT_NAME
    profile.save(path)
    mlflow.log_artifact(str(path))
    return {VERSION_TAG: ARTIFACT_NAME}
