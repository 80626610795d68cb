"""The online store, per request: the lookup (bounded in time) and the state push
(after the answer, on one background thread, never lost silently). The events are a
decision's (`riskserve.transformer.decisions`): card transactions or checkouts."""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from feast import FeatureStore
from riskserve.features.card import CardState, Transaction, fraud_features
from riskserve.features.online import (
    CardStateWriter,
    lookup,
    record_transaction,
)

# The feature layer's; the transformer's callers import it from here too.
from riskserve.features.store_config import (
    open_feature_store as open_feature_store,
)

log = logging.getLogger("transformer")


class StoreUnavailable(Exception):
    """The online store failed or did not answer in time."""


def request_only(txn: Transaction) -> dict[str, Any]:
    """The features of a transaction without the store (fail-open): those of a card
    never seen, which `riskserve.features.card` documents."""
    return fraud_features(txn, CardState(), None, None)


def state_pusher(store: FeatureStore) -> Callable[[Transaction, CardState], object]:
    """The feature layer's write of a card's new state (`record_transaction`)."""
    writer = CardStateWriter(store)

    def push(txn: Transaction, state: CardState) -> object:
        return record_transaction(writer, txn, state)

    return push


@dataclass
class Lookups:
    found: list[Any]  # CardLookup or CustomerLookup: .features and .state
    seconds: float


class FeatureSource:
    """The online lookup of a request's transactions.

    `in_thread=False`: on the event loop (a SQLite or Redis read of a card is well
    under a millisecond). `in_thread=True`: on a thread of its own, so a store that
    hangs cannot stall the loop (nor health probes), and the wait is bounded by
    `timeout_seconds`; the GIL hand-offs between that thread and the loop cost
    milliseconds per request on a busy machine (docs/transformer.md)."""

    def __init__(
        self,
        store: FeatureStore,
        timeout_seconds: float,
        in_thread: bool = False,
        lookup_one: Callable[[Any], Any] | None = None,
    ) -> None:
        self.store = store
        self._lookup_one = lookup_one or (lambda txn: lookup(store, txn))
        self.timeout = timeout_seconds
        self.in_thread = in_thread
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="lookup")

    def _lookup_all(self, transactions: list[Any]) -> Lookups:
        started = time.perf_counter()
        found = [self._lookup_one(txn) for txn in transactions]
        return Lookups(found, time.perf_counter() - started)

    async def lookup(self, transactions: list[Any]) -> Lookups:
        if not self.in_thread:
            try:
                return self._lookup_all(transactions)
            except Exception as exc:
                raise StoreUnavailable(
                    f"the online store failed: {type(exc).__name__}: {str(exc)[:200]}"
                ) from exc
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(self._executor, self._lookup_all, transactions)
        try:
            return await asyncio.wait_for(future, self.timeout)
        except TimeoutError:
            raise StoreUnavailable(
                f"the online store did not answer within {self.timeout * 1000:.0f} ms"
            ) from None
        except Exception as exc:
            raise StoreUnavailable(
                f"the online store failed: {type(exc).__name__}: {str(exc)[:200]}"
            ) from exc

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


@dataclass(frozen=True)
class PushHooks:
    """Metrics of the push worker (seconds per push, failures by reason, queue size)."""

    pushed: Callable[[float], None]
    failed: Callable[[str], None]
    pending: Callable[[int], None]


class PushWorker:
    """The entities' new states, pushed in the order the answers left (so two
    transactions of a card in one process push in order): on one thread of its own
    (`in_thread=True`), or on the event loop right after the answer has been handed
    to the connection (the default: no GIL hand-off).

    With `flush` (the store's `PendingStates.flush`; the server passes it) the pushes
    only stage the new states, and the worker commits them together: once per pass of
    the event loop (every push submitted in one pass, one SQLite transaction or one
    Redis pipeline), or on the thread once per drain of its queue. A SIGKILL loses at
    most the pushes staged and not yet flushed, those of the current pass. Without
    `flush` every push commits on its own.

    A full queue drops the update; a push or a flush that raises is not retried; all
    are logged and counted (`failed`), never silent.
    """

    def __init__(
        self,
        push: Callable[[Any, Any], object],
        max_pending: int,
        hooks: PushHooks,
        in_thread: bool = True,
        flush: Callable[[], int] | None = None,
    ) -> None:
        self.push = push
        self.hooks = hooks
        self.in_thread = in_thread
        self._flush = flush
        self._flush_scheduled = False
        self._staged: list[tuple[Any, float]] = []  # (event, seconds staging it)
        self._queue: queue.Queue[tuple[Any, Any] | None] = queue.Queue(max_pending)
        self._thread = threading.Thread(target=self._run, name="push", daemon=True)
        if in_thread:
            self._thread.start()

    def submit(self, txn: Any, state: Any) -> None:
        if not self.in_thread:
            self._push_one(txn, state)
            if self._flush is not None and not self._flush_scheduled:
                try:
                    loop = asyncio.get_running_loop()
                except RuntimeError:  # no loop (a script): commit now
                    self.flush()
                    return
                self._flush_scheduled = True
                loop.call_soon(self.flush)
            return
        try:
            self._queue.put_nowait((txn, state))
        except queue.Full:
            self.hooks.failed("queue_full")
            log.error(
                "state update dropped: the push queue is full",
                extra={**_entity(txn), "pending": self._queue.qsize()},
            )
            return
        self.hooks.pending(self._queue.qsize())

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            while item is not None:
                self._push_one(*item)
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
            self.flush()
            self.hooks.pending(self._queue.qsize())
            if item is None:
                return

    def _push_one(self, txn: Any, state: Any) -> None:
        started = time.perf_counter()
        try:
            self.push(txn, state)
        except Exception as exc:
            self.hooks.failed("error")
            log.error(
                "state update failed",
                extra={
                    **_entity(txn),
                    "error": f"{type(exc).__name__}: {str(exc)[:300]}",
                },
            )
            return
        seconds = time.perf_counter() - started
        if self._flush is None:
            self.hooks.pushed(seconds)
        else:
            self._staged.append((txn, seconds))

    def flush(self) -> None:
        """Commit the staged states (see the class docstring). The `pushed` metric
        gets each push's own time plus its share of the batch's commit."""
        self._flush_scheduled = False
        if self._flush is None:
            return
        staged, self._staged = self._staged, []
        started = time.perf_counter()
        try:
            self._flush()
        except Exception as exc:
            for _ in staged:
                self.hooks.failed("error")
            log.error("state updates failed", extra={"error": str(exc)[:500]})
            return
        share = (time.perf_counter() - started) / max(len(staged), 1)
        for _, seconds in staged:
            self.hooks.pushed(seconds + share)

    def close(self, drain_seconds: float) -> int:
        """Push what is queued for up to `drain_seconds`, and commit what is staged;
        returns how many were left (logged and counted as failed)."""
        deadline = time.monotonic() + drain_seconds
        while not self._queue.empty() and time.monotonic() < deadline:
            time.sleep(0.01)
        left = 0
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is not None:
                left += 1
                self.hooks.failed("shutdown")
        if left:
            log.error("state updates not pushed at shutdown", extra={"count": left})
        if self.in_thread:
            self._queue.put(None)
            self._thread.join(timeout=max(drain_seconds, 1.0))
        else:
            self.flush()
        return left


def _entity(event: Any) -> dict[str, str]:
    """The entity of a card transaction or a checkout, for a log line."""
    for key in ("card_id", "customer_id"):
        if hasattr(event, key):
            return {key: getattr(event, key)}
    return {}
