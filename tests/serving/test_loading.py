"""Loading from a folder, s3:// and models:/; what happens before and without a model."""

from __future__ import annotations

import json
import socket
import threading
import time

import boto3
import grpc
import httpx
import pytest
from riskserve.serving.errors import ModelLoadError
from riskserve.serving.grpc_v2 import grpc_predict_v2_pb2 as pb
from riskserve.serving.grpc_v2 import grpc_predict_v2_pb2_grpc as pb_grpc
from riskserve.serving.settings import StorageSettings
from riskserve.serving.storage import fetch_model

from tests.fixtures.contract_models import fraud_model, write_mlflow_folder, write_onnx
from tests.serving.predictor_helpers import load_testdata, start_predictor

pytestmark = pytest.mark.e2e


def _s3(endpoint) -> boto3.client:  # noqa: ANN001
    return boto3.client(
        "s3",
        endpoint_url=endpoint.url,
        aws_access_key_id=endpoint.access_key,
        aws_secret_access_key=endpoint.secret_key,
        region_name=endpoint.region,
    )


def test_local_folder_errors(tmp_path):
    storage = StorageSettings()
    with pytest.raises(ModelLoadError, match="no .onnx file"):
        fetch_model(str(tmp_path), storage)
    write_onnx(fraud_model(), tmp_path / "a")
    write_onnx(fraud_model(), tmp_path / "b")
    with pytest.raises(ModelLoadError, match="several .onnx files.*a/model.onnx"):
        fetch_model(str(tmp_path), storage)
    assert (
        fetch_model(str(tmp_path / "a"), storage).onnx_path == tmp_path / "a/model.onnx"
    )
    assert (
        fetch_model(str(tmp_path / "a/model.onnx"), storage).onnx_path.name
        == "model.onnx"
    )
    with pytest.raises(ModelLoadError, match="does not exist"):
        fetch_model(str(tmp_path / "missing"), storage)
    with pytest.raises(ModelLoadError, match="gs:// is not supported"):
        fetch_model("gs://bucket/model", storage)


def test_a_model_that_cannot_load_stops_the_process(tmp_path, logs_dir):
    (tmp_path / "empty").mkdir()
    predictor = start_predictor(
        logs_dir, "no-model", "fraud", tmp_path / "empty", wait=False
    )
    try:
        predictor.process.popen.wait(timeout=30)
        assert predictor.process.popen.returncode == 1
        assert "no .onnx file under" in predictor.process.log_path.read_text()
    finally:
        predictor.stop()


def test_load_from_s3_and_inference_log_to_s3(s3_server, logs_dir, tmp_path):
    folder = write_mlflow_folder(fraud_model(version="3"), tmp_path / "fraud")
    client = _s3(s3_server)
    for path in folder.iterdir():
        client.upload_file(str(path), s3_server.bucket, f"models/fraud-s3/{path.name}")
    # a sibling prefix that must not be mixed in
    client.upload_file(
        str(folder / "model.onnx"), s3_server.bucket, "models/fraud-s3-old/model.onnx"
    )
    downloads = tmp_path / "tmp"  # the predictor's temporary folder
    downloads.mkdir()
    predictor = start_predictor(
        logs_dir,
        "fraud-s3",
        "fraud",
        f"s3://{s3_server.bucket}/models/fraud-s3",
        env={
            **s3_server.client_env(),
            "RISKSERVE_SERVING_INFERENCE_LOG_URI": f"s3://{s3_server.bucket}/inference-log",
            "RISKSERVE_SERVING_INFERENCE_LOG_FLUSH_SECONDS": "0.2",
            "TMPDIR": str(downloads),
        },
        args=("--model_version", "s3-build-7"),
    )
    try:
        metadata = predictor.client.get("/v2/models/fraud").json()
        assert metadata["versions"] == ["s3-build-7"]  # the override wins
        # Loaded, the downloaded copy is gone: restarts leave nothing behind.
        assert not any(downloads.glob("riskserve-model-*"))
        request = load_testdata("fraud_infer_request.json")
        request["id"] = "s3-log-probe"
        answer = predictor.infer(request)
        assert answer.status_code == 200
        assert answer.json()["model_version"] == "s3-build-7"
        record = None
        deadline = time.monotonic() + 15
        while record is None and time.monotonic() < deadline:
            time.sleep(0.3)
            listing = client.list_objects_v2(
                Bucket=s3_server.bucket, Prefix="inference-log/fraud/"
            )
            for item in listing.get("Contents", []):
                body = client.get_object(Bucket=s3_server.bucket, Key=item["Key"])
                for line in body["Body"].read().splitlines():
                    candidate = json.loads(line)
                    if candidate["request_id"] == "s3-log-probe":
                        record = candidate
        assert record is not None
        assert record["model_version"] == "s3-build-7"
        assert record["outputs"]["is_fraud"] == [True, False]
    finally:
        predictor.stop()


