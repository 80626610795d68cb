"""Entity states written but not yet committed to the online store, per store.

A transformer batches its state writes: the writes queued in one pass of its event
loop go to the store together, one SQLite transaction or one Redis pipeline per
view, instead of one commit each (`PendingStates.flush`, called by the transformer's
push worker). Until then the new states wait here, and a lookup of the entity reads
them from here, not the store's older row (`get`): a later request of the card sees
the state its earlier transaction left, committed or not.

Writers stage into the store's `PendingStates` only while one owns the flushing
(`batching`, set by the transformer's server); otherwise every write commits at once,
as a script, a test or the demo expects.
"""

from __future__ import annotations

import threading
import weakref
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from feast import FeatureStore, FeatureView
from feast.protos.feast.types.EntityKey_pb2 import EntityKey as EntityKeyProto
from feast.protos.feast.types.Value_pb2 import Value as ValueProto


@dataclass
class _Staged:
    view: FeatureView
    key: EntityKeyProto
    values: dict[str, ValueProto]
    when: datetime
    state: Any


class WriteFailed(Exception):
    """A batch of state writes did not reach the store."""

    def __init__(self, count: int, entities: list[str], error: Exception) -> None:
        shown = ", ".join(entities[:5]) + (", ..." if len(entities) > 5 else "")
        super().__init__(
            f"{count} state write(s) lost ({shown}): "
            f"{type(error).__name__}: {str(error)[:300]}"
        )
        self.count = count
        self.entities = entities


class PendingStates:
    """See the module docstring. Thread-safe: in `store_io=thread` lookups run on a
    thread of their own and writes on another."""

    def __init__(self, store: FeatureStore) -> None:
        self._store = store
        self._provider = store._get_provider()
        self._lock = threading.Lock()
        self._staged: dict[tuple[str, str], _Staged] = {}
        self.batching = False

    def __len__(self) -> int:
        return len(self._staged)

    def get(self, view: str, entity_id: str) -> Any:
        """The entity's staged state in `view`, or None."""
        staged = self._staged.get((view, entity_id))
        return None if staged is None else staged.state

    def write(
        self,
        view: FeatureView,
        entity_id: str,
        key: EntityKeyProto,
        values: dict[str, ValueProto],
        when: datetime,
        state: Any,
    ) -> None:
        """Stage the row while batching, else write it now (one commit)."""
        if not self.batching:
            self._provider.online_write_batch(
                self._store.config, view, [(key, values, when, None)], None
            )
            return
        with self._lock:
            self._staged[(view.name, entity_id)] = _Staged(
                view, key, values, when, state
            )

    def flush(self) -> int:
        """Write every staged row (one batch per view); returns how many. Rows staged
        again while this runs stay staged for the next flush. Raises `WriteFailed`
        (the rows are dropped: counted and logged by the caller, not retried)."""
        with self._lock:
            batch = dict(self._staged)
        if not batch:
            return 0
        by_view: dict[str, list[_Staged]] = {}
        for staged in batch.values():
            by_view.setdefault(staged.view.name, []).append(staged)
        try:
            for rows in by_view.values():
                self._provider.online_write_batch(
                    self._store.config,
                    rows[0].view,
                    [(s.key, s.values, s.when, None) for s in rows],
                    None,
                )
        except Exception as exc:
            self._forget(batch)
            raise WriteFailed(len(batch), [k[1] for k in batch], exc) from exc
        self._forget(batch)
        return len(batch)

    def _forget(self, batch: dict[tuple[str, str], _Staged]) -> None:
        with self._lock:
            for key, staged in batch.items():
                if self._staged.get(key) is staged:
                    del self._staged[key]


_BY_STORE: weakref.WeakKeyDictionary[FeatureStore, PendingStates] = (
    weakref.WeakKeyDictionary()
)
_BY_STORE_LOCK = threading.Lock()


def pending_states(store: FeatureStore) -> PendingStates:
    """The store's one `PendingStates` (its readers and writers share it)."""
    with _BY_STORE_LOCK:
        found = _BY_STORE.get(store)
        if found is None:
            found = _BY_STORE[store] = PendingStates(store)
        return found
