"""The feature layer on a cluster, as the chart and kustomize render it: the fraud
and credit transformers (spec.transformer) with KServe's arguments and canaries of
their own, the in-cluster Valkey, the `feast apply` Job and the materialisation
CronJob (card and customer views), the NetworkPolicies around them, and no
credential outside a Secret."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from feast import FeatureView
from riskserve.features.repo import CUSTOMER_ACTIVITY_FILE, definitions, repo_config
from riskserve.features.store_config import FeatureStoreSettings
from riskserve.transformer.__main__ import build_parser
from riskserve.transformer.decisions import decision_for

from tests.k8s.k8s_render import (
    CHART,
    CONFIGURATIONS,
    NAMESPACE,
    RELEASE,
    helm_template,
    render,
    tool,
)

pytestmark = pytest.mark.k8s

SOURCES = ("helm", "kustomize")
VALUES = CHART / "ci" / "feature-store-values.yaml"
PLACEHOLDER_PASSWORD = "dev-placeholder-redis-password"
TRANSFORMER_ARGS = [
    "--model_name=fraud",
    "--http_port=8080",
    "--protocol=v2",
    "--feature_repo=/tmp/feature-repo",
]
CREDIT_TRANSFORMER_ARGS = ["--model_name=credit", *TRANSFORMER_ARGS[1:]]
# The decision each model's transformer makes (transformer/decisions.py).
KINDS = {"fraud": "card", "credit": "customer"}


def by_kind_and_name(documents: tuple[dict[str, Any], ...]) -> dict[str, Any]:
    return {f"{d['kind']}/{d['metadata']['name']}": d for d in documents}


def helm_with(*sets: str) -> tuple[dict[str, Any], ...]:
    extra: list[str] = []
    for item in sets:
        extra += ["--set", item]
    return helm_template(VALUES, *extra)


def helm_fails(*sets: str) -> str:
    args = [str(tool("helm")), "template", RELEASE, str(CHART), "-n", NAMESPACE]
    args += ["--values", str(VALUES)]
    for item in sets:
        args += ["--set", item]
    result = subprocess.run(args, capture_output=True, text=True, check=False)
    assert result.returncode != 0, f"{sets} rendered"
    return result.stderr


@pytest.mark.parametrize("source", SOURCES)
@pytest.mark.parametrize(
    ("model", "args"),
    [("fraud", TRANSFORMER_ARGS), ("credit", CREDIT_TRANSFORMER_ARGS)],
)
def test_each_model_gets_a_transformer_with_kserves_arguments(
    source: str, model: str, args: list[str]
) -> None:
    rendered = render(source, "feature-store")
    spec = rendered.named("InferenceService", model)["spec"]
    transformer = spec["transformer"]
    (container,) = transformer["containers"]
    assert container["name"] == "kserve-container"
    assert container["image"] == "ghcr.io/riskserve/riskserve-transformer:0.1.0"
    # KServe sets --predictor_host itself; the rest are its own arguments.
    assert container["args"] == args
    assert not any(a.startswith("--predictor_host") for a in container["args"])
    # The transformer's own canary, beside the predictor's (none here).
    assert transformer["canaryTrafficPercent"] == 10
    assert "canaryTrafficPercent" not in spec["predictor"]
    # A decision that takes longer than the predictor's own timeout is a 504.
    assert transformer["timeout"] == spec["predictor"]["timeout"]
    assert container["envFrom"] == [
        {"configMapRef": {"name": "riskserve-feature-store"}}
    ]
    probes = {
        p: container[p]["httpGet"]["path"] for p in ("readinessProbe", "livenessProbe")
    }
    assert probes == {
        "readinessProbe": "/v2/health/ready",
        "livenessProbe": "/v2/health/live",
    }


@pytest.mark.parametrize("source", SOURCES)
@pytest.mark.parametrize("model", ["fraud", "credit"])
def test_the_container_arguments_start_the_transformer_as_kserve_completes_them(
    source: str, model: str
) -> None:
    """The rendered arguments, with the --predictor_host KServe appends, are what
    `python -m riskserve.transformer` accepts, and the model's name picks its
    decision: card transactions for fraud, raw checkouts for credit."""
    isvc = render(source, "feature-store").named("InferenceService", model)
    (container,) = isvc["spec"]["transformer"]["containers"]
    args = build_parser().parse_args(
        [*container["args"], "--predictor_host", f"{model}-predictor.riskserve"]
    )
    assert args.model_name == model and args.http_port == 8080
    assert args.protocol == "v2" and args.feature_repo == Path("/tmp/feature-repo")
    # No RISKSERVE_TRANSFORMER_KIND: the kind follows --model_name.
    env = {e["name"] for e in container["env"]}
    assert "RISKSERVE_TRANSFORMER_KIND" not in env
    assert decision_for(args.model_name).kind == KINDS[model]


@pytest.mark.parametrize(
    "configuration", [c for c in CONFIGURATIONS if c != "feature-store"]
)
def test_no_transformer_without_the_feature_store(configuration: str) -> None:
    for source in SOURCES:
        rendered = render(source, configuration)
        for isvc in rendered.of_kind("InferenceService"):
            assert "transformer" not in isvc["spec"], (source, configuration)
        assert not rendered.of_kind("StatefulSet")
        # No materialisation without the feature store (the drift monitor's and the
        # decision records' CronJobs are their own configurations').
        assert not [
            c
            for c in rendered.of_kind("CronJob")
            if "feast-materialize" in c["metadata"]["name"]
        ], (source, configuration)


def test_the_chart_default_puts_both_transformers_in_with_the_feature_store() -> None:
    """The chart's own model defaults (the default configuration, not the
    feature-store CI file): switching the feature store on is enough for both
    transformers, fully rolled out."""
    documents = by_kind_and_name(
        helm_template(
            CHART / "ci" / "default-values.yaml",
            "--set",
            "featureStore.enabled=true",
            "--set",
            "featureStore.redis.secret.create=true",
            "--set",
            f"featureStore.redis.secret.password={PLACEHOLDER_PASSWORD}",
        )
    )
    for model, args in (
        ("fraud", TRANSFORMER_ARGS),
        ("credit", CREDIT_TRANSFORMER_ARGS),
    ):
        transformer = documents[f"InferenceService/{model}"]["spec"]["transformer"]
        assert transformer["containers"][0]["args"] == args
        assert "canaryTrafficPercent" not in transformer


def test_each_transformer_is_its_own_values_switch_and_canary() -> None:
    documents = by_kind_and_name(
        helm_with(
            "models.credit.transformer.enabled=false",
            "models.fraud.transformer.canaryTrafficPercent=30",
        )
    )
    assert "transformer" not in documents["InferenceService/credit"]["spec"]
    fraud = documents["InferenceService/fraud"]["spec"]["transformer"]
    assert fraud["containers"][0]["args"] == TRANSFORMER_ARGS
    assert fraud["canaryTrafficPercent"] == 30
    documents = by_kind_and_name(
        helm_with("models.credit.transformer.canaryTrafficPercent=40")
    )
    credit = documents["InferenceService/credit"]["spec"]["transformer"]
    assert credit["canaryTrafficPercent"] == 40
    fraud = documents["InferenceService/fraud"]["spec"]["transformer"]
    assert fraud["canaryTrafficPercent"] == 10


@pytest.mark.parametrize(
    ("sets", "message"),
    [
        # A transformer's canary needs revisions, which only Serverless has.
        (["deploymentMode=RawDeployment"], "transformer.canaryTrafficPercent"),
        (["models.fraud.transformer.canaryTrafficPercent=101"], "canaryTrafficPercent"),
        (["featureStore.redis.secret.password="], "secret.password"),
        (["featureStore.redis.inCluster=false"], "featureStore.redis"),
        (["featureStore.registryUri=gs://bucket/registry.db"], "registryUri"),
        (["featureStore.redis.secret.password=a\\,b"], "password"),
        (["featureStore.redis.database=1"], "database"),
    ],
)
def test_chart_rejects_bad_feature_store_values(sets: list[str], message: str) -> None:
    assert message in helm_fails(*sets)


@pytest.mark.parametrize("source", SOURCES)
def test_in_cluster_redis_is_a_restricted_statefulset_with_a_volume(
    source: str,
) -> None:
    rendered = render(source, "feature-store")
    (redis,) = rendered.of_kind("StatefulSet")
    spec = redis["spec"]
    assert spec["replicas"] == 1
    (claim,) = spec["volumeClaimTemplates"]
    assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]
    assert claim["spec"]["resources"]["requests"]["storage"] == "1Gi"
    pod = spec["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["automountServiceAccountToken"] is False
    (container,) = pod["containers"]
    assert container["image"] == "docker.io/valkey/valkey:8.1.3"
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    assert mounts["/data"] == "data"
    for probe in ("readinessProbe", "livenessProbe"):
        assert container[probe], probe
    assert container["resources"]["limits"]["memory"]
    # requirepass from the Secret, through a file in /tmp, never on the command line.
    env = {e["name"]: e for e in container["env"]}
    assert env["REDIS_PASSWORD"]["valueFrom"]["secretKeyRef"] == {
        "name": "riskserve-redis",
        "key": "password",
    }
    script = container["args"][0]
    assert "requirepass" in script and "$REDIS_PASSWORD" in script
    assert "exec valkey-server /tmp/redis.conf" in script
    assert redis["metadata"]["labels"]["app.kubernetes.io/component"] == "feature-store"


@pytest.mark.parametrize("source", SOURCES)
def test_apply_job_and_materialisation_cronjob_use_the_store_settings(
    source: str,
) -> None:
    rendered = render(source, "feature-store")
    (apply,) = [
        j
        for j in rendered.of_kind("Job")
        if j["metadata"]["name"].endswith("feast-apply")
    ]
    (materialize,) = rendered.of_kind("CronJob")
    apply_pod = apply["spec"]["template"]["spec"]
    materialize_pod = materialize["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    assert materialize["spec"]["concurrencyPolicy"] == "Forbid"
    for pod, command in ((apply_pod, "apply"), (materialize_pod, "materialize")):
        (container,) = pod["containers"]
        assert container["image"] == "ghcr.io/riskserve/riskserve-transformer:0.1.0"
        assert container["command"] == [
            "python",
            "-m",
            "riskserve.features.store_config",
        ]
        assert container["args"] == [command, "--offline=s3://mlflow/feast/offline"]
        assert container["envFrom"] == [
            {"configMapRef": {"name": "riskserve-feature-store"}}
        ]
        names = {e["name"] for e in container["env"]}
        assert {"RISKSERVE_FEATURES_REDIS_PASSWORD", "AWS_SECRET_ACCESS_KEY"} <= names


@pytest.mark.parametrize("source", SOURCES)
def test_materialisation_covers_the_customer_views_under_the_offline_uri(
    source: str,
) -> None:
    """The CronJob materialises every online view of the repository built on its
    --offline URI: the card views and the credit transformer's customer_activity,
    read from customer_activity.parquet there (where customer_offline writes it)."""
    (materialize,) = render(source, "feature-store").of_kind("CronJob")
    pod = materialize["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    (offline,) = [
        a.removeprefix("--offline=")
        for a in container["args"]
        if a.startswith("--offline=")
    ]
    # No --view: store_config materialises them all.
    assert not any(a.startswith("--view") for a in container["args"])
    # What `feast apply` registers and store_config's materialise then lists.
    online = {
        v.name: v.batch_source.path
        for v in definitions(offline).all()
        if isinstance(v, FeatureView) and v.online
    }
    assert online["customer_activity"] == f"{offline}/{CUSTOMER_ACTIVITY_FILE}"
    assert set(online) == {"card_profile", "card_activity", "customer_activity"}
    assert all(path.startswith(f"{offline}/") for path in online.values())


@pytest.mark.parametrize("source", SOURCES)
def test_the_store_settings_configmap_opens_the_cluster_store(
    source: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The ConfigMap's variables, plus the password from the Secret, are settings
    the feature layer accepts: the registry on S3 and the in-cluster Redis."""
    rendered = render(source, "feature-store")
    data = rendered.named("ConfigMap", "riskserve-feature-store")["data"]
    for key, value in data.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("RISKSERVE_FEATURES_REDIS_PASSWORD", "from-the-secret")
    settings = FeatureStoreSettings()
    assert settings.registry == "s3://mlflow/feast/registry.db"
    config = repo_config(tmp_path)
    assert config.registry.path == "s3://mlflow/feast/registry.db"
    online = config.online_store
    assert online.type == "redis"
    host = data["RISKSERVE_FEATURES_REDIS_HOST"]
    assert online.connection_string.startswith(f"{host}:6379,")
    assert "password=from-the-secret" in online.connection_string
    assert data["FEAST_S3_ENDPOINT_URL"].endswith(":8333")


