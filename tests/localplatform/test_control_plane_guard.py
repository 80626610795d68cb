"""The control API as an attacker and a clumsy operator meet it, in one process: keys,
forged browser requests, names, YAML bombs, limits, env and storage paths, delete.
(The same attacks against the running daemon are in tests/reliability.)"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import httpx
import pytest
from riskserve.localplatform.controller import LocalPlatform
from riskserve.localplatform.gateway import Gateway
from riskserve.localplatform.settings import PlatformSettings

from tests.asyncio_runner import run as run_async
from tests.localplatform.platform_helpers import isvc_yaml

pytestmark = pytest.mark.inprocess

BASE = "http://127.0.0.1:8000"
YAML = {"content-type": "application/yaml"}


_OPEN: list[Gateway] = []


def make_gateway(tmp_path: Path, env: dict | None = None, **settings) -> Gateway:
    settings = PlatformSettings(state_dir=tmp_path / "state", **settings)
    gateway = Gateway(LocalPlatform(settings, env=env or {}))
    _OPEN.append(gateway)
    return gateway


@pytest.fixture(autouse=True)
def _close_apply_workers():
    """Each gateway parses in a worker process of its own: stop it with the test."""
    yield
    while _OPEN:
        _OPEN.pop().apply_worker.close()


def call(
    gateway: Gateway,
    method: str,
    path: str,
    client: tuple[str, int] = ("127.0.0.1", 40000),
    **kwargs,
) -> httpx.Response:
    async def one() -> httpx.Response:
        transport = httpx.ASGITransport(app=gateway, client=client)
        async with httpx.AsyncClient(transport=transport, base_url=BASE) as c:
            return await c.request(method, path, **kwargs)

    return run_async(one())


def apply(gateway: Gateway, text: str, **headers) -> httpx.Response:
    return call(
        gateway,
        "POST",
        "/platform/apply",
        content=text.encode(),
        headers=YAML | headers,
    )


@pytest.fixture
def model_dir(tmp_path) -> Path:
    folder = tmp_path / "models" / "fraud"
    folder.mkdir(parents=True)
    return folder


CONTROL = [
    ("GET", "/platform/status"),
    ("GET", "/platform/traffic"),
    ("GET", "/metrics"),
    ("POST", "/platform/apply"),
    ("POST", "/platform/inferenceservices/fraud/patch"),
    ("POST", "/platform/inferenceservices/nope/patch"),
    ("DELETE", "/platform/inferenceservices/fraud"),
    ("DELETE", "/platform/inferenceservices/nope"),
    ("GET", "/platform/nothing"),
]


def test_with_a_key_every_control_route_needs_it_and_reveals_nothing(
    tmp_path, model_dir
):
    gateway = make_gateway(tmp_path, env={"RISKSERVE_SERVING_API_KEY": "serve-key"})
    keyed = {"authorization": "Bearer serve-key"}
    assert apply(gateway, isvc_yaml("fraud", model_dir), **keyed).status_code == 200

    answers = set()
    for method, path in CONTROL:
        for headers in ({}, {"authorization": "Bearer wrong"}, {"x-api-key": ""}):
            response = call(gateway, method, path, headers=YAML | headers, json={})
            assert response.status_code == 401, (method, path, headers)
            answers.add(response.content)
    # One answer for every route, existing service or not: nothing to enumerate.
    assert len(answers) == 1
    # The data plane too: an unknown model and a known one look the same without key.
    for name in ("fraud", "nope"):
        response = call(
            gateway, "POST", f"/v2/models/{name}/infer", json={"inputs": []}
        )
        assert response.status_code == 401
        assert (
            response.content
            == call(gateway, "POST", "/v2/models/other/infer", json={}).content
        )

    # The state is untouched by all of it; with the key, everything answers.
    status = call(gateway, "GET", "/platform/status", headers=keyed).json()
    assert [i["metadata"]["name"] for i in status["inferenceservices"]] == ["fraud"]
    assert call(gateway, "GET", "/metrics", headers=keyed).status_code == 200
    assert (
        call(gateway, "GET", "/metrics", headers={"x-api-key": "serve-key"}).status_code
        == 200
    )


def test_an_admin_key_guards_changes_and_either_key_reads(tmp_path, model_dir):
    gateway = make_gateway(
        tmp_path,
        env={"RISKSERVE_SERVING_API_KEY": "serve-key"},
        platform_admin_key="admin-key",
    )
    serving = {"authorization": "Bearer serve-key"}
    admin = {"authorization": "Bearer admin-key"}
    text = isvc_yaml("fraud", model_dir)
    assert apply(gateway, text, **serving).status_code == 401
    assert apply(gateway, text, **admin).status_code == 200
    patch = "/platform/inferenceservices/fraud/patch"
    body = {"canaryTrafficPercent": 100}
    assert call(gateway, "POST", patch, json=body, headers=serving).status_code == 401
    assert call(gateway, "POST", patch, json=body, headers=admin).status_code == 200
    for headers in (serving, admin):
        assert (
            call(gateway, "GET", "/platform/status", headers=headers).status_code == 200
        )
    delete = "/platform/inferenceservices/fraud"
    assert call(gateway, "DELETE", delete, headers=serving).status_code == 401
    assert call(gateway, "DELETE", delete, headers=admin).status_code == 200


def test_without_a_key_only_loopback_clients_are_answered(tmp_path, model_dir):
    gateway = make_gateway(tmp_path)
    for client in (("10.1.2.3", 5555), ("192.168.0.7", 80), ("2001:db8::1", 9)):
        for method, path in CONTROL:
            response = call(gateway, method, path, client=client, headers=YAML)
            assert response.status_code == 403, (client, method, path)
    assert (
        call(gateway, "GET", "/platform/status", client=("::1", 1)).status_code == 200
    )


def test_a_non_loopback_address_without_a_key_is_refused():
    problem = PlatformSettings(host="0.0.0.0").exposure_problem()
    assert problem is not None and "RISKSERVE_PLATFORM_ADMIN_KEY" in problem
    assert (
        PlatformSettings(host="0.0.0.0", platform_admin_key="k").exposure_problem()
        is None
    )
    assert PlatformSettings(host="127.0.0.1").exposure_problem() is None


@pytest.mark.parametrize(
    "headers, status",
    [
        ({"content-type": "text/plain"}, 415),
        ({"content-type": "application/x-www-form-urlencoded"}, 415),
        ({"content-type": "multipart/form-data; boundary=x"}, 415),
        ({"origin": "http://evil.example"}, 403),
        ({"origin": "http://localhost:3000"}, 403),  # another local page
        ({"origin": "null"}, 403),
        ({"sec-fetch-site": "cross-site"}, 403),
        ({"host": "evil.example:8000"}, 403),  # a name rebound to 127.0.0.1
        ({"host": "127.0.0.1.evil.example"}, 403),
    ],
)
def test_requests_a_browser_can_forge_are_refused(tmp_path, model_dir, headers, status):
    gateway = make_gateway(tmp_path)
    forged = {**YAML, **headers}
    response = call(
        gateway,
        "POST",
        "/platform/apply",
        content=isvc_yaml("fraud", model_dir).encode(),
        headers=forged,
    )
    assert response.status_code == status, response.text
    assert gateway.platform.state.services == {}
    if "host" in headers or "origin" in headers:
        assert (
            call(gateway, "GET", "/platform/status", headers=headers).status_code == 403
        )
    # The same request from the CLI (same origin, JSON or YAML) goes through.
    same_origin = {**YAML, "origin": BASE}
    assert (
        apply(gateway, isvc_yaml("fraud", model_dir), **same_origin).status_code == 200
    )


@pytest.mark.parametrize(
    "name",
    [
        "../../../../tmp/x/escaped",
        "a" * 300,
        "a" * 64,
        "Fraud",
        "fraud_model",
        "-fraud",
        "fraud-",
        "fr\u00e4ud",
        "fraud/predictor",
        "''",
    ],
)
def test_names_must_be_dns_1123_labels(tmp_path, model_dir, name):
    gateway = make_gateway(tmp_path)
    text = isvc_yaml("placeholder", model_dir).replace(
        "name: placeholder", f"name: {json.dumps(name)}"
    )
    response = apply(gateway, text)
    assert response.status_code == 400
    error = response.json()["error"]
    assert "DNS-1123" in error or "metadata.name" in error
    assert len(response.content) < 1500
    assert gateway.platform.state.services == {}
    assert not list((tmp_path / "state").rglob("*.log"))


def test_the_longest_valid_name_runs(tmp_path, model_dir):
    gateway = make_gateway(tmp_path)
    name = "a" + "-b" * 31  # 63 characters
    assert apply(gateway, isvc_yaml(name, model_dir)).status_code == 200


BOMB = 'a: &a ["x","x","x","x","x","x","x","x","x","x"]\n' + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [{','.join(['*' + chr(97 + i)] * 10)}]\n"
    for i in range(8)
)


def test_a_yaml_alias_bomb_is_refused_in_a_short_answer(tmp_path, model_dir):
    gateway = make_gateway(tmp_path)
    bombs = [
        # the expanded value where a string belongs
        BOMB
        + isvc_yaml("fraud", model_dir).replace("storageUri: ", "storageUri: *i #"),
        # as an annotation the platform would keep
        BOMB
        + isvc_yaml("fraud", model_dir).replace(
            "metadata:\n  name: fraud\n",
            "metadata:\n  name: fraud\n  annotations:\n    riskserve.io/note: *i\n",
        ),
    ]
    for text in bombs:
        assert len(text) < 2000
        response = apply(gateway, text)
        assert response.status_code == 400, response.text
        assert len(response.content) < 1000
        assert gateway.platform.state.services == {}
    state = tmp_path / "state" / "platform" / "state.json"
    assert not state.exists() or state.stat().st_size < 1000


@pytest.mark.parametrize("depth", [100, 5000])
def test_deep_nesting_is_refused(tmp_path, depth):
    response = apply(make_gateway(tmp_path), "a: " + "[" * depth + "]" * depth)
    assert response.status_code == 400 and "nest" in response.json()["error"]
    assert len(response.content) < 500


def test_limits_are_refused_with_a_400_that_names_each(tmp_path, model_dir):
    gateway = make_gateway(
        tmp_path,
        max_documents_per_apply=3,
        max_inferenceservices=4,
        max_predictor_processes=5,
        max_apply_bytes=4096,
    )

    def many(names: list[str]) -> str:
        return "---\n".join(isvc_yaml(n, model_dir) for n in names)

    response = apply(gateway, many(["a", "b", "c", "d"]))
    assert response.status_code == 400
    assert "RISKSERVE_MAX_DOCUMENTS_PER_APPLY" in response.json()["error"]
    assert gateway.platform.state.services == {}

    assert apply(gateway, many(["a", "b", "c"])).status_code == 200
    for service in gateway.platform.state.services.values():
        service.revisions[0].ready = True  # as the controller's probe would
        service.settle()
    response = apply(gateway, many(["d", "e"]))
    assert response.status_code == 400
    assert "RISKSERVE_MAX_INFERENCESERVICES" in response.json()["error"]
    assert sorted(gateway.platform.state.services) == ["a", "b", "c"]  # all or none

    # Three services, one predictor each; two canaries need two more; a third, six.
    other = tmp_path / "models" / "v2"
    other.mkdir()
    assert apply(gateway, isvc_yaml("a", other, canary=10)).status_code == 200
    assert apply(gateway, isvc_yaml("b", other, canary=10)).status_code == 200
    response = apply(gateway, isvc_yaml("c", other, canary=10))
    assert response.status_code == 400
    assert "RISKSERVE_MAX_PREDICTOR_PROCESSES" in response.json()["error"]
    assert len(gateway.platform.state.services["c"].revisions) == 1

    response = apply(gateway, many(["a"]) + "# " + "x" * 5000 + "\n")
    assert response.status_code == 400
    assert "RISKSERVE_MAX_APPLY_BYTES" in response.json()["error"]


def test_old_revisions_are_forgotten_and_names_never_reused(tmp_path):
    gateway = make_gateway(tmp_path, max_revisions_per_service=3)
    for index in range(6):
        folder = tmp_path / "models" / f"v{index}"
        folder.mkdir(parents=True)
        assert apply(gateway, isvc_yaml("fraud", folder)).status_code == 200
    names = [r.name for r in gateway.platform.state.services["fraud"].revisions]
    assert len(names) == 3
    assert names[-1] == "fraud-predictor-00006"
    assert len(set(names)) == 3


def with_env(model_dir: Path, entries: list[tuple[str, str]]) -> str:
    env = "      env:\n" + "".join(
        f"        - name: {name}\n          value: {json.dumps(value)}\n"
        for name, value in entries
    )
    return isvc_yaml("fraud", model_dir, extra=env)


@pytest.mark.parametrize(
    "entries",
    [
        [("PYTHONWARNINGS", "ignore::antigravity.x")],
        [("BROWSER", "sh -c 'id > /tmp/owned' %s")],
        [("RISKSERVE_SERVING_API_KEY", "")],
        [("RISKSERVE_SERVING_HOST", "0.0.0.0")],
        [("RISKSERVE_SERVING_INFERENCE_LOG_URI", "/etc")],
        [("LD_PRELOAD", "/tmp/x.so")],
        [("RISKSERVE_SERVING_ONNX_THREADS", "x" * 300)],
    ],
)
def test_env_that_could_run_code_or_turn_off_auth_is_refused(
    tmp_path, model_dir, entries
):
    gateway = make_gateway(tmp_path, env={"RISKSERVE_SERVING_API_KEY": "k"})
    response = apply(gateway, with_env(model_dir, entries), authorization="Bearer k")
    assert response.status_code == 400, response.text
    assert "env" in response.json()["error"]
    assert gateway.platform.state.services == {}


def test_allowed_env_tunes_the_predictor_but_never_the_platforms_settings(
    tmp_path, model_dir
):
    from riskserve.localplatform.spec_rules import allowed_env

    gateway = make_gateway(tmp_path)
    text = with_env(
        model_dir,
        [
            ("RISKSERVE_SERVING_ONNX_THREADS", "2"),
            ("RISKSERVE_SERVING_LOG_LEVEL", "DEBUG"),
        ],
    )
    assert apply(gateway, text).status_code == 200
    revision = gateway.platform.state.services["fraud"].revisions[0]
    assert allowed_env(revision.predictor) == {
        "RISKSERVE_SERVING_ONNX_THREADS": "2",
        "RISKSERVE_SERVING_LOG_LEVEL": "DEBUG",
    }
    # A state file from before the allow-list cannot smuggle a key in either.
    revision.predictor["model"]["env"].append(
        {"name": "RISKSERVE_SERVING_API_KEY", "value": ""}
    )
    assert "RISKSERVE_SERVING_API_KEY" not in allowed_env(revision.predictor)


def test_storage_paths_outside_the_roots_are_refused_alike(tmp_path):
    gateway = make_gateway(tmp_path)
    errors = {}
    for uri in (
        "/etc/shadow",
        "/root/.ssh",
        "/etc/no-such-file-here",
        "/proc/1/environ",
    ):
        response = apply(gateway, isvc_yaml("fraud", uri))
        assert response.status_code == 400
        errors[uri] = response.json()["error"].replace(uri, "PATH")
    # The same words whether the path exists or not.
    assert len(set(errors.values())) == 1, errors
    assert "exist" not in next(iter(errors.values()))
    escaped = Path(str(tmp_path) + "/.." * 12 + "/etc/shadow")
    assert apply(gateway, isvc_yaml("fraud", escaped)).status_code == 400
    assert apply(gateway, isvc_yaml("fraud", "gs://bucket/model")).status_code == 400
    for remote in ("s3://mlflow/fraud/1", "models:/fraud@champion"):
        assert apply(gateway, isvc_yaml("fraud", remote)).status_code == 200


def test_delete_removes_a_service_and_unknown_names_are_404(tmp_path, model_dir):
    gateway = make_gateway(tmp_path)
    assert apply(gateway, isvc_yaml("fraud", model_dir)).status_code == 200
    gone = call(gateway, "DELETE", "/platform/inferenceservices/fraud")
    assert gone.status_code == 200 and gone.json() == {"deleted": ["fraud: deleted"]}
    assert call(gateway, "GET", "/platform/status").json()["inferenceservices"] == []
    again = call(gateway, "DELETE", "/platform/inferenceservices/fraud")
    assert again.status_code == 404
    long = call(gateway, "DELETE", "/platform/inferenceservices/" + "x" * 5000)
    assert long.status_code == 404 and len(long.content) < 500
    saved = json.loads((tmp_path / "state" / "platform" / "state.json").read_text())
    assert saved["services"] == {}


def test_a_large_apply_does_not_stall_the_gateway(tmp_path, model_dir):
    gateway = make_gateway(tmp_path)
    labels = "".join(f"    label-{i}: value-{i}\n" for i in range(35_000))
    text = isvc_yaml("fraud", model_dir).replace(
        "metadata:\n  name: fraud\n", "metadata:\n  name: fraud\n  labels:\n" + labels
    )
    assert 0.9e6 < len(text) < 1024 * 1024

    async def scenario() -> tuple[int, int]:
        transport = httpx.ASGITransport(app=gateway)
        async with httpx.AsyncClient(transport=transport, base_url=BASE) as client:
            applying = asyncio.create_task(
                client.post("/platform/apply", content=text.encode(), headers=YAML)
            )
            answered = 0
            while not applying.done():
                health = await client.get("/v2/health/live")
                answered += health.status_code == 200
                await asyncio.sleep(0.01)
            return (await applying).status_code, answered

    status, answered = run_async(scenario())
    assert status == 200
    # The health route answered again and again while the document was parsed.
    assert answered >= 5, answered
