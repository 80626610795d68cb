"""Running a coroutine from a test, whatever else runs in the test process.

Playwright's sync API (the app's browser tests, session-scoped) keeps an event loop
running in the main thread, where `asyncio.run` then refuses to start another: the
coroutine gets a thread and a loop of its own.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    with ThreadPoolExecutor(1, thread_name_prefix="test-loop") as pool:
        return pool.submit(asyncio.run, coroutine).result()
