"""The transformer image as KServe runs it (spec.transformer): KServe's arguments
(--model_name, --predictor_host, --http_port, --protocol v2) plus --feature_repo, in
front of a real predictor process, the online store a real redis-server with a
password (the cluster's Redis), UID 10001, a read-only root filesystem, no
capabilities."""

from __future__ import annotations

import ast
import json
import secrets
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pandas as pd
import pytest
from riskserve.features.customer_offline import write_customer_offline_store
from riskserve.features.offline import write_offline_store
from riskserve.features.repo import CUSTOMER_ACTIVITY_FILE, open_store
from riskserve.localplatform.processes import free_port
from riskserve.model.events import CardEvents, bnpl_events, card_transactions

from riskserve.services import start_redis
from tests.fixtures.contract_models import credit_model, fraud_model, write_onnx
from tests.images.containers import Container, engine
from tests.images.scanning import scan_image
from tests.serving.predictor_helpers import start_predictor
from tests.transformer.transformer_helpers import (
    MATERIALISE_FROM,
    MATERIALISE_TO,
    outputs,
    raw_checkout,
    raw_request,
)

# The first test of a session without the image waits for its build.
pytestmark = [pytest.mark.images, pytest.mark.timeout(1800)]

REPO_IN_CONTAINER = "/mnt/feature-repo"


