"""`spec.transformer` on the local platform: a transformer process per transformer
revision in front of the predictor component, each component split by its own
`canaryTrafficPercent`, as KServe splits them.

The end-to-end test runs the daemon, the contract fraud model and a Feast repository
materialised from generated events; the in-process tests hold the spec rules and the
state's JSON and status shape."""

from __future__ import annotations

import collections
import concurrent.futures
import json
import os
import signal
import statistics
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import httpx
import pytest
from riskserve.localplatform.apply_check import ApplyError, check_documents
from riskserve.localplatform.client import (
    PlatformError,
    apply_yaml,
    delete,
    status,
    traffic,
    wait_ready,
)
from riskserve.localplatform.controller import LocalPlatform
from riskserve.localplatform.settings import PlatformSettings
from riskserve.localplatform.spec_rules import load_yaml_documents
from riskserve.localplatform.state import (
    InferenceServiceState,
    PlatformState,
    Revision,
)

from tests.localplatform.platform_helpers import Platform, fraud_request
from tests.localplatform.test_gateway_grpc import grpc_raw_infer
from tests.transformer.transformer_helpers import (
    FeatureRepo,
    build_feature_repo,
    outputs,
    raw_request,
)

KEY = "transformer-key"
AUTH = {"authorization": f"Bearer {KEY}"}


def isvc_with_transformer(
    storage_uri: Path | str,
    feature_repo: Path | str,
    canary: int | None = None,
    transformer_canary: int | None = None,
    transformer_args: tuple[str, ...] = (),
    transformer_env: str = "",
    name: str = "fraud",
) -> str:
    """An InferenceService as on a cluster: the predictor and KServe's transformer
    container (its image is not run locally; riskserve's transformer is)."""
    canary_line = f"    canaryTrafficPercent: {canary}\n" if canary is not None else ""
    t_canary = (
        f"    canaryTrafficPercent: {transformer_canary}\n"
        if transformer_canary is not None
        else ""
    )
    args = "".join(
        f"        - {json.dumps(a)}\n"
        for a in ("--feature_repo", str(feature_repo), *transformer_args)
    )
    return (
        "apiVersion: serving.kserve.io/v1beta1\n"
        "kind: InferenceService\n"
        f"metadata:\n  name: {name}\n"
        "spec:\n"
        "  predictor:\n"
        f"{canary_line}"
        "    model:\n"
        "      modelFormat:\n        name: onnx\n"
        "      protocolVersion: v2\n"
        f"      storageUri: {storage_uri}\n"
        "  transformer:\n"
        f"{t_canary}"
        "    containers:\n"
        "      - name: kserve-container\n"
        "        image: ghcr.io/example/riskserve-transformer:dev\n"
        "        args:\n"
        f"{args}"
        f"{transformer_env}"
    )


# -- in-process: the rules and the state -------------------------------------------


@pytest.mark.inprocess
def test_bad_transformer_specs_are_refused_with_one_line_naming_the_rule(
    tmp_path: Path,
) -> None:
    roots = [tmp_path.resolve()]
    model, repo = tmp_path / "model", tmp_path / "repo"

    def problems(text: str) -> list[str]:
        documents = load_yaml_documents(text)
        ((_, errors),) = check_documents(documents, 20, roots)
        return errors

    assert problems(isvc_with_transformer(model, repo)) == []
    assert (
        problems(
            isvc_with_transformer(
                model, repo, transformer_args=("--model_name", "fraud", "--protocol=v2")
            )
        )
        == []
    ), "KServe's own arguments, with the values the platform injects, pass"
    (error,) = problems(
        isvc_with_transformer(model, repo, transformer_args=("--workers", "4"))
    )
    assert "'--workers' is not allowed" in error
    assert "--feature_repo, --predictor_request_timeout_seconds" in error
    assert "\n" not in error
    (error,) = problems(isvc_with_transformer(model, "/etc/secrets/repo"))
    assert "--feature_repo '/etc/secrets/repo' is outside the model roots" in error
    (error,) = problems(
        isvc_with_transformer(
            model,
            repo,
            transformer_env="        env:\n          - name: RISKSERVE_TRANSFORMER_API_KEY\n"
            "            value: x\n",
        )
    )
    assert "'RISKSERVE_TRANSFORMER_API_KEY' is not allowed" in error
    assert "RISKSERVE_TRANSFORMER_FAIL_OPEN" in error
    assert (
        problems(
            isvc_with_transformer(
                model,
                repo,
                transformer_env="        env:\n          - name: RISKSERVE_TRANSFORMER_FAIL_OPEN\n"
                "            value: 'true'\n",
            )
        )
        == []
    )
    (error,) = problems(
        isvc_with_transformer(model, repo, transformer_args=("--model_name", "credit"))
    )
    assert "must be the InferenceService's name, 'fraud'" in error
    (error,) = problems(
        isvc_with_transformer(
            model,
            repo,
            transformer_args=("--predictor_request_timeout_seconds", "soon"),
        )
    )
    assert "not a number of seconds" in error
    text = isvc_with_transformer(model, repo).replace(
        "        image:", "        command: [sh, -c, id]\n        image:"
    )
    assert problems(text) == [
        "spec.transformer.containers[0].command is not run by the local platform"
    ]