def test_load_from_models_uri(mlflow_server, logs_dir, monkeypatch, tmp_path):
    for key, value in mlflow_server.items():
        monkeypatch.setenv(key, value)
    import mlflow
    import mlflow.onnx

    mlflow.set_tracking_uri(mlflow_server["MLFLOW_TRACKING_URI"])
    mlflow.set_experiment("serving-tests")
    name = f"fraud-serving-test-{int(time.time())}"
    with mlflow.start_run():
        info = mlflow.onnx.log_model(
            fraud_model(version=None), name="model", registered_model_name=name
        )
    # A second version of the same artifacts, so the alias has something to choose.
    mlflow.register_model(info.model_uri, name)
    client = mlflow.MlflowClient()
    client.set_registered_model_alias(name, "champion", "1")

    # The alias names version 1 while 2 is the latest: the server must follow it.
    downloads = tmp_path / "tmp"  # the predictor's temporary folder
    downloads.mkdir()
    predictor = start_predictor(
        logs_dir,
        "fraud-registry",
        "fraud",
        f"models:/{name}@champion",
        env={
            **mlflow_server,
            "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
            "TMPDIR": str(downloads),
        },
        timeout=90,
    )
    try:
        metadata = predictor.client.get("/v2/models/fraud").json()
        assert metadata["versions"] == ["1"]
        assert not any(downloads.glob("riskserve-model-*"))  # removed once loaded
        answer = predictor.infer(load_testdata("fraud_infer_request.json")).json()
        assert answer["model_version"] == "1"
        assert answer["outputs"][1]["data"] == [True, False]
        ready = predictor.client.get("/v2/models/fraud/versions/1/ready")
        assert ready.status_code == 200
    finally:
        predictor.stop()

    # models:/name/version, resolved and downloaded in this process.
    local = fetch_model(f"models:/{name}/2", StorageSettings(), tmp_path)
    assert local.registry_version == "2"
    assert local.onnx_path.name == "model.onnx"

    with pytest.raises(ModelLoadError, match="cannot resolve"):
        fetch_model(f"models:/{name}@nobody", StorageSettings(), tmp_path)


class _SilentServer:
    """Accepts connections and never answers: an S3 endpoint that hangs."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.clients: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            self.clients.append(client)

    def close(self) -> None:
        for client in self.clients:
            client.close()
        self.sock.close()


def test_not_ready_while_the_model_downloads(logs_dir):
    silent = _SilentServer()
    predictor = start_predictor(
        logs_dir,
        "fraud-hanging-s3",
        "fraud",
        "s3://bucket/fraud",
        env={
            "AWS_ENDPOINT_URL": f"http://127.0.0.1:{silent.port}",
            "AWS_ACCESS_KEY_ID": "x",
            "AWS_SECRET_ACCESS_KEY": "y",
            "AWS_DEFAULT_REGION": "us-east-1",
        },
        wait=False,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                live = httpx.get(f"{predictor.url}/v2/health/live", timeout=1)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, predictor.process.log_tail()
                time.sleep(0.1)
        assert live.status_code == 200
        ready = predictor.client.get("/v2/health/ready")
        assert ready.status_code == 503
        assert "error" in ready.json()
        assert predictor.client.get("/v2/models/fraud/ready").status_code == 503
        answer = predictor.infer(load_testdata("fraud_infer_request.json"))
        assert answer.status_code == 503
        assert "not ready" in answer.json()["error"]
        with grpc.insecure_channel(predictor.grpc_target) as channel:
            stub = pb_grpc.GRPCInferenceServiceStub(channel)
            assert stub.ServerLive(pb.ServerLiveRequest()).live
            assert not stub.ServerReady(pb.ServerReadyRequest()).ready
            with pytest.raises(grpc.RpcError) as caught:
                stub.ModelMetadata(pb.ModelMetadataRequest(name="fraud"))
            assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
    finally:
        predictor.stop()
        silent.close()


def test_kserve_model_server_mode(models_dir, logs_dir):
    """The same model class under KServe's stock ModelServer: a KServe custom runtime."""
    predictor = start_predictor(
        logs_dir,
        "fraud-kserve",
        "fraud",
        models_dir / "fraud",
        args=("--server", "kserve"),
        timeout=120,
    )
    try:
        answer = predictor.infer(load_testdata("fraud_infer_request.json"))
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["model_version"] == "3"
        assert [o["name"] for o in body["outputs"]] == ["fraud_probability", "is_fraud"]
        assert body["outputs"][1]["data"] == [True, False]
        bad = load_testdata("fraud_infer_request.json")
        bad["inputs"].pop(0)
        response = predictor.infer(bad)
        assert response.status_code == 400
        assert "distance_from_home" in response.json()["error"]
    finally:
        predictor.stop()


def test_storage_settings_build_boto3_arguments(monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9000")
    monkeypatch.setenv("S3_VERIFY_SSL", "0")
    kwargs = StorageSettings().boto3_client_kwargs()
    assert kwargs["endpoint_url"] == "http://127.0.0.1:9000"
    assert kwargs["verify"] is False
    assert kwargs["use_ssl"] is False
    monkeypatch.delenv("AWS_ENDPOINT_URL")
    monkeypatch.setenv("S3_ENDPOINT", "minio.local:9000")
    monkeypatch.setenv("S3_USE_HTTPS", "1")
    assert (
        StorageSettings().boto3_client_kwargs()["endpoint_url"]
        == "https://minio.local:9000"
    )


def test_sigterm_flushes_the_inference_log(models_dir, logs_dir, tmp_path):
    """Records still queued when the pod is stopped are written before exit."""
    predictor = start_predictor(
        logs_dir,
        "fraud-flush",
        "fraud",
        models_dir / "fraud",
        env={
            "RISKSERVE_SERVING_INFERENCE_LOG_URI": str(tmp_path),
            "RISKSERVE_SERVING_INFERENCE_LOG_FLUSH_SECONDS": "600",
        },
        args=("--enable_grpc", "false"),
    )
    try:
        request = load_testdata("fraud_infer_request.json")
        for i in range(3):
            request["id"] = f"flush-{i}"
            assert predictor.infer(request).status_code == 200
        assert not list(tmp_path.rglob("*.jsonl"))  # still waiting for its batch
    finally:
        predictor.stop()
    assert predictor.process.popen.returncode == 0
    ids = sorted(
        json.loads(line)["request_id"]
        for path in tmp_path.rglob("*.jsonl")
        for line in path.read_text().splitlines()
    )
    assert ids == ["flush-0", "flush-1", "flush-2"]
