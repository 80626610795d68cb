"""Where the feature store keeps its registry and its online state: the feature
layer's settings (prefix `RISKSERVE_FEATURES_`), read once, when a store is opened
(`riskserve.features.repo.repo_config`).

- On one machine (the default): `registry.db` and the SQLite `online.db` in the
  repository folder; `riskserve services up --redis` adds a Redis on loopback.
- On a cluster (docs/kubernetes.md): the registry on S3
  (`s3://<bucket>/feast/registry.db`; Feast's S3 registry reads the endpoint from
  `FEAST_S3_ENDPOINT_URL`, boto3 from `AWS_ENDPOINT_URL`) and Redis or Valkey, its
  password from a Secret through `RISKSERVE_FEATURES_REDIS_PASSWORD`; none of these
  lives in a values default or a ConfigMap.

`python -m riskserve.features.store_config apply|materialize --offline DIR_OR_S3`
is what the cluster's `feast apply` Job and materialisation CronJob run: the
repository's definitions applied to that registry, or the offline Parquet written
into the online store up to now: the views whose Parquet exists (the card side or
the customer side may not be written yet), a line for each one skipped; the run fails
only when none exists or a view fails.
"""

from __future__ import annotations

import argparse
import re
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import (
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

if TYPE_CHECKING:
    from feast import FeatureStore

EVERYTHING_SINCE = datetime(1970, 1, 1, tzinfo=UTC)
_S3_URI = re.compile(r"^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]/.+\.db$")


class FeatureStoreSettings(BaseSettings):
    """The feature store's registry and online store (prefix `RISKSERVE_FEATURES_`)."""

    model_config = SettingsConfigDict(env_prefix="RISKSERVE_FEATURES_", extra="ignore")

    registry: str | None = None
    """The Feast registry: a local file, or `s3://<bucket>/<key>.db` (default
    `<repository>/registry.db`)."""

    online_store: Literal["sqlite", "redis"] = "sqlite"
    """`sqlite` (the embedded default, `<repository>/online.db`) or `redis`."""

    redis_host: str | None = None
    """Host of the Redis (or Valkey) online store; required with `online_store=redis`."""

    redis_port: int = Field(default=6379, ge=1, le=65535)
    """Its port."""

    redis_password: SecretStr | None = None
    """Its password (`requirepass`), from a Secret; never logged."""

    redis_ssl: bool = False
    """TLS to Redis (a managed Redis usually wants it)."""

    redis_timeout_seconds: float = Field(default=1.0, gt=0)
    """Connect and socket timeout of each Redis call: a Redis that hangs fails the
    request (503, or fail-open) instead of stalling it."""

    @field_validator("registry")
    @classmethod
    def _registry_uri(cls, value: str | None) -> str | None:
        if value and "://" in value and not _S3_URI.match(value):
            raise ValueError(
                f"{value[:100]!r}: the registry is a local path or "
                "s3://<bucket>/<key>.db"
            )
        return value

    @field_validator("redis_password")
    @classmethod
    def _password_fits(cls, value: SecretStr | None) -> SecretStr | None:
        # Feast reads the password out of a comma-separated `key=value` string.
        secret = value.get_secret_value() if value is not None else None
        if secret is not None and ("," in secret or not secret):
            raise ValueError("the Redis password must be non-empty, without commas")
        return value

    @model_validator(mode="after")
    def _redis_needs_host(self) -> FeatureStoreSettings:
        if self.online_store == "redis" and not self.redis_host:
            raise ValueError(
                "RISKSERVE_FEATURES_ONLINE_STORE=redis needs "
                "RISKSERVE_FEATURES_REDIS_HOST"
            )
        return self


def redis_connection_string(address: str, settings: FeatureStoreSettings) -> str:
    """Feast's Redis `connection_string` for `host:port`, with the password, TLS
    and timeouts of `settings`."""
    timeout = settings.redis_timeout_seconds
    parts = [
        address,
        f"socket_timeout={timeout}",
        f"socket_connect_timeout={timeout}",
    ]
    if settings.redis_ssl:
        parts.append("ssl=true")
    if settings.redis_password is not None:
        parts.append(f"password={settings.redis_password.get_secret_value()}")
    return ",".join(parts)


def online_store_config(
    settings: FeatureStoreSettings,
    repo_dir: Path,
    online_path: Path | None = None,
    redis: str | None = None,
) -> dict[str, Any]:
    """The online store: an explicit SQLite file or Redis `host:port` (a caller's
    own setting) wins over `settings`."""
    if online_path is None and redis is None and settings.online_store == "redis":
        redis = f"{settings.redis_host}:{settings.redis_port}"
    if redis:
        return {
            "type": "redis",
            "connection_string": redis_connection_string(redis, settings),
        }
    return {"type": "sqlite", "path": str(online_path or repo_dir / "online.db")}


def registry_path(settings: FeatureStoreSettings, repo_dir: Path) -> str:
    """The registry: `settings.registry`, else `<repo_dir>/registry.db`."""
    return settings.registry or str(repo_dir / "registry.db")


def open_feature_store(
    repo: Path, online_store_path: Path | None = None, redis: str | None = None
) -> FeatureStore:
    """The repository's store: its `feature_store.yaml` when it has one (a cluster's
    registry on S3, Redis), else riskserve's local layout (registry.db, SQLite, or
    the SQLite file `online_store_path`, or the Redis at `redis`, host:port)."""
    from feast import FeatureStore
    from riskserve.features.repo import repo_config

    if (repo / "feature_store.yaml").exists() and not (online_store_path or redis):
        return FeatureStore(repo_path=str(repo))
    return FeatureStore(
        config=repo_config(repo, online_store_path, redis), repo_path=str(repo)
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m riskserve.features.store_config",
        description="Apply the feature repository to the registry the settings name, "
        "or materialise its offline store into the online store.",
    )
    parser.add_argument("command", choices=["apply", "materialize"])
    parser.add_argument(
        "--offline",
        required=True,
        help="folder or s3://bucket/prefix of the offline Parquet (cards.parquet, "
        "card_activity.parquet, customer_activity.parquet; materialize skips, in a "
        "line each, the views whose file is not there)",
    )
    parser.add_argument(
        "--view",
        dest="views",
        action="append",
        default=None,
        help="materialise only this feature view (repeatable; default: all)",
    )
    parser.add_argument(
        "--repo",
        type=Path,
        default=Path("/tmp/feature-repo"),
        help="scratch repository folder (the registry and online store live where "
        "RISKSERVE_FEATURES_* say)",
    )
    args = parser.parse_args(argv)
    from feast import FeatureStore
    from riskserve.features.repo import definitions, repo_config

    try:
        config = repo_config(args.repo)
    except ValidationError as exc:  # a setting that does not validate: one line
        parser.error("; ".join(str(error["msg"]) for error in exc.errors()))
    args.repo.mkdir(parents=True, exist_ok=True)
    store = FeatureStore(config=config, repo_path=str(args.repo))
    if args.command == "apply":
        objects = definitions(args.offline).all()
        store.apply(objects)
        print(f"applied {len(objects)} objects to the registry {config.registry.path}")
    else:
        return materialize(store, args.views)
    return 0


def materialize(store: FeatureStore, only: list[str] | None = None) -> int:
    """Write the offline store into the online store up to now, view by view: those
    whose offline Parquet exists (the card side or the customer side may not have
    been written yet), each skipped one said in a line. 1 when none exists or a view
    fails, with one line saying why; an unknown `only` name is refused."""
    from feast import FileSource

    online = [view for view in store.list_feature_views() if view.online]
    unknown = sorted(set(only or ()) - {view.name for view in online})
    if unknown:
        known = ", ".join(sorted(view.name for view in online))
        print(
            f"error: no online feature view {', '.join(unknown)} in the registry "
            f"(it has {known or 'none'})",
            file=sys.stderr,
        )
        return 1
    views = []
    for view in online:
        if only and view.name not in only:
            continue
        source = view.batch_source
        if not isinstance(source, FileSource):  # not Parquet: Feast reads it itself
            views.append(view)
            continue
        try:
            present = offline_source_exists(source.path)
        except OfflineStoreError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        if present:
            views.append(view)
        else:
            print(
                f"skipped {view.name}: its offline source {source.path} does not exist"
            )
    if not views:
        print(
            "error: none of the feature views to materialise has its offline Parquet",
            file=sys.stderr,
        )
        return 1
    end = datetime.now(UTC)
    # Feast's incremental run starts a never-materialised view at now - ttl (a year
    # for ttl 0), which would leave older rows (a card registered two years ago) out
    # for good: a first run takes the whole offline store.
    first = [v.name for v in views if not v.materialization_intervals]
    later = [v.name for v in views if v.materialization_intervals]
    try:
        if first:
            store.materialize(EVERYTHING_SINCE, end, feature_views=first)
        if later:
            store.materialize_incremental(end_date=end, feature_views=later)
    except Exception as exc:  # the CronJob's log: one line, then a failed Job
        print(
            f"error: materialising {', '.join(first + later)} failed: "
            f"{type(exc).__name__}: {str(exc)[:300]}",
            file=sys.stderr,
        )
        return 1
    print(
        f"materialised up to {end.isoformat()}: "
        f"{', '.join(first) or 'none'} in full, {', '.join(later) or 'none'} "
        "incrementally"
    )
    return 0


class OfflineStoreError(Exception):
    """The offline store could not be asked whether a source exists."""


def offline_source_exists(path: str) -> bool:
    """Whether a feature view's offline Parquet (a local path or `s3://bucket/key`,
    a file or a folder of parts) exists. A missing one is False; an S3 that cannot
    be reached or refuses is an `OfflineStoreError`."""
    if not path.startswith("s3://"):
        return Path(path).exists()
    from botocore.exceptions import BotoCoreError, ClientError
    from riskserve.model.s3_client import S3Settings

    bucket, _, key = path.removeprefix("s3://").partition("/")
    try:
        listed = (
            S3Settings()
            .s3_client()
            .list_objects_v2(Bucket=bucket, Prefix=key, MaxKeys=20)
        )
    except (BotoCoreError, ClientError) as exc:
        raise OfflineStoreError(f"cannot list {path}: {exc}") from None
    return any(
        item["Key"] == key or item["Key"].startswith(key + "/")
        for item in listed.get("Contents", [])
    )


if __name__ == "__main__":
    sys.exit(main())