@pytest.mark.inprocess
def test_the_transformer_component_has_its_own_revisions_split_and_status() -> None:
    spec = {
        "predictor": {"model": {"storageUri": "/m"}},
        "transformer": {"canaryTrafficPercent": 20, "containers": [{"name": "c"}]},
    }
    service = InferenceServiceState(name="fraud", spec=spec)
    service.revisions.append(
        Revision("fraud-predictor-00001", "/m", {}, "p1", ready=True)
    )
    service.settle()
    component = InferenceServiceState(name="fraud", spec=spec, component="transformer")
    service.transformer = component
    assert component.next_revision_name() == "fraud-transformer-00001"
    assert component.predictor is spec["transformer"]
    component.revisions.append(
        Revision("fraud-transformer-00001", "/r", {}, "t1", ready=True)
    )
    component.settle()
    component.revisions.append(
        Revision("fraud-transformer-00002", "/r", {}, "t2", ready=True)
    )
    assert component.next_revision_name() == "fraud-transformer-00003"
    assert [(r.name, p) for r, p in component.routes()] == [
        ("fraud-transformer-00002", 20),
        ("fraud-transformer-00001", 80),
    ]
    assert [(r.name, p) for r, p in service.routes()] == [
        ("fraud-predictor-00001", 100)
    ]
    assert service.front is component
    st = service.status("http://gw")
    assert set(st["components"]) == {"predictor", "transformer"}
    t = st["components"]["transformer"]
    assert t["latestCreatedRevision"] == "fraud-transformer-00002"
    assert t["latestRolledoutRevision"] == "fraud-transformer-00001"
    assert [x["percent"] for x in t["traffic"]] == [20, 80]
    assert {"type": "TransformerReady", "status": "True"} in st["conditions"]

    # JSON round trip, and a state file written before transformers existed.
    again = PlatformState.from_json(PlatformState({"fraud": service}).to_json())
    restored = again.services["fraud"]
    assert restored.transformer is not None
    assert restored.transformer.component == "transformer"
    assert [r.name for r in restored.transformer.revisions] == [
        "fraud-transformer-00001",
        "fraud-transformer-00002",
    ]
    old = PlatformState({"fraud": service}).to_json()
    for key in ("transformer", "component"):
        del old["services"]["fraud"][key]
    legacy = PlatformState.from_json(old).services["fraud"]
    assert legacy.transformer is None and legacy.component == "predictor"
    assert legacy.front is legacy


