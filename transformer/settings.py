"""The transformer's settings: read from the environment once, at start (prefix
`RISKSERVE_TRANSFORMER_`). KServe's container arguments (`--predictor_host`, ...) are
command-line arguments (`riskserve.transformer.__main__`), as for the predictor."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class TransformerSettings(BaseSettings):
    """The transformer's own settings (prefix `RISKSERVE_TRANSFORMER_`)."""

    model_config = SettingsConfigDict(
        env_prefix="RISKSERVE_TRANSFORMER_", extra="ignore"
    )

    feature_repo: Path | None = None
    """The Feast repository folder (`--feature_repo` wins): its `feature_store.yaml`
    when it has one, else riskserve's local layout (`registry.db` and the SQLite
    online store `online.db` in it, `riskserve.features.repo.repo_config`)."""

    online_store_path: Path | None = None
    """The SQLite online store of the local layout (default `<feature_repo>/online.db`)."""

    redis: str | None = None
    """`host:port` of a Redis online store, for the local layout instead of SQLite."""

    kind: Literal["auto", "card", "customer"] = "auto"
    """What the transformer decides on: `card` transactions (the fraud model's seven
    features) or BNPL checkouts of a `customer` (the credit model's 24). `auto`
    (default): `customer` for a model named `credit` or `credit-...`, else `card`
    (`riskserve.transformer.decisions`)."""

    policy_uri: str | None = None
    """The decision policy applied after the predictor (docs/policies.md): a `.yaml`
    file, a folder holding `policy.yaml`, `file://...` or `s3://bucket/key` (read with
    the shared S3 settings). Unset (default): no policy, the graph's decision stands.
    A `models:/<model>-policy@alias` URI is resolved before deployment (`riskserve
    policy status` prints each version's); the transformer never talks to MLflow. A
    policy that does not parse stops the process at start with one line on stderr;
    one that names a field the model lacks, once the predictor's metadata is known."""

    experiment_uri: str | None = None
    """A sticky champion/challenger experiment (docs/experiments.md): a `.yaml` file,
    a folder holding `experiment.yaml`, `file://...` or `s3://bucket/key`. Each
    entity's rows go to its arm's predictor and policy; answers and log records name
    the experiment and the arm. Unset (default): no experiment. A file that does not
    parse stops the process at start with one line on stderr; an arm whose predictor
    or policy does not fit, once the arms' metadata is known."""

    experiment_shadow_max_pending: int = Field(default=1000, ge=1)
    """Answered requests waiting to be copied to the shadow arms; beyond it a copy is
    dropped and counted (`riskserve_transformer_shadow_dropped_total`)."""

    api_key: SecretStr | None = None
    """When set, inference and metadata need `Authorization: Bearer <key>` or
    `x-api-key: <key>` (the predictor's scheme); health and /metrics stay open."""

    predictor_api_key: SecretStr | None = None
    """The key sent to the predictor (`Authorization: Bearer`), when its auth is on."""

    fail_open: bool = False
    """False (default): an online store that fails or does not answer within
    `lookup_timeout_seconds` is a 503. True: the request is scored from its own fields
    alone (the defaults of a card never seen) and flagged `features_unavailable`; no
    state is pushed for it."""

    predictor_timeout_seconds: float = Field(default=2.0, gt=0)
    """Longest wait for the predictor's answer when `--predictor_request_timeout_seconds`
    is not given (KServe's default for that argument, 600 s, is no budget for a card
    authorisation); beyond it the answer is a 504."""

    lookup_path: Literal["direct", "feast"] = "direct"
    """`direct` (default): the feature layer's `CardReader`, the card's two rows read
    through the store's provider and the features computed by the on-demand view's
    own function (~0.2 ms). `feast`: `FeatureStore.get_online_features` on the
    on-demand view (~1-3 ms here). Both give the same values (tests/features)."""

    store_io: Literal["loop", "thread"] = "loop"
    """Where the online store is read and written. `loop` (default): on the event
    loop, the lookup before the predictor call and the state write right after the
    answer has been handed to the connection; lowest latency, but a store that hangs
    (not one that fails) stalls the process. `thread`: lookups on a thread bounded by
    `lookup_timeout_seconds`, writes queued to a thread of their own; a hung store
    is a 503 in time, at the price of GIL hand-offs (docs/transformer.md)."""

    lookup_timeout_seconds: float = Field(default=1.0, gt=0)
    """Longest wait for the online lookup of one request (`store_io=thread`)."""

    max_batch_size: int = Field(default=64, ge=1)
    """Most transactions one request may carry (one online lookup each)."""

    max_body_bytes: int = Field(default=1024 * 1024, ge=1024)
    """Largest request body; larger is a 400."""

    max_pending_pushes: int = Field(default=10_000, ge=1)
    """State updates waiting to be pushed; beyond it an update is dropped, logged and
    counted (`riskserve_transformer_push_failures_total{reason="queue_full"}`)."""

    push_drain_seconds: float = Field(default=10.0, ge=0)
    """On shutdown, how long pending pushes may still take; what is left is logged
    and counted as failed."""

    revision: str | None = None
    """A revision name (set by a platform): returned as header `x-riskserve-revision`."""

    predictor_routes_file: Path | None = None
    """Set by the local platform: a file naming a predictor revision to call directly
    while it alone takes its component's traffic (transformer/predictor_routes.py);
    unset (a cluster): always `--predictor_host`."""

    # The inference log: the predictor's machinery and names
    # (`RISKSERVE_SERVING_INFERENCE_LOG_*`, riskserve.serving.settings) under this
    # prefix; each record is on disk before its answer leaves (docs/transformer.md).
    inference_log_uri: str | None = None
    """Where to append a record of every answered request (raw inputs, the features
    used, the outputs): a local folder or `s3://bucket/prefix`, the predictor's
    layout (`<root>/<model>/<YYYY-MM-DD>/*.jsonl`), each record marked
    `"stage": "transformer"`. Unset: no inference log."""

    inference_log_batch_size: int = Field(default=500, ge=1)
    """Most records in one published file/object."""

    inference_log_flush_seconds: float = Field(default=1.0, gt=0)
    """Longest a record waits in the spool before its file is published."""

    inference_log_max_file_bytes: int = Field(default=64 * 1024 * 1024, ge=1024)
    """A file is published once it holds this many bytes, even below the batch size."""

    inference_log_spool_dir: Path | None = None
    """Where records are appended before they are published. Default: `<root>/.spool`
    for a local log; for S3 a folder under the system's temporary folder: point it at
    a volume that outlives the container, so a restart publishes what a crash left."""

    inference_log_max_spool_bytes: int = Field(default=1024 * 1024 * 1024, ge=1024)
    """When the sink has failed for so long that the spool holds this much, new
    records are dropped and counted (`riskserve_inference_log_dropped`)."""

    inference_log_fsync: Literal["never", "interval"] = "never"
    """`never`: each record is written (`write(2)`) before its answer leaves, so a
    crash of the process loses none (a power loss can). `interval`: also fsync every
    `inference_log_fsync_seconds` and each file before it is published."""

    inference_log_fsync_seconds: float = Field(default=1.0, gt=0)
    """The fsync interval of `inference_log_fsync=interval`."""

    http_header_timeout_seconds: float = Field(default=10.0, gt=0)
    """A request head not complete this long after the connection opened (or the
    request's first byte) closes the connection (408), as in the predictor."""

    http_body_timeout_seconds: float = Field(default=30.0, gt=0)
    """A body that sends nothing for this long closes the connection (408)."""

    max_concurrent_requests: int = Field(default=256, ge=1)
    """Requests handled at once; beyond it a 503 with `Retry-After`."""

    max_in_flight_body_bytes: int = Field(default=64 * 1024 * 1024, ge=1024)
    """Sum of the declared bodies of the requests in flight; beyond it a 503."""

    max_concurrent_rpcs: int = Field(default=256, ge=1)
    """gRPC calls handled at once (grpc.aio's `maximum_concurrent_rpcs`, health and
    metadata RPCs included); beyond it a call fails at once with RESOURCE_EXHAUSTED,
    as the predictor's `RISKSERVE_SERVING_MAX_CONCURRENT_RPCS`."""

    retry_after_seconds: int = Field(default=1, ge=0)
    """The `Retry-After` of those 503s."""

    host: str = "0.0.0.0"
    """Address the HTTP server listens on."""

    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    """Log level; failed requests and failed pushes log one structured line each."""

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value
