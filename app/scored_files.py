"""Where the batch tab writes scored CSV files, and for how long they stay.

Gradio copies a file handed to a download button into its own cache (which the
Blocks' `delete_cache` empties, settings.file_retention_seconds); the file the app
wrote is its own to remove. Each scoring gets a folder under one folder of the
app's; a daemon thread removes the folders older than the retention as often as
Gradio checks its cache, and the whole folder goes when the process ends.
"""

from __future__ import annotations

import shutil
import tempfile
import threading
import time
import weakref
from pathlib import Path

_OPEN: weakref.WeakSet[ScoredFiles] = weakref.WeakSet()


def close_all() -> None:
    """Remove every open folder now (the app's exit skips the interpreter's teardown,
    so the finalizers would not run)."""
    for files in list(_OPEN):
        files.close()


class ScoredFiles:
    def __init__(self, retention_seconds: int, every_seconds: float) -> None:
        self.retention_seconds = retention_seconds
        self.root = Path(tempfile.mkdtemp(prefix="riskserve-app-"))
        _OPEN.add(self)
        self._stop = threading.Event()
        self._finalizer = weakref.finalize(self, _remove, self.root, self._stop)
        threading.Thread(
            target=_prune_forever,
            args=(weakref.ref(self), self._stop, every_seconds),
            name="scored-files",
            daemon=True,
        ).start()

    def new_folder(self) -> Path:
        """A fresh folder for one scoring."""
        return Path(tempfile.mkdtemp(prefix="scored-", dir=self.root))

    def prune(self) -> int:
        """Remove the folders older than the retention; returns how many."""
        cutoff = time.time() - self.retention_seconds
        removed = 0
        for folder in self.root.iterdir():
            try:
                if folder.stat().st_mtime < cutoff:
                    shutil.rmtree(folder, ignore_errors=True)
                    removed += 1
            except FileNotFoundError:  # removed meanwhile
                continue
        return removed

    def close(self) -> None:
        self._finalizer()


def _prune_forever(
    ref: weakref.ref[ScoredFiles], stop: threading.Event, every: float
) -> None:
    while not stop.wait(every):
        files = ref()
        if files is None:
            return
        files.prune()
        del files


def _remove(root: Path, stop: threading.Event) -> None:
    stop.set()
    shutil.rmtree(root, ignore_errors=True)