@pytest.mark.inprocess
def test_applies_make_transformer_revisions_count_them_and_drop_them(
    tmp_path: Path,
) -> None:
    model, repo = tmp_path / "model", tmp_path / "repo"

    def documents(text: str) -> list[dict]:
        return load_yaml_documents(text)

    settings = PlatformSettings(state_dir=tmp_path / "state", max_predictor_processes=1)
    with pytest.raises(ApplyError, match="RISKSERVE_MAX_PREDICTOR_PROCESSES"):
        LocalPlatform(settings, env={}).apply_documents(
            documents(isvc_with_transformer(model, repo))
        )
    platform = LocalPlatform(
        settings.model_copy(update={"max_predictor_processes": 4}), {}
    )
    (message,) = platform.apply_documents(documents(isvc_with_transformer(model, repo)))
    assert message == (
        f"fraud: created revision fraud-predictor-00001 ({model}); "
        f"transformer: created revision fraud-transformer-00001 ({repo})"
    )
    (message,) = platform.apply_documents(
        documents(isvc_with_transformer(model, repo, transformer_canary=10))
    )
    assert message.endswith(
        "transformer: unchanged revision fraud-transformer-00001, canaryTrafficPercent 10"
    )
    (message,) = platform.apply_documents(
        documents(
            isvc_with_transformer(
                model,
                repo,
                transformer_args=("--predictor_request_timeout_seconds", "2"),
            )
        )
    )
    assert message.endswith(
        f"transformer: created revision fraud-transformer-00002 ({repo})"
    )
    service = platform.state.services["fraud"]
    assert [r.name for r in service.revisions] == ["fraud-predictor-00001"]
    # Saved and loaded again, as after `down` and `up`.
    reloaded = LocalPlatform(settings, {}).state.services["fraud"]
    assert reloaded.transformer is not None
    assert [r.name for r in reloaded.transformer.revisions] == [
        "fraud-transformer-00001",
        "fraud-transformer-00002",
    ]
    plain = isvc_with_transformer(model, repo).split("  transformer:")[0]
    (message,) = platform.apply_documents(documents(plain))
    assert message == "fraud: unchanged revision fraud-predictor-00001"
    assert platform.state.services["fraud"].transformer is None


# -- end to end -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def feature_repo(tmp_path_factory: pytest.TempPathFactory) -> FeatureRepo:
    return build_feature_repo(tmp_path_factory.mktemp("transformer-features"))


@pytest.fixture
def keyed_platform(tmp_path: Path) -> Iterator[Platform]:
    running = Platform(tmp_path / "state").use_key(KEY).start()
    try:
        yield running
    finally:
        running.stop()
        running.client.close()


def deploy(platform: Platform, text: str, names: tuple[str, ...] = ("fraud",)) -> None:
    apply_yaml(platform.settings, text)
    wait_ready(platform.settings, list(names), 180)


