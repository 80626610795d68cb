"""What the transformer and experiment tests of tests/k8s share: a transformer
container's env by name, the one line the chart refuses a configuration with, and
the checks every configuration's render passes, for a render of their own."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

from tests.k8s import test_k8s_policies as policies
from tests.k8s import test_k8s_render as renders
from tests.k8s.k8s_render import CHART, NAMESPACE, RELEASE, Render, tool
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


def passes_every_render_check(rendered: Render) -> None:
    """The checks tests/k8s runs on every configuration: Kubernetes and KServe CRD
    schemas, Pod Security restricted, credentials through Secrets, resources,
    labels, pinned images, the InferenceServices' shape."""
    renders.test_builtin_kinds_validate_against_kubernetes_schemas(rendered)
    renders.test_kserve_kinds_validate_against_the_crds(rendered)
    renders.test_no_document_is_left_unvalidated(rendered)
    policies.test_every_pod_meets_pod_security_restricted(rendered)
    policies.test_writable_paths_are_empty_dirs(rendered)
    policies.test_credentials_reach_pods_only_through_secrets(rendered)
    policies.test_every_pod_has_resources(rendered)
    policies.test_every_resource_carries_the_recommended_labels(rendered)
    policies.test_images_are_pinned(rendered)
    policies.test_inference_services_have_the_shape_kserve_documents(rendered)
