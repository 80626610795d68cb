"""The SQLite online store's batched writer (features/sqlite_writer.py) leaves the
rows Feast's own writer leaves, Feast reads them back the same, and a process killed
in the middle of a batch leaves none of that batch."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import textwrap
from datetime import UTC, datetime
from pathlib import Path

import pytest
from feast import FeatureStore
from feast.infra.key_encoding_utils import serialize_entity_key
from feast.infra.online_stores.sqlite import _quote_id, _table_id
from feast.protos.feast.types.Value_pb2 import DoubleList, Int64List, StringList
from feast.protos.feast.types.Value_pb2 import Value as ValueProto
from riskserve.features.entity_rows import entity_key
from riskserve.features.sqlite_writer import SqliteRowWriter, writes_like_feast

from tests.features.conftest import EventRepo

REPO_ROOT = Path(__file__).resolve().parents[2]


def _card_values(seed: int) -> dict[str, ValueProto]:
    """A card_activity row with every kind of value the views use, None included."""
    return {
        "last_latitude": ValueProto(double_val=48.85 + seed / 7),
        "last_longitude": ValueProto() if seed % 2 else ValueProto(double_val=-2.5),
        "last_timestamp_us": ValueProto(int64_val=1_700_000_000_000_000 + seed),
        "median_purchase": ValueProto(double_val=0.1 + seed),
        "transactions": ValueProto(int64_val=seed),
        "merchants_seen": ValueProto(
            string_list_val=StringList(val=[f"m-{i}" for i in range(seed % 5)])
        ),
        "recent_amounts": ValueProto(
            double_list_val=DoubleList(val=[i / 3 for i in range(seed % 7)])
        ),
        "recent_timestamps_us": ValueProto(
            int64_list_val=Int64List(val=list(range(seed % 4)))
        ),
        "recent_window_amounts": ValueProto(double_list_val=DoubleList(val=[])),
    }


def _stored(store: FeatureStore, view: str, entity_id: str) -> list[tuple]:
    """Every column of the entity's rows but the key, by feature."""
    config = store.config
    table = _quote_id(_table_id(config.project, store.get_feature_view(view), False))
    key = serialize_entity_key(
        entity_key("card_id", entity_id),
        entity_key_serialization_version=config.entity_key_serialization_version,
    )
    conn = store._get_provider().online_store._get_conn(config)
    return conn.execute(
        "SELECT feature_name, value, value_text, vector_value, event_ts, created_ts "
        f"FROM {table} WHERE entity_key = ? ORDER BY feature_name",
        (key,),
    ).fetchall()


def _write_twice(store: FeatureStore, prefix: str, write) -> None:
    """Three cards inserted in one batch, then two of them updated in another."""
    first = datetime(2026, 3, 1, 12, 30, 15, 250_000, tzinfo=UTC)
    write(
        [
            (entity_key("card_id", f"{prefix}-{i}"), _card_values(i), first, None)
            for i in range(3)
        ]
    )
    later = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
    write(
        [
            (entity_key("card_id", f"{prefix}-{i}"), _card_values(10 + i), later, first)
            for i in range(2)
        ]
    )


@pytest.mark.inprocess
def test_the_rows_are_feasts_and_feast_reads_them_the_same(
    event_repo: EventRepo,
) -> None:
    store = event_repo.store
    assert writes_like_feast(store)
    view = store.get_feature_view("card_activity")
    provider = store._get_provider()
    _write_twice(
        store,
        "feast",
        lambda rows: provider.online_write_batch(store.config, view, rows, None),
    )
    _write_twice(store, "ours", lambda rows: SqliteRowWriter(store).write(view, rows))

    refs = [f"card_activity:{f.name}" for f in view.features]
    for i in range(3):
        feasts, ours = f"feast-{i}", f"ours-{i}"
        assert _stored(store, "card_activity", ours) == _stored(
            store, "card_activity", feasts
        )
        assert len(_stored(store, "card_activity", ours)) == len(view.features)
        read = {
            card: store.get_online_features(
                features=refs, entity_rows=[{"card_id": card}]
            ).to_dict()
            for card in (feasts, ours)
        }
        del read[feasts]["card_id"], read[ours]["card_id"]
        assert read[ours] == read[feasts]
        assert read[ours]["transactions"] == [10 + i if i < 2 else i]


_KILLED_MID_BATCH = """
import os, signal, sys
from datetime import UTC, datetime
from pathlib import Path
from feast.protos.feast.types.Value_pb2 import Value
from riskserve.features.entity_rows import entity_key
from riskserve.features.sqlite_writer import SqliteRowWriter
from riskserve.transformer.features_source import open_feature_store

store = open_feature_store(Path(sys.argv[1]))
view = store.get_feature_view("card_activity")
writer = SqliteRowWriter(store)
at = datetime(2026, 3, 1, tzinfo=UTC)

def rows(prefix, n):
    return [
        (entity_key("card_id", f"{prefix}-{i}"), {"transactions": Value(int64_val=i),
         "median_purchase": Value(double_val=1.5)}, at, None)
        for i in range(n)
    ]

writer.write(view, rows("committed", 3))
conn = store._get_provider().online_store._get_conn(store.config)
# SIGKILL once SQLite has run a few thousand steps of the next batch's upserts
# (thousands of rows: far from its commit).
conn.set_progress_handler(lambda: os.kill(os.getpid(), signal.SIGKILL), 5000)
writer.write(view, rows("killed", 5000))
print("the batch committed: the kill came too late")
"""


@pytest.mark.inprocess
def test_a_process_killed_mid_batch_leaves_none_of_the_batch(
    event_repo: EventRepo,
) -> None:
    repo = event_repo.store.repo_path
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(_KILLED_MID_BATCH), str(repo)],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        timeout=120,
    )
    assert done.returncode == -signal.SIGKILL, done.stdout + done.stderr[-2000:]
    config = event_repo.store.config
    table = _table_id(
        config.project, event_repo.store.get_feature_view("card_activity"), False
    )
    db = sqlite3.connect(Path(repo) / "online.db")
    assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    keys = {
        name: {
            serialize_entity_key(
                entity_key("card_id", f"{name}-{i}"),
                entity_key_serialization_version=config.entity_key_serialization_version,
            )
            for i in range(3)
        }
        for name in ("committed", "killed")
    }
    stored = {k for (k,) in db.execute(f"SELECT entity_key FROM {_quote_id(table)}")}
    assert keys["committed"] <= stored
    assert not keys["killed"] & stored
