"""Finding the ONNX file behind `--model_dir`: a folder, `s3://`, or `models:/`.

A folder is KServe's storage-initializer layout (an MLflow model folder with `MLmodel`
and the `.onnx` file, or any folder holding exactly one `.onnx`). `s3://` prefixes are
downloaded with boto3; `models:/name@alias` and `models:/name/version` are resolved
through the MLflow registry, which also gives the model version.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# The S3 client comes from the settings the monitor shares (model/s3_client.py).
from riskserve.model.s3_client import s3_client
from riskserve.serving.errors import ModelLoadError
from riskserve.serving.model_uri import parse_models_uri, resolve_version
from riskserve.serving.settings import StorageSettings

log = logging.getLogger("riskserve.serving.storage")


@dataclass(frozen=True)
class LocalModel:
    """A model on local disk, with the registry's version when known."""

    onnx_path: Path
    source: str
    registry_version: str | None = None
    # The folder a download made (s3:// or models:/): the server removes it once
    # the session holds the model, so restarts leave no copies behind.
    downloaded: Path | None = None


def fetch_model(
    model_dir: str, storage: StorageSettings, download_dir: Path | None = None
) -> LocalModel:
    """Bring the model at `model_dir` to local disk and find its `.onnx` file."""
    if model_dir.startswith("models:/"):
        folder, version = _download_registered(model_dir, storage, download_dir)
        return LocalModel(_onnx_of(folder), model_dir, version, folder)
    if model_dir.startswith("s3://"):
        folder = _download_s3(model_dir, storage, download_dir)
        return LocalModel(_onnx_of(folder), model_dir, downloaded=folder)
    if "://" in model_dir and not model_dir.startswith("file://"):
        scheme = model_dir.split("://", 1)[0]
        raise ModelLoadError(
            f"--model_dir {model_dir!r}: scheme {scheme}:// is not supported; use a "
            "local folder, s3://bucket/prefix or models:/name@alias"
        )
    path = Path(model_dir.removeprefix("file://"))
    if not path.exists():
        raise ModelLoadError(f"--model_dir {model_dir!r} does not exist")
    return LocalModel(find_onnx(path), model_dir)


def _onnx_of(downloaded: Path) -> Path:
    """`find_onnx` of a folder this process downloaded: removed if it holds none."""
    try:
        return find_onnx(downloaded)
    except ModelLoadError:
        shutil.rmtree(downloaded, ignore_errors=True)
        raise


def find_onnx(path: Path) -> Path:
    """The one `.onnx` file at `path`: the file itself, the one `MLmodel` names, or the
    only `.onnx` under the folder."""
    if path.is_file():
        if path.suffix != ".onnx":
            raise ModelLoadError(f"{path} is not an .onnx file")
        return path
    mlmodel = path / "MLmodel"
    if mlmodel.is_file():
        named = _onnx_named_by_mlmodel(mlmodel)
        if named is not None:
            return named
    found = sorted(p for p in path.rglob("*.onnx") if p.is_file())
    if not found:
        raise ModelLoadError(f"no .onnx file under {path}")
    if len(found) > 1:
        names = ", ".join(str(p.relative_to(path)) for p in found)
        raise ModelLoadError(
            f"several .onnx files under {path} ({names}); point --model_dir at the "
            "folder or file of one model"
        )
    return found[0]


def _onnx_named_by_mlmodel(mlmodel: Path) -> Path | None:
    import yaml

    try:
        spec = yaml.safe_load(mlmodel.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ModelLoadError(f"cannot read {mlmodel}: {exc}") from exc
    flavors = spec.get("flavors") or {}
    onnx_flavor = flavors.get("onnx")
    if not isinstance(onnx_flavor, dict) or "data" not in onnx_flavor:
        return None
    onnx_path = mlmodel.parent / str(onnx_flavor["data"])
    if not onnx_path.is_file():
        raise ModelLoadError(f"{mlmodel} names {onnx_flavor['data']}, which is missing")
    return onnx_path


def _target_dir(download_dir: Path | None) -> Path:
    if download_dir is not None:
        download_dir.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(prefix="model-", dir=download_dir))
    return Path(tempfile.mkdtemp(prefix="riskserve-model-"))


def _download_s3(uri: str, storage: StorageSettings, download_dir: Path | None) -> Path:
    bucket, _, prefix = uri.removeprefix("s3://").partition("/")
    if not bucket:
        raise ModelLoadError(f"--model_dir {uri!r} names no bucket")
    target = _target_dir(download_dir)
    client = s3_client(storage)
    try:
        return _download_s3_into(target, client, bucket, prefix, uri)
    except BaseException:
        shutil.rmtree(target, ignore_errors=True)
        raise


def _download_s3_into(
    target: Path, client: Any, bucket: str, prefix: str, uri: str
) -> Path:
    try:
        keys: list[str] = []
        paginator = client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
            keys.extend(item["Key"] for item in page.get("Contents", []))
        # A prefix that is a folder must not match its siblings (model1 vs model10).
        folder = prefix.rstrip("/") + "/" if prefix else ""
        keys = [k for k in keys if k == prefix or k.startswith(folder)]
        if not keys:
            raise ModelLoadError(f"nothing found at {uri}")
        for key in keys:
            if key.endswith("/"):
                continue
            relative = Path(key).name if key == prefix else key[len(folder) :]
            destination = target / relative
            destination.parent.mkdir(parents=True, exist_ok=True)
            client.download_file(bucket, key, str(destination))
    except ModelLoadError:
        raise
    except Exception as exc:  # botocore raises many unrelated types
        raise ModelLoadError(f"cannot download {uri}: {exc}") from exc
    log.info("downloaded model", extra={"source": uri, "files": len(keys)})
    return target


def _download_registered(
    uri: str, storage: StorageSettings, download_dir: Path | None
) -> tuple[Path, str]:
    """Resolve a `models:/` URI (serving/model_uri.py) and download that version."""
    try:
        reference = parse_models_uri(uri)
    except ValueError as exc:
        raise ModelLoadError(f"--model_dir {exc}") from None
    if not storage.mlflow_tracking_uri:
        raise ModelLoadError(f"--model_dir {uri!r} needs MLFLOW_TRACKING_URI")
    # Imported here: MLflow is only needed for registry URIs, and slow to import.
    from mlflow.artifacts import download_artifacts
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=storage.mlflow_tracking_uri)
    name = reference.name
    target: Path | None = None
    try:
        try:
            version = resolve_version(client, reference)
        except LookupError as exc:
            raise ModelLoadError(f"{uri}: {exc}") from None
        target = _target_dir(download_dir)
        download_artifacts(
            artifact_uri=f"models:/{name}/{version}",
            dst_path=str(target),
            tracking_uri=storage.mlflow_tracking_uri,
        )
    except BaseException as exc:
        if target is not None:
            shutil.rmtree(target, ignore_errors=True)
        if isinstance(exc, MlflowException):
            raise ModelLoadError(f"cannot resolve {uri}: {exc.message}") from exc
        if isinstance(exc, Exception) and not isinstance(exc, ModelLoadError):
            raise ModelLoadError(f"cannot download {uri}: {exc}") from exc
        raise
    log.info(
        "downloaded registered model",
        extra={"source": uri, "model_version": version},
    )
    return target, version
