"""The local platform's rules for an experiment in `spec.transformer`: the file's
path lies under the model roots (or is s3://), as `--feature_repo` does; anything
else is refused in one line naming the setting."""

from __future__ import annotations

from pathlib import Path

import pytest
from riskserve.localplatform.apply_check import check_documents
from riskserve.localplatform.spec_rules import load_yaml_documents

from tests.localplatform.test_transformer_platform import isvc_with_transformer

pytestmark = pytest.mark.inprocess


def problems(tmp_path: Path, experiment_uri: str) -> list[str]:
    env = (
        "        env:\n"
        "          - name: RISKSERVE_TRANSFORMER_EXPERIMENT_URI\n"
        f"            value: {experiment_uri}\n"
    )
    text = isvc_with_transformer(
        tmp_path / "model", tmp_path / "repo", transformer_env=env
    )
    ((_, errors),) = check_documents(
        load_yaml_documents(text), 20, [tmp_path.resolve()]
    )
    return errors


def test_an_experiment_under_the_model_roots_or_on_s3_is_accepted(
    tmp_path: Path,
) -> None:
    assert problems(tmp_path, str(tmp_path / "experiment.yaml")) == []
    assert problems(tmp_path, f"file://{tmp_path}/experiments") == []
    assert problems(tmp_path, "s3://riskserve/experiments/fraud.yaml") == []


def test_an_experiment_outside_the_roots_or_elsewhere_is_refused_in_one_line(
    tmp_path: Path,
) -> None:
    (error,) = problems(tmp_path, "/etc/riskserve/experiment.yaml")
    assert error.startswith(
        "spec.transformer.containers[0].env RISKSERVE_TRANSFORMER_EXPERIMENT_URI "
        "'/etc/riskserve/experiment.yaml' is outside the model roots"
    )
    (error,) = problems(tmp_path, "https://example.com/experiment.yaml")
    assert "use s3://bucket/key or a local path" in error
    assert "\n" not in error