@dataclass
class TransformerContainer:
    container: Container
    url: str
    events: CardEvents

    @property
    def last_time_us(self) -> int:
        return int(self.events.transactions["event_timestamp"].max().value // 1000)


def kserve_transformer_args(predictor_host: str, http_port: int) -> list[str]:
    """The chart's container arguments with what KServe adds (--predictor_host)
    and the host network's port."""
    return [
        "--model_name=fraud",
        f"--predictor_host={predictor_host}",
        f"--http_port={http_port}",
        "--protocol=v2",
        f"--feature_repo={REPO_IN_CONTAINER}",
    ]


def wait_ready(url: str, container: Container, timeout: float = 120) -> float:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/v2/health/ready", timeout=1).status_code == 200:
                return time.monotonic() - container.started
        except httpx.HTTPError:
            pass
        if not container.state().get("Running", False):
            break
        time.sleep(0.2)
    raise AssertionError(
        f"the transformer never got ready:\n{container.logs()[-3000:]}"
    )


@pytest.fixture(scope="module")
def transformer(
    transformer_image: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TransformerContainer]:
    folder = tmp_path_factory.mktemp("transformer-image")
    patch = pytest.MonkeyPatch()
    redis_process, redis = start_redis(
        folder / "redis", free_port(), "r" + secrets.token_hex(12)
    )
    stoppable: list = [redis_process]
    try:
        # The repository applied and materialised into Redis, as the cluster's
        # `feast apply` Job and materialisation CronJob do.
        for key, value in redis.client_env().items():
            patch.setenv(key, value)
        events = card_transactions(cards=40, days=3, seed=5)
        repo, offline = folder / "repo", folder / "offline"
        write_offline_store(offline, events.cards, events.transactions)
        open_store(repo, offline).materialize(
            MATERIALISE_FROM,
            MATERIALISE_TO,
            feature_views=["card_profile", "card_activity"],
        )
        # The container's user (10001) reads the mounted repository: world-readable.
        for path in [repo, *repo.rglob("*")]:
            path.chmod(0o755 if path.is_dir() else 0o644)
        for name in ("PROMETHEUS_MULTIPROC_DIR", "PROMETHEUS_MULTIPROCESS_DIR"):
            patch.delenv(name, raising=False)
        write_onnx(fraud_model(version="3"), folder / "model")
        predictor = start_predictor(folder, "predictor", "fraud", folder / "model")
        stoppable.append(predictor)
        http_port = free_port()
        env = {**redis.client_env(), "RISKSERVE_TRANSFORMER_HOST": "127.0.0.1"}
        container = Container(
            transformer_image,
            [
                "--read-only",
                "--cap-drop=all",
                "--security-opt=no-new-privileges",
                "-v",
                f"{repo}:{REPO_IN_CONTAINER}:ro",
                *(f"--env={k}={v}" for k, v in env.items()),
            ],
            kserve_transformer_args(f"127.0.0.1:{predictor.http_port}", http_port),
        ).start()
        url = f"http://127.0.0.1:{http_port}"
        try:
            ready = wait_ready(url, container)
            print(f"transformer image: ready {ready:.2f} s after `run`")
            yield TransformerContainer(container, url, events)
        finally:
            container.remove()
    finally:
        for item in reversed(stoppable):
            item.stop()
        patch.undo()


def test_the_arguments_are_kserves_and_the_entrypoint_the_images(
    transformer: TransformerContainer,
) -> None:
    config = json.loads(engine("inspect", transformer.container.name).stdout)[0]
    args = config["Args"] if "Args" in config else config["Config"]["Cmd"]
    assert "--model_name=fraud" in args and "--protocol=v2" in args
    assert any(a.startswith("--predictor_host=") for a in args)
    assert config["Config"]["Entrypoint"] in (
        ["python", "-m", "riskserve.transformer"],
        "python -m riskserve.transformer",
    )


def test_a_raw_transaction_gets_a_decision_from_redis_features(
    transformer: TransformerContainer,
) -> None:
    metadata = httpx.get(f"{transformer.url}/v2/models/fraud", timeout=10).json()
    assert {"card_id", "amount"} <= {i["name"] for i in metadata["inputs"]}
    card = str(transformer.events.cards["card_id"].iloc[1])
    when = transformer.last_time_us + 3_600_000_000
    answer = httpx.post(
        f"{transformer.url}/v2/models/fraud/infer",
        json=raw_request(card, when, 310.0, "m-image-1", 40.0, 3.0, online=1),
        timeout=10,
    )
    assert answer.status_code == 200, answer.text
    got = outputs(answer)
    assert answer.json()["model_version"] == "3"  # the predictor's answer
    assert got["card_registered"] == [1] and got["unknown_entity"] == [False]
    assert got["features_unavailable"] == [False]
    assert 0.0 <= got["fraud_probability"][0] <= 1.0
    bad = httpx.post(
        f"{transformer.url}/v2/models/fraud/infer",
        json={
            "inputs": [
                {"name": "card_id", "datatype": "BYTES", "shape": [1], "data": ["c"]}
            ]
        },
        timeout=10,
    )
    assert bad.status_code == 400 and "amount" in bad.text


def test_the_transformer_runs_as_10001_read_only_without_capabilities(
    transformer: TransformerContainer,
) -> None:
    container = transformer.container
    assert container.exec("id", "-u").strip() == "10001"
    status = container.exec("cat", "/proc/1/status")
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    assert fields["Uid"].split()[0] == "10001"
    assert int(fields["CapEff"].strip(), 16) == 0
    write = engine("exec", container.name, "touch", "/opt/venv/written", check=False)
    assert write.returncode != 0 and "Read-only file system" in write.stderr


def test_transformer_image_is_lean_and_holds_no_secret(transformer_image: str) -> None:
    found = scan_image(transformer_image)
    assert found["first_party"] == [
        "riskserve.features",
        "riskserve.model",
        "riskserve.serving",
        "riskserve.transformer",
    ]
    assert found["tensorflow"] == []
    assert found["git"] == [] and found["tests"] == []
    assert found["credentials"] == []
    assert found["broken_commands"] == []


def test_only_the_predictor_modules_the_arrows_allow(transformer_image: str) -> None:
    """Of the predictor, the shared v2 modules (and packages: the gRPC stubs) only
    (tests/test_import_arrows.py); neither onnxruntime nor the predictor's server."""
    from tests.images.containers import run_once
    from tests.test_import_arrows import ALLOWED

    probe = (
        "import importlib.util, pathlib, riskserve.serving as s; "
        "d = pathlib.Path(s.__file__).parent; "
        "print(sorted([p.stem for p in d.glob('*.py')]"
        " + [p.name for p in d.iterdir() if (p / '__init__.py').is_file()])); "
        "print(importlib.util.find_spec('onnxruntime') is None)"
    )
    result = run_once(transformer_image, ["--entrypoint", "python"], ["-c", probe])
    assert result.returncode == 0, result.stderr[-2000:]
    modules_line, no_onnxruntime = result.stdout.strip().splitlines()[-2:]
    allowed = {
        name.removeprefix("serving.")
        for name in ALLOWED["transformer"]
        if name.startswith("serving.")
    }
    assert set(ast.literal_eval(modules_line)) == allowed | {"__init__"}
    assert no_onnxruntime == "True"


def test_no_password_in_the_image_config(transformer_image: str) -> None:
    config = json.loads(engine("image", "inspect", transformer_image).stdout)[0]
    env = config["Config"].get("Env") or []
    assert not [e for e in env if "PASSWORD" in e or "SECRET" in e]
    assert "HOME=/tmp" in env


def test_the_cluster_jobs_apply_to_s3_and_materialise_into_redis(
    transformer_image: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What the chart's `feast apply` Job and materialisation CronJob run, in the
    image, against a real S3 (SeaweedFS) and Redis: the registry lands on S3, the
    offline Parquet on S3 lands in Redis (the card side first, the customer side
    skipped in a line until its Parquet is there), and the fraud and the credit
    transformers, whose only repository is a scratch folder (as on the cluster),
    decide from them: a raw transaction and a raw checkout through the container."""
    import boto3
    import redis as redis_client

    from riskserve.services import start_s3
    from tests.images.containers import run_once

    s3_process, s3 = start_s3(
        tmp_path / "s3", free_port(), "mlflow", "riskserve-test", secrets.token_hex(12)
    )
    redis_process, redis = start_redis(
        tmp_path / "redis", free_port(), "r" + secrets.token_hex(12)
    )
    stoppable: list = [s3_process, redis_process]
    try:
        events = card_transactions(cards=30, days=2, seed=8)
        write_offline_store(tmp_path / "offline", events.cards, events.transactions)
        bucket = boto3.client(
            "s3",
            endpoint_url=s3.url,
            aws_access_key_id=s3.access_key,
            aws_secret_access_key=s3.secret_key,
            region_name=s3.region,
        )
        # Only the card side on S3, as a pipeline that has not written the customer
        # log yet (locally, write_offline_store leaves an empty one: not uploaded).
        for path in (tmp_path / "offline").iterdir():
            if path.name != CUSTOMER_ACTIVITY_FILE:
                bucket.upload_file(str(path), "mlflow", f"feast/offline/{path.name}")
        # The ConfigMap riskserve-feature-store, the two Secrets.
        env = {
            **redis.client_env(),
            "RISKSERVE_FEATURES_REGISTRY": "s3://mlflow/feast/registry.db",
            "FEAST_S3_ENDPOINT_URL": s3.url,
            "AWS_ENDPOINT_URL": s3.url,
            "AWS_DEFAULT_REGION": s3.region,
            "AWS_ACCESS_KEY_ID": s3.access_key,
            "AWS_SECRET_ACCESS_KEY": s3.secret_key,
        }
        run_args = [
            "--read-only",
            "--cap-drop=all",
            "--entrypoint",
            "python",
            *(f"--env={k}={v}" for k, v in env.items()),
        ]
        job = ["-m", "riskserve.features.store_config"]
        offline = "--offline=s3://mlflow/feast/offline"
        applied = run_once(transformer_image, run_args, [*job, "apply", offline])
        assert applied.returncode == 0, applied.stderr[-3000:]
        listed = bucket.list_objects_v2(Bucket="mlflow", Prefix="feast/registry.db")
        assert listed.get("KeyCount") == 1
        # Only the card side is on S3: the card views, what the fraud transformer
        # reads, and a line saying the customer view was skipped.
        materialised = run_once(
            transformer_image, run_args, [*job, "materialize", offline]
        )
        assert materialised.returncode == 0, materialised.stderr[-3000:]
        lines = materialised.stdout.strip().splitlines()
        assert lines[0] == (
            "skipped customer_activity: its offline source "
            f"s3://mlflow/feast/offline/{CUSTOMER_ACTIVITY_FILE} does not exist"
        )
        online = redis_client.Redis(port=redis.port, password=redis.password)
        # One hash per card (Feast's Redis layout): every card of the register, those
        # registered more than a year ago too (a first run takes everything).
        assert online.dbsize() == len(events.cards)
        in_full = lines[-1].split(": ", 1)[-1].split(" in full")[0]
        assert sorted(in_full.split(", ")) == ["card_activity", "card_profile"]
        # Then the customer side: the next run takes it in full, skips nothing.
        customers = bnpl_events(customers=20, days=200, seed=9)
        write_customer_offline_store(
            tmp_path / "offline", customers.checkouts, customers.payments
        )
        bucket.upload_file(
            str(tmp_path / "offline" / CUSTOMER_ACTIVITY_FILE),
            "mlflow",
            f"feast/offline/{CUSTOMER_ACTIVITY_FILE}",
        )
        materialised = run_once(
            transformer_image, run_args, [*job, "materialize", offline]
        )
        assert materialised.returncode == 0, materialised.stderr[-3000:]
        assert "skipped" not in materialised.stdout
        assert ": customer_activity in full, " in materialised.stdout
        activity = pd.read_parquet(tmp_path / "offline" / CUSTOMER_ACTIVITY_FILE)
        in_redis = len(events.cards) + activity["customer_id"].nunique()
        assert online.dbsize() == in_redis

        for name in ("PROMETHEUS_MULTIPROC_DIR", "PROMETHEUS_MULTIPROCESS_DIR"):
            monkeypatch.delenv(name, raising=False)
        card = str(events.cards["card_id"].iloc[0])
        last = int(events.transactions["event_timestamp"].max().value // 1000)
        customer = str(activity["customer_id"].value_counts().index[0])
        after = int(activity["event_timestamp"].max().value // 1000) + 3_600_000_000
        for model_name, model, raw in (
            ("fraud", fraud_model(version="3"), raw_request(card, last + 1_000_000)),
            ("credit", credit_model(version="5"), raw_checkout(customer, after, 90.0)),
        ):
            write_onnx(model, tmp_path / model_name)
            predictor = start_predictor(
                tmp_path, f"predictor-{model_name}", model_name, tmp_path / model_name
            )
            stoppable.append(predictor)
            # The decision is logged to S3 as on a cluster (the drift monitor's
            # ConfigMap turns it on): published within the flush interval.
            logged = {
                **env,
                "RISKSERVE_TRANSFORMER_INFERENCE_LOG_URI": "s3://mlflow/inference-log",
                "RISKSERVE_TRANSFORMER_INFERENCE_LOG_SPOOL_DIR": "/tmp/spool",
            }

            def published(model_name: str = model_name) -> None:
                deadline = time.monotonic() + 30
                prefix = f"inference-log/{model_name}/"
                while not bucket.list_objects_v2(Bucket="mlflow", Prefix=prefix).get(
                    "KeyCount"
                ):
                    assert time.monotonic() < deadline, f"nothing under {prefix}"
                    time.sleep(0.5)

            got = decide_in_container(
                transformer_image,
                logged,
                model_name,
                predictor.http_port,
                raw,
                before_removal=published,
            )
            # A known entity, its state from Redis, the predictor's answer.
            assert got["unknown_entity"] == [False], model_name
            assert got["features_unavailable"] == [False], model_name
            if model_name == "fraud":
                assert got["card_registered"] == [1]
                assert 0.0 <= got["fraud_probability"][0] <= 1.0
            else:
                assert got["customer_checkouts"][0] >= 1
                assert 0.0 <= got["default_probability"][0] <= 1.0
                assert got["approved"][0] in (True, False)
    finally:
        for item in reversed(stoppable):
            item.stop()


def decide_in_container(
    image: str,
    env: dict[str, str],
    model_name: str,
    predictor_port: int,
    raw: dict,
    before_removal: Callable[[], None] | None = None,
) -> dict[str, list]:
    """One raw event through a transformer container for `model_name` (the chart's
    arguments, its scratch repository; the store where `env` says), in front of the
    predictor on `predictor_port`: the answer's outputs, the model's version checked."""
    http_port = free_port()
    container = Container(
        image,
        [
            "--read-only",
            "--cap-drop=all",
            *(f"--env={k}={v}" for k, v in env.items()),
            "--env=RISKSERVE_TRANSFORMER_HOST=127.0.0.1",
        ],
        [
            f"--model_name={model_name}",
            f"--predictor_host=127.0.0.1:{predictor_port}",
            f"--http_port={http_port}",
            "--protocol=v2",
            "--feature_repo=/tmp/feature-repo",  # the chart's scratch folder
        ],
    ).start()
    try:
        url = f"http://127.0.0.1:{http_port}"
        wait_ready(url, container)
        answer = httpx.post(f"{url}/v2/models/{model_name}/infer", json=raw, timeout=10)
        assert answer.status_code == 200, answer.text
        version = {"fraud": "3", "credit": "5"}[model_name]
        assert answer.json()["model_version"] == version  # the predictor's answer
        if before_removal is not None:
            before_removal()
        return outputs(answer)
    finally:
        container.remove()