def test_an_external_redis_replaces_the_in_cluster_one() -> None:
    documents = by_kind_and_name(
        helm_with(
            "featureStore.redis.inCluster=false",
            "featureStore.redis.host=redis.example.internal",
            "featureStore.redis.port=6380",
            "featureStore.redis.ssl=true",
            "featureStore.redis.secret.create=false",
        )
    )
    kinds = {key.split("/")[0] for key in documents}
    assert "StatefulSet" not in kinds and "Secret/riskserve-redis" not in documents
    assert "NetworkPolicy/riskserve-redis" not in documents
    data = documents["ConfigMap/riskserve-feature-store"]["data"]
    assert data["RISKSERVE_FEATURES_REDIS_HOST"] == "redis.example.internal"
    assert data["RISKSERVE_FEATURES_REDIS_PORT"] == "6380"
    assert data["RISKSERVE_FEATURES_REDIS_SSL"] == "true"


@pytest.mark.parametrize("source", SOURCES)
def test_only_transformers_and_the_feast_jobs_reach_redis(source: str) -> None:
    rendered = render(source, "feature-store")
    policies = {
        p["metadata"]["name"].removeprefix("riskserve-"): p["spec"]
        for p in rendered.of_kind("NetworkPolicy")
    }
    redis = policies["redis"]
    assert redis["podSelector"]["matchLabels"]["app.kubernetes.io/name"] == "redis"
    (rule,) = redis["ingress"]
    assert rule["ports"] == [{"port": 6379, "protocol": "TCP"}]
    sources = [s["podSelector"] for s in rule["from"]]
    assert all("namespaceSelector" not in s for s in rule["from"])
    assert sources[0]["matchLabels"] == {"component": "transformer"}
    assert sorted(
        s["matchLabels"].get("app.kubernetes.io/name", "") for s in sources[1:]
    ) == [
        "feast-apply",
        "feast-materialize",
    ]
    # The predictors: reached by the transformers, selected as predictors only.
    predictors = policies["predictors"]
    assert predictors["podSelector"]["matchLabels"] == {"component": "predictor"}
    assert {"component": "transformer"} in [
        s.get("podSelector", {}).get("matchLabels")
        for s in predictors["ingress"][0]["from"]
    ]
    transformers = policies["transformers"]
    assert transformers["podSelector"]["matchLabels"] == {"component": "transformer"}
    # The Jobs reach the registry and the offline store on SeaweedFS.
    seaweedfs = str(policies["seaweedfs"]["ingress"])
    assert "feast-apply" in seaweedfs and "feast-materialize" in seaweedfs


