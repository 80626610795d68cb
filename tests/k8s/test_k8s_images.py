"""The Dockerfiles, read as text (no Docker engine here): slim base, dependencies
before source, a fixed non-root UID, no TensorFlow outside the training image."""

from __future__ import annotations

import re
import tomllib

import pytest

from tests.k8s.k8s_render import REPO, containers, pod_specs, render

pytestmark = pytest.mark.k8s

IMAGES = {"training": "training", "serving": "serving", "app": "app"}


def instructions(component: str) -> list[tuple[str, str]]:
    text = (REPO / component / "Dockerfile").read_text()
    text = re.sub(r"\\\n", " ", text)
    return [
        (line.split(None, 1)[0].upper(), line.split(None, 1)[1])
        for line in text.splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]


@pytest.mark.parametrize("component", IMAGES)
def test_dockerfile_is_slim_non_root_and_installs_dependencies_first(
    component: str,
) -> None:
    steps = instructions(component)
    bases = [arg for op, arg in steps if op == "FROM"]
    assert bases and all(re.match(r"python:3\.11-slim", b) for b in bases), bases
    users = [arg for op, arg in steps if op == "USER"]
    assert users == ["10001:10001"], users
    copies = [i for i, (op, arg) in enumerate(steps) if op == "COPY"]
    source_copies = [
        i for i in copies if re.match(rf"({component}|model) ", steps[i][1])
    ]
    installs = [
        i
        for i, (op, arg) in enumerate(steps)
        if op == "RUN"
        and any(
            IMAGES[component] in extras.split(",")
            for extras in re.findall(r"'\.\[([^\]]*)\]'", arg)
        )
    ]
    assert installs, f"{component}: no pip install of the [{component}] extra"
    assert installs[0] < min(source_copies), "source copied before dependencies"


@pytest.mark.parametrize("component", ["serving", "app"])
def test_serving_and_app_images_have_no_tensorflow(component: str) -> None:
    text = " ".join(arg for _, arg in instructions(component)).lower()
    assert "[training]" not in text and "tensorflow" not in text
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    extra = pyproject["project"]["optional-dependencies"][component]
    assert not [d for d in extra if "tensorflow" in d or "riskserve[" in d], extra


def test_serving_entrypoint_is_the_predictor_with_kserve_arguments() -> None:
    steps = dict(instructions("serving"))
    assert steps["ENTRYPOINT"] == '["python", "-m", "riskserve.serving"]'
    assert "--http_port=8080" in steps["CMD"] and "--grpc_port=8081" in steps["CMD"]


def test_manifests_run_as_the_uid_the_images_declare() -> None:
    for where, pod in pod_specs(render("kustomize", "dev")):
        uid = (pod.get("securityContext") or {}).get("runAsUser")
        for container in containers(pod):
            uid = (container.get("securityContext") or {}).get("runAsUser", uid)
            assert uid == 10001, where


def test_dockerignore_keeps_what_the_build_needs() -> None:
    lines = (REPO / ".dockerignore").read_text().splitlines()
    ignored = [line.strip() for line in lines if not line.startswith("#")]
    for needed in (
        "pyproject.toml",
        "setup.py",
        "README.md",
        "model",
        "serving",
        "app",
    ):
        assert needed not in ignored
    assert ".git" in ignored and ".venv" in ignored
