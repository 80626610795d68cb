"""What the transformer tests of tests/k8s share: a transformer container's env by
name, and the one line the chart refuses a configuration with."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

from tests.k8s.k8s_render import CHART, NAMESPACE, RELEASE, tool
from tests.k8s.test_transformer_inference_log import transformer_container


def env(documents: Any, model: str) -> dict[str, Any]:
    """The transformer container's env of `model`'s InferenceService, by name."""
    return {e["name"]: e for e in transformer_container(documents, model)["env"]}


def helm_refusal(values: Path, *sets: str) -> str:
    """`helm template` with `--set` for each of `sets`, which must fail: its stderr."""
    arguments = [a for value in sets for a in ("--set", value)]
    done = subprocess.run(
        [
            str(tool("helm")),
            "template",
            RELEASE,
            str(CHART),
            "--namespace",
            NAMESPACE,
            "--values",
            str(values),
            *arguments,
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode != 0, f"helm rendered {sets} instead of refusing"
    return done.stderr