def served(
    platform: Platform, repo: FeatureRepo, requests: int, workers: int = 4
) -> collections.Counter:
    """(transformer revision, predictor's model version) of each answer."""
    card = str(repo.events.cards["card_id"].iloc[1])
    start = int(repo.events.transactions["event_timestamp"].max().value // 1000)

    def one(i: int) -> tuple[str, str]:
        response = platform.client.post(
            "/v2/models/fraud/infer",
            json=raw_request(card, start + (i + 1) * 1_000_000),
            headers=AUTH,
        )
        assert response.status_code == 200, response.text
        return response.headers["x-riskserve-revision"], response.json()[
            "model_version"
        ]

    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        return collections.Counter(pool.map(one, range(requests)))


def components(platform: Platform) -> dict:
    (item,) = [
        i
        for i in status(platform.settings)["inferenceservices"]
        if i["metadata"]["name"] == "fraud"
    ]
    return item["status"]["components"]


def p50_ms(call, n: int = 200) -> float:
    for _ in range(20):
        call()
    times = []
    for _ in range(n):
        started = time.perf_counter()
        call()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


@pytest.mark.e2e
def test_transformer_in_front_of_the_predictor_each_component_split_on_its_own(
    keyed_platform: Platform, model_dirs: dict[str, Path], feature_repo: FeatureRepo
) -> None:
    platform, repo = keyed_platform, feature_repo.repo
    deploy(platform, isvc_with_transformer(model_dirs["v1"], repo))

    # A raw transaction: the decision and the features it used, from the transformer
    # revision, which reached the predictor component through the gateway.
    card = str(feature_repo.events.cards["card_id"].iloc[3])
    when = int(feature_repo.events.transactions["event_timestamp"].max().value // 1000)
    answer = platform.client.post(
        "/v2/models/fraud/infer", json=raw_request(card, when + 1), headers=AUTH
    )
    assert answer.status_code == 200, answer.text
    assert answer.headers["x-riskserve-revision"] == "fraud-transformer-00001"
    assert answer.json()["model_version"] == "1"  # the predictor revision's version
    got = outputs(answer)
    assert {"fraud_probability", "is_fraud", "distance_from_home"} <= set(got)
    assert got["unknown_entity"] == [False]
    assert (
        platform.client.post(
            "/v2/models/fraud/infer", json=raw_request(card, when + 2)
        ).status_code
        == 401
    )
    st = components(platform)
    assert st["predictor"]["latestReadyRevision"] == "fraud-predictor-00001"
    assert st["transformer"]["latestReadyRevision"] == "fraud-transformer-00001"
    assert [t["percent"] for t in st["transformer"]["traffic"]] == [100]

    # A transformer that dies after it was ready is restarted, as a predictor is.
    first_pid = status(platform.settings)["revisions"]["fraud-transformer-00001"]["pid"]
    os.kill(first_pid, signal.SIGKILL)
    deadline = time.monotonic() + 120
    while True:
        revision = status(platform.settings)["revisions"]["fraud-transformer-00001"]
        if revision["ready"] and revision["pid"] not in (None, first_pid):
            break
        assert time.monotonic() < deadline, f"not restarted: {revision}"
        time.sleep(0.2)
    again = platform.client.post(
        "/v2/models/fraud/infer", json=raw_request(card, when + 2), headers=AUTH
    )
    assert again.status_code == 200, again.text

    # gRPC: the gateway's gRPC port routes to the transformer's gRPC server (raw
    # fields in, the REST answer's outputs out); without the key, UNAUTHENTICATED.
    with grpc.insecure_channel(
        f"127.0.0.1:{platform.settings.gateway_grpc_port}"
    ) as ch:
        infer = ch.unary_unary("/inference.GRPCInferenceService/ModelInfer")
        with pytest.raises(grpc.RpcError) as refused:
            infer(b"\x0a\x05fraud", timeout=10)
        assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
        with pytest.raises(grpc.RpcError) as refused:
            infer(b"\x0a\x05fraud", metadata=tuple(AUTH.items()), timeout=10)
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "missing input tensor(s): card_id" in (refused.value.details() or "")
    by_grpc = grpc_raw_infer(platform, raw_request(card, when + 3), tuple(AUTH.items()))
    assert by_grpc.revision == "fraud-transformer-00001"
    assert by_grpc.model_version == "1"
    assert list(by_grpc.outputs) == list(got)
    assert by_grpc.outputs["unknown_entity"] == [False]

    # What the transformer hop costs: the predictor component alone (features, via
    # the gateway's predictor listener) against raw transactions through the main
    # port (gateway, transformer with its online lookup, gateway, predictor).
    report = status(platform.settings)
    listener = report["gateway"]["predictorListener"]
    direct = (
        f"http://127.0.0.1:{report['revisions']['fraud-transformer-00001']['httpPort']}"
    )
    features = fraud_request()
    raw = raw_request(card, when + 4)
    with httpx.Client(headers=AUTH) as client:
        predictor_ms = p50_ms(
            lambda: client.post(f"{listener}/v2/models/fraud/infer", json=features)
        )
        transformer_ms = p50_ms(
            lambda: client.post(f"{direct}/v2/models/fraud/infer", json=raw)
        )
        gateway_ms = p50_ms(
            lambda: client.post(
                f"{platform.settings.gateway_url}/v2/models/fraud/infer", json=raw
            )
        )
    print(
        f"p50: predictor via the listener {predictor_ms:.2f} ms, transformer direct "
        f"{transformer_ms:.2f} ms, raw through the gateway {gateway_ms:.2f} ms "
        f"(the transformer hop adds {gateway_ms - predictor_ms:.2f} ms)"
    )

    # A transformer canary: a second transformer revision takes half of the
    # requests; the predictor stays on its one revision.
    deploy(
        platform,
        isvc_with_transformer(
            model_dirs["v1"],
            repo,
            transformer_canary=50,
            transformer_args=("--predictor_request_timeout_seconds", "3"),
        ),
    )
    st = components(platform)
    assert [
        (t["revisionName"], t["percent"]) for t in st["transformer"]["traffic"]
    ] == [
        ("fraud-transformer-00002", 50),
        ("fraud-transformer-00001", 50),
    ]
    assert [(t["revisionName"], t["percent"]) for t in st["predictor"]["traffic"]] == [
        ("fraud-predictor-00001", 100)
    ]
    split = served(platform, feature_repo, 400)
    share = split[("fraud-transformer-00002", "1")] / 400
    print(f"transformer canary share over 400 requests: {share:.3f} ({dict(split)})")
    # sd 2.5 points over 400: 0.40-0.60 is four of them.
    assert 0.40 <= share <= 0.60
    assert set(split) == {
        ("fraud-transformer-00001", "1"),
        ("fraud-transformer-00002", "1"),
    }

    # Promote the transformer, then a predictor canary under it: the predictor
    # component splits on its own; every answer comes from the one transformer.
    promoted = isvc_with_transformer(
        model_dirs["v2"],
        repo,
        canary=50,
        transformer_args=("--predictor_request_timeout_seconds", "3"),
    )
    applied = apply_yaml(platform.settings, promoted)
    assert "transformer: unchanged revision fraud-transformer-00002" in applied[0]
    wait_ready(platform.settings, ["fraud"], 180)
    st = components(platform)
    assert [
        (t["revisionName"], t["percent"]) for t in st["transformer"]["traffic"]
    ] == [("fraud-transformer-00002", 100)]
    assert st["transformer"]["previousRolledoutRevision"] == "fraud-transformer-00001"
    assert [(t["revisionName"], t["percent"]) for t in st["predictor"]["traffic"]] == [
        ("fraud-predictor-00002", 50),
        ("fraud-predictor-00001", 50),
    ]
    split = served(platform, feature_repo, 400)
    share = split[("fraud-transformer-00002", "2")] / 400
    print(f"predictor canary share under the transformer: {share:.3f} ({dict(split)})")
    assert 0.40 <= share <= 0.60
    assert set(split) == {
        ("fraud-transformer-00002", "1"),
        ("fraud-transformer-00002", "2"),
    }

    # The gateway's counters name the InferenceService of transformer revisions too,
    # and /platform/traffic lists them beside the predictor's.
    metrics = platform.client.get("/metrics", headers=AUTH).text
    assert (
        'riskserve_gateway_requests_total{code="200",isvc="fraud",'
        'revision="fraud-transformer-00002"}' in metrics
    )
    listed = traffic(platform.settings)["inferenceservices"]["fraud"]
    assert {r["name"] for r in listed["transformer"]["revisions"]} >= {
        "fraud-transformer-00002"
    }
    assert all("-predictor-" in r["name"] for r in listed["revisions"])

    # Bad transformer arguments: refused whole, with one line; nothing changes.
    with pytest.raises(PlatformError) as bad:
        apply_yaml(
            platform.settings,
            isvc_with_transformer(
                model_dirs["v2"], repo, transformer_args=("--workers", "2")
            ),
        )
    assert "'--workers' is not allowed" in str(bad.value)
    assert "\n" not in str(bad.value)

    # Delete: every predictor and transformer process stops.
    pids = [r["pid"] for r in status(platform.settings)["revisions"].values()]
    # two predictors (a canary) and the promoted transformer
    assert len([p for p in pids if p]) == 3
    delete(platform.settings, "fraud")
    deadline = time.monotonic() + 20
    while any(p and os.path.exists(f"/proc/{p}") for p in pids):
        assert time.monotonic() < deadline, f"still running after delete: {pids}"
        time.sleep(0.1)

    # A transformer that never becomes ready: 503, never the predictor behind it.
    empty = platform.settings.state_dir / "no-feature-repo"
    empty.mkdir()
    apply_yaml(platform.settings, isvc_with_transformer(model_dirs["v1"], empty))
    deadline = time.monotonic() + 60
    while components(platform)["predictor"]["latestReadyRevision"] is None:
        assert time.monotonic() < deadline
        time.sleep(0.2)
    response = platform.client.post(
        "/v2/models/fraud/infer", json=raw_request(card, when + 4), headers=AUTH
    )
    assert response.status_code == 503, response.text
    assert "no ready revision" in response.json()["error"]
    features_answer = platform.client.post(
        "/v2/models/fraud/infer", json=fraud_request(), headers=AUTH
    )
    assert features_answer.status_code == 503  # not bypassed to the predictor
