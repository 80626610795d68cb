"""Memory kept out of the request path: freed memory kept for reuse, so big requests
stop paying page faults on the loop; and the heap a server built at start kept out of
the garbage collector's full passes, so they stop pausing the loop.

glibc gives a block above its mmap threshold a mapping of its own and returns it to the
kernel when it is freed, and trims the heap's free top likewise; the next block of that
size is fresh pages, each zeroed by the kernel on first touch. A 100,000-row gRPC
request is several such blocks (the 2.8 MB message grpcio hands over as `bytes`,
protobuf's arena, the tensors): the event loop took ~1,400 page faults per request,
about half the loop's time per request, with the GIL held, while probes waited.
Raising both thresholds keeps those pages in the heap for the next request (the
predictor's RSS stays ~40 MB higher after big batches). A glibc specific: elsewhere it
does nothing.
"""

from __future__ import annotations

import ctypes
import gc
import sys

# mallopt(3) parameters (glibc malloc.h)
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
# Blocks up to this size come from the heap (glibc's largest mmap threshold on 64-bit
# systems); the heap's free top goes back to the kernel only beyond TRIM.
MMAP_THRESHOLD_BYTES = 32 << 20
TRIM_THRESHOLD_BYTES = 128 << 20


def keep_freed_memory() -> bool:
    """Raise glibc's mmap and trim thresholds for this process; False where there
    is no glibc `mallopt` (or it refused)."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    # glibc returns 1 on success; musl's mallopt is a stub that returns 0.
    return bool(
        mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)
        and mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES)
    )


def freeze_startup_heap() -> int:
    """Move every object alive now into the collector's permanent generation
    (`gc.freeze`) after one last collection; the number of objects frozen.

    Call it once a server has started (imports done, model or feature store open):
    what it built then lives as long as the process. Without it each full (gen-2)
    collection walks all of it on the event loop: the transformer's heap (Feast,
    pandas, protobuf) is ~160,000 objects and a full pass over them took 80 ms on
    this 2-core machine under load, the gateway's ~57,000 (14 ms), the predictor's
    ~47,000 (21 ms); under steady traffic such passes came every few seconds, each
    one a stall every queued request waits out (issue 25's p99). Frozen objects are
    still freed by reference counting; only cycles among them are never collected.
    """
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()
