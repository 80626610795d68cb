"""The CI/CD workflow: actionlint (with ShellCheck on its run: scripts) finds nothing,
it runs what a developer runs (make lint, make test), releases only a tag whose version
the chart and package carry, and holds no secret but the job's own token."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.inprocess

REPO_ROOT = Path(__file__).resolve().parents[2]
WORKFLOW = REPO_ROOT / ".github" / "workflows" / "ci.yml"
BIN = Path(sys.executable).parent
CHECK_VERSION = REPO_ROOT / "images" / "check_release_version.sh"


def actionlint(*paths: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            str(BIN / "actionlint"),
            "-no-color",
            f"-shellcheck={BIN / 'shellcheck'}",
            *map(str, paths),
        ],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        timeout=120,
        check=False,
    )


def workflow() -> dict:
    return yaml.safe_load(WORKFLOW.read_text())


def test_actionlint_finds_nothing() -> None:
    result = actionlint(WORKFLOW)
    assert result.returncode == 0, result.stdout + result.stderr


def test_actionlint_catches_a_broken_workflow(tmp_path: Path) -> None:
    broken = tmp_path / ".github" / "workflows" / "broken.yml"
    broken.parent.mkdir(parents=True)
    text = WORKFLOW.read_text().replace(
        "run: make lint", 'run: echo "${{ github.event.pull_request.title }}" $unset'
    )
    broken.write_text(text.replace("needs: [images]", "needs: [no-such-job]"))
    result = actionlint(broken)
    assert result.returncode == 1
    assert "no-such-job" in result.stdout
    assert "potentially untrusted" in result.stdout  # script injection
    assert "SC2086" in result.stdout  # ShellCheck ran: $unset is not quoted


def test_pushes_and_pull_requests_run_lint_and_the_tests() -> None:
    flow = workflow()
    on = flow[True] if True in flow else flow["on"]  # YAML 1.1 reads `on` as true
    assert set(on) == {"push", "pull_request"} and "tags" in on["push"]
    runs = {
        name: [step.get("run", "") for step in job["steps"]]
        for name, job in flow["jobs"].items()
    }
    assert "make lint" in runs["lint"]
    assert "make test" in runs["test"]
    assert any(r.startswith("ct lint --charts helm/riskserve") for r in runs["chart"])
    for job in ("lint", "chart", "test"):
        assert "if" not in flow["jobs"][job]


def test_releases_need_the_tests_and_a_matching_version() -> None:
    jobs = workflow()["jobs"]
    assert jobs["release-version"]["if"] == "startsWith(github.ref, 'refs/tags/v')"
    assert set(jobs["images"]["needs"]) == {"lint", "chart", "test", "release-version"}
    assert jobs["images"]["strategy"]["matrix"]["image"] == [
        "serving",
        "app",
        "training",
    ]
    dockerfiles = {
        step["with"]["file"]
        for step in jobs["images"]["steps"]
        if "build-push-action" in step.get("uses", "")
    }
    assert dockerfiles == {"${{ matrix.image }}/Dockerfile"}
    for image in jobs["images"]["strategy"]["matrix"]["image"]:
        assert (REPO_ROOT / image / "Dockerfile").exists()
    assert jobs["helm-chart"]["needs"] == ["images"]


def test_no_secret_but_the_jobs_own_token() -> None:
    text = WORKFLOW.read_text()
    assert set(re.findall(r"secrets\.(\w+)", text)) == {"GITHUB_TOKEN"}
    flow = workflow()
    assert flow["permissions"] == {"contents": "read"}
    # Writing packages and the OIDC token only where images and the chart are pushed.
    writers = {
        name
        for name, job in flow["jobs"].items()
        if "write" in (job.get("permissions") or {}).values()
    }
    assert writers == {"images", "helm-chart"}
    assert flow["jobs"]["images"]["permissions"]["id-token"] == "write"


def run_check(tag: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(CHECK_VERSION), tag], capture_output=True, text=True, check=False
    )


def test_the_release_tag_must_be_the_charts_and_packages_version() -> None:
    chart = yaml.safe_load(
        (REPO_ROOT / "helm" / "riskserve" / "Chart.yaml").read_text()
    )
    good = run_check(f"v{chart['version']}")
    assert good.returncode == 0, good.stderr
    assert f"appVersion {chart['appVersion']}" in good.stdout
    bad = run_check("v99.0.0")
    assert bad.returncode == 1
    assert bad.stderr.count("\n") == 1  # one line
    assert (
        "the chart's version is" in bad.stderr and "(all must be 99.0.0)" in bad.stderr
    )
