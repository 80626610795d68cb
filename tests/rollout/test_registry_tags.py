"""The approval gate's read of a version's tags over MLflow's REST API, against a real
`mlflow server` (the session's, artifacts in SeaweedFS): the same tags as MLflow's
client, the same verdicts (approved promotes, validated is refused, a missing version
is named), no import of MLflow on the way, and a registry that is down or answers
garbage refused in one line."""

from __future__ import annotations

import http.server
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest
from riskserve.governance.approvals import decide, record_report
from riskserve.governance.status import APPROVED, STATUS_TAG
from riskserve.localplatform.processes import free_port
from riskserve.model import registry_tags
from riskserve.rollout.controller import RolloutError, check_promotable
from riskserve.rollout.settings import RolloutSettings

from tests.fixtures.stub_server import stub_server

pytestmark = pytest.mark.e2e

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(scope="module")
def registry(mlflow_server) -> tuple[object, str, str]:
    """`gate-credit` v1 approved, v2 validated (a report, no decision), on the server."""
    from mlflow import MlflowClient

    url = mlflow_server["MLFLOW_TRACKING_URI"]
    client = MlflowClient(url)
    name = f"gate-credit-{free_port()}"
    client.create_registered_model(name)
    for _ in range(2):
        v = client.create_model_version(name, source="s3://mlflow/nowhere")
        client.set_model_version_tag(name, v.version, STATUS_TAG, "draft")
        record_report(client, name, v.version, "a" * 64, "validation/a.html", "val")
    decide(client, name, "1", APPROVED, "ana", "backtest reviewed")
    return client, url, name


def settings(url: str, **extra: object) -> RolloutSettings:
    return RolloutSettings(MLFLOW_TRACKING_URI=url, **extra)


def test_the_rest_read_equals_mlflows_client(registry) -> None:
    client, url, name = registry
    for version in ("1", "2"):
        read = settings(url).registry_version_tags(url, name, version, 5.0)
        assert read == dict(client.get_model_version(name, version).tags)
    assert read[STATUS_TAG] == "validated"


def test_the_gate_promotes_approved_and_refuses_the_rest(registry) -> None:
    _, url, name = registry
    check_promotable(settings(url), f"{name}/1", "the canary")  # approved: passes
    with pytest.raises(RolloutError) as refused:
        check_promotable(settings(url), f"{name}/2", "the canary")
    assert str(refused.value).startswith(
        f"refused to promote: {name} v2 is validated, not approved"
    ), refused.value
    with pytest.raises(RolloutError) as missing:
        check_promotable(settings(url), f"{name}/9", "the canary")
    assert str(missing.value).startswith(f"{name}/9: "), missing.value
    assert "9" in str(missing.value).split(": ", 1)[1], missing.value


def test_the_gate_does_not_import_mlflow(registry, mlflow_server) -> None:
    """What makes `--promote` move traffic in about a second: the check runs in a
    fresh interpreter and leaves MLflow's package unimported."""
    _, url, name = registry
    code = (
        "import sys\n"
        "from riskserve.rollout.controller import check_promotable\n"
        "from riskserve.rollout.settings import RolloutSettings\n"
        f"check_promotable(RolloutSettings(), {name + '/1'!r}, 'the canary')\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'mlflow'))\n"
    )
    env = {**os.environ, **mlflow_server}
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "[]", done.stdout
    print(f"approval checked without MLflow in {time.monotonic() - started:.2f} s")


def test_a_registry_that_is_down_is_refused_in_one_line() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(RolloutError) as down:
        check_promotable(settings(url), "credit/1", "the canary")
    message = str(down.value)
    assert message.startswith(
        f"cannot check that credit/1 is approved: MLflow at {url} did not answer"
    ), message
    assert "\n" not in message


class Garbage(http.server.BaseHTTPRequestHandler):
    """A server that is not MLflow: HTML for the version, a 500 for `broken`."""

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        if "broken" in self.path:
            body = json.dumps({"error_code": "INTERNAL_ERROR", "message": "db gone"})
            self.send_response(500)
        elif "noversion" in self.path:
            body = json.dumps({"registered_model": {}})
            self.send_response(200)
        else:
            body = "<html>login</html>"
            self.send_response(200)
        self.end_headers()
        self.wfile.write(body.encode())

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def garbage() -> Iterator[str]:
    with stub_server(Garbage) as url:
        yield url


@pytest.mark.parametrize(
    "name, says",
    [
        ("credit", "answered model-versions/get with no JSON: b'<html>login</html>'"),
        ("broken", "answered 500: db gone"),
        ("noversion", "answered model-versions/get without a model_version"),
    ],
)
def test_a_server_that_is_not_mlflow_is_refused(garbage, name, says) -> None:
    with pytest.raises(RolloutError) as refused:
        check_promotable(settings(garbage), f"{name}/1", "the canary")
    assert says in str(refused.value), refused.value
    assert str(refused.value).startswith(f"cannot check that {name}/1 is approved")


def test_what_is_read_without_mlflow_and_what_is_not() -> None:
    assert registry_tags.readable("http://mlflow:5000", None)
    # TLS and plugins are MLflow's client's to resolve; stores are its internals
    assert not registry_tags.readable("https://mlflow.example", None)
    assert not registry_tags.readable("http://mlflow:5000", "my-plugin")
    assert not registry_tags.readable("sqlite:///mlflow.db", None)
    assert not registry_tags.readable(None, None)
    # MLflow's own order: a token wins over a user and password
    assert registry_tags.auth_header("t0k", "ana", "pw") == {
        "Authorization": "Bearer t0k"
    }
    assert registry_tags.auth_header(None, "ana", "pw") == {
        "Authorization": "Basic YW5hOnB3"
    }
    assert registry_tags.auth_header(None, "ana", None) == {}
