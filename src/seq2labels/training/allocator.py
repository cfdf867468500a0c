"""glibc malloc settings for tensor workloads (Linux).

Decoding and training allocate and free tensors of tens of MB at every step. By default
glibc serves blocks above its mmap threshold with fresh ``mmap`` calls and trims freed
memory at the top of the heap back to the kernel, so the next step's tensor of the same
size faults in new zeroed pages again. In the speed suite that page faulting cost about a
third of beam-search prediction time (benchmarks/results/speed.md, "Memory allocator").
Raising both thresholds keeps freed blocks in the process for reuse; the price is that
resident memory stays near its peak instead of shrinking between batches.

``SEQ2LABELS_MALLOC=default`` in the environment leaves glibc's settings alone.
"""

from __future__ import annotations

import ctypes
import logging
import os
import sys

log = logging.getLogger(__name__)

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD_BYTES = 32 * 1024 * 1024       # glibc's upper bound for M_MMAP_THRESHOLD on 64-bit
TRIM_THRESHOLD_BYTES = 2**31                   # keep up to 2 GiB of freed heap for reuse
ENV_SWITCH = "SEQ2LABELS_MALLOC"

_state: dict[str, bool] = {}


def keep_freed_memory() -> bool:
    """Raise glibc's mmap and trim thresholds once per process; True when they are raised.

    A no-op (False) off Linux, on a libc without ``mallopt`` (musl), and when the
    environment says ``SEQ2LABELS_MALLOC=default``.
    """
    if "done" not in _state:
        _state["done"] = _raise_thresholds()
    return _state["done"]


def _raise_thresholds() -> bool:
    if os.environ.get(ENV_SWITCH, "").lower() == "default" or not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    ok = bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)) and bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES))
    log.debug("malloc thresholds %s", "raised" if ok else "left at glibc's defaults (mallopt refused)")
    return ok
