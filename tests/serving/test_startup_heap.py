"""The heap a server built at start is frozen out of full collections; what is made
afterwards is still collected (a request's reference cycles never leak)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.inprocess

SCRIPT = textwrap.dedent(
    """
    import gc, json
    from riskserve.serving.memory import freeze_startup_heap

    startup = [[i] for i in range(50_000)]  # what a server builds once (tracked)
    frozen = freeze_startup_heap()
    tracked_after_freeze = len(gc.get_objects())

    class Node:
        pass

    gc.disable()  # only the collection below runs: it must find every cycle
    for _ in range(1000):  # cycles made while serving
        a, b = Node(), Node()
        a.other, b.other = b, a
    del a, b
    collected = gc.collect()
    print(json.dumps({
        "frozen": frozen,
        "tracked_after_freeze": tracked_after_freeze,
        "collected": collected,
        "startup_alive": len(startup),
    }))
    """
)


def test_startup_objects_are_frozen_and_later_cycles_still_collected() -> None:
    # In a process of its own: gc.freeze is process-wide.
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, check=True
    ).stdout
    result = json.loads(out)
    assert result["frozen"] >= 50_000  # the startup objects, out of the passes
    assert result["tracked_after_freeze"] < 1_000  # what a full pass still walks
    assert result["collected"] >= 2_000  # the 1,000 cycles made afterwards
    assert result["startup_alive"] == 50_000
