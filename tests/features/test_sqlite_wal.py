"""The SQLite online store's log is checkpointed by a thread of its own, never inside
a commit on the request path (features/sqlite_wal.py)."""

from __future__ import annotations

import shutil
import sqlite3
import time
from pathlib import Path

import pytest
from riskserve.features.card import CardState
from riskserve.features.online import CardStateWriter
from riskserve.features.sqlite_wal import start_checkpointer

from tests.features.conftest import EventRepo

pytestmark = pytest.mark.inprocess


def rows_in_the_file_alone(db: Path, tmp: Path, table: str) -> int:
    """What the database file holds without its log: what was checkpointed. -1 when
    the copy caught a checkpoint halfway (its pages written in part: "database disk
    image is malformed"), which only a copy of the file alone can see."""
    alone = tmp / "alone.db"
    shutil.copyfile(db, alone)
    try:
        with sqlite3.connect(alone) as conn:
            return conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
    except sqlite3.DatabaseError:
        return -1


def test_commits_never_checkpoint_and_the_thread_does(tmp_path: Path) -> None:
    db = tmp_path / "online.db"
    writer = sqlite3.connect(db, isolation_level=None)
    writer.execute("PRAGMA journal_mode=WAL")
    writer.execute("PRAGMA wal_autocheckpoint=0")
    writer.execute("CREATE TABLE t (v BLOB)")
    writer.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # the empty table in the file
    for _ in range(3000):  # ~3,000 pages of log: SQLite would checkpoint at 1,000
        writer.execute("INSERT INTO t VALUES (?)", (b"x" * 3000,))
    assert rows_in_the_file_alone(db, tmp_path, "t") == 0  # all still in the log
    start_checkpointer(str(db), every=0.05)
    deadline = time.monotonic() + 10
    while rows_in_the_file_alone(db, tmp_path, "t") < 3000:
        assert time.monotonic() < deadline, "the log was not checkpointed"
        time.sleep(0.05)
    writer.close()


def test_the_state_writers_connection_leaves_checkpoints_to_the_thread(
    event_repo: EventRepo,
) -> None:
    store = event_repo.store
    CardStateWriter(store)
    conn = store._get_provider().online_store._get_conn(store.config)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 0
    writer = CardStateWriter(store)
    writer.write("card-wal", 1_700_000_000_000_000, CardState())
    db = conn.execute("PRAGMA database_list").fetchall()[0][2]
    deadline = time.monotonic() + 10
    while True:  # the checkpointer copies the new row into the file within seconds
        found = _card_rows_in_the_file_alone(Path(db))
        if found:
            break
        assert time.monotonic() < deadline, "the written state never left the log"
        time.sleep(0.2)


def _card_rows_in_the_file_alone(db: Path) -> int:
    """The card_activity rows the database file holds without its log (0 while the
    copy caught a checkpoint halfway, see rows_in_the_file_alone)."""
    alone = db.parent / "alone-copy.db"
    shutil.copyfile(db, alone)
    try:
        with sqlite3.connect(alone) as copy:
            tables = [
                name
                for (name,) in copy.execute(
                    "SELECT name FROM sqlite_master WHERE type='table'"
                )
                if name.endswith("card_activity")
            ]
            if not tables:
                return 0
            return copy.execute(
                f"SELECT count(*) FROM {tables[0]} WHERE entity_key IS NOT NULL"
            ).fetchone()[0]
    except sqlite3.DatabaseError:
        return 0
