"""Rows of the SQLite online store written in one statement per batch.

Feast's `SqliteOnlineStore.online_write_batch` runs its upsert once per feature of
every entity (`conn.execute` in a Python loop: nine statements for a card's state)
and builds each row through its generic per-value code. Measured (python -m
bench.transformer_e2e, 500 req/s, py-spy on the transformer, load average ~0.9):
that write was 14% of the transformer's CPU; in a loop of 2,000 cards here, one
card's commit took 190 us through Feast and 130 us through this writer, 1,000
cards in one batch 119 ms and 80 ms. So this module hands the same statement the
same rows with one `executemany` per batch.

The rows are Feast's own: the same table (`_table_id`), the same upsert, the same
columns, the entity key serialised by Feast's `serialize_entity_key`, the value
column its protobuf's bytes, `value_text` from Feast's `extract_text_and_num`, the
event time made naive UTC by Feast's `to_naive_utc` and stored through the datetime
adapter Feast registers. So Feast's own reads (`get_online_features`,
`online_read`) see exactly what its writer would have left
(tests/features/test_sqlite_writer.py). One transaction per batch, as Feast's: a
process killed mid-batch leaves none of it.

Stores whose tables Feast extends (`vector_enabled`,
`enable_openai_compatible_store`) keep Feast's writer (`writes_like_feast`).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from feast import FeatureStore, FeatureView
from feast.infra.key_encoding_utils import serialize_entity_key
from feast.infra.online_stores.helpers import extract_text_and_num
from feast.infra.online_stores.sqlite import _quote_id, _table_id
from feast.protos.feast.types.EntityKey_pb2 import EntityKey as EntityKeyProto
from feast.protos.feast.types.Value_pb2 import Value as ValueProto
from feast.utils import to_naive_utc

# (entity key, values by feature, event time, created time): a row of Feast's
# `online_write_batch`.
OnlineRow = tuple[EntityKeyProto, dict[str, ValueProto], datetime, datetime | None]

_COLUMNS = (
    "entity_key",
    "feature_name",
    "value",
    "value_text",
    "event_ts",
    "created_ts",
)


def writes_like_feast(store: FeatureStore) -> bool:
    """Whether `SqliteRowWriter` writes this store's rows as Feast would: a SQLite
    online store whose tables have Feast's plain columns."""
    online = store.config.online_store
    return (
        online.type == "sqlite"
        and not getattr(online, "vector_enabled", False)
        and not getattr(online, "enable_openai_compatible_store", False)
    )


class SqliteRowWriter:
    """Writes Feast online rows to a SQLite online store (see the module docstring);
    only for a store `writes_like_feast` accepts."""

    def __init__(self, store: FeatureStore) -> None:
        if not writes_like_feast(store):
            raise ValueError("not a plain SQLite online store: use Feast's writer")
        self._config = store.config
        self._online_store = store._get_provider().online_store
        self._statements: dict[str, str] = {}

    def _statement(self, view: FeatureView) -> str:
        """Feast's upsert for the view's table (sqlite.py, online_write_batch)."""
        found = self._statements.get(view.name)
        if found is None:
            versioned = self._config.registry.enable_online_feature_view_versioning
            table = _quote_id(_table_id(self._config.project, view, versioned))
            updates = ", ".join(f"{c} = excluded.{c}" for c in _COLUMNS[2:])
            found = self._statements[view.name] = (
                f"INSERT INTO {table} ({', '.join(_COLUMNS)}) "
                f"VALUES ({', '.join('?' * len(_COLUMNS))}) "
                f"ON CONFLICT(entity_key, feature_name) DO UPDATE SET {updates};"
            )
        return found

    def write(self, view: FeatureView, rows: Sequence[OnlineRow]) -> None:
        """Upsert the rows in one transaction (all or none)."""
        version = self._config.entity_key_serialization_version
        params = []
        for key, values, when, created in rows:
            key_bytes = serialize_entity_key(
                key, entity_key_serialization_version=version
            )
            event_ts = to_naive_utc(when)
            created_ts = to_naive_utc(created) if created is not None else None
            for name, value in values.items():
                params.append(
                    (
                        key_bytes,
                        name,
                        value.SerializeToString(),
                        extract_text_and_num(value, False)[0],
                        event_ts,
                        created_ts,
                    )
                )
        conn = self._online_store._get_conn(self._config)  # type: ignore[attr-defined]
        with conn:
            conn.executemany(self._statement(view), params)