@pytest.mark.parametrize("source", SOURCES)
def test_no_password_outside_a_secret(source: str) -> None:
    rendered = render(source, "feature-store")
    for document in rendered.documents:
        if document["kind"] == "Secret":
            continue
        text = yaml.safe_dump(document)
        assert PLACEHOLDER_PASSWORD not in text, document["metadata"]["name"]
        assert "password=" not in text, document["metadata"]["name"]


def test_production_style_render_holds_no_redis_secret() -> None:
    """With the operator's own Secret (create: false), nothing of the password is
    rendered at all, only references to it."""
    documents = helm_with(
        "featureStore.redis.secret.create=false",
        "featureStore.redis.secret.password=",
    )
    assert not [
        d
        for d in documents
        if d["kind"] == "Secret" and "redis" in d["metadata"]["name"]
    ]
    text = yaml.safe_dump_all(documents)
    assert PLACEHOLDER_PASSWORD not in text
    assert text.count("name: riskserve-redis") >= 4  # Redis, the Jobs, the transformer


@pytest.mark.parametrize(
    ("variables", "message"),
    [
        ({"RISKSERVE_FEATURES_REGISTRY": "gs://bucket/registry.db"}, "s3://"),
        ({"RISKSERVE_FEATURES_ONLINE_STORE": "redis"}, "REDIS_HOST"),
        (
            {
                "RISKSERVE_FEATURES_ONLINE_STORE": "redis",
                "RISKSERVE_FEATURES_REDIS_HOST": "redis",
                "RISKSERVE_FEATURES_REDIS_PASSWORD": "a,b",
            },
            "without commas",
        ),
        ({"RISKSERVE_FEATURES_ONLINE_STORE": "memcached"}, "online_store"),
    ],
)
def test_the_store_settings_refuse_what_the_chart_refuses(
    variables: dict[str, str], message: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A pod given a store it cannot open fails at start, in one clear line, rather
    than falling back to an embedded SQLite nobody reads."""
    for key, value in variables.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(ValueError, match=message):
        FeatureStoreSettings()


def test_the_store_command_fails_in_one_line_on_bad_settings(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from riskserve.features.store_config import main

    monkeypatch.setenv("RISKSERVE_FEATURES_ONLINE_STORE", "redis")
    with pytest.raises(SystemExit) as exited:
        main(["apply", "--offline=s3://mlflow/feast/offline"])
    assert exited.value.code == 2
    assert "RISKSERVE_FEATURES_REDIS_HOST" in capsys.readouterr().err
