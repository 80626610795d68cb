"""The control plane attacked as issue 22 found it open, against the running daemon:
calls without the key, requests a web page can forge, env that runs code or turns auth
off, names that escape the state folder, a YAML bomb, a flood of InferenceServices, a
large document during inference, storage paths that probe the disk, a state file with
a service that cannot run, and `riskserve delete`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from riskserve.localplatform.client import apply_yaml, status, wait_ready
from riskserve.localplatform.processes import pid_alive
from riskserve.localplatform.state import InferenceServiceState, PlatformState

from tests.localplatform.platform_helpers import Platform, isvc_yaml
from tests.reliability.reliability_helpers import REPO_ROOT, SteadyLoad, fraud_bodies

# Built at run time so that this file does not itself look like it holds a key.
KEY = "control-" + "plane-" + "0123456789abcdef"
KEYED = {"authorization": f"Bearer {KEY}"}
YAML = {"content-type": "application/yaml"}


@pytest.fixture(scope="module")
def fraud_canary(tmp_path_factory, rel_models):
    """A keyed platform serving fraud v1 with v2 as a 50% canary."""
    platform = Platform(tmp_path_factory.mktemp("keyed") / "state").use_key(KEY).start()
    try:
        settings = platform.settings
        apply_yaml(settings, isvc_yaml("fraud", rel_models["fraud-v1"]))
        wait_ready(settings, ["fraud"], 60)
        apply_yaml(settings, isvc_yaml("fraud", rel_models["fraud-v2"], canary=50))
        wait_ready(settings, ["fraud"], 60)
        yield platform
    finally:
        platform.stop()
        platform.client.close()


@pytest.fixture(scope="module")
def bare(tmp_path_factory):
    """A platform with no key and no service: loopback only."""
    platform = Platform(tmp_path_factory.mktemp("bare") / "state").start()
    try:
        yield platform
    finally:
        platform.stop()
        platform.client.close()


def split(platform: Platform) -> list[tuple[str, int]]:
    report = status(platform.settings)
    predictor = report["inferenceservices"][0]["status"]["components"]["predictor"]
    return [(t["revisionName"], t["percent"]) for t in predictor["traffic"]]


def served(platform: Platform, requests: int) -> Counter:
    from tests.localplatform.platform_helpers import fraud_request

    counts: Counter = Counter()
    for _ in range(requests):
        response = platform.client.post(
            "/v2/models/fraud/infer", json=fraud_request(1), headers=KEYED
        )
        assert response.status_code == 200, response.text
        counts[response.headers["x-riskserve-revision"]] += 1
    return counts


def test_calls_without_the_key_change_nothing_and_reveal_nothing(
    fraud_canary, rel_models, ledger
):
    platform = fraud_canary
    before = split(platform)
    other = isvc_yaml("fraud", rel_models["credit"]).encode()
    attempts = [
        (
            "POST",
            "/platform/inferenceservices/fraud/patch",
            b'{"canaryTrafficPercent":100}',
        ),
        (
            "POST",
            "/platform/inferenceservices/nope/patch",
            b'{"canaryTrafficPercent":100}',
        ),
        ("POST", "/platform/apply", other),
        ("DELETE", "/platform/inferenceservices/fraud", b""),
        ("DELETE", "/platform/inferenceservices/nope", b""),
        ("GET", "/platform/status", b""),
        ("GET", "/platform/traffic", b""),
        ("GET", "/metrics", b""),
        ("GET", "/platform/anything", b""),
    ]
    answers = Counter()
    for method, path, body in attempts:
        for headers in ({}, {"authorization": "Bearer wrong"}, {"x-api-key": KEY[:-1]}):
            for ctype in ("application/json", "application/yaml", "text/plain"):
                response = platform.client.request(
                    method,
                    path,
                    content=body,
                    headers={"content-type": ctype, **headers},
                )
                answers[(response.status_code, response.content)] += 1
    # Every call, to a service that exists or not, got the same 401.
    assert list(answers) == [(401, b'{"error": "missing or invalid API key"}')], answers
    for name in ("fraud", "nope"):
        response = platform.client.post(f"/v2/models/{name}/infer", json={"inputs": []})
        assert (response.status_code, response.content) == next(iter(answers))
    assert split(platform) == before
    counts = served(platform, 100)
    assert set(counts) == {"fraud-predictor-00001", "fraud-predictor-00002"}, counts
    ledger.attack(
        "control calls without the key",
        f"{sum(answers.values())} of {sum(answers.values())} got one identical 401; "
        f"split unchanged {before}",
    )


def test_env_that_runs_code_or_turns_auth_off_is_refused(
    fraud_canary, rel_models, tmp_path, ledger
):
    platform = fraud_canary
    marker = tmp_path / "owned"
    attacks = {
        "code via PYTHONWARNINGS + BROWSER": [
            ("PYTHONWARNINGS", "ignore::antigravity.x"),
            ("BROWSER", f"sh -c 'id > {marker}' %s"),
        ],
        "auth off via the predictor's key": [("RISKSERVE_SERVING_API_KEY", "")],
    }
    for label, entries in attacks.items():
        env = "      env:\n" + "".join(
            f"        - name: {name}\n          value: {json.dumps(value)}\n"
            for name, value in entries
        )
        text = isvc_yaml("fraud", rel_models["fraud-v2"], extra=env)
        response = platform.client.post(
            "/platform/apply", content=text.encode(), headers=YAML | KEYED
        )
        assert response.status_code == 400, (label, response.text)
        assert "not allowed on the local platform" in response.json()["error"]
    time.sleep(1.0)
    assert not marker.exists()
    keyless = [
        platform.client.post("/v2/models/fraud/infer", json={"inputs": []}).status_code
        for _ in range(100)
    ]
    assert Counter(keyless) == {401: 100}
    assert len(status(platform.settings)["revisions"]) == 2  # no new revision
    ledger.attack(
        "predictor env that runs code or drops the key",
        "400 naming the allow-list; no command ran; 100 of 100 keyless calls 401",
    )


def test_names_that_escape_or_overflow_are_refused_and_the_split_holds(
    fraud_canary, rel_models, ledger
):
    platform = fraud_canary
    escaped = Path("/tmp/x/escaped")
    for name in ("../../../../tmp/x/escaped", "a" * 300, "Fraud", "a" * 64):
        text = isvc_yaml("placeholder", rel_models["fraud-v1"]).replace(
            "name: placeholder", f"name: {json.dumps(name)}"
        )
        response = platform.client.post(
            "/platform/apply", content=text.encode(), headers=YAML | KEYED
        )
        assert response.status_code == 400
        assert "DNS-1123" in response.json()["error"]
        assert len(response.content) < 1000
    time.sleep(0.5)  # a few controller ticks
    assert not list(escaped.parent.glob("escaped*"))
    counts = served(platform, 100)
    assert counts["fraud-predictor-00002"] >= 25, counts  # the 50% canary is served
    ledger.attack(
        "names with ../ or 300 characters",
        f"400 (DNS-1123); nothing written outside the state folder; canary served "
        f"{counts['fraud-predictor-00002']} of 100",
    )


def test_a_yaml_bomb_gets_a_short_400_and_is_not_stored(bare, rel_models, ledger):
    bomb = 'a: &a ["x","x","x","x","x","x","x","x","x","x"]\n' + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [{','.join(['*' + chr(97 + i)] * 10)}]\n"
        for i in range(8)
    )
    good = isvc_yaml("fraud", rel_models["fraud-v1"])
    texts = {
        "storageUri": bomb + good.replace("storageUri: ", "storageUri: *i #"),
        "annotation": bomb
        + good.replace(
            "  name: fraud\n", "  name: fraud\n  annotations:\n    riskserve.io/x: *i\n"
        ),
    }
    sizes = {}
    for where, text in texts.items():
        started = time.monotonic()
        response = bare.client.post(
            "/platform/apply", content=text.encode(), headers=YAML
        )
        assert response.status_code == 400, response.text
        assert "alias" in response.json()["error"]
        sizes[where] = (len(text), len(response.content), time.monotonic() - started)
        assert len(response.content) < 1000
    state = bare.settings.state_dir / "platform" / "state.json"
    assert not state.exists() or "x" * 100 not in state.read_text()
    ledger.attack(
        "YAML alias bomb",
        "; ".join(
            f"in {w}: {a} B sent, {b} B answered in {t * 1000:.0f} ms"
            for w, (a, b, t) in sizes.items()
        ),
    )


def test_forged_browser_requests_are_refused(bare, rel_models, ledger):
    text = isvc_yaml("fraud", rel_models["fraud-v1"]).encode()
    forged = {
        "text/plain": {"content-type": "text/plain"},
        "a form": {"content-type": "application/x-www-form-urlencoded"},
        "a foreign Origin": {"origin": "http://evil.example", **YAML},
        "another local page": {"origin": "http://localhost:3000", **YAML},
        "a rebound Host": {"host": "evil.example:8000", **YAML},
    }
    refused = {}
    for label, headers in forged.items():
        response = bare.client.post("/platform/apply", content=text, headers=headers)
        refused[label] = response.status_code
        assert response.status_code in (403, 415), (label, response.text)
    assert status(bare.settings)["inferenceservices"] == []
    ledger.attack(
        "requests a web page can forge",
        ", ".join(f"{k} {v}" for k, v in refused.items()),
    )


def test_storage_errors_do_not_say_what_exists(bare, ledger):
    errors = {}
    for uri in ("/etc/shadow", "/root/.ssh", "/etc/no-such-thing", "/var/lib"):
        response = bare.client.post(
            "/platform/apply", content=isvc_yaml("fraud", uri).encode(), headers=YAML
        )
        assert response.status_code == 400
        errors[uri] = response.json()["error"].replace(uri, "PATH")
    assert len(set(errors.values())) == 1, errors
    ledger.attack(
        "storageUri probing the disk",
        f"{len(errors)} paths, existing or not, got the same 400",
    )


def test_a_flood_and_large_documents_never_stall_inference(
    fraud_canary, rel_models, ledger
):
    platform = fraud_canary
    services_before = status(platform.settings)["revisions"]
    load = SteadyLoad(
        platform.settings.gateway_port,
        "/v2/models/fraud/infer",
        fraud_bodies(),
        rate=100,
        seconds=10,
        connections=4,
        headers=KEYED,
    ).start()
    time.sleep(1.5)
    flood = "---\n".join(
        isvc_yaml(f"flood-{i}", rel_models["fraud-v1"]) for i in range(1000)
    )
    labels = "".join(f"    label-{i}: value-{i}\n" for i in range(34_000))
    large = isvc_yaml("fraud", rel_models["fraud-v2"], canary=50).replace(
        "  name: fraud\n", "  name: fraud\n  labels:\n" + labels
    )
    documents = {
        "1,000 InferenceServices": (flood, 400),
        "a 5 MB document": (large * 5, 400),
        "a 1 MB document": (large, 200),
    }
    took = {}
    for label, (text, expected) in documents.items():
        started = time.monotonic()
        response = platform.client.post(
            "/platform/apply", content=text.encode(), headers=YAML | KEYED, timeout=60
        )
        took[label] = time.monotonic() - started
        assert response.status_code == expected, (label, response.text[:300])
        if expected == 400:
            assert "RISKSERVE_MAX" in response.json()["error"]
    samples = load.join()
    failed = [s for s in samples if s.status != 200]
    assert not failed, failed[:5]
    assert len(samples) >= 0.9 * 100 * 10
    # Nothing was started for the flood: the same revisions, no flood-* service.
    assert status(platform.settings)["revisions"].keys() == services_before.keys()
    slowest = max(s.latency for s in samples)
    ledger.attack(
        "flood of InferenceServices and large documents",
        ", ".join(
            f"{k} refused in {v:.2f} s"
            if documents[k][1] == 400
            else f"{k} applied in {v:.2f} s"
            for k, v in took.items()
        )
        + f"; {len(samples)} inference requests meanwhile, 0 failed, slowest "
        f"{slowest * 1000:.0f} ms",
    )


def riskserve(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "riskserve", *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO_ROOT,
    )


def test_a_state_file_with_a_bad_service_neither_blocks_others_nor_survives_delete(
    tmp_path, rel_models, ledger
):
    platform = Platform(tmp_path / "state")
    bad = InferenceServiceState(name="../" + "x" * 300, spec={"predictor": {}})
    PlatformState({bad.name: bad}).save(
        platform.settings.state_dir / "platform" / "state.json"
    )
    platform.start()
    try:
        settings = platform.settings
        apply_yaml(settings, isvc_yaml("fraud", rel_models["fraud-v1"]))
        wait_ready(settings, ["fraud"], 60)
        assert platform.infer().status_code == 200
        report = status(settings)
        states = {
            i["metadata"]["name"]: i["status"] for i in report["inferenceservices"]
        }
        condition = states[bad.name]["conditions"][0]
        assert (
            condition["reason"] == "InvalidSpec" and "DNS-1123" in condition["message"]
        )
        pid = report["revisions"]["fraud-predictor-00001"]["pid"]

        done = riskserve(["delete", "fraud"], platform.env)
        assert done.returncode == 0, done.stderr
        assert "fraud: deleted" in done.stdout
        deadline = time.monotonic() + 10
        while pid_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not pid_alive(pid)
        assert platform.infer().status_code == 404
        missing = riskserve(["delete", "fraud"], platform.env)
        assert missing.returncode == 1
        assert (
            missing.stderr.count("\n") == 1
            and "unknown InferenceService" in missing.stderr
        )
        ledger.attack(
            "a state file holding a 303-character name",
            "marked InvalidSpec; a service applied after it served; `riskserve delete` "
            "stopped its predictor",
        )
    finally:
        platform.stop()
        platform.client.close()


def test_a_network_address_without_a_key_is_refused(tmp_path, ledger):
    env = {
        "RISKSERVE_STATE_DIR": str(tmp_path / "state"),
        "RISKSERVE_HOST": "0.0.0.0",
        "RISKSERVE_GATEWAY_PORT": "1",
    }
    env = {k: v for k, v in {**os.environ, **env}.items() if "API_KEY" not in k}
    env.pop("RISKSERVE_PLATFORM_ADMIN_KEY", None)
    up = subprocess.run(
        [sys.executable, "-m", "riskserve", "up"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO_ROOT,
    )
    assert up.returncode == 1
    assert up.stderr.count("\n") == 1 and "without a key" in up.stderr, up.stderr
    daemon = subprocess.run(
        [sys.executable, "-m", "riskserve.localplatform.daemon"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO_ROOT,
    )
    assert daemon.returncode == 2 and "without a key" in daemon.stderr
    ledger.attack(
        "gateway on 0.0.0.0 without a key", "refused with one line by up and the daemon"
    )


def test_the_gateways_data_plane_refuses_what_web_pages_send(bare: Platform) -> None:
    """A page's request to the gateway's v2 side is a 403 before any routing (even a
    rebound name's "same origin"); a program's is routed (404: no such service); the
    control API keeps its own rule (the same origin may read status)."""
    base = bare.settings.gateway_url
    for headers in (
        {"origin": "https://evil.example", "content-type": "text/plain"},
        {"origin": base, "sec-fetch-site": "same-origin"},
        {"sec-fetch-site": "cross-site"},
    ):
        refused = bare.client.post(
            "/v2/models/fraud/infer", content=b"{}", headers=headers
        )
        assert refused.status_code == 403, headers
        assert "web pages are refused" in refused.json()["error"]
    assert bare.client.post("/v2/models/fraud/infer", content=b"{}").status_code == 404
    assert (
        bare.client.get("/platform/status", headers={"origin": base}).status_code == 200
    )
