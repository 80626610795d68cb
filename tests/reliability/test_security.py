"""Security: auth on every non-health endpoint, keys compared in constant time, no
credential anywhere in the repository or the rendered manifests, an app that shows
neither a stack trace nor a secret, and size limits that hold."""

from __future__ import annotations

import ast
import http.server
import math
import re
import socket
import subprocess
import time
from collections import Counter
from pathlib import Path

import grpc
import httpx
import pytest
import yaml
from riskserve.localplatform.client import apply_yaml, wait_ready
from riskserve.model.specs import FRAUD
from riskserve.serving.grpc_v2 import grpc_predict_v2_pb2 as pb
from riskserve.serving.grpc_v2 import grpc_predict_v2_pb2_grpc as pb_grpc

from tests.fixtures.stub_server import stub_server
from tests.localplatform.platform_helpers import Platform, isvc_yaml
from tests.reliability.reliability_helpers import (
    REPO_ROOT,
    SPEC_DIR,
)
from tests.serving.predictor_helpers import start_predictor

# Built at run time so that this file does not itself look like it holds a key.
KEY = "reliability-" + "key-" + "0123456789abcdef"
HEALTH = {"/v2/health/live", "/v2/health/ready", "/metrics"}


def fraud_body(rows: int = 1) -> dict:
    return {
        "inputs": [
            {"name": n, "shape": [rows, 1], "datatype": "FP32", "data": [1.0] * rows}
            for n in FRAUD.feature_names
        ]
    }


def spec_routes(model: str, version: str) -> list[tuple[str, str]]:
    """Every route of rest_predict_v2.yaml with its method, for one model."""
    spec = yaml.safe_load((SPEC_DIR / "rest_predict_v2.yaml").read_text())
    routes = []
    for path, item in spec["paths"].items():
        concrete = (
            path.replace("${MODEL_NAME}", model)
            .replace("${MODEL_VERSION}", version)
            .rstrip("/")
        )
        for method in item:
            if method in ("get", "post"):
                routes.append((method.upper(), concrete))
                if "/versions/" in concrete:  # the same without a version
                    routes.append(
                        (method.upper(), concrete.replace(f"/versions/{version}", ""))
                    )
    return sorted(set(routes))


def is_health(path: str) -> bool:
    return path in HEALTH or path.endswith("/ready")


def call(client: httpx.Client, method: str, path: str, **kwargs) -> httpx.Response:
    body = fraud_body() if method == "POST" else None
    url = f"{client.base_url}".rstrip("/") + path
    return client.request(method, url, json=body, **kwargs)


@pytest.fixture(scope="module")
def keyed_fraud(rel_models, rel_logs):
    predictor = start_predictor(
        rel_logs,
        "security-fraud",
        "fraud",
        rel_models["fraud-v1"],
        env={
            "RISKSERVE_SERVING_API_KEY": KEY,
            "RISKSERVE_SERVING_MAX_BODY_BYTES": str(1024 * 1024),
            "RISKSERVE_SERVING_MAX_BATCH_SIZE": "1000",
        },
        args=(
            "--grpc_max_receive_message_length",
            str(1024 * 1024),
            "--grpc_max_send_message_length",
            str(1024 * 1024),
        ),
    )
    yield predictor
    predictor.stop()


