"""The local platform hands its predictors' inference-log settings to transformer
revisions under the transformer's names, so a decision is recorded where it is made
(the transformer's records beside the predictor's, marked by stage); a spec cannot
move either log."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from riskserve.localplatform.apply_check import ApplyError
from riskserve.localplatform.controller import LocalPlatform
from riskserve.localplatform.settings import PlatformSettings
from riskserve.localplatform.spec_rules import load_yaml_documents

from tests.localplatform.test_transformer_platform import isvc_with_transformer

pytestmark = pytest.mark.inprocess


def transformer_launch_env(tmp_path: Path, env: dict[str, str]) -> dict[str, str]:
    """The environment the platform starts the fraud transformer's revision with."""
    platform = LocalPlatform(
        PlatformSettings(state_dir=tmp_path / "state", max_predictor_processes=4), env
    )
    platform.apply_documents(
        load_yaml_documents(isvc_with_transformer(tmp_path / "m", tmp_path / "r"))
    )
    launched: list[dict[str, str]] = []

    def launch(service: Any, revision: Any, room: str, argv, env, *_: Any) -> None:
        assert room == "transformer"
        launched.append(env)

    platform._launch = launch  # type: ignore[method-assign]
    platform.predictor_port = 8000
    component = platform.state.services["fraud"].transformer
    assert component is not None
    (revision,) = component.revisions
    platform._start_transformer(component, revision)
    (env,) = launched
    return env


def test_the_predictors_log_settings_reach_the_transformer_under_its_names(
    tmp_path: Path,
) -> None:
    env = transformer_launch_env(
        tmp_path,
        {
            "RISKSERVE_SERVING_INFERENCE_LOG_URI": "s3://mlflow/inference-log",
            "RISKSERVE_SERVING_INFERENCE_LOG_FLUSH_SECONDS": "5",
            "RISKSERVE_SERVING_INFERENCE_LOG_SPOOL_DIR": "/var/spool/riskserve",
        },
    )
    assert env["RISKSERVE_TRANSFORMER_INFERENCE_LOG_URI"] == "s3://mlflow/inference-log"
    assert env["RISKSERVE_TRANSFORMER_INFERENCE_LOG_FLUSH_SECONDS"] == "5"
    assert env["RISKSERVE_TRANSFORMER_INFERENCE_LOG_SPOOL_DIR"] == (
        "/var/spool/riskserve"
    )


def test_the_transformers_own_log_setting_wins_and_no_log_stays_off(
    tmp_path: Path,
) -> None:
    env = transformer_launch_env(
        tmp_path / "own",
        {
            "RISKSERVE_SERVING_INFERENCE_LOG_URI": "/logs/predictors",
            "RISKSERVE_TRANSFORMER_INFERENCE_LOG_URI": "/logs/transformers",
        },
    )
    assert env["RISKSERVE_TRANSFORMER_INFERENCE_LOG_URI"] == "/logs/transformers"
    off = transformer_launch_env(tmp_path / "off", {})
    assert not any(k.startswith("RISKSERVE_TRANSFORMER_INFERENCE_LOG") for k in off)


def test_a_spec_cannot_move_the_transformers_log(tmp_path: Path) -> None:
    platform = LocalPlatform(
        PlatformSettings(state_dir=tmp_path / "state", max_predictor_processes=4), {}
    )
    env = (
        "        env:\n"
        "          - name: RISKSERVE_TRANSFORMER_INFERENCE_LOG_URI\n"
        "            value: /etc\n"
    )
    text = isvc_with_transformer(tmp_path / "m", tmp_path / "r", transformer_env=env)
    with pytest.raises(ApplyError, match="RISKSERVE_TRANSFORMER_INFERENCE_LOG_URI"):
        platform.apply_documents(load_yaml_documents(text))