def check_auth(
    client: httpx.Client, label: str, ledger, gateway: bool = False
) -> Counter:
    """Every route without a valid key is a 401 (or 404), with one a 200. Health stays
    open; on the gateway only the server's own probes do: a model's readiness and
    `/metrics` need the key there, so a caller without it cannot tell which models
    exist (a predictor's probes are its kubelet's, on the pod's own port)."""

    def is_open(path: str) -> bool:
        return (
            path in ("/v2/health/live", "/v2/health/ready")
            if gateway
            else is_health(path)
        )

    routes = spec_routes("fraud", "1")
    # Ways a path might slip past a router that matches exact strings.
    variants = ["{}", "{}/", "/{}", "{}?x=1", "{}%20"]
    outcomes: Counter = Counter()
    wrong = [
        {},
        {"authorization": "Bearer wrong"},
        {"authorization": f"Bearer {KEY}x"},
        {"authorization": f"Bearer {KEY[:-1]}"},
        {"authorization": f"Basic {KEY}"},
        {"authorization": KEY},
        {"x-api-key": ""},
        {"x-api-key": KEY.upper()},
        {"authorization": "Bearer"},
    ]
    for method, path in routes:
        for variant in variants:
            target = variant.format(path)
            for headers in wrong:
                response = call(client, method, target, headers=headers)
                ledger.fuzz(f"{label} auth")
                if is_open(path):
                    continue
                outcomes[response.status_code] += 1
                assert response.status_code in (401, 404), (
                    f"{method} {target} with {headers}: {response.status_code}"
                )
                if response.status_code == 401:
                    assert "error" in response.json()
                    assert KEY not in response.text
        ok = call(client, method, path, headers={"authorization": f"Bearer {KEY}"})
        assert ok.status_code == 200, (method, path, ok.text)
        ok = call(client, method, path, headers={"x-api-key": KEY})
        assert ok.status_code == 200, (method, path, ok.text)
        if is_open(path):
            assert call(client, method, path).status_code == 200, path
    # Prometheus scrapes a predictor without a key; the gateway's counters need one.
    assert client.get("/metrics").status_code == (401 if gateway else 200)
    return outcomes


def test_auth_on_every_non_health_endpoint_of_the_predictor(keyed_fraud, ledger):
    outcomes = check_auth(keyed_fraud.client, "predictor", ledger)
    assert outcomes[401] > 50, outcomes

    with grpc.insecure_channel(keyed_fraud.grpc_target) as channel:
        stub = pb_grpc.GRPCInferenceServiceStub(channel)
        infer = pb.ModelInferRequest(model_name="fraud")
        for name in FRAUD.feature_names:
            infer.inputs.add(name=name, datatype="FP32", shape=[1, 1])
            infer.inputs[-1].contents.fp32_contents.append(1.0)
        guarded = [
            (stub.ServerMetadata, pb.ServerMetadataRequest()),
            (stub.ModelMetadata, pb.ModelMetadataRequest(name="fraud")),
            (stub.ModelInfer, infer),
        ]
        for method, request in guarded:
            for metadata in [(), (("authorization", "Bearer wrong"),)]:
                with pytest.raises(grpc.RpcError) as caught:
                    method(request, metadata=metadata, timeout=10)
                assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
                ledger.fuzz("predictor auth")
            method(request, metadata=(("x-api-key", KEY),), timeout=10)
        assert stub.ServerLive(pb.ServerLiveRequest(), timeout=10).live
        assert stub.ModelReady(pb.ModelReadyRequest(name="fraud"), timeout=10).ready


def test_auth_through_the_gateway(tmp_path, rel_models, ledger):
    platform = Platform(tmp_path / "state")
    platform.use_key(KEY).start()
    try:
        apply_yaml(platform.settings, isvc_yaml("fraud", rel_models["fraud-v1"]))
        wait_ready(platform.settings, ["fraud"], 60)
        outcomes = check_auth(platform.client, "gateway", ledger, gateway=True)
        assert outcomes[401] > 50, outcomes
        # The control API takes the same key (tests/reliability/test_control_plane.py
        # attacks it), and the gateway still listens on loopback only.
        for path in ("/platform/status", "/platform/traffic", "/metrics"):
            assert platform.client.get(path).status_code == 401, path
            keyed = platform.client.get(path, headers={"x-api-key": KEY})
            assert keyed.status_code == 200, path
        port = platform.settings.gateway_port
        listening = [
            line.split()[1]
            for line in Path("/proc/net/tcp").read_text().splitlines()[1:]
            if line.split()[3] == "0A"
            and int(line.split()[1].split(":")[1], 16) == port
        ]
        assert listening == [f"0100007F:{port:04X}"], listening
    finally:
        platform.stop()
        platform.client.close()


# -- constant-time comparison --------------------------------------------------------------
def key_comparisons(source: str) -> list[str]:
    """`==`/`!=`/`in` comparisons that involve something named like a key or token:
    a key must only be compared with hmac.compare_digest (or checked against None)."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Compare):
            continue
        if not any(
            isinstance(op, ast.Eq | ast.NotEq | ast.In | ast.NotIn) for op in node.ops
        ):
            continue
        operands = [node.left, *node.comparators]
        if any(isinstance(o, ast.Constant) and o.value is None for o in operands):
            continue
        names = {
            n.id if isinstance(n, ast.Name) else n.attr
            for o in operands
            for n in ast.walk(o)
            if isinstance(n, ast.Name | ast.Attribute)
        }
        if any(
            re.search(r"(?i)(api_?key|presented|token|secret|password)", n)
            for n in names
        ):
            found.append(ast.unparse(node))
    return found


def test_keys_are_compared_in_constant_time():
    # The check can fail: it finds a plain comparison when there is one.
    planted = "def f(self, presented):\n    return presented == self._api_key\n"
    assert key_comparisons(planted) == ["presented == self._api_key"]

    for path in [*REPO_ROOT.glob("serving/*.py"), *REPO_ROOT.glob("app/*.py")]:
        assert key_comparisons(path.read_text()) == [], path
    dataplane = (REPO_ROOT / "serving" / "dataplane.py").read_text()
    authorize = next(
        node
        for node in ast.walk(ast.parse(dataplane))
        if isinstance(node, ast.FunctionDef) and node.name == "authorize"
    )
    calls = {
        ast.unparse(n.func) for n in ast.walk(authorize) if isinstance(n, ast.Call)
    }
    assert "hmac.compare_digest" in calls
    # Both transports go through that one check.
    for transport in ("rest.py", "grpc_server.py"):
        text = (REPO_ROOT / "serving" / transport).read_text()
        assert "self.dataplane.authorize(" in text, transport


# -- no credentials in the repository, the chart defaults or the rendered manifests ------
CREDENTIAL_PATTERNS = {
    "AWS access key id": re.compile(r"\b(AKIA|ASIA)[0-9A-Z]{16}\b"),
    "private key": re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----"),
    "GitHub token": re.compile(r"\bgh[pousr]_[A-Za-z0-9]{36}\b"),
    "Slack token": re.compile(r"\bxox[baprs]-[A-Za-z0-9-]{10,}"),
    "MinIO default": re.compile(r"\bminioadmin\b"),
    "password in a URI": re.compile(
        r"\b[a-z][a-z0-9+.-]*://[^/\s:@'\"]+:([^/\s@'\"]+)@"
    ),
    "assigned secret": re.compile(
        r"(?i)\b(password|passwd|secret(_access)?_?key|api_?key|token)\b\s*[:=]\s*"
        r"[\"']([^\"'\s]{12,})[\"']"
    ),
}
# Placeholders the docs and tests use on purpose: ALL-CAPS words, shell variables,
# templates, and values that say what they are.
HARMLESS = re.compile(
    r"(?i)(placeholder|not-a-secret|example|changeme|test|dummy|fake|\$|\{\{|<|"
    r"^[A-Z_]+$)"
)


def entropy(text: str) -> float:
    counts = Counter(text)
    return -sum(c / len(text) * math.log2(c / len(text)) for c in counts.values())


def credentials_in(text: str) -> list[str]:
    found = []
    for label, pattern in CREDENTIAL_PATTERNS.items():
        for match in pattern.finditer(text):
            value = match.group(match.lastindex) if match.lastindex else match.group(0)
            if label in ("password in a URI", "assigned secret") and (
                HARMLESS.search(value) or entropy(value) < 3.0
            ):
                continue
            found.append(f"{label}: {match.group(0)[:60]}")
    return found


def repository_files() -> list[Path]:
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=REPO_ROOT,
        capture_output=True,
        check=True,
    ).stdout.split(b"\0")
    return [
        REPO_ROOT / p.decode()
        for p in listed
        if p and (REPO_ROOT / p.decode()).is_file()
    ]


def test_the_scanner_finds_what_it_looks_for():
    aws = "AKIA" + "Q" * 16
    planted = {
        f"aws_access_key_id = {aws}": "AWS access key id",
        "-----BEGIN RSA " + "PRIVATE KEY-----": "private key",
        "postgresql://mlflow:" + "Xq7#pLm2vR@db:5432/mlflow": "password in a URI",
        'api_key = "' + "sk-9fJ2kL0qPzX8vB3n" + '"': "assigned secret",
        "MINIO_ROOT_PASSWORD: " + "minio" + "admin": "MinIO default",
    }
    for text, label in planted.items():
        assert [f.split(":")[0] for f in credentials_in(text)] == [label], text
    for harmless in [
        "postgresql://USER:PASSWORD@HOST:5432/mlflow",
        'api_key = "test-key-not-a-secret"',
        "password: {{ .Values.password }}",
        'TOKEN = "${GITHUB_TOKEN}"',
    ]:
        assert credentials_in(harmless) == [], harmless


def test_no_credential_anywhere_in_the_repository():
    files = repository_files()
    assert len(files) > 100
    offenders = {}
    for path in files:
        if path.suffix in {".png", ".jpg", ".gz", ".onnx", ".pb", ".whl"}:
            continue
        if path.name in {
            ".env",
            "id_rsa",
            "id_ed25519",
            "credentials",
        } or path.suffix in {
            ".pem",
            ".key",
            ".p12",
        }:
            offenders[str(path)] = ["a credential file"]
            continue
        try:
            text = path.read_text()
        except UnicodeDecodeError:
            continue
        found = credentials_in(text)
        if found:
            offenders[str(path.relative_to(REPO_ROOT))] = found
    # The k8s policy test plants one URI password to prove its own detector works.
    offenders.pop("tests/k8s/test_k8s_policies.py", None)
    assert offenders == {}


def test_no_credential_in_chart_defaults_or_rendered_manifests():
    from tests.k8s import k8s_render

    renders = k8s_render.all_renders()
    assert len(renders) >= 8
    for render in renders:
        text = yaml.safe_dump_all(render.documents)
        assert credentials_in(text) == [], render.label
    values = (REPO_ROOT / "helm" / "riskserve" / "values.yaml").read_text()
    assert credentials_in(values) == []


# -- the app shows no stack trace and no secret ----------------------------------------------
TRACE = (
    'Traceback (most recent call last):\n  File "/srv/app.py", line 3, in <module>\n'
)


class HostilePredictor(http.server.BaseHTTPRequestHandler):
    """A model server that misbehaves in every way the app might meet."""

    mode = "ok"

    def log_message(self, *args) -> None:  # noqa: ANN002
        pass

    def _send(self, status: int, body: bytes, ctype: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("content-type", ctype)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:  # noqa: N802
        metadata = {
            "name": "fraud",
            "versions": ["1"],
            "platform": "onnx",
            "inputs": [
                {"name": n, "datatype": "FP32", "shape": [-1, 1]}
                for n in FRAUD.feature_names
            ],
            "outputs": [
                {"name": "fraud_probability", "datatype": "FP32", "shape": [-1]},
                {"name": "is_fraud", "datatype": "BOOL", "shape": [-1]},
            ],
        }
        import json

        self._send(200, json.dumps(metadata).encode())

    def do_POST(self) -> None:  # noqa: N802
        import json

        self.rfile.read(int(self.headers.get("content-length", 0)))
        echoed = self.headers.get("authorization", "")
        mode = type(self).mode
        if mode == "500 traceback":
            self._send(500, TRACE.encode(), "text/plain")
        elif mode == "500 json traceback":
            self._send(500, json.dumps({"error": TRACE}).encode())
        elif mode == "400 echoes the key":
            self._send(400, json.dumps({"error": f"bad header {echoed}"}).encode())
        elif mode == "401 echoes the key":
            self._send(401, json.dumps({"error": f"{echoed} is not valid"}).encode())
        elif mode == "502 html":
            self._send(
                502, b"<html><body><h1>Bad gateway</h1></body></html>", "text/html"
            )
        elif mode == "200 not JSON":
            self._send(200, b"<html>oops</html>", "text/html")
        elif mode == "200 wrong shape":
            self._send(200, json.dumps({"outputs": [{"name": "x"}]}).encode())
        elif mode == "200 null":
            self._send(200, b"null")
        elif mode == "connection dropped":
            self.wfile.write(b"HTTP/1.1 200 OK\r\ncontent-length: 1000\r\n\r\n{")
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
        elif mode == "too slow":
            time.sleep(3)
            self._send(200, b"{}")


HOSTILE_MODES = [
    "500 traceback",
    "500 json traceback",
    "400 echoes the key",
    "401 echoes the key",
    "502 html",
    "200 not JSON",
    "200 wrong shape",
    "200 null",
    "connection dropped",
    "too slow",
]


@pytest.fixture(scope="module")
def hostile_predictor():
    with stub_server(HostilePredictor) as url:
        yield url


def shows_nothing_secret(html: str) -> None:
    assert "Traceback" not in html and 'File "' not in html, html
    assert KEY not in html, html


@pytest.mark.parametrize("mode", HOSTILE_MODES)
def test_the_app_shows_no_stack_trace_and_no_secret(hostile_predictor, mode, ledger):
    from riskserve.app.settings import AppSettings
    from riskserve.app.ui import ModelEndpoint, score_form

    HostilePredictor.mode = mode
    settings = AppSettings(
        fraud_url=hostile_predictor,
        credit_url=hostile_predictor,
        api_key=KEY,
        connect_timeout=1,
        request_timeout=1.5,
    )
    endpoint = ModelEndpoint.connect("fraud", settings)
    html = score_form(endpoint, [8.5, 0.6, 0.9, True, True, True, False])
    print(f"{mode}: {re.sub('<[^>]+>', ' ', html)[:200]}")
    shows_nothing_secret(html)
    assert "rs-error" in html
    ledger.fuzz("app error paths")


def test_the_running_app_never_serves_its_key(rel_logs, hostile_predictor):
    from tests.app import app_processes

    HostilePredictor.mode = "500 traceback"
    app = app_processes.start_app(
        rel_logs,
        {
            "RISKSERVE_APP_FRAUD_URL": hostile_predictor,
            "RISKSERVE_APP_CREDIT_URL": hostile_predictor,
            "RISKSERVE_APP_API_KEY": KEY,
        },
    )
    try:
        with httpx.Client(base_url=app.url, timeout=30) as client:
            pages = [client.get(p) for p in ("/", "/config", "/gradio_api/info")]
            assert pages[0].status_code == 200 and pages[1].status_code == 200
            for page in pages:
                assert KEY not in page.text, page.url
                assert "Traceback" not in page.text, page.url
    finally:
        app.stop()
    log = app.process.log_path.read_text()
    assert KEY not in log  # nor in its own log


# -- size limits ---------------------------------------------------------------------------
def raw_exchange(
    port: int, head: bytes, body_chunks: list[bytes] = (), wait: float = 5
) -> bytes:
    with socket.create_connection(("127.0.0.1", port), 5) as sock:
        sock.sendall(head)
        for chunk in body_chunks:
            try:
                sock.sendall(chunk)
            except OSError:  # the server answered and closed: that is the point
                break
        sock.settimeout(wait)
        answer = b""
        try:
            while b"\r\n\r\n" not in answer:
                data = sock.recv(65536)
                if not data:
                    break
                answer += data
        except TimeoutError:
            pass
        return answer


@pytest.mark.parametrize("where", ["predictor", "gateway"])
def test_request_and_body_size_limits_hold(
    keyed_fraud, tmp_path, rel_models, where, ledger
):
    auth = {"authorization": f"Bearer {KEY}"}
    platform = None
    try:
        if where == "gateway":
            platform = Platform(tmp_path / "state").use_key(KEY)
            platform.env["RISKSERVE_GATEWAY_MAX_BODY_BYTES"] = str(1024 * 1024)
            platform.env["RISKSERVE_SERVING_MAX_BATCH_SIZE"] = "1000"
            platform.start()
            apply_yaml(platform.settings, isvc_yaml("fraud", rel_models["fraud-v1"]))
            wait_ready(platform.settings, ["fraud"], 60)
            port, client = platform.settings.gateway_port, platform.client
        else:
            port, client = keyed_fraud.http_port, keyed_fraud.client
        path = "/v2/models/fraud/infer"
        # A declared 1 GB body is refused without waiting for it.
        started = time.monotonic()
        answer = raw_exchange(
            port,
            (
                f"POST {path} HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {KEY}\r\n"
                "content-type: application/json\r\ncontent-length: 1000000000\r\n\r\n"
            ).encode(),
            [b"{" + b" " * 65536] * 40,
        )
        assert answer.startswith(b"HTTP/1.1 400"), answer[:300]
        assert time.monotonic() - started < 5
        # Chunked, with no length announced, above the limit.
        chunk = b" " * 262144
        chunks = [b"%x\r\n%s\r\n" % (len(chunk), chunk)] * 8 + [b"0\r\n\r\n"]
        answer = raw_exchange(
            port,
            (
                f"POST {path} HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {KEY}\r\n"
                "content-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n"
            ).encode(),
            chunks,
        )
        assert answer.startswith(b"HTTP/1.1 400"), answer[:300]
        # Just under the limit is still parsed and answered on its merits.
        padded = httpx.Request("POST", "http://x", json=fraud_body()).content
        padded = (
            padded[:-1]
            + b","
            + b'"pad":"'
            + b"x" * (1024 * 1024 - len(padded) - 20)
            + b'"}'
        )
        response = client.post(path, content=padded, headers=auth)
        assert response.status_code == 200, response.text[:300]
        # More rows than MAX_BATCH_SIZE (1000).
        response = client.post(path, json=fraud_body(1001), headers=auth)
        assert response.status_code == 400 and "1000" in response.json()["error"]
        # Oversized headers and URLs are refused by the HTTP layer, never a 5xx.
        for headers, target in [
            ({**auth, "x-padding": "a" * 200_000}, path),
            (auth, path + "?" + "a" * 60_000),
            ({**auth, **{f"x-h{i}": "v" for i in range(500)}}, path),
        ]:
            try:
                response = client.post(target, json=fraud_body(), headers=headers)
                assert response.status_code < 500, response.status_code
            except httpx.RemoteProtocolError:
                pass  # the server closed the connection on a request it refused
            ledger.fuzz(f"{where} REST")
        assert client.post(path, json=fraud_body(), headers=auth).status_code == 200
    finally:
        if platform is not None:
            platform.stop()
            platform.client.close()


def test_grpc_message_limit_holds(keyed_fraud):
    with grpc.insecure_channel(
        keyed_fraud.grpc_target,
        options=[("grpc.max_send_message_length", 64 * 1024 * 1024)],
    ) as channel:
        stub = pb_grpc.GRPCInferenceServiceStub(channel)
        request = pb.ModelInferRequest(model_name="fraud")
        tensor = request.inputs.add(name="used_chip", datatype="FP32", shape=[1, 1])
        tensor.contents.fp32_contents.extend([1.0] * 600_000)  # ~2.4 MB > 1 MiB
        with pytest.raises(grpc.RpcError) as caught:
            stub.ModelInfer(request, metadata=(("x-api-key", KEY),), timeout=10)
        assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
